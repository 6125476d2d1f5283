"""`modemd sms ...`: queue a message through the running daemon's store, and follow it.

The CLI never opens the modem: it writes the request into the store the daemon works from
(the daemon looks for new requests twice a second), so it works without a broker, and
``--wait`` follows the request's state in the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modemd.settings import DEFAULT_CONFIG_PATH

sms_app = typer.Typer(help="Send SMS through the running daemon and follow them.",
                      no_args_is_help=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Config file (TOML).", envvar="MODEMD_CONFIG")
]

#: exit status per final state
_EXIT = {"delivered": 0, "sent": 0, "queued": 0, "failed": 1, "expired": 1, "unknown": 1}
EXIT_WAIT_TIMEOUT = 3


def _line(doc: dict[str, Any]) -> str:
    mr = ",".join(str(m) for m in doc.get("mr") or [])
    ids = ",".join(str(m) for m in doc.get("message_ids") or [])  # sent over SMPP
    via = f"  via {doc['modem']}" if isinstance(doc.get("modem"), str) else ""
    error = f"  {doc['error']}" if doc.get("error") else ""
    return (f"{doc.get('id')}  {doc.get('state'):<9} to {doc.get('to') or '-'}  "
            f"{doc.get('parts', 0)} part(s){via}{f'  mr {mr}' if mr else ''}"
            f"{f'  smsc id {ids}' if ids else ''}{error}")


@sms_app.command("send")
def send(
    to: Annotated[str, typer.Option("--to", help="Destination, E.164 (+4915...).")],
    text: Annotated[str | None, typer.Option("--text", help="The message text.")] = None,
    data_b64: Annotated[str | None, typer.Option("--data-b64", help="8-bit data, base64.")] =
    None,
    port: Annotated[int | None, typer.Option(help="Application port for --data-b64.")] = None,
    request_id: Annotated[str | None, typer.Option("--id", help="Your id (≤ 64 chars).")] = None,
    modem: Annotated[str | None, typer.Option(
        help="The modem (or SMPP transceiver bind) that sends.")] = None,
    flash: Annotated[bool, typer.Option("--flash", help="Class 0: shown, not stored.")] = False,
    valid_for: Annotated[str | None, typer.Option(help="Validity period, e.g. 1d.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to its final state.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Status documents as JSON.")] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Queue an SMS; exit 0 queued/sent/delivered, 1 refused or failed, 3 --wait timed out."""
    from modemd.cli import _load
    from modemd.send.service import status_document
    from modemd.send.wiring import send_service

    cfg = _load(config)
    request: dict[str, Any] = {"to": to}
    for key, value in (("id", request_id), ("text", text), ("data_b64", data_b64),
                       ("port", port), ("modem", modem), ("valid_for", valid_for)):
        if value is not None:
            request[key] = value
    if flash:
        request["flash"] = True
    store = _open(cfg.gateway.state_dir)
    try:
        service = send_service(cfg, store)
        doc = service.accept(request, origin="cli")
        _show(doc, as_json)
        if doc["state"] != "queued" or not wait:
            raise typer.Exit(_EXIT.get(doc["state"], 1))
        final = {"delivered", "failed", "expired", "unknown"}
        if not cfg.send.status_reports:
            final.add("sent")
        seen = "queued"
        while True:
            row = service.wait(doc["id"], timeout=timeout, until=frozenset(final | {"sent"})
                               if seen == "queued" else frozenset(final))
            if row is None or row.state == seen:
                typer.echo(f"still {seen} after {timeout:.0f} s (is `modemd run` running?)",
                           err=True)
                raise typer.Exit(EXIT_WAIT_TIMEOUT)
            seen = row.state
            _show(status_document(row, store.sendq.parts(row.id)), as_json)
            if seen in final:
                raise typer.Exit(_EXIT[seen])
    finally:
        store.close()


def _open(state_dir: Path) -> Any:
    """The daemon's store, or exit 1 with the reason (permissions, a full disk ...)."""
    from modemd.errors import StoreError
    from modemd.store import Store

    try:
        return Store(state_dir)
    except StoreError as exc:
        typer.echo(f"cannot open the store: {exc}", err=True)
        raise typer.Exit(1) from None


def _show(doc: dict[str, Any], as_json: bool) -> None:
    typer.echo(json.dumps(doc, ensure_ascii=False) if as_json else _line(doc))


@sms_app.command("list")
def list_requests(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Status documents as JSON.")] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Send requests, newest first, with their state."""
    from modemd.cli import _load
    from modemd.send.service import status_document

    cfg = _load(config)
    store = _open(cfg.gateway.state_dir)
    try:
        docs = [status_document(row, store.sendq.parts(row.id))
                for row in store.sendq.recent(limit=limit)]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(docs, indent=2, ensure_ascii=False))
        return
    if not docs:
        typer.echo("nothing sent yet")
    for doc in docs:
        typer.echo(_line(doc))

