"""The `modemd` entry point: ``modemd run`` starts the daemon without building the CLI.

The daemon is what stays resident, so it does not load typer, click and the other verbs'
modules (about 40 ms and 2-3 MiB): a plain ``run`` command line is read here with the same
options as :func:`modemd.cli.run`; anything else (help, another verb, an option this does
not know) goes to the full CLI, which answers it as before.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modemd.config import ModemConfig

__all__ = ["main", "parse_run", "run_daemon", "setup_logging"]

_CONFIG_FLAGS = ("-c", "--config")
_LEVEL_FLAG = "--log-level"


def main() -> None:
    argv = sys.argv[1:]
    parsed = parse_run(argv)
    if parsed is None:
        from modemd.cli import main as cli_main

        cli_main()
        return
    from modemd.cli_support import run_guarded

    run_guarded(lambda: run_daemon(*parsed), argv)


def parse_run(argv: list[str]) -> tuple[Path, str] | None:
    """(config, log level) of a plain ``[--debug] run [-c PATH] [--log-level L]``, else None."""
    args = list(argv)
    while args and args[0] == "--debug":
        args.pop(0)
    if not args or args[0] != "run":
        return None
    from modemd.settings import DEFAULT_CONFIG_PATH

    config = os.environ.get("MODEMD_CONFIG") or str(DEFAULT_CONFIG_PATH)
    level = "INFO"
    rest = args[1:]
    while rest:
        flag = rest.pop(0)
        name, eq, value = flag.partition("=")
        if not eq:
            if flag not in (*_CONFIG_FLAGS, _LEVEL_FLAG) or not rest:
                return None
            name, value = flag, rest.pop(0)
        elif not name.startswith("--"):
            return None
        if not value or value.startswith("-"):
            return None  # let the full CLI say what is wrong
        if name in _CONFIG_FLAGS:
            config = value
        elif name == _LEVEL_FLAG:
            level = value
        else:
            return None
    return Path(config), level


def setup_logging(level: str = "INFO") -> None:
    # Under systemd the journal adds the time; elsewhere people want it.
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt,
                        stream=sys.stdout, force=True)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _find_port(modem: ModemConfig) -> str | None:
    """Where a modem named by its identity went (the USB tables load when a port is lost)."""
    from modemd.modem.discovery import find_port_by_identity

    return find_port_by_identity(modem)


def run_daemon(config: Path, log_level: str) -> None:
    """Run the daemon in the foreground until a signal or a fatal error (SystemExit then:
    2 when the config or the store's version must change, 1 when another try may work)."""
    from modemd.config_view import read_config_apart
    from modemd.errors import ConfigError, ModemdError

    setup_logging(log_level)
    try:
        cfg, warnings = read_config_apart(config)  # the validation library stays in the child
    except ConfigError as exc:
        _say(f"configuration error{'s' if len(exc.problems) > 1 else ''} in {config}:")
        for key, message in exc.problems:
            _say(f"  {key}: {message}")
        raise SystemExit(2) from None
    for key, message in warnings:  # also in the journal, not only in `config check`
        logging.getLogger("modemd").warning("config %s: %s", key, message)
    from modemd.cli_support import describe_os_error
    from modemd.daemon import Daemon
    from modemd.store.migrations import StoreVersionError

    daemon = Daemon(cfg, port_resolver=_find_port)
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    try:
        daemon.start()
    except ModemdError as exc:
        _say(f"modemd cannot start: {exc}")
        daemon.stop()
        # 2: the config (or the store's version) must change, the unit does not restart;
        # 1: worth another try
        raise SystemExit(2 if isinstance(exc, ConfigError | StoreVersionError) else 1
                         ) from None
    except (OSError, sqlite3.Error) as exc:  # the state dir cannot be made, is read-only ...
        detail = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        _say(f"modemd cannot start: the store in {cfg.gateway.state_dir}: {detail}")
        daemon.stop()
        raise SystemExit(1) from None
    try:
        daemon.run_forever()
    finally:
        daemon.stop()
    if daemon.failure:
        _say(f"modemd stopped: {daemon.failure}")
        raise SystemExit(1)
