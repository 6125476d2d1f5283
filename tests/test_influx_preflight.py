"""At start-up the daemon says plainly when the time-series server lacks the v2 write API."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modemd.daemon import Daemon
from tests.helpers import load, wait_until, write_config


class _Influx16(BaseHTTPRequestHandler):
    """Debian's InfluxDB 1.6: no /api/v2/write."""

    def do_POST(self) -> None:
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"404 page not found\n")

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_without_the_v2_api_is_reported_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Influx16)
    thread = threading.Thread(target=server.serve_forever, name="fake-influx16")
    thread.start()
    cfg = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state", modems=[],
                       influx={"url": f"http://127.0.0.1:{server.server_port}",
                               "bucket": "modemd"})
    daemon = Daemon(load(cfg))
    try:
        with caplog.at_level(logging.ERROR, logger="modemd.sinks.influx"):
            daemon.start()
            wait_until(lambda: any("InfluxDB 1.6" in r.getMessage() for r in caplog.records),
                       what="the 1.6 message")
    finally:
        daemon.stop()
        server.shutdown()
        server.server_close()
        thread.join()
