"""The time-series sink: readings and modem health as points, through the InfluxDB v2 write API.

Anything that speaks ``POST /api/v2/write`` takes these writes: InfluxDB 1.8+, 2.x, 3.x,
VictoriaMetrics, QuestDB. Points are built with :class:`influxdb_client.Point` (the client does
all line-protocol escaping) and written with the client's SYNCHRONOUS write API at nanosecond
precision, so a 2xx really means "stored" and the row may leave the outbox.

Only numbers tell the truth in a time-series store: ints, floats and bools are written as
such, enum labels as their numeric code (``enum_codes`` of the body), and plain string fields
are left out of the point (VictoriaMetrics would store them as 0, which reads as a value).
Tag values the line protocol cannot carry unambiguously (a backslash before ``,``, ``=``,
space or another backslash, a trailing backslash, control characters) are refused with the
reason: the row is parked, never written under a mangled name.

Timestamps are the SMS service-centre time (``sent_at``, whole seconds) plus a sub-second
offset derived from the message id (:func:`subsecond_offset_ns`), and ``updated_at`` for modem
health: writing the same reading twice lands on the same series and instant, which the server
overwrites (InfluxDB) or de-duplicates (VictoriaMetrics with ``-dedup.minScrapeInterval``)
instead of storing twice, while two messages of one device in the same second land on
different instants.

What the server says decides what happens to a batch:

* 2xx: the rows are acked.
* 429, 5xx, timeouts, connection and TLS errors, and answers that mean "this server is not
  set up for us" (401/403 token, 404 bucket/org/endpoint, 407, 408): every row of the batch is
  retried later with capped exponential backoff; one warning per outage, not one per row.
  Such answers are not the rows' fault, so they never park rows.
* any other 4xx (400, 413, 422 ...): the batch is bisected until the offending row(s) are
  alone; those are parked (``poison``) with the server's message, the rest is delivered.

A body that cannot become a point at all (missing keys, no usable field) is parked with a
clear reason without asking the server. The token never appears in a log line or a stored
error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from modemd.at.responses import REGISTRATION_STATES
from modemd.errors import ConfigError, SinkError
from modemd.sinks.base import Backoff, Sink
from modemd.store import Store

log = logging.getLogger(__name__)
IDLE_WAIT = 5.0  # s: the longest idle sleep (rows the CLI writes wake no one)

# influxdb-client is only partly annotated: reach it through Any, keep our own API typed.
_PointClass: Any = Point
_ClientClass: Any = InfluxDBClient
_NANOS: Any = WritePrecision.NS

DEFAULT_MEASUREMENT: Final = "device_status"
HEALTH_MEASUREMENT: Final = "modem"
RESERVED_TAGS: Final = frozenset({"gateway", "modem", "device"})

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REASON: Final = 600
# Instants line protocol can carry (int64 nanoseconds, up to 2262-04-11); before 1970 is
# refused silently by VictoriaMetrics, and no SMS service centre stamps such a time.
_LATEST_SECOND: Final = (2**63 - 1) // 1_000_000_000

# Answers that say "the server or its setup refuses us", not "this row is bad": retried with
# backoff (an operator fixes the token, creates the bucket ...), never parked row by row.
_NOT_THE_ROWS_FAULT: Final = frozenset({401, 403, 404, 405, 407, 408, 429})

V1_ONLY_HINT: Final = (
    "this server does not offer the InfluxDB v2 write API (/api/v2/write answered 404): "
    "InfluxDB 1.6 (Debian's) lacks it; use InfluxDB 1.8+, 2.x, 3.x, VictoriaMetrics or QuestDB"
)

# modem_health: (field name, where to look in the body) — the flat keys of
# ``ModemState.health()`` first, then the nested shape of the modem state document.
_HEALTH_NUMBERS: Final[tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]] = (
    ("rssi_dbm", (("rssi_dbm",), ("signal", "rssi_dbm"), ("signal", "rssi"))),
    ("ber", (("ber",), ("signal", "ber"))),
    ("storage_used", (("storage_used",), ("storage", "used"))),
    ("storage_total", (("storage_total",), ("storage", "total"))),
)
#: +CREG ``<stat>`` text -> its 3GPP TS 27.007 number, the ``registration`` field of a point.
REGISTRATION_CODES: Final[dict[str, int]] = {text: code for code, text in
                                              REGISTRATION_STATES.items()}
_NS_PER_S: Final = 1_000_000_000


class UnwritableRow(SinkError):
    """An outbox body that cannot become a point (missing keys, no usable field ...)."""


class NothingToWrite(SinkError):
    """A body with text fields only: nothing for the time-series store, and nothing wrong."""


# --- outbox body -> Point ------------------------------------------------------------------


def build_point(kind: str, body: Mapping[str, Any], *, gateway_id: str,
                modem_tag: bool = True) -> Point:
    """The point for one outbox row of ``kind``; raises :class:`UnwritableRow` with the reason.

    ``modem_tag=False`` leaves the ``modem`` tag off readings, so a device keeps one series
    when its messages arrive through another modem (a SIM moved, a second gateway modem).
    """
    if not isinstance(body, Mapping):
        raise UnwritableRow(f"body is {type(body).__name__}, not a JSON object")
    if kind == "reading":
        return _reading_point(body, gateway_id, modem_tag=modem_tag)
    if kind == "modem_health":
        return _health_point(body, gateway_id)
    raise UnwritableRow(f"kind {kind!r} is not written to the time-series store")


def line_of(point: Point) -> bytes:
    """The point as one line of line protocol (the client's escaping), nanosecond precision."""
    line: object = cast(Any, point).to_line_protocol(_NANOS)
    if not isinstance(line, str) or not line:
        raise UnwritableRow("the point has no writable field")
    return line.encode("utf-8")


def subsecond_offset_ns(msg_id: str) -> int:
    """A stable offset in [0, 1 s) from a message id, in nanoseconds, whole milliseconds.

    Two messages of one device stamped in the same service-centre second get different
    instants (so neither overwrites the other), and the same message written again gets the
    same instant (so a replay overwrites). Whole milliseconds, because VictoriaMetrics keeps
    millisecond timestamps: what is written is exactly what it stores.
    """
    digest = hashlib.sha256(msg_id.encode("utf-8", "surrogatepass")).digest()
    return (int.from_bytes(digest[:8], "big") % 1000) * 1_000_000


def tag_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be a tag value written and read back unchanged, or None.

    Line protocol escapes ``,``, ``=`` and space with a backslash but has no escape for the
    backslash itself: ``A\\,B`` and a trailing ``\\`` are read back as other names (or the
    point is lost), and ``A\\\\B`` reads back as ``A\\B``.
    """
    for index, char in enumerate(value):
        if not char.isprintable():
            return f"tag {key} {value!r} contains a control character or line break"
        if char == "\\":
            following = value[index + 1:index + 2]
            if following == "":
                return f"tag {key} {value!r} ends with a backslash (line protocol cannot carry it)"
            if following in ",= \\":
                return (f"tag {key} {value!r} has a backslash before {following!r}, which line "
                        "protocol cannot carry unambiguously")
    return None


def _tag(point: Any, key: str, value: str) -> None:
    problem = tag_problem(key, value)
    if problem:
        raise UnwritableRow(problem)
    point.tag(key, value)


def _reading_point(body: Mapping[str, Any], gateway_id: str, *, modem_tag: bool) -> Point:
    device = _required_text(body, "device")
    measurement = body.get("measurement")
    if measurement is None:
        measurement = DEFAULT_MEASUREMENT
    if not isinstance(measurement, str) or not measurement.strip():
        raise UnwritableRow(f"'measurement' must be a non-empty string, not {measurement!r}")
    if measurement.startswith("#"):
        raise UnwritableRow(f"measurement {measurement!r} starts with '#' (a comment line)")
    fields = body.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise UnwritableRow("'fields' is missing or empty: a point needs at least one field")
    nanos = _epoch_seconds(body, "sent_at") * _NS_PER_S
    msg_id = body.get("msg_id")
    if isinstance(msg_id, str) and msg_id:
        nanos += subsecond_offset_ns(msg_id)

    point: Any = _PointClass(measurement)
    extra = body.get("tags") or {}
    if not isinstance(extra, Mapping):
        raise UnwritableRow(f"'tags' must be an object, not {type(extra).__name__}")
    for key, value in extra.items():
        if key in RESERVED_TAGS or value is None or key == "":
            continue
        _tag(point, str(key), _tag_text(value))
    _tag(point, "gateway", gateway_id)
    modem = body.get("modem")
    if modem_tag and modem is not None and modem != "":
        _tag(point, "modem", _tag_text(modem))
    _tag(point, "device", device)

    codes = body.get("enum_codes") or {}
    if not isinstance(codes, Mapping):
        raise UnwritableRow(f"'enum_codes' must be an object, not {type(codes).__name__}")
    skipped: list[str] = []
    strings = 0
    written = 0
    for name, given in fields.items():
        value = given
        if isinstance(given, str):
            code = codes.get(name)
            if not isinstance(code, int) or isinstance(code, bool):
                strings += 1  # text is no number: left out rather than stored as 0
                continue
            value = code  # an enum label: its numeric code, never the text
        if _add_field(point, name, value):
            written += 1
        else:
            skipped.append(name)
    if not written:
        if strings and not skipped:
            raise NothingToWrite("only text fields, which the time-series store does not hold")
        raise UnwritableRow(
            "no writable field (null or non-finite values only: " + ", ".join(skipped) + ")"
        )
    return cast(Point, point.time(nanos, _NANOS))


def _health_point(body: Mapping[str, Any], gateway_id: str) -> Point:
    modem = _required_text(body, "modem")
    nanos = _epoch_seconds(body, "updated_at") * _NS_PER_S
    point: Any = _PointClass(HEALTH_MEASUREMENT)
    _tag(point, "gateway", gateway_id)
    _tag(point, "modem", modem)
    written = 0
    for name, paths in _HEALTH_NUMBERS:
        value = _first(body, paths)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        # Always a float: InfluxDB fixes a field's type at its first write, and a modem that
        # answers 3 one time and 3.5 another must not get its health points refused.
        number = float(value)
        if math.isfinite(number):
            point.field(name, number)
            written += 1
    registration = REGISTRATION_CODES.get(str(body.get("registration")))
    if registration is not None:  # the 27.007 <stat> number; the operator name is text: left out
        point.field("registration", registration)
        written += 1
    if not written:
        raise UnwritableRow("modem health without any value (signal, storage, registration)")
    return cast(Point, point.time(nanos, _NANOS))


def _add_field(point: Any, name: object, value: object) -> bool:
    """Add one numeric or bool field; False if there is nothing to write (null, NaN, inf)."""
    if not isinstance(name, str) or name == "":
        raise UnwritableRow(f"field name {name!r} is not a non-empty string")
    if value is None:
        return False
    if isinstance(value, bool):
        point.field(name, value)
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise UnwritableRow(f"field {name!r}: integer {value} does not fit 64 bits")
        point.field(name, value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return False
        point.field(name, value)
    else:
        raise UnwritableRow(f"field {name!r}: unsupported value type {type(value).__name__}")
    return True


def _tag_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _required_text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise UnwritableRow(f"{key!r} is missing")
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise UnwritableRow(f"{key!r} must be a non-empty string, not {value!r}")
    return str(value)


def _first(body: Mapping[str, Any], paths: Sequence[tuple[str, ...]]) -> object:
    for path in paths:
        node: object = body
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            return node
    return None


def _epoch_seconds(body: Mapping[str, Any], key: str) -> int:
    """Whole seconds since the epoch of an ISO 8601 time with offset (or epoch seconds)."""
    value = body.get(key)
    if value is None:
        raise UnwritableRow(f"{key!r} is missing: the point's timestamp comes from it")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UnwritableRow(f"{key!r} is not a finite number: {value!r}")
        return _in_range(key, math.floor(value))
    if not isinstance(value, str):
        raise UnwritableRow(f"{key!r} must be an ISO 8601 time, not {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UnwritableRow(f"{key!r} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UnwritableRow(f"{key!r} has no UTC offset, so its instant is unknown: {value!r}")
    return _in_range(key, (moment - _EPOCH) // timedelta(seconds=1))


def _in_range(key: str, seconds: int) -> int:
    if not 0 <= seconds <= _LATEST_SECOND:
        raise UnwritableRow(f"{key!r} is not between 1970 and 2262: {str(seconds)[:24]} s")
    return seconds


# --- what the server said --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    transient: bool  # True: retry the rows later; False: the rows are refused (bisect, park)


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


def safe_url(url: str) -> str:
    """``url`` without user:password@, query and fragment, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_REASON:
        return text
    # Servers put the cause last (VictoriaMetrics: "...; too long line: ..."): keep both ends.
    return text[: _MAX_REASON // 3] + " … " + text[-(2 * _MAX_REASON) // 3 :]


def server_message(status: int, body: object, headers: Mapping[str, str] | None = None) -> str:
    """``HTTP <status>: <the server's own message>`` from an error answer."""
    if isinstance(body, bytes | bytearray):
        text = bytes(body).decode("utf-8", "replace")
    else:
        text = "" if body is None else str(body)
    text = text.strip()
    message = text
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            found = doc.get("message") or doc.get("error")
            if found:
                message = str(found)
    if not message and headers:
        message = headers.get("X-Influxdb-Error") or headers.get("X-Platform-Error-Code") or ""
    message = _shorten(message)
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def _status_problem(status: int, message: str, url: str) -> str:
    """Plain English for an answer that is not the rows' fault."""
    if status in (401, 403):
        return (
            f"{url} refused the token ({message}): check [influx] token_file and that the "
            "token may write to this org and bucket"
        )
    if status == 404:
        if "bucket" in message.lower() or "org" in message.lower():
            return f"{url} answered {message}: check [influx] org and bucket (do they exist?)"
        return f"{V1_ONLY_HINT} ({message})"
    if status == 405:
        return f"{url} does not take POST /api/v2/write ({message}): is this an InfluxDB v2 API?"
    if status == 429:
        return f"{url} is rate limiting writes ({message})"
    return f"{url} answered {message}"


# --- the sink --------------------------------------------------------------------------------


class InfluxSink(Sink):
    """Delivers ``reading`` and ``modem_health`` rows of the ``influx`` outbox as points."""

    name = "influx"
    kinds = frozenset({"reading", "modem_health"})

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        org: str,
        bucket: str,
        token: str | None,
        gateway_id: str,
        verify_ssl: bool = True,
        ssl_ca_cert: str | None = None,
        timeout_s: float = 10.0,
        batch_size: int = 500,
        backoff: Backoff | None = None,
        modem_tag: bool = True,
    ) -> None:
        problems: list[tuple[str, str]] = []
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            problems.append(("influx.url", f"must be http(s)://host[:port], not {safe_url(url)!r}"))
        if not bucket:
            problems.append(("influx.bucket", "must not be empty"))
        if not gateway_id:
            problems.append(("gateway.id", "must not be empty"))
        if batch_size < 1:
            problems.append(("influx.batch_size", "must be at least 1"))
        if not timeout_s > 0:
            problems.append(("influx.timeout", "must be more than 0 seconds"))
        if problems:
            raise ConfigError(problems)
        super().__init__(store, idle_wait=IDLE_WAIT)
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.gateway_id = gateway_id
        self.verify_ssl = verify_ssl
        self.ssl_ca_cert = ssl_ca_cert
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.modem_tag = modem_tag
        self._token = token
        if not verify_ssl and url.startswith("https:"):
            # The operator chose this; say so once instead of urllib3 warning on every write.
            log.warning("influx: TLS certificate verification is OFF for %s", safe_url(url))
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._client: Any = _ClientClass(
            url=self.url,
            token=token or None,
            org=org,
            timeout=max(1, int(timeout_s * 1000)),
            verify_ssl=verify_ssl,
            ssl_ca_cert=ssl_ca_cert,
            retries=False,  # the outbox and our backoff retry; the client must not block on it
        )
        self._write_api: Any = self._client.write_api(write_options=SYNCHRONOUS)
        self._resume_at = 0.0  # monotonic time before which an outage is not probed again
        self._outage_since: float | None = None
        self._outage_attempts = 0
        self.requests = 0  # write requests sent (bisection included), for tests and benchmarks
        self.points_written = 0

    # --- Sink API ----------------------------------------------------------------------------

    def run_once(self) -> bool:
        if time.monotonic() < self._resume_at:
            return False
        rows = self.store.outbox.fetch(self.name, limit=self.batch_size)
        if not rows:
            return False
        items: list[tuple[int, bytes]] = []
        unwritable: dict[str, list[int]] = {}
        nothing: list[int] = []
        for row in rows:
            try:
                point = build_point(row.kind, row.body, gateway_id=self.gateway_id,
                                    modem_tag=self.modem_tag)
                items.append((row.seq, line_of(point)))
            except NothingToWrite:
                nothing.append(row.seq)  # text only: the MQTT sink carries it
            except (UnwritableRow, ValueError, TypeError, OverflowError) as exc:
                # Never an exception out of here: the same batch would come back forever.
                unwritable.setdefault(f"cannot become a point: {exc}", []).append(row.seq)
        for reason, seqs in unwritable.items():
            self.store.outbox.poison(self.name, seqs, reason=reason)
        if nothing:
            self.store.outbox.ack(self.name, nothing)
        delivered = self._deliver(items) if items else True
        return delivered and len(rows) >= self.batch_size

    def next_wait(self) -> float:
        """In an outage, until the retry is due."""
        wait = self._resume_at - time.monotonic()
        return min(wait, self.idle_wait) if wait > 0 else self.idle_wait

    def close(self) -> None:
        try:
            self._write_api.close()
        finally:
            self._client.close()

    def preflight(self) -> None:
        """Say plainly at start-up when the server cannot take v2 writes (e.g. InfluxDB 1.6)."""
        problem = self.check()
        if problem:
            log.error("influx: %s; readings wait in the outbox until this is fixed", problem)

    def check(self, timeout_s: float = 5.0) -> str | None:
        """:func:`check_influx` with this sink's settings (bucket included)."""
        return check_influx(
            self.url, token=self._token, org=self.org, bucket=self.bucket, timeout_s=timeout_s,
            verify_ssl=self.verify_ssl, ssl_ca_cert=self.ssl_ca_cert,
        )

    # --- delivery ----------------------------------------------------------------------------

    def _deliver(self, items: list[tuple[int, bytes]]) -> bool:
        """Write ``items``; bisect refused chunks down to the bad rows. False on an outage."""
        chunks: deque[list[tuple[int, bytes]]] = deque([items])
        while chunks:
            chunk = chunks.popleft()
            failure = self._post([line for _, line in chunk])
            if failure is None:
                self.store.outbox.ack(self.name, [seq for seq, _ in chunk])
                self.points_written += len(chunk)
                self._recovered()
                continue
            if failure.transient:
                waiting = [seq for part in (chunk, *chunks) for seq, _ in part]
                delay = self.backoff.next_delay()
                self.store.outbox.retry(self.name, waiting, delay=delay, error=failure.message)
                self._resume_at = time.monotonic() + delay
                self._in_outage(failure.message, len(waiting), delay)
                return False
            self._recovered()  # the server answered: it is up, even if it refused these rows
            if len(chunk) == 1:
                self.store.outbox.poison(self.name, [chunk[0][0]], reason=failure.message)
            else:
                middle = len(chunk) // 2
                chunks.appendleft(chunk[middle:])
                chunks.appendleft(chunk[:middle])
        return True

    def _post(self, lines: list[bytes]) -> _Failure | None:
        self.requests += 1
        try:
            self._write_api.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=_NANOS
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 0:  # the client's wrapping of a TLS failure: no answer at all
                reason = " ".join(str(exc.reason or "no answer").split())
                if "SSL" in reason:
                    reason = f"TLS with {safe_url(self.url)} failed ({reason}): check [influx] ca"
                return _Failure(_scrub(reason, self._token), True)
            headers = exc.headers if isinstance(exc.headers, Mapping) else None
            message = _scrub(server_message(status, exc.body, headers), self._token)
            if status in _NOT_THE_ROWS_FAULT or status >= 500 or status < 400:
                where = safe_url(self.url)
                return _Failure(_scrub(_status_problem(status, message, where), self._token), True)
            return _Failure(message, False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return _Failure(_scrub(_network_problem(exc, self.url), self._token), True)
        return None

    def _in_outage(self, reason: str, rows: int, delay: float) -> None:
        self._outage_attempts += 1
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "influx: cannot deliver to %s: %s; %d row(s) stay in the outbox, retrying with "
                "backoff (up to %.0f s apart)",
                safe_url(self.url), reason, rows, self.backoff.cap,
            )
        else:
            log.debug("influx: still failing (%s); next try in %.1f s", reason, delay)

    def _recovered(self) -> None:
        self.backoff.reset()
        self._resume_at = 0.0
        if self._outage_since is not None:
            log.warning(
                "influx: delivering to %s again after %.1f s and %d failed attempt(s)",
                safe_url(self.url), time.monotonic() - self._outage_since, self._outage_attempts,
            )
            self._outage_since = None
            self._outage_attempts = 0


def _network_problem(exc: BaseException, url: str) -> str:
    where = safe_url(url)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS with {where} failed ({exc}): check [influx] ca and verify_ssl"
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return f"cannot reach {where}: the host name does not resolve"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else None
        return f"cannot reach {where}: {detail or 'connection failed'}"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return f"{where} did not answer within the timeout"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return f"{where} dropped the connection ({exc})"
    return f"cannot reach {where}: {exc}"


# --- configuration check ---------------------------------------------------------------------


def check_influx(
    url: str,
    *,
    token: str | None,
    org: str,
    bucket: str | None = None,
    timeout_s: float = 5.0,
    verify_ssl: bool = True,
    ssl_ca_cert: str | None = None,
) -> str | None:
    """None if ``url`` takes InfluxDB v2 writes, else what is wrong, in plain English.

    Sends an empty write (no data is stored) to ``/api/v2/write``: servers that have the API
    answer 2xx (older InfluxDB 2.x: 400 "writing requires points"); InfluxDB 1.6 answers 404.
    With ``bucket`` a missing bucket is reported too. The token never appears in the answer.
    """
    where = safe_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"the time-series url {where!r} must look like http(s)://host:port"
    query = {"org": org, "precision": "s"}
    if bucket:
        query["bucket"] = bucket
    endpoint = url.rstrip("/") + "/api/v2/write?" + urlencode(query)
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if token:
        headers["Authorization"] = f"Token {token}"
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if verify_ssl else "CERT_NONE",
        ca_certs=ssl_ca_cert,
        retries=False,
        timeout=urllib3.Timeout(total=timeout_s),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = pool.request("POST", endpoint, body=b"", headers=headers, redirect=False)
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        return _scrub(_network_problem(exc, url), token)
    finally:
        pool.clear()
    status = response.status
    message = _scrub(server_message(status, response.data, dict(response.headers)), token)
    if 200 <= status < 300:
        return None
    if status == 400:
        lowered = message.lower()
        if bucket is None or not ("bucket" in lowered or "org" in lowered):
            return None  # the API is there and let us in; it only dislikes an empty write
        return f"{where} refused a test write: {message}: check [influx] org and bucket"
    if status in (301, 302, 303, 307, 308):
        target = response.headers.get("Location", "?")
        return f"{where} redirects the write API to {safe_url(target)}: use that url"
    if status in (401, 403, 404, 405, 429):
        return _scrub(_status_problem(status, message, where), token)
    return f"{where} answered a test write with {message}"
