"""The AT commands of the simulated modem, as a dispatch table.

Each handler takes the modem (through the small :class:`Context` protocol) and one parsed
:class:`~modemd.simulator.at_line.Command`, and returns a :class:`Reply`: information lines and
a final result code. Handlers do no I/O; the engine in ``modem.py`` formats and writes replies
and turns the side effects (reset, +CNMA, buffered indications) into bytes and timers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from modemd.simulator.at_line import Command
from modemd.simulator.pdu_text import parse_hex, text_record, to_hex, tpdu_length
from modemd.simulator.profiles import IccidCommand, SimProfile
from modemd.simulator.quirks import Quirks
from modemd.simulator.state import PIN_READY, PIN_SIM_PIN, PIN_SIM_PUK, ModemState
from modemd.simulator.storage import (
    ALL,
    REC_UNREAD,
    STATUS_BY_NAME,
    STATUS_NAMES,
    STO_UNSENT,
    Storage,
    StoredMessage,
)

CME_TEXT: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    16: "incorrect password",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
}

CMS_TEXT: dict[int, str] = {
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    316: "SIM PUK required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


@dataclass(frozen=True, slots=True)
class Identity:
    imei: str
    imsi: str
    iccid: str


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """AT+CMGW=<length>[,<stat>] waits for a PDU ended by Ctrl-Z after a "> " prompt.

    ``finish`` answers what came (None: AT+CMGW's :func:`finish_cmgw`); AT+CMGS sets its own.
    """

    length: int
    status: int
    finish: Callable[[Context, PromptRequest, str], Reply] | None = None
    destination: str = ""  # text-mode AT+CMGS="<da>"


@dataclass(slots=True)
class Reply:
    lines: list[str] = field(default_factory=list)
    final: str = "OK"
    prompt: PromptRequest | None = None
    halt: bool = False  # nothing after this command on the line runs (a reset)

    @property
    def ok(self) -> bool:
        return self.final == "OK"


class Context(Protocol):
    """What a handler may see and do."""

    @property
    def state(self) -> ModemState: ...
    @property
    def profile(self) -> SimProfile: ...
    @property
    def quirks(self) -> Quirks: ...
    @property
    def identity(self) -> Identity: ...
    @property
    def signal(self) -> tuple[int, int]: ...
    @property
    def expected_pin(self) -> str: ...

    def storage(self, name: str) -> Storage: ...
    def registration_stat(self) -> int: ...
    def ack_cmt(self, positive: bool) -> bool: ...
    def start_reset(self) -> None: ...
    def flush_indications(self, discard: bool) -> None: ...
    def restore_settings(self) -> None: ...
    def sim_unlocked(self) -> None: ...


class BadArguments(ValueError):
    """A handler's arguments were wrong: answered with +CME ERROR: 50 / +CMS ERROR: 304|305."""


Handler = Callable[[Context, Command], Reply]


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    handler: Handler
    sim: Literal["cme", "cms"] | None = None  # refused while the SIM is locked
    kind: Literal["cme", "cms"] = "cme"  # which error family answers bad arguments
    optional: bool = False  # only where the profile lists it in optional_commands


# -- result codes -------------------------------------------------------------------------


def cme_error(ctx: Context, code: int) -> Reply:
    if ctx.state.cmee == 0:
        return Reply(final="ERROR")
    if ctx.state.cmee == 2 and code in CME_TEXT:
        return Reply(final=f"+CME ERROR: {CME_TEXT[code]}")
    return Reply(final=f"+CME ERROR: {code}")


def cms_error(ctx: Context, code: int) -> Reply:
    if ctx.state.cmee == 2 and code in CMS_TEXT:
        return Reply(final=f"+CMS ERROR: {CMS_TEXT[code]}")
    return Reply(final=f"+CMS ERROR: {code}")


def _ints(command: Command, minimum: int = 1, maximum: int = 99) -> list[int]:
    args = [a for a in command.args]
    if not minimum <= len(args) <= maximum:
        raise BadArguments(command.text)
    try:
        return [int(a) if a != "" else 0 for a in args]
    except ValueError as exc:
        raise BadArguments(command.text) from exc


def _one_of(value: int, allowed: range | set[int] | frozenset[int], command: Command) -> int:
    if value not in allowed:
        raise BadArguments(command.text)
    return value


def _format(ctx: Context, template: str) -> str:
    return template.format(
        manufacturer=ctx.profile.manufacturer,
        model=ctx.profile.model,
        revision=ctx.profile.revision,
        imei=ctx.identity.imei,
    )


def _hex(ctx: Context, pdu: bytes) -> str:
    return to_hex(pdu, lowercase=ctx.quirks.lowercase_hex)


# -- V.250 basics -------------------------------------------------------------------------


def h_echo(ctx: Context, c: Command) -> Reply:
    value = c.args[0] if c.args else "0"
    ctx.state.echo = bool(_one_of(int(value), {0, 1}, c))
    return Reply()


def h_ati(ctx: Context, c: Command) -> Reply:
    return Reply([_format(ctx, line) for line in ctx.profile.ati_lines])


def h_restore(ctx: Context, c: Command) -> Reply:
    ctx.restore_settings()
    return Reply()


def h_accept(ctx: Context, c: Command) -> Reply:
    """Settings the simulator takes and ignores (AT&C1, AT&D2, ATX4, ATS0=0, AT&W ...)."""
    return Reply()


def h_verbose(ctx: Context, c: Command) -> Reply:
    # Only verbose result codes (V1) and results on (Q0) are simulated.
    wanted = "1" if c.name == "V" else "0"
    value = c.args[0] if c.args else "0"
    return Reply() if value == wanted else Reply(final="ERROR")


def h_cmee(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f"+CMEE: {ctx.state.cmee}"])
    if c.op == "test":
        return Reply(["+CMEE: (0-2)"])
    ctx.state.cmee = _one_of(_ints(c, 1, 1)[0], range(3), c)
    return Reply()


def _identity_line(template_attr: str) -> Handler:
    def handler(ctx: Context, c: Command) -> Reply:
        if c.op == "test":
            return Reply()
        if c.op != "exec":
            raise BadArguments(c.text)
        return Reply([_format(ctx, getattr(ctx.profile, template_attr))])

    return handler


def h_cgsn(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply()
    return Reply([ctx.identity.imei])


def h_cimi(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply()
    return Reply([ctx.identity.imsi])


def h_gcap(ctx: Context, c: Command) -> Reply:
    return Reply(["+GCAP: +CGSM"])


def h_ipr(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f"+IPR: {ctx.state.ipr}"])
    if c.op == "test":
        return Reply(["+IPR: (0,300,1200,2400,4800,9600,19200,38400,57600,115200,230400,460800)"])
    ctx.state.ipr = _ints(c, 1, 1)[0]
    return Reply()


def iccid_answer(ctx: Context, entry: IccidCommand) -> Reply:
    if entry.needs_pin and ctx.state.pin_state != PIN_READY:
        return cme_error(ctx, 12 if ctx.state.pin_state == PIN_SIM_PUK else 11)
    number = ctx.identity.iccid
    if entry.swapped:
        padded = number + "F" * (len(number) % 2)
        number = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    if entry.quoted:
        number = f'"{number}"'
    return Reply([entry.prefix + number])


# -- SIM and network ----------------------------------------------------------------------


def h_cpin(ctx: Context, c: Command) -> Reply:
    state = ctx.state
    if c.op == "query":
        return Reply([f"+CPIN: {state.pin_state}"])
    if c.op == "test":
        return Reply()
    if c.op != "set" or not c.args:
        raise BadArguments(c.text)
    if state.pin_state == PIN_READY:
        return cme_error(ctx, 3)
    if state.pin_state == PIN_SIM_PUK:
        return cme_error(ctx, 16)  # PUK entry is not simulated
    if c.args[0] == ctx.expected_pin:
        state.pin_state = PIN_READY
        state.pin_attempts = 3
        ctx.sim_unlocked()
        return Reply()
    state.pin_attempts -= 1
    if state.pin_attempts <= 0:
        state.pin_state = PIN_SIM_PUK
    return cme_error(ctx, 16)


def h_csq(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply(["+CSQ: (0-31,99),(0-7,99)"])
    rssi, ber = ctx.signal if ctx.state.cfun == 1 else (99, 99)
    return Reply([f"+CSQ: {rssi},{ber}"])


def h_cesq(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply(["+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)"])
    rssi, _ber = ctx.signal if ctx.state.cfun == 1 else (99, 99)
    if rssi == 99:
        return Reply(["+CESQ: 99,99,255,255,255,255"])
    rsrp = min(97, max(0, rssi + 25))  # rssi 20 (-73 dBm) -> rsrp 45 (-96 dBm)
    rsrq = min(34, max(0, rssi // 2 + 8))
    return Reply([f"+CESQ: 99,99,255,255,{rsrq},{rsrp}"])


def _registration(prefix: str, attr: str, area: str) -> Handler:
    def handler(ctx: Context, c: Command) -> Reply:
        if c.op == "test":
            return Reply([f"{prefix}: (0-2)"])
        if c.op == "query":
            return Reply([registration_line(ctx, prefix, attr, area)])
        if c.op == "exec":
            raise BadArguments(c.text)
        setattr(ctx.state, attr, _one_of(_ints(c, 1, 1)[0], range(3), c))
        return Reply()

    return handler


def registration_line(ctx: Context, prefix: str, attr: str, area: str, *, urc: bool = False) -> str:
    """"+CREG: 2,1,..." for a query; "+CREG: 1,..." (no <n>) as a URC."""
    n = getattr(ctx.state, attr)
    stat = ctx.registration_stat()
    head = f"{prefix}: {stat}" if urc else f"{prefix}: {n},{stat}"
    if n == 2 and stat in (1, 5):
        return f'{head},"{area}","01C3D4E5",{ctx.profile.access_technology}'
    return head


REGISTRATION_URCS: tuple[tuple[str, str, str], ...] = (
    ("+CREG", "creg_n", "1A2B"),
    ("+CGREG", "cgreg_n", "1A2B"),
    ("+CEREG", "cereg_n", "4E21"),
)


def h_cops(ctx: Context, c: Command) -> Reply:
    profile = ctx.profile
    if c.op == "test":
        return Reply([
            f'+COPS: (2,"{profile.operator}","{profile.operator[:8]}",'
            f'"{profile.operator_numeric}",{profile.access_technology}),,(0-4),(0-2)'
        ])
    if c.op == "query":
        if ctx.registration_stat() in (1, 5):
            return Reply([f'+COPS: 0,0,"{profile.operator}",{profile.access_technology}'])
        return Reply(["+COPS: 0"])
    if c.op == "set":
        return Reply()
    raise BadArguments(c.text)


def h_cfun(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f"+CFUN: {ctx.state.cfun}"])
    if c.op == "test":
        return Reply(["+CFUN: (0,1,4),(0,1)"])
    values = _ints(c, 1, 2)
    fun = _one_of(values[0], {0, 1, 4}, c)
    if len(values) == 2 and _one_of(values[1], {0, 1}, c) == 1:
        ctx.start_reset()
        return Reply(halt=True)
    ctx.state.cfun = fun
    return Reply()


def h_curc(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f"^CURC: {ctx.state.curc}"])
    if c.op == "test":
        return Reply(["^CURC: (0-1)"])
    ctx.state.curc = _one_of(_ints(c, 1, 1)[0], {0, 1}, c)
    return Reply()


# -- SMS settings -------------------------------------------------------------------------


def _flag_setting(prefix: str, attr: str) -> Handler:
    def handler(ctx: Context, c: Command) -> Reply:
        if c.op == "query":
            return Reply([f"{prefix}: {getattr(ctx.state, attr)}"])
        if c.op == "test":
            return Reply([f"{prefix}: (0,1)"])
        if c.op == "exec":
            setattr(ctx.state, attr, 0)
            return Reply()
        setattr(ctx.state, attr, _one_of(_ints(c, 1, 1)[0], {0, 1}, c))
        return Reply()

    return handler


def h_cscs(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f'+CSCS: "{ctx.state.cscs}"'])
    if c.op == "test":
        return Reply([ctx.profile.cscs_test])
    if c.op != "set" or len(c.args) != 1:
        raise BadArguments(c.text)
    wanted = c.args[0].upper()
    if wanted not in {name.upper() for name in ctx.profile.charsets()}:
        return cme_error(ctx, 4)
    ctx.state.cscs = wanted
    return Reply()


def h_csms(ctx: Context, c: Command) -> Reply:
    """AT+CSMS=1 (phase 2+): a +CMT waits for AT+CNMA; with 0 it is not held at all."""
    if c.op == "query":
        return Reply([f"+CSMS: {ctx.state.csms},1,1,1"])
    if c.op == "test":
        return Reply(["+CSMS: (0)" if ctx.quirks.refuse_csms else "+CSMS: (0,1)"])
    service = _one_of(_ints(c, 1, 1)[0], {0, 1}, c)
    if service == 1 and ctx.quirks.refuse_csms:
        return cms_error(ctx, 303)
    ctx.state.csms = service
    return Reply(["+CSMS: 1,1,1"])


def h_csca(ctx: Context, c: Command) -> Reply:
    if c.op == "query":
        return Reply([f'+CSCA: "{ctx.state.csca}",{ctx.state.tosca}'])
    if c.op == "test":
        return Reply()
    if c.op != "set" or not 1 <= len(c.args) <= 2 or not c.args[0]:
        raise BadArguments(c.text)
    ctx.state.csca = c.args[0]
    try:
        ctx.state.tosca = int(c.args[1]) if len(c.args) == 2 else (
            145 if c.args[0].startswith("+") else 129
        )
    except ValueError as exc:
        raise BadArguments(c.text) from exc
    return Reply()


def _storage_triplets(ctx: Context) -> list[tuple[str, Storage]]:
    return [(name, ctx.storage(name)) for name in ctx.state.cpms]


def h_cpms(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply([ctx.profile.cpms_test])
    if c.op == "query":
        parts = [f'"{name}",{s.used},{s.capacity}' for name, s in _storage_triplets(ctx)]
        return Reply(["+CPMS: " + ",".join(parts)])
    if c.op != "set" or not 1 <= len(c.args) <= 3:
        raise BadArguments(c.text)
    wanted = [arg.upper() for arg in c.args]
    for position, name in enumerate(wanted):
        if name not in ctx.profile.storages(position):
            return cms_error(ctx, 302)
    for position, name in enumerate(wanted):
        ctx.state.cpms[position] = name
    parts = [f"{s.used},{s.capacity}" for _name, s in _storage_triplets(ctx)]
    return Reply(["+CPMS: " + ",".join(parts)])


def h_cnmi(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply([ctx.profile.cnmi_test])
    if c.op == "query":
        return Reply(["+CNMI: " + ",".join(str(v) for v in ctx.state.cnmi)])
    if c.op != "set":
        raise BadArguments(c.text)
    values = _ints(c, 1, 5)
    values += [0] * (5 - len(values))
    ranges = ctx.profile.cnmi_ranges()
    for value, allowed in zip(values, ranges, strict=False):
        if value not in allowed:
            return cms_error(ctx, 303)
    ctx.state.cnmi = values
    if values[0] != 0:
        ctx.flush_indications(discard=values[4] == 1)
    return Reply()


# -- messages -----------------------------------------------------------------------------


def _read_storage(ctx: Context) -> Storage:
    return ctx.storage(ctx.state.cpms[0])


def _text_header(ctx: Context, prefix: str, message: StoredMessage, *, full: bool) -> list[str]:
    """Text-mode header line and body (27.005 3.4.2 / 3.4.3); ``full`` is the +CMGR form."""
    stat = STATUS_NAMES[message.status]
    record = text_record(message.pdu, ctx.state.cscs)
    if record is None:  # undecodable, a status report, or no codec: keep it minimal
        return [f'{prefix}"{stat}","",,', _hex(ctx, message.pdu)]
    csdh = bool(ctx.state.csdh)
    if record.scts is None:  # a stored SUBMIT: <da>,[<alpha>] and no time stamp
        head = f'{prefix}"{stat}","{record.address}",'
        if csdh and full:
            head += (
                f",{record.toa},{record.first_octet},{record.pid},{record.dcs},,"
                f'"{record.sca}",{record.tosca},{record.length}'
            )
        elif csdh:
            head += f",{record.toa},{record.length}"
        return [head, record.body]
    head = f'{prefix}"{stat}","{record.address}",,"{record.scts}"'
    if csdh and full:
        head += (
            f",{record.toa},{record.first_octet},{record.pid},{record.dcs},"
            f'"{record.sca}",{record.tosca},{record.length}'
        )
    elif csdh:
        head += f",{record.toa},{record.length}"
    return [head, record.body]


def _pdu_block(ctx: Context, prefix: str, message: StoredMessage) -> list[str]:
    if message.listing is not None:  # a corrupt entry, listed as such ("" : no PDU line)
        length = message.length if message.length is not None else tpdu_length(message.pdu)
        head = f"{prefix}{message.status},,{length}"
        return [head, message.listing] if message.listing else [head]
    return [f"{prefix}{message.status},,{tpdu_length(message.pdu)}", _hex(ctx, message.pdu)]


def _mark_read(message: StoredMessage) -> None:
    if message.status == REC_UNREAD:
        message.status = 1


def h_cmgl(ctx: Context, c: Command) -> Reply:
    text_mode = ctx.state.cmgf == 1
    if c.op == "test":
        if text_mode:
            return Reply(['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")'])
        return Reply(["+CMGL: (0-4)"])
    if c.op == "query" or len(c.args) > 1:
        raise BadArguments(c.text)
    if c.op == "exec":
        status = REC_UNREAD
    elif text_mode:
        if c.args[0].upper() not in STATUS_BY_NAME:
            raise BadArguments(c.text)
        status = STATUS_BY_NAME[c.args[0].upper()]
    else:
        if not c.args[0].isdigit() or int(c.args[0]) > ALL:
            raise BadArguments(c.text)
        status = int(c.args[0])
    lines: list[str] = []
    for index, message in _read_storage(ctx).listing(status):
        if text_mode:
            lines += _text_header(ctx, f"+CMGL: {index},", message, full=False)
        else:
            lines += _pdu_block(ctx, f"+CMGL: {index},", message)
        _mark_read(message)
    return Reply(lines)


def h_cmgr(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply()
    index = _ints(c, 1, 1)[0]
    storage = _read_storage(ctx)
    if not storage.valid_index(index):
        return cms_error(ctx, 321)
    message = storage.get(index)
    if message is None:
        code = ctx.profile.cmgr_empty_error
        return Reply() if code is None else cms_error(ctx, code)
    if ctx.state.cmgf == 1:
        lines = _text_header(ctx, "+CMGR: ", message, full=True)
    else:
        lines = _pdu_block(ctx, "+CMGR: ", message)
    _mark_read(message)
    return Reply(lines)


def h_cmgd(ctx: Context, c: Command) -> Reply:
    storage = _read_storage(ctx)
    if c.op == "test":
        used = ",".join(str(i) for i in sorted(storage.slots))
        return Reply([f"+CMGD: ({used}),(0-4)"])
    values = _ints(c, 1, 2)
    flag = values[1] if len(values) == 2 else 0
    if flag not in range(5):
        raise BadArguments(c.text)
    if flag:
        storage.delete_flagged(flag)
        return Reply()
    if not storage.valid_index(values[0]):
        return cms_error(ctx, 321)
    storage.delete(values[0])
    return Reply()


def h_cmgw(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply()
    if ctx.state.cmgf == 1:
        return cms_error(ctx, 303)  # text-mode writing is not simulated
    values = _ints(c, 1, 2)
    status = values[1] if len(values) == 2 else STO_UNSENT
    if not 1 <= values[0] <= 164 or status not in range(4):
        raise BadArguments(c.text)
    return Reply(final="", prompt=PromptRequest(values[0], status))


def finish_cmgw(ctx: Context, request: PromptRequest, text: str) -> Reply:
    """The PDU after AT+CMGW's prompt arrived (ended by Ctrl-Z)."""
    try:
        pdu = parse_hex(text)
    except ValueError:
        return cms_error(ctx, 304)
    if tpdu_length(pdu) != request.length:
        return cms_error(ctx, 304)
    storage = ctx.storage(ctx.state.cpms[1])
    if ctx.quirks.storage_full:
        return cms_error(ctx, 322)
    index = storage.store(pdu, request.status)
    if index is None:
        return cms_error(ctx, 322)
    return Reply([f"+CMGW: {index}"])


def h_cnma(ctx: Context, c: Command) -> Reply:
    if c.op == "test":
        return Reply(["+CNMA: (0-2)"])
    positive = True
    if c.op == "set":
        positive = _one_of(_ints(c, 1, 2)[0], range(3), c) != 2
    if not ctx.ack_cmt(positive):
        return cms_error(ctx, 340)
    return Reply()


# -- the table ----------------------------------------------------------------------------

HANDLERS: dict[str, HandlerSpec] = {
    "E": HandlerSpec(h_echo),
    "I": HandlerSpec(h_ati),
    "Z": HandlerSpec(h_restore),
    "&F": HandlerSpec(h_restore),
    "V": HandlerSpec(h_verbose),
    "Q": HandlerSpec(h_verbose),
    "X": HandlerSpec(h_accept),
    "&C": HandlerSpec(h_accept),
    "&D": HandlerSpec(h_accept),
    "&K": HandlerSpec(h_accept),
    "&W": HandlerSpec(h_accept),
    "+CMEE": HandlerSpec(h_cmee),
    "+CGMI": HandlerSpec(_identity_line("cgmi_line")),
    "+GMI": HandlerSpec(_identity_line("cgmi_line")),
    "+CGMM": HandlerSpec(_identity_line("cgmm_line")),
    "+GMM": HandlerSpec(_identity_line("cgmm_line")),
    "+CGMR": HandlerSpec(_identity_line("cgmr_line")),
    "+GMR": HandlerSpec(_identity_line("cgmr_line")),
    "+CGSN": HandlerSpec(h_cgsn),
    "+GSN": HandlerSpec(h_cgsn),
    "+GCAP": HandlerSpec(h_gcap),
    "+IPR": HandlerSpec(h_ipr),
    "+CIMI": HandlerSpec(h_cimi, sim="cme"),
    "+CPIN": HandlerSpec(h_cpin),
    "+CSQ": HandlerSpec(h_csq),
    "+CESQ": HandlerSpec(h_cesq, optional=True),
    "+CREG": HandlerSpec(_registration("+CREG", "creg_n", "1A2B")),
    "+CGREG": HandlerSpec(_registration("+CGREG", "cgreg_n", "1A2B"), optional=True),
    "+CEREG": HandlerSpec(_registration("+CEREG", "cereg_n", "4E21"), optional=True),
    "+COPS": HandlerSpec(h_cops),
    "+CFUN": HandlerSpec(h_cfun),
    "^CURC": HandlerSpec(h_curc, optional=True),
    "+CMGF": HandlerSpec(_flag_setting("+CMGF", "cmgf")),
    "+CSDH": HandlerSpec(_flag_setting("+CSDH", "csdh")),
    "+CSCS": HandlerSpec(h_cscs),
    "+CSMS": HandlerSpec(h_csms, kind="cms"),
    "+CSCA": HandlerSpec(h_csca, sim="cms", kind="cms"),
    "+CPMS": HandlerSpec(h_cpms, sim="cms", kind="cms"),
    "+CNMI": HandlerSpec(h_cnmi, kind="cms"),
    "+CMGL": HandlerSpec(h_cmgl, sim="cms", kind="cms"),
    "+CMGR": HandlerSpec(h_cmgr, sim="cms", kind="cms"),
    "+CMGD": HandlerSpec(h_cmgd, sim="cms", kind="cms"),
    "+CMGW": HandlerSpec(h_cmgw, sim="cms", kind="cms"),
    "+CNMA": HandlerSpec(h_cnma, kind="cms"),
}


def _sim_refusal(ctx: Context, family: Literal["cme", "cms"]) -> Reply:
    puk = ctx.state.pin_state == PIN_SIM_PUK
    if family == "cme":
        return cme_error(ctx, 12 if puk else 11)
    return cms_error(ctx, 316 if puk else 311)


def unknown_command(ctx: Context) -> Reply:
    if ctx.profile.unknown_command_answer is not None:
        return Reply(final=ctx.profile.unknown_command_answer)
    return cme_error(ctx, 4)


def register_handler(name: str, spec: HandlerSpec) -> None:
    """Add (or replace) the handler of command ``name`` ("+CMGS", "^FOO"): how other
    simulator modules (sending, status reports) plug into the table."""
    HANDLERS[name.upper()] = spec


def _scripted(ctx: Context, command: Command) -> Reply | None:
    """A reply the ``answers`` quirk scripts for this exact command, lines split by "\\n"."""
    script = ctx.quirks.answers.get(command.text)
    if script is None:
        return None
    lines = script.split("\n")
    return Reply(lines[:-1], final=lines[-1])


def execute(ctx: Context, command: Command) -> Reply:
    """Run one command; never raises for anything the host can send."""
    scripted = _scripted(ctx, command)
    if scripted is not None:
        return scripted
    for prefix, code in ctx.quirks.cms_error.items():
        if command.text.startswith(prefix):
            return cms_error(ctx, code)
    if command.text in ctx.profile.reset_commands:
        ctx.start_reset()
        return Reply(halt=True)
    for entry in ctx.profile.iccid_commands:
        if command.text == entry.command:
            return iccid_answer(ctx, entry)
        if command.op == "test" and entry.command.rstrip("?") == command.name:
            return Reply()
    spec = HANDLERS.get(command.name)
    if spec is None and command.name.startswith("S") and command.name[1:].isdigit():
        return Reply(["0"]) if command.op == "query" else Reply()
    if spec is None or (spec.optional and command.name not in ctx.profile.optional_commands):
        return unknown_command(ctx)
    if spec.sim is not None and ctx.state.pin_state != PIN_READY:
        return _sim_refusal(ctx, spec.sim)
    try:
        return spec.handler(ctx, command)
    except (BadArguments, ValueError, IndexError):
        if spec.kind == "cms":
            return cms_error(ctx, 305 if ctx.state.cmgf == 1 else 304)
        return cme_error(ctx, 50)


__all__ = [
    "HANDLERS",
    "PIN_SIM_PIN",
    "REGISTRATION_URCS",
    "Context",
    "HandlerSpec",
    "Identity",
    "PromptRequest",
    "Reply",
    "execute",
    "finish_cmgw",
    "register_handler",
    "registration_line",
]
