"""A real mosquitto broker per test, on a free port, restartable on the same port."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "mosquitto is not installed: run scripts/ensure-servers (apt-get install mosquitto)"
    )


@dataclass
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=modemd test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TlsFiles(ca=ca, server_cert=cert, server_key=key)


class Mosquitto:
    """Start/stop a broker; ``port`` stays the same across restarts."""

    def __init__(self, workdir: Path, *, tls: TlsFiles | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        # Run as ourselves: as root, mosquitto would switch to its own user, which cannot read
        # the test's private temporary directory (certificates).
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1",
                 "allow_anonymous true",
                 "persistence false", "max_queued_messages 100000"]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}",
                      f"keyfile {tls.server_key}", "tls_version tlsv1.2"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"

    def start(self) -> Mosquitto:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
