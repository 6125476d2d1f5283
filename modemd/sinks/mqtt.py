"""The MQTT sink: outbox rows to the broker at QoS 1, a row leaving only on its PUBACK.

paho-mqtt 2.x runs the network on its own thread and reconnects by itself (a broker that is
down at boot is retried, never fatal). This sink's thread takes due rows from the outbox, at
most ``max_inflight`` unacknowledged at a time, and acks them in the outbox when their PUBACK
arrives. The gateway's status topic is retained ``online`` while connected and ``offline``
through the Last Will when the daemon dies.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from modemd.errors import StoreError
from modemd.sinks.base import Sink
from modemd.sinks.retained import PUBLISHED_AT, RULE, Clear, Shorten, reconcile, retained_state
from modemd.sinks.status import ConnectionStatus, write_status
from modemd.store import Store
from modemd.store.outbox import OutboxRow

log = logging.getLogger(__name__)

INFLIGHT_RESEND_AFTER = 120.0  # seconds without PUBACK before a row is offered again
IDLE_WAIT = 5.0  # s: the longest idle sleep (rows the CLI writes wake no one)

MessageHandler = Callable[[mqtt.MQTTMessage], None]
#: known owners -> (owner, discovery configs) to announce at every connection
Configured = Callable[[Collection[str]], Sequence[tuple[str, Sequence[Sequence[Any]]]]]
#: An outbox row's body of a plugged-in kind -> (topic, document, MQTT 5 correlation data).
Renderer = Callable[[dict[str, Any]], tuple[str, Any, bytes | None]]
REQUEST_SESSION_EXPIRY = 86400  # seconds the broker keeps requests for a modemd that is away


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    gateway_id: str = "gateway"
    base_topic: str = "modemd"
    qos: int = 1
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    #: a [mqtt.tls] table: TLS, with the system CA store when no tls_ca is given
    tls: bool = False
    keepalive: int = 30
    max_inflight: int = 32
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"
    #: "auto": MQTT 5, falling back to 3.1.1 when the broker refuses 5; or "5" / "3.1.1"
    protocol: str = "auto"
    #: at most this many devices get Home Assistant entities (None: no bound)
    max_devices: int | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A request document published to one of the gateway's request topics."""

    topic: str
    payload: bytes
    response_topic: str | None = None  # MQTT 5: where the requester wants its answers
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class RequestRoute:
    """What takes the requests of one topic.

    ``handle`` stores the request before it returns (the broker's PUBACK follows it).
    ``refuse``, when ``handle`` raised (the store is full or gone), gives the answer to publish
    at once, without the outbox: (topic, document), so the asker never takes silence for
    acceptance.
    """

    handle: Callable[[Request], None]
    refuse: Callable[[Request, Exception], tuple[str, Any]] | None = None


class Topics:
    def __init__(self, base: str, gateway_id: str) -> None:
        self.root = f"{base}/{gateway_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def sms(self) -> str:
        return f"{self.root}/sms"

    @property
    def deadletter(self) -> str:
        return f"{self.root}/deadletter"

    def device_state(self, device: str) -> str:
        return f"{self.root}/device/{device}/state"

    def modem_state(self, modem: str) -> str:
        return f"{self.root}/modem/{modem}/state"

    def smpp_state(self, bind: str) -> str:
        return f"{self.root}/smpp/{bind}/state"

    def under(self, suffix: str) -> str:
        return f"{self.root}/{suffix}"

    @property
    def sms_send(self) -> str:
        return f"{self.root}/sms/send"

    @property
    def sms_status(self) -> str:
        return f"{self.root}/sms/status"


class MqttSink(Sink):
    name = "mqtt"
    kinds = frozenset({"sms", "reading", "deadletter", "modem_state", "smpp_state"})

    def __init__(self, store: Store, settings: MqttSettings, *,
                 discovery: Sequence[tuple[str, dict[str, Any]]] = (),
                 known_rules: Collection[str] | None = None,
                 known_modems: Collection[str] | None = None,
                 known_devices: Collection[str] | None = None,
                 configured: Configured | None = None,
                 requests: Mapping[str, RequestRoute] | None = None,
                 renderers: Mapping[str, Renderer] | None = None,
                 rule_expiry: Mapping[str, int | None] | None = None) -> None:
        """``discovery``: Home Assistant configs announced on every connection (the gateway).

        ``configured``: given the owners announced before, the (owner, configs) of every
        device to announce at each connection and Home Assistant restart, before (and
        whether or not) the device sends anything.

        ``known_rules`` / ``known_modems``: what the config has now; entities announced earlier
        for a rule or modem that is gone are removed from Home Assistant (None: keep them).
        ``known_devices``: the only devices that may have entities (``ha_only_configured``;
        None: any device). A row queued under an earlier config for another device is
        delivered without entities and not retained, so it cannot bring a removed device back.

        ``requests``: topic -> what takes the documents applications publish there (send and
        verification requests). ``renderers``: outbox kinds of other components -> how a row
        of that kind is published (not retained).

        ``rule_expiry``: each parser rule's ``expire_after`` now. Given, the device states
        retained on the broker are read back at each MQTT 5 connection, and one published
        under a longer ``expire_after`` is cleared or made to expire in time
        (modemd.sinks.retained).
        """
        super().__init__(store, idle_wait=IDLE_WAIT)
        self.settings = settings
        self.topics = Topics(settings.base_topic, settings.gateway_id)
        self.connected = threading.Event()
        self._acked_mids: collections.deque[int] = collections.deque()
        # packet id -> the outbox seq it carries (None: status, discovery ...). Written under
        # _publish_lock together with the publish, so a PUBACK is only ever matched to the
        # publication that owns its packet id, never to a later one that reuses the id.
        self._mid_owner: dict[int, int | None] = {}
        self._publish_lock = threading.Lock()
        # Held by the sink thread for each turn, and by offer() (the pipeline's thread) to
        # publish a row as soon as it is committed: one of them publishes each row.
        self._turn_lock = threading.Lock()
        # The highest seq read from the outbox or offered. An offered row at or below it was
        # committed before that read, so the sink thread has it (published, maybe acked);
        # one above it goes out directly only if no pending row lies between.
        self._taken_through = 0
        self._inflight: dict[int, float] = {}  # seq -> when published
        self._expiring: dict[str, float] = {}  # MQTT 3.1.1: retained state -> when it expires
        self._announced: set[str] = set()  # discovery topics sent on this connection
        self._discovery_cache: dict[str, dict[str, Any]] = dict(discovery)
        self._known_rules = frozenset(known_rules) if known_rules is not None else None
        self._known_modems = frozenset(known_modems) if known_modems is not None else None
        self._known_devices = frozenset(known_devices) if known_devices is not None else None
        self._configured = configured
        self._over_limit: set[str] = set()  # devices refused entities by max_devices
        # owner ("rule:<rule>/device:<id>" or "modem:<name>") -> discovery topics announced
        self._owned: dict[str, frozenset[str]] = (
            store.announced.load() if settings.homeassistant else {})
        self._pruned = False
        self._connection_epoch = 0
        self._closing = False
        self._seen_epoch = 0
        self._connections = 0  # successful CONNACKs so far
        self._seen_connection = 0
        self._mqtt5 = settings.protocol != "3.1.1"
        self._downgrade = threading.Event()  # the broker refused MQTT 5: use 3.1.1
        self._diagnose = threading.Event()  # a connection attempt failed: find out why
        self._status_lock = threading.Lock()
        self.status = ConnectionStatus.now("connecting", f"to {settings.host}:{settings.port}")
        self._state_dir = store.path.parent
        write_status(self._state_dir, self.name, self.status)
        # topic filter -> handler of incoming messages, subscribed at every connection
        self._handlers: dict[str, MessageHandler] = {}
        # filters subscribed with no-local, over MQTT 5 only (our own publications there)
        self._mqtt5_only: set[str] = set()
        self._rule_expiry = dict(rule_expiry) if rule_expiry is not None else None
        # decisions on retained states read back, made on paho's thread, applied on ours
        self._retained_actions: collections.deque[Clear | Shorten] = collections.deque()
        self._state_published: set[str] = set()  # device state topics published by this run
        if self._rule_expiry is not None and any(
                lifetime is not None for lifetime in self._rule_expiry.values()):
            self._mqtt5_only.add(self.topics.device_state("+"))
            self.subscribe(self.topics.device_state("+"), self._on_retained_state)
        if settings.homeassistant:
            self.subscribe(f"{settings.discovery_prefix}/status", self._on_homeassistant_status)
        self._requests = dict(requests or {})
        for topic, route in self._requests.items():
            self.subscribe(topic, functools.partial(self._take_request, route))
        self._renderers: dict[str, Renderer] = dict(renderers or {})
        self.kinds = type(self).kinds | frozenset(self._renderers)
        self._client = self._make_client()

    # --- paho client -------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client_id = s.client_id or f"modemd-{s.gateway_id}"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=mqtt.MQTTv5 if self._mqtt5 else mqtt.MQTTv311,
        )
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls or s.tls_ca or s.tls_cert:
            # ca_certs=None: paho loads the system's default CA store
            client.tls_set(
                ca_certs=s.tls_ca, certfile=s.tls_cert, keyfile=s.tls_key,
                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(s.tls_insecure)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(s.max_inflight * 4)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._connect_async()
        self._client.loop_start()
        super().start()

    def _connect_async(self) -> None:
        s = self.settings
        if self._requests and self._mqtt5:
            # A persistent session: requests published while modemd restarts or reconnects
            # wait at the broker instead of being dropped for want of a subscriber.
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = REQUEST_SESSION_EXPIRY
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive, clean_start=False,
                                       properties=props)
        else:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive)

    def close(self) -> None:
        self._closing = True
        try:
            self._settle_acks()  # PUBACKs received since the last turn: not sent again
        except StoreError as exc:
            log.warning("mqtt: cannot record the last acknowledgements: %s", exc)
        if self.connected.is_set():
            info = self._publish(self.topics.status, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.debug("mqtt: offline status not confirmed: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        with self._status_lock:  # what `modemd outbox` shows while the daemon is down
            self.status = ConnectionStatus.now("stopped", "modemd is not running")
            write_status(self._state_dir, self.name, self.status)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if (reason_code.is_failure and self._mqtt5 and self.settings.protocol == "auto"
                and str(reason_code) == "Unsupported protocol version"):
            log.warning("mqtt: broker %s:%d does not speak MQTT 5; using MQTT 3.1.1 (retained "
                        "device states cannot expire there)", self.settings.host,
                        self.settings.port)
            self._downgrade.set()
            self.wake()
            return
        if reason_code.is_failure:
            text = str(reason_code)
            auth = text in ("Not authorized", "Bad user name or password")
            self._set_status("auth_failed" if auth else "refused",
                             f"{self._where()} refused the connection: {text}"
                             + (" (check [mqtt] username and password_file)" if auth else ""))
            return
        self._set_status("connected", f"connected to {self._where()}")
        # "online" goes out from the sink thread (run_once), where every publication is
        # recorded with its packet id; never publish from paho's callbacks.
        for topic in self._handlers:
            if topic not in self._mqtt5_only:
                client.subscribe(topic, qos=1)
            elif self._mqtt5:
                client.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
        self._connection_epoch += 1
        self._connections += 1
        self.connected.set()
        self.wake()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._diagnose.set()  # paho does not say why: the sink thread probes the broker
        self.wake()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("mqtt: disconnected (%s); rows wait in the outbox", reason_code)
            self._set_status("connecting", f"disconnected from {self._where()}: {reason_code}")
        elif not self._closing and not self._downgrade.is_set() and \
                self.status.state in ("connecting", "connected"):
            # TCP (and TLS) went through, but no CONNACK came within the keepalive
            self._set_status("no_answer", f"{self._where()} accepted the connection but never "
                             f"answered CONNECT within {self.settings.keepalive} s "
                             f"({reason_code}): is it an MQTT broker, and the right port?")
        self.connected.clear()

    def _where(self) -> str:
        return f"broker {self.settings.host}:{self.settings.port}"

    def _set_status(self, state: str, reason: str) -> None:
        """Record the connection state; log each change once (not every retry)."""
        with self._status_lock:
            changed = (state, reason) != (self.status.state, self.status.reason)
            if not changed:
                return
            self.status = ConnectionStatus.now(state, reason)
            write_status(self._state_dir, self.name, self.status)
        if state == "connected":
            log.info("mqtt: %s", reason)
        else:
            log.warning("mqtt: %s; rows wait in the outbox, retrying", reason)

    def _probe(self) -> None:
        """Why the broker cannot be reached: refused, name, timeout or TLS, in plain words."""
        self._diagnose.clear()
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=5.0)
        except socket.gaierror as exc:
            self._set_status("unreachable", f"{self._where()}: the host name does not resolve "
                             f"({exc.strerror})")
            return
        except ConnectionRefusedError:
            self._set_status("unreachable", f"{self._where()}: connection refused (nothing "
                             "listens on that port)")
            return
        except TimeoutError:
            self._set_status("unreachable", f"{self._where()}: no answer within 5 s "
                             "(firewall, wrong address?)")
            return
        except OSError as exc:
            self._set_status("unreachable", f"{self._where()}: {exc.strerror or exc}")
            return
        with sock:
            if not (s.tls or s.tls_ca or s.tls_cert):
                return  # TCP works now: paho's next attempt will tell
            try:
                context = ssl.create_default_context(cafile=s.tls_ca)
                if s.tls_insecure:
                    context.check_hostname = False
                if s.tls_cert:
                    context.load_cert_chain(s.tls_cert, s.tls_key)
                with context.wrap_socket(sock, server_hostname=s.host):
                    pass
            except (ssl.SSLError, OSError) as exc:
                self._set_status("tls_error", f"TLS with {self._where()} failed: "
                                 f"{getattr(exc, 'reason', None) or exc}")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        # paho holds its message lock here: only hand the id over, take no lock of ours.
        self._acked_mids.append(mid)
        self.wake()

    def _publish(self, topic: str, payload: str, *, qos: int, retain: bool,
                 seq: int | None = None, expiry: int | None = None,
                 correlation: bytes | None = None,
                 user_properties: Sequence[tuple[str, str]] | None = None,
                 ) -> mqtt.MQTTMessageInfo:
        """Publish and record which publication owns the packet id, atomically.

        ``expiry``: seconds after which the broker drops the (retained) message (MQTT 5
        message expiry; not sent over MQTT 3.1.1, which has none). ``correlation``: MQTT 5
        correlation data of an answer on a requester's response topic. ``user_properties``:
        MQTT 5 user properties (dropped over 3.1.1).
        """
        properties = None
        if (expiry is not None or correlation is not None or user_properties) and self._mqtt5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if expiry is not None:
                properties.MessageExpiryInterval = expiry
            if correlation is not None:
                properties.CorrelationData = correlation
            if user_properties:
                properties.UserProperty = list(user_properties)
        with self._publish_lock:
            info = self._client.publish(topic, payload, qos=qos, retain=retain,
                                        properties=properties)
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) and qos > 0:
                self._mid_owner[info.mid] = seq  # replaces what paho no longer holds
            else:
                self._mid_owner.pop(info.mid, None)
        return info

    def subscribe(self, topic: str, handler: MessageHandler) -> None:
        """Call *handler* (on paho's network thread: hand work over, never block) for each
        message on *topic* (an exact topic or a filter with ``+``/``#``); subscribed at every
        connection. Register before :meth:`start`."""
        self._handlers[topic] = handler

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic, handler in self._handlers.items():
            if mqtt.topic_matches_sub(topic, message.topic):
                try:
                    handler(message)
                except Exception:  # one bad message must not stop paho's network thread
                    log.exception("mqtt: handler for %s failed", topic)

    def _take_request(self, route: RequestRoute, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            log.warning("mqtt: ignoring a retained request on %s (requests must not be "
                        "retained: it would run again at every connection)", message.topic)
            return
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        if response_topic and not self._response_topic_allowed(response_topic):
            log.warning("mqtt: request on %s with response topic %r: refused as a reply "
                        "target", message.topic, response_topic)
            response_topic = None
        request = Request(topic=message.topic, payload=bytes(message.payload),
                          response_topic=response_topic or None,
                          correlation=bytes(correlation) if correlation else None)
        try:
            route.handle(request)
        except Exception as exc:  # one bad request must not take the MQTT client thread down
            log.exception("mqtt: a request on %s could not be taken", message.topic)
            if route.refuse is not None:
                topic, document = route.refuse(request, exc)
                self._publish(topic, _json(document), qos=1, retain=False)

    def _response_topic_allowed(self, topic: str) -> bool:
        """A reply target must not let a requester publish into modemd's or HA's topics."""
        reserved = (self.settings.base_topic + "/", self.settings.discovery_prefix + "/")
        return bool(topic) and not any(c in topic for c in "#+\0") and \
            not topic.startswith(reserved) and not topic.startswith("$")

    def _on_retained_state(self, message: mqtt.MQTTMessage) -> None:
        """A device state retained on the broker, read back at connection (paho's thread:
        decide, hand the publication to the sink thread)."""
        if not message.retain or self._rule_expiry is None:
            return
        props = message.properties
        state = retained_state(message.topic, bytes(message.payload),
                               getattr(props, "UserProperty", None) if props else None,
                               getattr(props, "MessageExpiryInterval", None) if props else None)
        action = reconcile(state, expire_after=self._rule_expiry, now=time.time())
        if action is not None:
            self._retained_actions.append(action)
            self.wake()

    def _state_expiry(self, row: OutboxRow) -> int | None:
        """A reading's expiry: its rule's ``expire_after`` as the config says now (a row
        queued under an earlier config carries the old value), else the row's own."""
        if row.kind == "reading" and self._rule_expiry is not None:
            rule = row.body.get("rule")
            if isinstance(rule, str) and rule in self._rule_expiry:
                return self._rule_expiry[rule]
        return _expiry(row)

    def _apply_retained_actions(self) -> None:
        while self._retained_actions:
            action = self._retained_actions.popleft()
            if action.topic in self._state_published:
                continue  # a newer state went out in this run, with today's expiry
            if isinstance(action, Clear):
                log.info("mqtt: clearing retained %s: older than its rule's expire_after",
                         action.topic)
                self._publish(action.topic, "", qos=1, retain=True)
            else:
                log.info("mqtt: %s expires in %d s now (its rule's expire_after was "
                         "shortened)", action.topic, action.expiry)
                self._publish(action.topic, action.payload.decode("utf-8", "replace"), qos=1,
                              retain=True, expiry=action.expiry,
                              user_properties=_state_properties(action.rule,
                                                                action.published_at))

    def _on_homeassistant_status(self, message: mqtt.MQTTMessage) -> None:
        if message.payload.strip() == b"online":
            log.info("mqtt: Home Assistant restarted; discovery will be sent again")
            self._connection_epoch += 1
            self.wake()

    # --- the sink thread -------------------------------------------------------------------------

    def offer(self, rows: Sequence[OutboxRow]) -> None:
        """Publish rows the pipeline has just committed, from its thread, when nothing older
        waits to go first (else the sink thread reads them from the outbox, in order)."""
        if not self._turn_lock.acquire(blocking=False):
            self.wake()  # the sink thread is on its turn: it reads them
            return
        try:
            fresh = [row for row in rows if row.seq > self._taken_through]
            if not fresh:
                return
            if not (self.connected.is_set() and not self.stopping
                    and self._seen_epoch == self._connection_epoch
                    and len(self._inflight) + len(fresh) <= self.settings.max_inflight
                    and not self.store.outbox.waiting_between(
                        self.name, after=self._taken_through, before=fresh[-1].seq,
                        besides=[row.seq for row in fresh])):
                self.wake()
                return
            for row in fresh:
                self._taken_through = row.seq
                self._publish_row(row)
        finally:
            self._turn_lock.release()

    def run_once(self) -> bool:
        with self._turn_lock:
            return self._turn()

    def _turn(self) -> bool:
        if self._downgrade.is_set():
            self._reconnect_with_mqtt311()
        if self._diagnose.is_set() and not self.connected.is_set():
            self._probe()
        self._settle_acks()
        if not self.connected.is_set():
            return False
        if self._seen_epoch != self._connection_epoch:
            if self._seen_connection != self._connections:
                self._seen_connection = self._connections
                self._publish(self.topics.status, "online", qos=1, retain=True)
            self._seen_epoch = self._connection_epoch
            self._announced.clear()
            for topic, payload in list(self._discovery_cache.items()):
                self._publish_discovery(topic, payload)
            if self.settings.homeassistant and not self._pruned:
                self._pruned = True
                self._remove_unconfigured()
            if self.settings.homeassistant and self._configured is not None:
                for owner, messages in self._configured(list(self._owned)):
                    self._announce(owner, messages)
        self._apply_retained_actions()
        self._expire_inflight()
        self._clear_expired_states()
        room = self.settings.max_inflight - len(self._inflight)
        if room <= 0:
            return False
        rows = self.store.outbox.fetch(self.name, limit=room, exclude=list(self._inflight))
        if rows:
            self._taken_through = max(self._taken_through, rows[-1].seq)
        for row in rows:
            if not self.connected.is_set():
                break
            self._publish_row(row)
        return len(rows) == room

    def next_wait(self) -> float:
        """Until the first in-flight row is offered again or a retained state expires."""
        due = [when + INFLIGHT_RESEND_AFTER for when in list(self._inflight.values())]
        due += list(self._expiring.values())
        wait = min(due, default=math.inf) - time.monotonic()
        return min(max(wait, 0.0), self.idle_wait)

    def _reconnect_with_mqtt311(self) -> None:
        self._downgrade.clear()
        old, self._mqtt5 = self._client, False
        old.loop_stop()
        old.disconnect()
        with self._publish_lock:
            self._mid_owner.clear()
        self._inflight.clear()  # rows handed to the old client are offered again
        self._client = self._make_client()
        self._connect_async()
        self._client.loop_start()

    def _settle_acks(self) -> None:
        acked: list[int] = []
        while self._acked_mids:
            mid = self._acked_mids.popleft()
            with self._publish_lock:  # a publish in progress has recorded its id first
                seq = self._mid_owner.pop(mid, None)
            if seq is not None:
                acked.append(seq)
                self._inflight.pop(seq, None)
        if acked:
            self.store.outbox.ack(self.name, acked)

    def _clear_expired_states(self) -> None:
        now = time.monotonic()
        for topic, deadline in list(self._expiring.items()):
            if deadline <= now:
                del self._expiring[topic]
                self._publish(topic, "", qos=1, retain=True)

    def _expire_inflight(self) -> None:
        cutoff = time.monotonic() - INFLIGHT_RESEND_AFTER
        for seq, when in list(self._inflight.items()):
            if when < cutoff:
                del self._inflight[seq]

    def _publish_row(self, row: OutboxRow) -> None:
        correlation: bytes | None = None
        try:
            renderer = self._renderers.get(row.kind)
            if renderer is not None:
                topic, document, correlation = renderer(row.body)
                payload, retain = _json(document), False
            else:
                topic, payload, retain = self._render(row)
        except (KeyError, TypeError, ValueError) as exc:
            self.store.outbox.poison(self.name, [row.seq], reason=f"cannot render: {exc!r}")
            return
        self._inflight[row.seq] = time.monotonic()
        expiry = self._state_expiry(row)
        properties: list[tuple[str, str]] | None = None
        if retain and row.kind == "reading":
            self._state_published.add(topic)
            properties = _state_properties(str(row.body.get("rule", "")), time.time())
        info = self._publish(topic, payload, qos=self.settings.qos, retain=retain, seq=row.seq,
                             expiry=expiry, correlation=correlation,
                             user_properties=properties)
        if retain and not self._mqtt5:
            # MQTT 3.1.1 has no message expiry: clear the retained state ourselves when it
            # expires (while this process runs), so a Home Assistant starting later does not
            # take a dead device for alive
            if expiry is None:
                self._expiring.pop(topic, None)
            else:
                self._expiring[topic] = time.monotonic() + expiry
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._inflight.pop(row.seq, None)
            log.warning("mqtt: publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return
        if self.settings.qos == 0:
            self._inflight.pop(row.seq, None)
            self.store.outbox.ack(self.name, [row.seq])

    def _render(self, row: OutboxRow) -> tuple[str, str, bool]:
        body = row.body
        if row.kind == "sms":
            return self.topics.sms, _json(body), False
        if row.kind == "deadletter":
            return self.topics.deadletter, _json(body), False
        if row.kind == "reading":
            retain = True
            if self.settings.homeassistant and "discovery" in body:
                owner = f"rule:{body.get('rule', '')}/device:{body['device']}"
                if body["discovery"] and not self._is_configured(owner):
                    retain = False  # queued before its device left the config
                self._announce(owner, body["discovery"])
            return self.topics.device_state(body["device"]), _json(body["state"]), retain
        if row.kind == "modem_state":
            return (self.topics.modem_state(body["modem"]),
                    *self._source_state(f"modem:{body['modem']}", body))
        if row.kind == "smpp_state":
            return (self.topics.smpp_state(body["bind"]),
                    *self._source_state(f"smpp:{body['bind']}", body))
        raise ValueError(f"unknown outbox kind {row.kind!r}")

    def _source_state(self, owner: str, body: dict[str, Any]) -> tuple[str, bool]:
        """A modem's or bind's state document and whether it stays retained: not when it
        was queued before its modem or bind left the config (its retained state was
        cleared; a late row must not bring it back)."""
        retain = True
        if self.settings.homeassistant:
            retain = self._is_configured(owner)
            if "discovery" in body:
                self._announce(owner, body["discovery"])
        state = {key: value for key, value in body.items() if key != "discovery"}
        return _json(state), retain

    def _publish_discovery(self, topic: str, payload: dict[str, Any]) -> None:
        self._publish(topic, _json(payload), qos=1, retain=True)
        self._announced.add(topic)

    # --- Home Assistant entities that are no longer configured ------------------------------

    def _announce(self, owner: str, discovery: Sequence[Sequence[Any]]) -> None:
        if not self._is_configured(owner):
            return  # a row queued under an earlier config: its entities are gone
        if discovery and not self._within_device_limit(owner):
            return
        for topic, payload in discovery:
            self._discovery_cache[topic] = payload
            if topic not in self._announced:
                self._publish_discovery(topic, payload)
        topics = frozenset(str(topic) for topic, _ in discovery)
        if self._owned.get(owner, frozenset()) != topics:
            self._set_owned(owner, topics)
            if not topics:
                self._clear_state_of(owner)  # e.g. a device no longer in [devices]

    def _set_owned(self, owner: str, topics: frozenset[str]) -> None:
        """Make *topics* all that *owner* announces; remove what nobody announces any more."""
        previous = self._owned.get(owner, frozenset())
        if topics:
            self._owned[owner] = topics
        else:
            self._owned.pop(owner, None)
        still_wanted = frozenset().union(*self._owned.values())
        for topic in sorted(previous - still_wanted):
            log.info("mqtt: removing Home Assistant entity %s (no longer configured)", topic)
            self._discovery_cache.pop(topic, None)
            self._announced.discard(topic)
            self._publish(topic, "", qos=1, retain=True)  # empty retained: remove
        try:
            self.store.announced.replace(owner, topics)
        except StoreError as exc:  # bookkeeping only: never hold up delivery for it
            log.warning("mqtt: cannot record discovery topics: %s", exc)

    def _within_device_limit(self, owner: str) -> bool:
        limit = self.settings.max_devices
        device = _device_of(owner)
        if limit is None or device is None or owner in self._owned:
            return True
        devices = {d for d in map(_device_of, self._owned) if d is not None}
        if device in devices or len(devices) < limit:
            return True
        if device not in self._over_limit:
            self._over_limit.add(device)
            log.warning("mqtt: device %s gets no Home Assistant entities: [mqtt] max_devices = "
                        "%d devices have them already", device, limit)
        return False

    def _is_configured(self, owner: str) -> bool:
        kind, _, rest = owner.partition(":")
        if kind in ("modem", "smpp"):  # one namespace: a bind's name is a source as a modem's
            return self._known_modems is None or rest in self._known_modems
        rule, _, device = rest.partition("/device:")
        if self._known_devices is not None and device not in self._known_devices:
            return False
        return self._known_rules is None or rule in self._known_rules

    def _remove_unconfigured(self) -> None:
        for owner in sorted(self._owned):
            if not self._is_configured(owner):
                self._set_owned(owner, frozenset())
                self._clear_state_of(owner)

    def _clear_state_of(self, owner: str) -> None:
        """Remove the retained state of a device or modem no longer configured (an empty
        retained payload), unless another owner still announces that device."""
        kind, _, name = owner.partition(":")
        if kind == "modem":
            topic = self.topics.modem_state(name)
        elif kind == "smpp":
            topic = self.topics.smpp_state(name)
        else:
            device = _device_of(owner)
            if device is None or any(_device_of(o) == device for o in self._owned):
                return
            topic = self.topics.device_state(device)
        log.info("mqtt: clearing retained state %s (no longer configured)", topic)
        self._publish(topic, "", qos=1, retain=True)


def _device_of(owner: str) -> str | None:
    """The device of a ``rule:<rule>/device:<device>`` owner."""
    if not owner.startswith("rule:"):
        return None
    _, found, device = owner.partition("/device:")
    return device if found and device else None


def _state_properties(rule: str, published_at: float) -> list[tuple[str, str]]:
    """The user properties a retained device state carries (modemd.sinks.retained)."""
    return [(PUBLISHED_AT, f"{published_at:.3f}"), (RULE, rule)]


def _expiry(row: OutboxRow) -> int | None:
    """A device state's lifetime on the broker: its rule's ``expire_after``, so a retained
    state cannot make a dead device look alive to a Home Assistant that starts later."""
    if row.kind != "reading":
        return None
    value = row.body.get("expire_after")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _json(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
