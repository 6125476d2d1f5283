"""The `modemd` command line. Each verb is thin: it parses options and calls a layer."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from modemd import __version__, cli_support
from modemd.cli_support import (
    check_baudrate,
    check_new_file_parent,
    check_tcp_port,
    fail,
    parse_hex,
    positive_seconds,
    read_text_file,
    terminal_safe,
)
from modemd.config import DEFAULT_CONFIG_PATH, Config, load_config
from modemd.errors import ConfigError, DecodeError, PayloadError
from modemd.launch import setup_logging
from modemd.send.cli import sms_app
from modemd.store_cli import store_app

app = typer.Typer(
    name="modemd",
    help="Dependable inbound SMS from USB GSM/LTE modems to MQTT and a time-series store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Write, validate and show the configuration.", no_args_is_help=True)
pdu_app = typer.Typer(help="Work with SMS PDUs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(pdu_app, name="pdu")
app.add_typer(store_app, name="store")
app.add_typer(sms_app, name="sms")  # issue 15: modemd/send/cli.py

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Config file (TOML).", envvar="MODEMD_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"configuration error{'s' if len(exc.problems) > 1 else ''} in {path}:",
                   err=True)
        for key, message in exc.problems:
            typer.echo(f"  {key}: {message}", err=True)
        raise typer.Exit(2) from None


def _print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    typer.echo(cli_support.json_terminal_safe(text))


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the details (traceback) of an unexpected error.")] = False,
) -> None:
    if version:
        typer.echo(f"modemd {__version__}")
        raise typer.Exit()


# --- run ------------------------------------------------------------------------------------


@app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = "INFO",
) -> None:
    """Run the daemon in the foreground (systemd runs this)."""
    from modemd.launch import run_daemon  # also reached without typer: modemd/launch.py

    run_daemon(config, log_level)


# --- config -----------------------------------------------------------------------------------


@config_app.command("check")
def config_check(
    config: Annotated[Path, typer.Argument(help="Config file.")] = DEFAULT_CONFIG_PATH,
    online: Annotated[bool, typer.Option(help="Also contact the time-series server.")] = False,
) -> None:
    """Validate a config file; every problem is listed with its key path."""
    cfg = _load(config)
    from modemd import config_checks
    from modemd.payload.engine import PayloadEngine

    problems = config_checks.problems(cfg) + cfg.file_problems(skip_credentials=True)
    try:  # what only the assembled rules can tell: a number listed for two devices, ...
        PayloadEngine(cfg.parser, cfg.devices,
                      default_country_code=cfg.gateway.default_country_code)
    except ConfigError as exc:
        problems = exc.problems + problems
    if problems:
        typer.echo(f"{config}: {len(problems)} problem(s)", err=True)
        for key, message in problems:
            typer.echo(f"  {key}: {message}", err=True)
        raise typer.Exit(2)
    for key, message in config_checks.warnings(cfg):
        typer.echo(f"warning: {key}: {message}", err=True)
    binds = f", {len(cfg.smpp)} SMPP bind(s)" if cfg.smpp else ""
    typer.echo(f"{config}: OK ({len(cfg.modem)} modem(s){binds}, {len(cfg.parser)} parser "
               "rule(s))")
    if online and cfg.influx is not None and cfg.influx.enabled:
        from modemd.sinks.influx import check_influx

        token = cfg.influx.token()
        problem = check_influx(cfg.influx.url, token=token.get_secret_value() if token else None,
                               org=cfg.influx.org, verify_ssl=cfg.influx.verify_ssl)
        if problem:
            typer.echo(f"influx: {problem}", err=True)
            raise typer.Exit(1)
        typer.echo("influx: the server takes v2 writes")


@config_app.command("show")
def config_show(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Show the effective configuration (defaults filled in, secrets hidden)."""
    _print_json(_load(config).redacted())


@config_app.command("init")
def config_init(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write.")] = Path(
        "modemd.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    scan: Annotated[bool, typer.Option(help="List the serial ports found as modems.")] = True,
) -> None:
    """Write a commented starting config, with the modem ports found on this machine."""
    from modemd.starter_config import starter_config

    if output.exists() and not force:
        typer.echo(f"{output} exists; use --force to overwrite", err=True)
        raise typer.Exit(1)
    check_new_file_parent(output, what="cannot write")
    ports: list[str] = []
    if scan:
        from modemd.modem.discovery import list_ports

        ports = [p.stable_path for p in list_ports() if p.looks_like_at]
    try:
        output.write_text(starter_config(ports), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", 1)
    typer.echo(f"wrote {output}" + (f" with {len(ports)} modem port(s)" if ports else ""))


# --- store views ----------------------------------------------------------------------------


def _open_store(cfg: Config, *, view: bool = False) -> Any:
    from modemd.store_cli import open_store_for_cli

    return open_store_for_cli(cfg.gateway.state_dir, view=view)


@app.command()
def messages(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=100_000)] =
    20,
    as_json: JsonOption = False,
) -> None:
    """What was received, newest first, with its delivery state per sink."""
    store = _open_store(_load(config), view=True)
    rows = store.journal.recent_messages(limit=limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo("no messages yet")
    for row in rows:
        msg = row["message"]
        deliveries = ", ".join(f"{k}:{v}" for k, v in sorted(row["deliveries"].items()))
        body = msg.get("text") if "text" in msg else (
            f"<{len(msg.get('data_b64', ''))} b64 chars>" if "data_b64" in msg else msg.get(
                "reason"))
        sender = terminal_safe(str(msg.get("sender") or "-"))
        typer.echo(f"{row['id'][:12]}  {row['status']:<10} {sender:<16} "
                   f"{msg.get('sent_at') or '-':<26} [{deliveries or 'no sinks'}]  "
                   f"{terminal_safe(str(body))}")
    store.close()


verify_app = typer.Typer(help="Verification challenges (codes users send by SMS).",
                         no_args_is_help=True)
app.add_typer(verify_app, name="verify")


@verify_app.command("list")
def verify_list(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    all_states: Annotated[bool, typer.Option("--all", help="Ended challenges too.")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Challenges waiting for their SMS (never their codes: only hashes are kept)."""
    from modemd.verify.store import ChallengeStore

    store = _open_store(_load(config))
    try:
        rows = ChallengeStore(store.db).listing(state=None if all_states else "pending",
                                                limit=limit)
    finally:
        store.close()
    docs = [{"id": c.id, "number": c.number, "state": c.state,
             "created_at": _iso_utc(c.created_at), "expires_at": _iso_utc(c.expires_at),
             "attempts": c.attempts, "max_attempts": c.max_attempts, "msg_id": c.msg_id}
            for c in rows]
    if as_json:
        _print_json(docs)
        return
    if not docs:
        typer.echo("no pending challenges" if not all_states else "no challenges")
        return
    typer.echo(f"{'id':<24} {'number':<16} {'state':<9} {'expires':<25} attempts")
    for doc in docs:
        typer.echo(f"{doc['id']:<24} {doc['number']:<16} {doc['state']:<9} "
                   f"{doc['expires_at']:<25} {doc['attempts']}/{doc['max_attempts']}")


def _iso_utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@app.command()
def outbox(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    replay: Annotated[bool, typer.Option(help="Make every row due again, parked ones too.")] =
    False,
    purge: Annotated[bool, typer.Option(help="Delete the queued rows (asks nothing).")] = False,
    poisoned_only: Annotated[bool, typer.Option(help="With --purge: only parked rows.")] = False,
    sink: Annotated[str | None, typer.Option(help="Only this sink (mqtt, influx).")] = None,
    as_json: JsonOption = False,
) -> None:
    """What is still waiting per sink; replay or purge."""
    cfg = _load(config)
    store = _open_store(cfg, view=not (replay or purge))
    if replay:
        typer.echo(f"{store.outbox.replay(sink)} row(s) due again")
    if purge:
        typer.echo(f"{store.outbox.purge(sink, poisoned_only=poisoned_only)} row(s) purged")
    sinks = [s for s in ("mqtt", "influx") if (
        (s == "mqtt" and cfg.mqtt is not None) or (s == "influx" and cfg.influx is not None))]
    stats = [st for st in store.outbox.stats(sinks) if sink is None or st.sink == sink]
    from modemd.sinks.status import read_status

    state_dir = cfg.gateway.state_dir
    if as_json:
        _print_json([dataclasses.asdict(st) | {"parked": store.outbox.poisoned(st.sink),
                                               "connection": read_status(state_dir, st.sink)}
                     for st in stats])
        return
    typer.echo(f"{'sink':<8} {'pending':>8} {'parked':>7} {'oldest':>9} {'dropped':>8} "
               f"{'delivered':>10}")
    for st in stats:
        age = "-" if st.oldest_age is None else f"{st.oldest_age:.0f}s"
        typer.echo(f"{st.sink:<8} {st.pending:>8} {st.poisoned:>7} {age:>9} {st.dropped:>8} "
                   f"{st.delivered:>10}")
        for seq, kind, error in store.outbox.poisoned(st.sink, limit=5):
            typer.echo(f"    parked #{seq} {kind}: {terminal_safe(str(error))}")
        connection = read_status(state_dir, st.sink)
        if connection is not None:  # written by the running daemon's sink
            typer.echo(f"    {connection.get('state')} since {connection.get('since')}: "
                       f"{connection.get('reason')}")
    store.close()


# --- codec and payload ------------------------------------------------------------------------


@pdu_app.command("decode")
def pdu_decode(
    pdu: Annotated[str, typer.Argument(help="PDU in hex, with the SMSC field first.")],
    no_smsc: Annotated[bool, typer.Option(help="The hex starts at the TPDU.")] = False,
    lenient: Annotated[bool, typer.Option(help="Recover what can be recovered.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Decode one PDU as the daemon would, and show what it would publish."""
    from modemd.pipeline import sms_document
    from modemd.sms import SmsDeliver, assemble, decode_pdu
    from modemd.store.journal import raw_id_for

    hex_text = "".join(pdu.split())
    try:
        msg = decode_pdu(hex_text if no_smsc is False else "00" + hex_text,
                         with_smsc=True, strict=not lenient)
    except DecodeError as exc:
        typer.echo(f"cannot decode: {exc}", err=True)
        raise typer.Exit(1) from None
    if isinstance(msg, SmsDeliver):
        full = hex_text if not no_smsc else "00" + hex_text
        raw = bytes.fromhex(full[:len(full) // 2 * 2])  # lenient: an odd last digit dropped
        assembled = assemble([msg]) if msg.concat is not None else None
        doc = sms_document(raw_id_for("pdu", raw), modem="-", received_at=0.0, messages=[msg],
                           assembled=assembled)
        doc.pop("received_at", None)
        if msg.concat is not None:
            doc["concat"] = {"reference": msg.concat.reference, "total": msg.concat.total,
                             "sequence": msg.concat.sequence}
        doc["pid"] = msg.pid
        doc["dcs"] = f"{msg.dcs.raw:02X}"
    else:
        doc = {"type": type(msg).__name__, **{k: str(v) for k, v in vars_of(msg).items()}}
    if as_json:
        _print_json(doc)
    else:
        for key, value in doc.items():
            typer.echo(f"{key:>10}: {terminal_safe(str(value))}")


def vars_of(obj: Any) -> dict[str, Any]:
    fields = getattr(obj, "__dataclass_fields__", {})
    return {name: getattr(obj, name) for name in fields if name != "tpdu"}


@app.command()
def parse(
    text: Annotated[str, typer.Argument(help="The SMS text a device sent.")],
    sender: Annotated[str, typer.Option(help="The sender's number.")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    port: Annotated[int | None, typer.Option(help="Application port, if any.", min=0,
                                             max=65535)] = None,
    hex_data: Annotated[bool, typer.Option("--hex", help="TEXT is 8-bit data in hex.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the parser rules on a payload: which rule matched, and the reading."""
    from datetime import UTC, datetime

    from modemd.payload.engine import PayloadEngine
    from modemd.payload.model import InboundMessage

    data = parse_hex(text, what="--hex TEXT") if hex_data else None
    cfg = _load(config)
    try:
        engine = PayloadEngine(cfg.parser, cfg.devices,
                               default_country_code=cfg.gateway.default_country_code)
    except ConfigError as exc:
        fail("configuration error:\n" + "\n".join(f"  {k}: {m}" for k, m in exc.problems))
    msg = InboundMessage(msg_id="cli", modem="cli", sender=sender,
                         text=None if hex_data else text, data=data, port=port,
                         sent_at=datetime.now(UTC))
    try:
        reading = engine.parse(msg)
    except PayloadError as exc:
        if as_json:
            _print_json({"ok": False, "rule": exc.rule, "field": exc.field, "reason": str(exc)})
        else:
            typer.echo(f"no reading: {terminal_safe(str(exc))}", err=True)
        raise typer.Exit(1) from None
    result = {"ok": True, "rule": reading.rule, "device": reading.device,
              "measurement": reading.measurement, "state": reading.state_document()}
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"rule {reading.rule!r} → device {terminal_safe(reading.device)}")
        for key, value in reading.fields.items():
            unit = reading.units.get(key) or ""
            typer.echo(terminal_safe(f"  {key} = {value!r} {unit}".rstrip()))


# --- simulator and demo -------------------------------------------------------------------------


@app.command()
def simulate(
    profile: Annotated[str, typer.Option(help="Modem family to imitate.")] = "generic",
    link: Annotated[Path | None, typer.Option(help="Also make this symlink to the port.")] =
    None,
    imei: Annotated[str, typer.Option(help="IMEI to report.")] = "356938035643809",
) -> None:
    """Run a simulated modem on a pseudo-terminal; type commands to inject messages."""
    from modemd.simulator import SimulatedModem
    from modemd.simulator.control import handle_control_line
    from modemd.simulator.profiles import PROFILES

    if profile not in PROFILES:
        fail(f"unknown simulator profile {profile!r} (known: {', '.join(sorted(PROFILES))})")
    if link is not None:
        check_new_file_parent(link, what="--link")
    if not (imei.isascii() and imei.isdigit() and 14 <= len(imei) <= 17):
        fail(f"--imei {imei!r}: an IMEI is 15 digits")
    sim = SimulatedModem(profile=profile, link_path=link, imei=imei)
    sim.start()
    typer.echo(f"simulated {profile} modem on {sim.port}")
    typer.echo("type 'help' for commands; Ctrl-D to stop", err=True)
    try:
        for line in sys.stdin:
            if line.strip():
                typer.echo(handle_control_line(sim, line.strip()))
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


@app.command()
def demo(
    mqtt_host: Annotated[str, typer.Option(help="Publish here if a broker answers.")] =
    "localhost",
    mqtt_port: Annotated[int, typer.Option(help="Broker port.", callback=check_tcp_port)] =
    1883,
    state_dir: Annotated[Path | None, typer.Option(help="Keep the store here.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds to run (0: until Ctrl-C).", min=0,
                                            max=365 * 86400)] = 0.0,
    interval: Annotated[float, typer.Option(help="Seconds between device messages.",
                                            callback=positive_seconds)] = 1.5,
) -> None:
    """The whole pipeline on a simulated modem with field devices sending status."""
    from modemd.demo import run_demo

    if state_dir is not None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--state-dir {state_dir}: {exc.strerror or exc}")
    setup_logging("WARNING")
    raise typer.Exit(run_demo(mqtt_host=mqtt_host, mqtt_port=mqtt_port, state_dir=state_dir,
                              duration=duration, interval=interval))


# --- field work ---------------------------------------------------------------------------


@app.command()
def ports(
    probe: Annotated[bool, typer.Option(help="Send AT to each candidate port.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Serial ports with USB ids and by-id names, and which look like a modem's AT port."""
    from modemd.modem.discovery import field_hints, list_ports

    found = list_ports(probe=probe)
    if as_json:
        _print_json([p.as_dict() for p in found])
        return
    if not found:
        typer.echo("no serial ports found")
    for p in found:
        mark = "AT " if p.looks_like_at else "   "
        # a USB device names itself: its description reaches the terminal escaped
        typer.echo(terminal_safe(f"{mark}{p.stable_path}  {p.usb_id or '-':<9} "
                                 f"if{p.interface or '-'}  {p.role or '-':<12} "
                                 f"{p.product or p.description}"
                                 + (f"  IMEI {p.imei}" if p.imei else "")))
    for hint in field_hints(found):
        typer.echo(hint)


@app.command()
def probe(
    port: Annotated[str, typer.Argument(help="Device path or pyserial URL.")],
    baudrate: Annotated[int, typer.Option(help="Baud rate.", callback=check_baudrate)] = 115200,
    pin_file: Annotated[Path | None, typer.Option(help="Try this SIM PIN.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.",
                                           callback=positive_seconds)] = 3.0,
    as_json: JsonOption = False,
) -> None:
    """Identify the modem, SIM, network, signal and storage; say what is wrong."""
    from modemd.modem.probe import probe_port

    pin = read_text_file(pin_file, what="--pin-file").strip() if pin_file else None
    report = probe_port(port, baudrate=baudrate, timeout=timeout, pin=pin)
    if as_json:
        _print_json(report.as_dict())
    else:
        typer.echo(cli_support.terminal_safe_lines(report.render()))
    raise typer.Exit(0 if report.ok else 1)


@app.command("at")
def at_console(
    port: Annotated[str, typer.Argument(help="Device path or pyserial URL.")],
    command: Annotated[str | None, typer.Argument(help="One command; none: interactive.")] =
    None,
    baudrate: Annotated[int, typer.Option(help="Baud rate.", callback=check_baudrate)] = 115200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.",
                                           callback=positive_seconds)] = 10.0,
    force: Annotated[bool, typer.Option(
        "--force", help="Send a command that deletes, resets or touches the SIM.")] = False,
) -> None:
    """A safe AT console for field work (refuses while the daemon holds the port)."""
    from modemd.modem.console import run_console

    raise typer.Exit(run_console(port, command, baudrate=baudrate, timeout=timeout,
                                 force=force))


def main() -> None:
    cli_support.run_guarded(app)


if __name__ == "__main__":
    main()
