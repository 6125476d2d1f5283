"""A Home Assistant instance for the interoperability run: config dir, process, REST, websocket.

Standard library only (the driver runs in the project's .venv, which has no HTTP or websocket
client): REST through urllib, the websocket API through a small RFC 6455 client, enough for
request/response commands (``config/entity_registry/list`` and friends).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CLIENT_ID = "http://127.0.0.1/"  # onboarding needs a client id; any URL is accepted


class HAError(RuntimeError):
    """Home Assistant answered something the run cannot go on with."""


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """SIGTERM the process group of *proc* (started with ``start_new_session``), then kill."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


class WebSocket:
    """Minimal text-frame websocket client (client frames masked, as RFC 6455 requires)."""

    def __init__(self, host: str, port: int, path: str, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HAError("websocket handshake: connection closed")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n")[0]:
            raise HAError(f"websocket handshake refused: {status[:200]!r}")
        self._buffer = rest

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HAError("websocket closed by Home Assistant")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def send(self, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def receive(self) -> dict[str, Any]:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise HAError("websocket closed by Home Assistant")
            if opcode in (0x9, 0xA):  # ping/pong: Home Assistant does not need an answer here
                continue
            message += payload
            if first & 0x80:
                result: dict[str, Any] = json.loads(message)
                return result

    def close(self) -> None:
        self.sock.close()


class HomeAssistant:
    """``hass -c <config>`` on 127.0.0.1:<port>, its own process group."""

    def __init__(self, hass: Path, config_dir: Path, port: int) -> None:
        self.hass = hass
        self.config_dir = config_dir
        self.port = port
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._ws_id = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.config_dir / "home-assistant.log"

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n"
            "  name: modemd interop\n"
            "  unit_system: metric\n"
            "  time_zone: UTC\n"
            "  country: DE\n"
            "  latitude: 52.52\n"
            "  longitude: 13.405\n"
            "  elevation: 34\n"
            "  currency: EUR\n"
            "http:\n"
            "  server_host: 127.0.0.1\n"
            f"  server_port: {self.port}\n"
            "logger:\n"
            "  default: warning\n"
            "  logs:\n"
            "    homeassistant.components.mqtt: info\n",
            encoding="utf-8")

    # -- process -------------------------------------------------------------------------

    def start(self, timeout: float = 600.0) -> None:
        """Start and wait until the HTTP API answers (the first start installs requirements)."""
        self.starts += 1
        out = (self.config_dir / f"hass-stdout-{self.starts}.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.hass.parent / "python"), str(Path(__file__).with_name("ha_launch.py")),
             "-c", str(self.config_dir), "--log-no-color"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HAError(f"Home Assistant exited with {self.proc.returncode}; see "
                              f"{self.config_dir}/hass-stdout-{self.starts}.log")
            try:
                with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except urllib.error.HTTPError:
                break  # answering (e.g. 404 once onboarded and onboarding is not loaded)
            except OSError:
                pass
            time.sleep(1)
        else:
            raise HAError(f"Home Assistant did not answer on {self.url} within {timeout:.0f} s")
        if self.token is not None:
            self.wait_running(timeout=max(60.0, deadline - time.monotonic()))

    def exposed_sockets(self) -> list[str]:
        """Home Assistant's listening/bound sockets that are not on 127.0.0.1 (``ss``)."""
        if self.proc is None:
            return []
        found = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True,
                               check=False).stdout.splitlines()
        mine = [line for line in found if f"pid={self.proc.pid}," in line]
        return [line for line in mine if line.split()[4].rsplit(":", 1)[0] != "127.0.0.1"]

    def wait_running(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.get("/api/config").get("state")
                if state == "RUNNING":
                    return
            except (HAError, OSError):
                pass
            time.sleep(1)
        raise HAError(f"Home Assistant not RUNNING after {timeout:.0f} s (state {state})")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_group(proc, timeout=60)

    # -- REST ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False,
                auth: bool = True, timeout: float = 60.0) -> Any:
        headers: dict[str, str] = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            raise HAError(f"{method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body if body is not None else {}, **kwargs)

    def state(self, entity_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.get(f"/api/states/{entity_id}")
        return found

    def states(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/api/states")
        return found

    def version(self) -> str:
        return str(self.get("/api/config").get("version"))

    # -- onboarding and the MQTT integration ------------------------------------------------

    def onboard(self) -> None:
        """Owner user, tokens, then the remaining onboarding steps; keeps an access token."""
        answer = self.post("/api/onboarding/users", {
            "client_id": CLIENT_ID, "name": "Interop", "username": "interop",
            "password": "interop-" + base64.b32encode(os.urandom(10)).decode(),
            "language": "en"}, auth=False)
        tokens = self.post("/auth/token", {"grant_type": "authorization_code",
                                           "code": answer["auth_code"],
                                           "client_id": CLIENT_ID}, form=True, auth=False)
        self.token = tokens["access_token"]
        self.post("/api/onboarding/core_config")
        self.post("/api/onboarding/analytics")
        # The integration step wants the user's credentials: the access token, not a LLAT.
        self.post("/api/onboarding/integration",
                  {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID + "?auth_callback=1"})
        # The access token lasts 30 min; a long-lived one outlives any run.
        self.token = self.ws_call({"type": "auth/long_lived_access_token",
                                   "client_name": "modemd interop", "lifespan": 30})
        self.wait_running()

    def add_mqtt(self, broker_port: int) -> dict[str, Any]:
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt"}, timeout=600)
        if flow.get("type") == "form" and flow.get("step_id") == "broker":
            flow = self.post(f"/api/config/config_entries/flow/{flow['flow_id']}",
                             {"broker": "127.0.0.1", "port": broker_port}, timeout=120)
        if flow.get("type") != "create_entry":
            raise HAError(f"MQTT config flow did not create an entry: {flow}")
        entry: dict[str, Any] = flow["result"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entries = self.get("/api/config/config_entries/entry?domain=mqtt") or []
            if any(e.get("state") == "loaded" for e in entries):
                return entry
            time.sleep(1)
        raise HAError(f"MQTT config entry not loaded: {entries}")

    # -- websocket -------------------------------------------------------------------------

    def ws_call(self, command: dict[str, Any]) -> Any:
        """One websocket command on a fresh connection; its ``result``."""
        ws = WebSocket("127.0.0.1", self.port, "/api/websocket")
        try:
            hello = ws.receive()
            if hello.get("type") != "auth_required":
                raise HAError(f"websocket: unexpected greeting {hello}")
            ws.send({"type": "auth", "access_token": self.token})
            if ws.receive().get("type") != "auth_ok":
                raise HAError("websocket: authentication refused")
            self._ws_id += 1
            ws.send({"id": self._ws_id, **command})
            while True:
                answer = ws.receive()
                if answer.get("id") == self._ws_id and answer.get("type") == "result":
                    break
        finally:
            ws.close()
        if not answer.get("success"):
            raise HAError(f"websocket {command['type']}: {answer.get('error')}")
        return answer.get("result")

    def entity_registry(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.ws_call({"type": "config/entity_registry/list"})
        return found

    def device_registry(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.ws_call({"type": "config/device_registry/list"})
        return found
