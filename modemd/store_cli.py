"""`modemd store ...` and how the CLI opens the store (read-only where it may only read)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modemd.settings import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from modemd.store import Store

store_app = typer.Typer(help="Look after the store file.", no_args_is_help=True)


def needs_a_person(exc: Exception) -> bool:
    """A store error that no restart fixes (a store written by a newer modemd)."""
    from modemd.store.migrations import StoreVersionError

    return isinstance(exc, StoreVersionError)


def open_store_for_cli(state_dir: Path, *, view: bool) -> Store:
    """The store, or a clear message and exit 2 (a store only a newer modemd reads) or 1 (it
    cannot be opened). A *view* (messages, outbox) opens the file read-only when this user
    may not write it, and then writes nothing."""
    import sqlite3

    from modemd.cli_support import describe_os_error
    from modemd.errors import StoreError
    from modemd.store import STORE_FILENAME, Store
    from modemd.store.database import writable

    readonly = view and not writable(state_dir / STORE_FILENAME)
    try:
        return Store(state_dir, readonly=readonly)
    except (OSError, sqlite3.Error, StoreError) as exc:
        detail = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        typer.echo(f"modemd: cannot open the store in {state_dir}: {detail}", err=True)
        raise typer.Exit(2 if needs_a_person(exc) else 1) from None


@store_app.command("check")
def store_check(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config file (TOML).",
                                         envvar="MODEMD_CONFIG")] = DEFAULT_CONFIG_PATH,
    full: Annotated[bool, typer.Option(help="integrity_check (slower) instead of quick_check."
                                       )] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check the store file page by page (read-only; safe while modemd runs). Exit 0 ok, 1
    problems found, 2 no store to check."""
    from modemd.cli import _load
    from modemd.store import STORE_FILENAME
    from modemd.store.maintenance import integrity_check

    cfg = _load(config)
    path = cfg.gateway.state_dir / STORE_FILENAME
    if not path.exists():
        typer.echo(f"modemd: {path}: no store here yet", err=True)
        raise typer.Exit(2)
    result = integrity_check(path, full=full)
    previous = _last_background_check(cfg.gateway.state_dir)
    if as_json:
        typer.echo(json.dumps({"path": str(path), "ok": result.ok,
                               "problems": list(result.problems),
                               "seconds": round(result.seconds, 3),
                               "last_scheduled_check": previous}, indent=2))
    else:
        what = "integrity_check" if full else "quick_check"
        if result.ok:
            typer.echo(f"{path}: ok ({what}, {result.seconds:.1f} s)")
        else:
            typer.echo(f"{path}: {len(result.problems)} problem(s) ({what}):")
            for problem in result.problems:
                typer.echo(f"  {problem}")
            typer.echo("stop modemd, keep a copy of the file, then `sqlite3 FILE .recover` "
                       "or move it aside (modemd starts a new one and sweeps the modems)")
        if previous is not None:
            typer.echo(f"last scheduled check: {previous['when']}: "
                       f"{'ok' if previous['ok'] else 'PROBLEMS'}")
    raise typer.Exit(0 if result.ok else 1)


def _last_background_check(state_dir: Path) -> dict[str, object] | None:
    from modemd.errors import StoreError
    from modemd.store import Store
    from modemd.store.maintenance import last_check

    try:
        store = Store(state_dir, readonly=True)
    except StoreError:
        return None
    try:
        result = last_check(store.db)
    except StoreError:
        result = None
    finally:
        store.close()
    if result is None:
        return None
    when = datetime.fromtimestamp(result.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {"when": when, "ok": result.ok, "problems": list(result.problems)}
