"""`modemd probe PORT`: what is this modem, is it ready to receive SMS, and if not, why.

The probe opens the port the way the daemon does (pyserial, exclusive lock), so it never talks
to a modem the daemon is using, and asks only questions: identity, SIM, network, signal,
storage, SMS capabilities. The only settings it changes are the volatile ones the daemon sets
anyway (echo off, numeric +CME errors), and it enters the SIM PIN only when given one.

Every problem found becomes a :class:`Diagnosis`: what is wrong, and what a field engineer
does about it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from modemd.at import responses as at
from modemd.at.answers import Answer
from modemd.at.events import Garbage, Urc
from modemd.errors import ATError, CommandFailed, CommandTimeout, TransportError
from modemd.modem import queries
from modemd.modem.identity import read_iccid
from modemd.modem.modemmanager import modemmanager_warning
from modemd.modem.profiles import (
    ALL_LINE_PREFIX_URCS,
    ALL_URC_PREFIXES,
    PIN_RETRY_QUERIES,
    detect_profile,
)
from modemd.modem.session import ATSession, Response
from modemd.transport import SerialTransport
from modemd.transport.port_users import MODEMMANAGER, MODEMMANAGER_FIX, users_of

Severity = Literal["error", "warning"]

#: Huawei USB ids that mean "no AT port": HiLink firmware (a network card with a web UI) and
#: the CD-ROM ("ZeroCD") mode a stick shows before usb_modeswitch has switched it.
HILINK_USB_IDS: dict[str, str] = {
    "12d1:14dc": "HiLink mode (a network card, no serial port)",
    "12d1:1f01": "CD-ROM / storage mode, not yet switched by usb_modeswitch",
}



@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One problem: what is wrong and what to do about it."""

    problem: str
    advice: str
    code: str = ""
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class StorageReport:
    name: str
    used: int
    total: int

    @property
    def full(self) -> bool:
        return self.total > 0 and self.used >= self.total


@dataclass(frozen=True)
class ProbeReport:
    """What the probe found. ``ok`` is True when the modem can receive SMS for modemd."""

    port: str
    baudrate: int
    ok: bool = False
    opened: bool = False
    answered: bool = False
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    iccid_problem: str | None = None  # what the modem said that is no ICCID (not shown as one)
    profile: str | None = None
    profile_title: str | None = None
    sim: str | None = None  # AT+CPIN? answer: READY, SIM PIN, SIM PUK, NOT INSERTED ...
    pin_entered: bool = False
    functionality: int | None = None  # AT+CFUN?: 1 full, 0 minimum, 4 radio off
    registration: str | None = None  # the best of CREG/CGREG/CEREG, as REGISTRATION_STATES
    registered: bool | None = None
    registrations: dict[str, str] = field(default_factory=dict)  # "+CREG" -> state text
    operator: str | None = None
    signal_dbm: int | None = None
    signal_ber: int | None = None
    signal_quality: str | None = None  # excellent / good / fair / poor / none
    storage: tuple[StorageReport, ...] = ()
    cnmi_supported: bool | None = None
    cnmi_setting: str | None = None  # what the daemon would set
    pdu_mode: bool | None = None
    text_mode: bool | None = None
    problems: list[Diagnosis] = field(default_factory=list)
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["storage"] = [
            {"name": s.name, "used": s.used, "total": s.total, "full": s.full}
            for s in self.storage
        ]
        return data

    def render(self) -> str:
        """The report as text for a person at a terminal."""
        lines = [f"modemd probe {self.port} ({self.baudrate} baud)"]

        def row(label: str, value: str | None) -> None:
            if value:
                lines.append(f"  {label:<10} {value}")

        if self.answered:
            name = " ".join(x for x in (self.manufacturer, self.model) if x) or "unknown modem"
            row("modem", name + (f" (revision {self.revision})" if self.revision else ""))
            row("profile", f"{self.profile} ({self.profile_title})" if self.profile else None)
            row("IMEI", self.imei)
            sim = self.sim or "unknown"
            if self.pin_entered:
                sim += " (PIN entered by the probe)"
            row("SIM", sim)
            row("IMSI", self.imsi)
            row("ICCID", self.iccid or (f"unreadable: {self.iccid_problem}"
                                        if self.iccid_problem else None))
            if self.registration is not None:
                detail = ", ".join(f"{k.lstrip('+')} {v}" for k, v in self.registrations.items())
                network = self.registration.replace("_", " ")
                if self.operator:
                    network += f" on {self.operator}"
                row("network", network + (f" ({detail})" if detail else ""))
            if self.signal_quality is not None:
                level = "unknown" if self.signal_dbm is None else f"{self.signal_dbm} dBm"
                row("signal", f"{level} ({self.signal_quality})")
            if self.storage:
                row("storage", ", ".join(
                    f"{s.name} {s.used}/{s.total}" + (" FULL" if s.full else "")
                    for s in self.storage))

            def yes_no(value: bool | None) -> str:
                return "unknown" if value is None else ("yes" if value else "no")

            row("SMS", f"PDU mode {yes_no(self.pdu_mode)}, text mode {yes_no(self.text_mode)}, "
                       f"new-message indications (AT+CNMI) {yes_no(self.cnmi_supported)}")
        errors = [d for d in self.problems if d.severity == "error"]
        warnings = [d for d in self.problems if d.severity == "warning"]
        for title, items in (("problems", errors), ("warnings", warnings)):
            if items:
                lines.append(f"{title}:")
                for diagnosis in items:
                    lines.append(f"  - {diagnosis.problem}")
                    for advice_line in diagnosis.advice.splitlines():
                        lines.append(f"      {advice_line}")
        if self.ok:
            lines.append("OK: this modem is ready for modemd"
                         + (" (see the warnings)" if warnings else ""))
        else:
            lines.append(f"NOT READY: {len(errors)} problem(s) to fix")
        return "\n".join(lines)


# --- environment helpers -----------------------------------------------------------------------


def usb_ids_present(sysfs: Path = Path("/sys/bus/usb/devices")) -> list[str]:
    """``vid:pid`` of every USB device the kernel knows (lowercase hex)."""
    found: list[str] = []
    for device in sorted(sysfs.glob("*")):
        try:
            vid = (device / "idVendor").read_text().strip().lower()
            pid = (device / "idProduct").read_text().strip().lower()
        except OSError:
            continue
        found.append(f"{vid}:{pid}")
    return found


def hilink_sticks(sysfs: Path = Path("/sys/bus/usb/devices")) -> list[str]:
    """USB ids of Huawei sticks that have no AT port in their current mode."""
    return [usb_id for usb_id in usb_ids_present(sysfs) if usb_id in HILINK_USB_IDS]


def modemmanager_running(proc: Path = Path("/proc")) -> bool:
    """Is a ModemManager process running (it opens and probes every modem port)?"""
    for comm in proc.glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "ModemManager":
                return True
        except OSError:
            continue
    return False


def other_serial_ports(port: str) -> list[str]:
    """The other USB serial ports, to try when this one does not answer AT."""
    here = os.path.realpath(port) if port.startswith("/") else port
    ports = sorted(glob.glob("/dev/ttyUSB*")) + sorted(glob.glob("/dev/ttyACM*"))
    return [p for p in ports if os.path.realpath(p) != here]


def signal_quality(dbm: int | None) -> str:
    """A word for an RSSI: excellent (>= -73 dBm, CSQ >= 20), good (>= -83, CSQ 15-19),
    fair (>= -93, CSQ 10-14), poor (CSQ 2-9), none (CSQ 0-1 or unknown)."""
    if dbm is None or dbm <= -111:
        return "none"
    if dbm >= -73:
        return "excellent"
    if dbm >= -83:
        return "good"
    if dbm >= -93:
        return "fair"
    return "poor"


def _values_offered(answer: str) -> set[int]:
    """The numbers in a test-command answer such as ``+CMGF: (0-1)`` or ``+CMGF: (0,1)``."""
    values: set[int] = set()
    for low, high in re.findall(r"(\d+)(?:\s*-\s*(\d+))?", answer.split(":", 1)[-1]):
        first = int(low)
        last = int(high) if high else first
        values.update(range(first, min(last, first + 255) + 1))
    return values


# --- diagnoses ---------------------------------------------------------------------------------


def _open_failure(port: str, exc: TransportError, *, sysfs: Path) -> list[Diagnosis]:
    cause = exc.__cause__
    err = getattr(cause, "errno", None)
    text = f"{cause or exc}"
    lowered = text.lower()
    if err == errno.ENOENT or "no such file" in lowered:
        problems = [Diagnosis(
            f"{port} does not exist",
            "Is the modem plugged in and powered? `modemd ports` lists the serial ports there "
            "are; `lsusb` shows whether the modem is on the USB bus at all. Use the stable name "
            "under /dev/serial/by-id/ (or a /dev/modem-* link from systemd/99-modemd.rules), "
            "since ttyUSB numbers change between boots.",
            code="port_missing")]
        for usb_id in hilink_sticks(sysfs):
            problems.append(Diagnosis(
                f"a Huawei stick {usb_id} is in {HILINK_USB_IDS[usb_id]}",
                "In HiLink mode the stick is a network card (a web UI on 192.168.8.1) and has no "
                "AT port, so it cannot be used for SMS by modemd. Switch it to stick (serial "
                "modem) mode with usb_modeswitch (package usb-modeswitch; e.g. "
                "`usb_modeswitch -v 12d1 -p 1f01 -M "
                "'55534243123456780000000000000011062000000100000000000000000000'`); "
                "it then shows up as 12d1:1001 or 12d1:1506 with ttyUSB ports. HiLink firmware "
                "(22.x) may refuse: then it needs stick firmware (21.x), or use another modem. "
                "See hardware.md.",
                code="hilink"))
        return problems
    if err == errno.EACCES or "permission denied" in lowered:
        return [Diagnosis(
            f"permission denied opening {port}",
            "Serial ports belong to the 'dialout' group: `sudo usermod -aG dialout $USER`, then "
            "log out and in again (or run the probe as the modemd user: "
            "`sudo -u modemd modemd probe ...`). The modemd service gets the group from its "
            "unit (SupplementaryGroups=dialout).",
            code="permission_denied")]
    if (err in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK)
            or "busy" in lowered or "lock" in lowered):
        holders = users_of(port)
        if any(u.name == MODEMMANAGER for u in holders) or (
                not holders and modemmanager_running()):
            named = ", ".join(f"{u.name} (pid {u.pid})" for u in holders) or "ModemManager"
            return [Diagnosis(f"{port} is in use by another program: {named}",
                              MODEMMANAGER_FIX, code="port_busy")]
        holder = "".join(f"{u.name} (pid {u.pid}) has it open. " for u in holders)
        return [Diagnosis(
            f"{port} is in use by another program",
            f"{holder}Another program has the port open exclusively: a running modemd "
            "(`systemctl stop modemd` while you probe), ModemManager (`systemctl stop "
            "ModemManager`, or keep it away from the modem for good with the udev rule "
            "ENV{ID_MM_DEVICE_IGNORE}=\"1\" in systemd/99-modemd.rules), or a terminal program "
            "(minicom, screen). `fuser -v " + port + "` shows who.",
            code="port_busy")]
    return [Diagnosis(f"cannot open {port}: {text}",
                      "Check the device path or URL and that the modem is attached.",
                      code="open_failed")]


def _wrong_port(port: str, system_root: Path) -> Diagnosis | None:
    """A diagnosis when ``port`` is a known modem's diagnostic, GPS or audio port."""
    from modemd.modem.discovery import list_ports
    from modemd.modem.usb_ids import NEVER_WRITE

    if not port.startswith("/"):
        return None
    here = os.path.realpath(port)
    found = list_ports(root=system_root)
    this = next((p for p in found if os.path.realpath(p.device) == here), None)
    if this is None or this.role in (None, "at", "unknown"):
        return None
    at_ports = [p.stable_path for p in found if p.usb_id == this.usb_id and p.looks_like_at]
    right = (f"Its AT port is {' or '.join(at_ports)}." if at_ports
             else "`modemd ports` lists its ports.")
    if this.role not in NEVER_WRITE:  # a PPP or second AT port: it answers, but is not ours
        return Diagnosis(
            f"{port} is the {this.role} port of a {this.product} (USB interface "
            f"{this.interface}), not the one modemd should read",
            "It answers AT, but new-message indications (+CMTI) and other events may go to "
            f"the AT port only, and PPP may need this one. {right}",
            code="not_at_port", severity="warning")
    return Diagnosis(
        f"{port} is the {this.role} port of a {this.product} (USB interface {this.interface}), "
        "not its AT port",
        f"modemd does not write to it (AT commands can upset a diagnostic or GPS port). {right}",
        code="wrong_port")


def _no_answer(port: str, baudrate: int, *, garbage: int, mm_running: bool) -> Diagnosis:
    others = other_serial_ports(port)
    advice = []
    if garbage:
        advice.append(
            f"The port sends bytes that are not AT answers: probably the wrong baud rate "
            f"(tried {baudrate}; try --baudrate 9600 or 115200), or a diagnostics / GPS / "
            "NMEA port.")
    else:
        advice.append(
            f"On a UART modem (SIM800 on the Pi's GPIO serial, or behind a USB-TTL adapter) "
            f"check the baud rate (tried {baudrate}; try --baudrate 9600 or 115200), that TX "
            "and RX are crossed, that the grounds are joined, and that the modem is switched on "
            "(PWRKEY).")
    advice.append(
        "This may not be the AT port: a USB modem has several ttyUSB interfaces and only one or "
        "two answer AT (Quectel EC2x: interface 02; SIMCom SIM7600: 02, A76xx: 04; Telit "
        "LE910C1: 04; Huawei: the PC UI port, not 00; see hardware.md). `modemd ports` marks "
        "the AT port of each known modem."
        + (f" Other serial ports here: {', '.join(others)}." if others else ""))
    if mm_running:
        advice.append("ModemManager is running and may be talking to the modem at the same "
                      "time: `systemctl stop ModemManager` and probe again.")
    advice.append("A modem that is still booting answers after 10-20 s; a hung one needs a "
                  "power cycle (unplug it, or switch the hub port off).")
    return Diagnosis(f"no answer to AT on {port}", "\n".join(advice), code="no_answer")


_CME_SIM_TEXT = {
    10: "no SIM card inserted",
    13: "the SIM card failed",
    14: "the SIM card is busy",
    15: "wrong SIM card",
}


def _sim_problem(sim: str, *, pin_refused: bool) -> Diagnosis | None:
    if sim == "READY":
        return None
    if sim == "SIM PIN":
        if pin_refused:
            return Diagnosis(
                "the SIM refused the PIN",
                "The PIN given is wrong; each wrong PIN uses one of 3 attempts, after the third "
                "the SIM needs its PUK. Check the PIN before trying again (AT+CPINR or a phone "
                "shows the attempts left).",
                code="sim_pin_wrong")
        return Diagnosis(
            "the SIM needs its PIN",
            "Put the PIN in a file and name it in the [[modem]] section: pin_file = "
            "\"sim-pin\" (under systemd: /etc/modemd/sim-pin, passed as a credential), or "
            "probe with --pin-file FILE. Or remove the PIN lock once with a phone.",
            code="sim_pin")
    if sim == "SIM PUK":
        return Diagnosis(
            "the SIM is blocked and needs its PUK (the PIN was entered wrong 3 times)",
            "Unblock it with the PUK from the SIM's carrier documents, in a phone or with "
            "`modemd at PORT 'AT+CPIN=\"<PUK>\",\"<new PIN>\"' --force`. Ten wrong PUKs destroy "
            "the SIM for good.",
            code="sim_puk")
    if sim in ("NOT INSERTED", "SIM NOT INSERTED") or sim.startswith("no SIM"):
        return Diagnosis(
            "no SIM card inserted",
            "Power the modem off, insert the SIM (contacts down, the cut corner as marked), "
            "and power it on again: most modems only look for the SIM at power-up.",
            code="sim_missing")
    return Diagnosis(
        f"the SIM is not ready: {sim}",
        "Check the SIM is seated and activated. PH-SIM PIN: the modem is locked to another "
        "SIM. SIM PIN2/PUK2 are not needed for SMS. A SIM failure may be a dirty contact or a "
        "dead card.",
        code="sim_not_ready")


def _registration_problem(best: at.Registration | None, *, dbm: int | None,
                          cfun: int | None) -> Diagnosis | None:
    if best is not None and best.registered:
        return None
    if cfun in (0, 4):
        return Diagnosis(
            f"the radio is off (AT+CFUN={cfun})",
            "Turn it on with `modemd at --force PORT AT+CFUN=1`. If it goes off again, the modem "
            "may be in flight mode by a W_DISABLE pin or overheating / under-voltage protection.",
            code="radio_off")
    stat = best.stat if best is not None else None
    if stat == 3:
        return Diagnosis(
            "the network denied registration",
            "The SIM is not allowed on this network: not activated, the plan expired, no "
            "roaming agreement, or the IMEI is blocked. Call the SIM provider; try the SIM in a "
            "phone.",
            code="registration_denied")
    if stat == 2:
        return Diagnosis(
            "not registered: searching for a network",
            "Wait a minute after power-up. If it keeps searching: check the antenna, that the "
            "modem supports the operator's bands, and that the network still exists (2G/3G "
            "networks are being shut down: a SIM800 needs GSM, an LTE Cat-M/NB-IoT module needs "
            "a SIM and network that offer it).",
            code="registration_searching")
    hint = "no signal at all" if dbm is None else f"signal {dbm} dBm"
    return Diagnosis(
        "not registered on a network (and not searching)",
        f"({hint}) The operator selection may be manual: `AT+COPS=0` selects automatically. "
        "Check the SIM is activated and try it in a phone.",
        code="not_registered")


# --- the probe ---------------------------------------------------------------------------------


class _Prober:
    def __init__(self, session: ATSession, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    def cmd(self, command: str, prefix: str = "", *,
            answer: Answer | None = None) -> Response | None:
        """The answer, or None when the modem says ERROR (not supported, SIM not ready ...).

        The answer is framed as the driver frames it (modemd.modem.queries): lines that do
        not fit it are unsolicited, never part of what the probe reports.
        """
        try:
            return self.session.execute(command, timeout=self.timeout,
                                        answer=answer or queries.answer_for(command, prefix))
        except CommandFailed:
            return None

    def failure(self, command: str, prefix: str = "") -> tuple[Response | None, int | None]:
        """Like :meth:`cmd`, with the +CME/+CMS error code when it failed."""
        try:
            return self.session.execute(command, timeout=self.timeout,
                                        answer=queries.answer_for(command, prefix)), None
        except CommandFailed as exc:
            return None, exc.code if exc.code is not None else -1

    def value(self, command: str, prefix: str = "", *,
              answer: Answer | None = None) -> str | None:
        response = self.cmd(command, prefix, answer=answer)
        if response is None:
            return None
        for line in response.lines:
            text = line.strip()
            if prefix and text.startswith(prefix + ":"):
                return text[len(prefix) + 1:].strip().strip('"') or None
            if text:
                return text.strip('"')
        return None


def probe_port(
    port: str,
    *,
    baudrate: int = 115200,
    pin: str | None = None,
    timeout: float = 3.0,
    sysfs: Path = Path("/sys/bus/usb/devices"),
    system_root: Path = Path("/"),
) -> ProbeReport:
    """Identify the modem on ``port`` and diagnose what stands between it and receiving SMS."""
    started = time.monotonic()
    report: dict[str, Any] = {"port": port, "baudrate": baudrate}
    problems: list[Diagnosis] = []

    def finish() -> ProbeReport:
        report["problems"] = problems
        report["ok"] = bool(report.get("answered")) and not any(
            d.severity == "error" for d in problems)
        report["elapsed"] = round(time.monotonic() - started, 3)
        return ProbeReport(**report)

    wrong = _wrong_port(port, system_root)
    if wrong is not None:
        problems.append(wrong)
        if wrong.severity == "error":  # a DM/GPS/audio port: not one byte is written to it
            return finish()
    transport = SerialTransport(port, baudrate=baudrate, exclusive=True)
    try:
        transport.open()
    except TransportError as exc:
        problems.extend(_open_failure(port, exc, sysfs=sysfs))
        return finish()
    report["opened"] = True
    in_the_way = modemmanager_warning(port, root=system_root) if port.startswith("/") else None
    if in_the_way is not None:
        problems.append(Diagnosis("ModemManager may take this port", in_the_way,
                                  code="modemmanager", severity="warning"))
    garbage: list[Garbage] = []
    urcs: list[Urc] = []
    session = ATSession(transport, on_urc=urcs.append, on_garbage=garbage.append,
                        urc_prefixes=ALL_URC_PREFIXES, line_prefix_urcs=ALL_LINE_PREFIX_URCS,
                        name=f"probe:{port}")
    try:
        _probe(_Prober(session, timeout), report, problems, pin=pin, garbage=garbage,
               urcs=urcs)
    except CommandTimeout as exc:
        if report.get("answered"):
            problems.append(Diagnosis(
                f"the modem stopped answering ({exc.command} got no answer in "
                f"{exc.timeout:.0f} s)",
                "It may have reset (brown-out: check the power supply) or hung; power-cycle it "
                "and probe again.", code="stopped_answering"))
        else:
            problems.append(_no_answer(port, baudrate, garbage=len(garbage),
                                       mm_running=modemmanager_running()))
    except TransportError as exc:
        problems.append(Diagnosis(
            f"the port went away during the probe ({exc})",
            "The modem disconnected from USB: a loose cable, or a brown-out reset (a modem "
            "drawing more than the Pi's USB ports give: use a powered hub, see hardware.md).",
            code="port_vanished"))
    finally:
        session.close()
    return finish()


def _sync(p: _Prober) -> None:
    """Get the modem's attention; CommandTimeout when it never answers."""
    last: Exception | None = None
    for _ in range(2):
        try:
            p.session.execute("AT", timeout=p.timeout, check=False)
            return
        except CommandTimeout as exc:
            last = exc
    assert last is not None
    raise last


def _probe(p: _Prober, report: dict[str, Any], problems: list[Diagnosis], *, pin: str | None,
           garbage: Sequence[Garbage], urcs: Sequence[Urc]) -> None:
    _sync(p)
    report["answered"] = True
    p.cmd("ATE0")
    p.cmd("AT+CMEE=1")

    manufacturer = p.value("AT+CGMI", "+CGMI") or ""
    model = p.value("AT+CGMM", "+CGMM") or ""
    profile = detect_profile(manufacturer, model)
    revision = p.value("AT+CGMR", "+CGMR")
    if revision and revision.lower().startswith("revision:"):
        revision = revision[len("revision:"):].strip()
    report.update(manufacturer=manufacturer or None, model=model or None,
                  revision=revision or None, profile=profile.name,
                  profile_title=profile.title)
    imei = p.value("AT+CGSN", "+CGSN")
    report["imei"] = imei.replace("+CGSN:", "").strip() if imei else None

    sim = _read_sim(p)
    pin_refused = False
    if sim == "SIM PIN" and pin:
        retries = pin_retries(p)
        if retries is not None and retries < 2:
            problems.append(Diagnosis(
                f"the SIM needs its PIN and has {retries} attempt(s) left",
                "The probe does not try a PIN that could block the SIM. Enter the PIN by hand "
                "once you are sure of it (`modemd at PORT 'AT+CPIN=\"<PIN>\"' --force`) or in "
                "a phone.", code="sim_pin_last_attempt"))
            report["sim"] = sim
            pin = None
        elif p.cmd(f'AT+CPIN="{pin}"') is None:
            pin_refused = True
        else:
            report["pin_entered"] = True
            sim = _wait_sim_ready(p)
    report["sim"] = sim
    sim_problem = _sim_problem(sim or "unknown", pin_refused=pin_refused)
    if sim_problem is not None and not any(
            d.code == "sim_pin_last_attempt" for d in problems):
        problems.append(sim_problem)

    if sim == "READY":
        report["imsi"] = p.value("AT+CIMI", "+CIMI")
    for command, prefix in profile.iccid_commands:
        answer = p.value(command, prefix, answer=queries.iccid_answer(prefix))
        if not answer:
            continue
        iccid = read_iccid(answer)  # as the driver reads it: swapped nibbles, Luhn digit
        if iccid.value is not None:
            report["iccid"] = iccid.value
            break
        report["iccid_problem"] = iccid.problem

    cfun_text = p.value("AT+CFUN?", "+CFUN")
    cfun = None
    if cfun_text:
        first = cfun_text.split(",")[0].strip()
        cfun = int(first) if first.isdigit() else None
    report["functionality"] = cfun

    registrations: dict[str, str] = {}
    best: at.Registration | None = None
    for command in ("+CREG", "+CGREG", "+CEREG"):
        line = p.value(f"AT{command}?", command)
        if not line:
            continue
        try:
            reg = at.parse_creg(line, form="query")
        except ATError:
            continue
        registrations[command] = reg.stat_text
        if best is None or (reg.registered and not best.registered) or (
                not best.registered and not reg.registered and _searching_rank(reg.stat)
                > _searching_rank(best.stat)):
            best = reg
    report["registrations"] = registrations
    if best is not None:
        report["registration"] = best.stat_text
        report["registered"] = best.registered

    cops = p.value("AT+COPS?", "+COPS")
    if cops:
        with contextlib.suppress(ATError):
            report["operator"] = at.parse_cops(cops).name

    dbm: int | None = None
    csq = p.value("AT+CSQ", "+CSQ")
    if csq:
        try:
            signal = at.parse_csq(csq)
            dbm = signal.rssi_dbm
            report.update(signal_dbm=dbm, signal_ber=signal.ber)
        except ATError:
            pass
    quality = signal_quality(dbm)
    report["signal_quality"] = quality

    if sim == "READY":
        registration_problem = _registration_problem(best, dbm=dbm, cfun=cfun)
        if registration_problem is not None:
            problems.append(registration_problem)
        if quality == "none" and cfun not in (0, 4):
            problems.append(Diagnosis(
                "no signal",
                "Check the antenna: screwed onto the MAIN (not DIV/AUX or GPS) connector, the "
                "right bands, not inside a metal cabinet; LTE modems need the main antenna and "
                "work better with both. Check coverage for the modem's technology (a SIM800 "
                "needs a 2G network).",
                code="no_signal"))
        elif quality == "poor":
            problems.append(Diagnosis(
                f"weak signal ({dbm} dBm)",
                "SMS usually still get through, but expect delays. A better antenna position "
                "(outside the cabinet, higher up, an external antenna on a cable) helps.",
                code="weak_signal", severity="warning"))

    storages = _read_storage(p)
    report["storage"] = tuple(storages)
    for storage in storages:
        if storage.full:
            problems.append(Diagnosis(
                f"SMS storage {storage.name} is full ({storage.used}/{storage.total})",
                "New messages are refused (the network keeps retrying for a while). modemd "
                "sweeps the storage when it starts (reads, journals, then deletes every "
                "message), so starting it clears this. To clear it by hand instead (the "
                f"messages are lost): `modemd at PORT 'AT+CPMS=\"{storage.name}\";+CMGD=1,4' "
                "--force`.",
                code="storage_full", severity="warning"))
            break
    full_urc = next((u for u in urcs if u.name in ("^SMMEMFULL",) or (
        u.name == "+QIND" and "smsfull" in u.args.lower())), None)
    if full_urc is not None and not any(d.code == "storage_full" for d in problems):
        problems.append(Diagnosis(
            f"the modem reported its SMS storage full ({full_urc.name} {full_urc.args})",
            "modemd sweeps the storage when it starts; this clears it.",
            code="storage_full", severity="warning"))

    _read_sms_modes(p, report, problems)


def _searching_rank(stat: int) -> int:
    """Which of two unregistered states says more: denied > searching > other."""
    return {3: 3, 2: 2}.get(stat, 1)


def _read_sim(p: _Prober) -> str:
    response, code = p.failure("AT+CPIN?", "+CPIN")
    if response is None:
        if code in _CME_SIM_TEXT:
            return "NOT INSERTED" if code == 10 else _CME_SIM_TEXT[code]
        return "unknown (AT+CPIN? failed)"
    for line in response.lines:
        if line.strip().upper().startswith("+CPIN"):
            try:
                return at.parse_cpin(line).upper()
            except ATError:
                break
    return "unknown"




def pin_retries(p: _Prober) -> int | None:
    """How many PIN attempts the SIM has left, if the modem says (else None)."""
    for command, prefix, position in PIN_RETRY_QUERIES:
        answer = p.value(command, prefix)
        if not answer:
            continue
        fields = [f.strip().strip('"') for f in answer.split(",")]
        if len(fields) > position and fields[position].isdigit():
            return int(fields[position])
    return None


def _wait_sim_ready(p: _Prober, seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    sim = _read_sim(p)
    while sim != "READY" and time.monotonic() < deadline:
        time.sleep(0.3)
        sim = _read_sim(p)
    return sim


def _read_storage(p: _Prober) -> list[StorageReport]:
    line = p.value("AT+CPMS?", "+CPMS")
    if not line:
        return []
    try:
        uses = at.parse_cpms_query(line)
    except ATError:
        return []
    seen: dict[str, StorageReport] = {}
    for use in uses:
        seen.setdefault(use.name, StorageReport(use.name, use.used, use.total))
    return list(seen.values())


def _read_sms_modes(p: _Prober, report: dict[str, Any], problems: list[Diagnosis]) -> None:
    cmgf = p.value("AT+CMGF=?", "+CMGF")
    if cmgf is not None:
        offered = _values_offered(cmgf)
        report["pdu_mode"] = 0 in offered
        report["text_mode"] = 1 in offered
    elif p.cmd("AT+CMGF?", "+CMGF") is not None:
        report["pdu_mode"] = None
    if report.get("pdu_mode") is False:
        problems.append(Diagnosis(
            "the modem has no PDU mode",
            "modemd falls back to text mode: messages still arrive, but 8-bit data, "
            "port-addressed and some multipart messages lose information. A modem with PDU "
            "mode is better for binary payloads.",
            code="no_pdu_mode", severity="warning"))
    cnmi = p.value("AT+CNMI=?", "+CNMI")
    if cnmi is None:
        report["cnmi_supported"] = False
    else:
        try:
            report["cnmi_setting"] = at.choose_cnmi(at.parse_cnmi_test(cnmi))
            report["cnmi_supported"] = True
        except ATError:
            report["cnmi_supported"] = False
    if report["cnmi_supported"] is False:
        problems.append(Diagnosis(
            "the modem does not announce new messages (no usable AT+CNMI)",
            "modemd still finds every message by sweeping the storage, but only every "
            "sweep_interval: lower it (e.g. sweep_interval = \"15s\" in [gateway]) for "
            "quicker delivery.",
            code="no_cnmi", severity="warning"))


def probe_many(ports: Iterable[str], **kwargs: Any) -> list[ProbeReport]:
    """Probe several ports one after the other (for `modemd ports --probe` style tools)."""
    return [probe_port(port, **kwargs) for port in ports]


__all__ = [
    "ALL_URC_PREFIXES",
    "HILINK_USB_IDS",
    "Diagnosis",
    "ProbeReport",
    "StorageReport",
    "hilink_sticks",
    "modemmanager_running",
    "probe_many",
    "probe_port",
    "signal_quality",
]
