"""The daemon: builds the layers from the config, starts their threads, watches them.

Nothing here knows AT commands, PDUs or MQTT packets; it only wires the store, the modem
drivers, the pipeline and the sinks together and reports liveness to systemd.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modemd.errors import ConfigError, StoreError
from modemd.modem.driver import ModemDriver
from modemd.modem.state import ModemState
from modemd.payload.engine import PayloadEngine
from modemd.payload.senders import AllowList
from modemd.pipeline import Pipeline, Route
from modemd.send.service import SendService
from modemd.send.wiring import build_send_service, send_announcements
from modemd.send.wiring import mqtt_routes as send_mqtt_routes
from modemd.sinks.base import Sink
from modemd.sinks.mqtt import (
    Configured,
    MqttSettings,
    MqttSink,
    Renderer,
    Request,
    RequestRoute,
    Topics,
)
from modemd.store import STORE_FILENAME, Store
from modemd.store.maintenance import StoreMaintenance
from modemd.store.outbox import OutboxRow
from modemd.systemd import Notifier

if TYPE_CHECKING:  # imported where the config turns them on: the daemon stays resident
    from modemd.config import Config
    from modemd.send.smpp import SmppSender
    from modemd.sources.smpp.bind import SmppBind
    from modemd.store.committer import GroupCommitter
    from modemd.verify import Verifier

log = logging.getLogger(__name__)

READY_DEADLINE = 60.0  # seconds; well inside the unit's TimeoutStartSec
IDLE_TICK = 10.0  # s: the supervisor's pace without a systemd watchdog (status, store look)

_CORRUPTION_SIGNS = ("malformed", "not a database", "integrity check failed", "corrupt")


def open_store(state_dir: Path) -> Store:
    """Open the store; a corrupt file is moved aside (kept for a person) and a new one made.

    Messages not yet deleted from the modems are swept in again; the old file still holds
    whatever it held, for `sqlite3 .recover`.
    """
    try:
        return Store(state_dir)
    except StoreError as exc:
        if not any(sign in str(exc).lower() for sign in _CORRUPTION_SIGNS):
            raise
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for suffix in ("", "-wal", "-shm"):
            path = state_dir / (STORE_FILENAME + suffix)
            if path.exists():
                path.rename(path.with_name(f"{path.name}.corrupt-{stamp}"))
        log.error("store %s was corrupt (%s); moved aside as *.corrupt-%s, starting a new one",
                  state_dir / STORE_FILENAME, exc, stamp)
        return Store(state_dir)


def mqtt_settings(config: Config) -> MqttSettings | None:
    m = config.mqtt
    if m is None or not m.enabled:
        return None
    password = m.password()
    return MqttSettings(
        host=m.host, port=m.port, gateway_id=config.gateway.id, base_topic=m.base_topic,
        qos=m.qos, client_id=m.client_id, username=m.username,
        password=password.get_secret_value() if password else None,
        tls_ca=str(m.tls.ca) if m.tls and m.tls.ca else None,
        tls_cert=str(m.tls.cert) if m.tls and m.tls.cert else None,
        tls_key=str(m.tls.key) if m.tls and m.tls.key else None,
        tls_insecure=bool(m.tls and m.tls.insecure),
        tls=m.tls is not None,
        keepalive=m.keepalive, max_inflight=m.max_inflight,
        homeassistant=m.homeassistant, discovery_prefix=m.discovery_prefix,
        protocol=m.protocol, max_devices=m.ha_max_devices,
    )


def build_verifier(config: Config, store: Store, *,
                   sender: SendService | None = None) -> Verifier | None:
    v, m = config.verify, config.mqtt
    if not v.enabled or m is None:
        return None
    from modemd.verify import Verifier, VerifySettings

    settings = VerifySettings(
        secret=v.secret(config.gateway.state_dir),
        result_topic=Topics(m.base_topic, config.gateway.id).under("verify/result"),
        ttl=v.ttl, max_ttl=v.max_ttl, max_attempts=v.max_attempts, match=v.match,
        keyword=v.keyword, code_length=v.code_length, answers=v.answers,
        max_per_number=v.max_per_number, max_pending=v.max_pending,
        scts_tolerance=v.scts_tolerance, keep_ended=v.keep_ended,
        default_country_code=config.gateway.default_country_code,
        prompt_text=v.prompt_text)
    prompter = None
    if sender is not None and config.send.enabled:
        def prompter(request_id: str, to: str, text: str) -> str | None:
            status = sender.accept({"id": request_id, "to": to, "text": text}, origin="verify")
            return str(status.get("error")) if status.get("state") == "failed" else None

    return Verifier(store, settings, prompter=prompter)


def configured_announcer(config: Config) -> Configured | None:
    """Every configured device's discovery, for the MQTT sink to announce at each connect."""
    mq = config.mqtt
    if mq is None or not mq.homeassistant:
        return None
    from modemd.payload.discovery import configured_discovery

    def announce(known: Collection[str]) -> list[tuple[str, list[Any]]]:
        return [(owner, list(messages)) for owner, messages in configured_discovery(
            config.parser, config.devices, known, gateway_id=config.gateway.id,
            base_topic=mq.base_topic, discovery_prefix=mq.discovery_prefix,
            default_country_code=config.gateway.default_country_code,
            allowed_devices=entity_devices(config))]

    return announce


def entity_devices(config: Config) -> frozenset[str] | None:
    """The devices that may have Home Assistant entities: all (None), or with
    ``ha_only_configured`` those in ``[devices]`` and the rules' fixed devices."""
    if config.mqtt is None or not config.mqtt.ha_only_configured:
        return None
    fixed = [rule.device for rule in config.parser if rule.device is not None]
    return frozenset(config.devices) | frozenset(fixed)


def build_sinks(config: Config, store: Store, *, verifier: Verifier | None = None,
                sender: SendService | None = None) -> list[Sink]:
    sinks: list[Sink] = []
    settings = mqtt_settings(config)
    if settings is not None:
        announce: list[tuple[str, dict[str, Any]]] = []
        if settings.homeassistant:
            from modemd.payload.discovery import gateway_discovery_messages

            announce = gateway_discovery_messages(
                settings.gateway_id, base_topic=settings.base_topic,
                discovery_prefix=settings.discovery_prefix) + send_announcements(config)
        requests: dict[str, RequestRoute] = {}
        renderers: dict[str, Renderer] = {}
        topics = Topics(settings.base_topic, settings.gateway_id)
        if verifier is not None:
            from modemd.verify.service import KIND as VERIFY_KIND

            def verify_request(request: Request) -> None:
                verifier.request(request.payload, response_topic=request.response_topic,
                                 correlation=request.correlation)

            requests[topics.under("verify/request")] = RequestRoute(verify_request)
            renderers[VERIFY_KIND] = verifier.render
        if sender is not None:
            send_requests, send_renderers = send_mqtt_routes(sender, topics)
            requests.update(send_requests)
            renderers.update(send_renderers)
        sinks.append(MqttSink(store, settings, discovery=announce,
                              known_rules=[rule.name for rule in config.parser],
                              known_modems=[modem.name for modem in config.modem]
                              + [bind.name for bind in config.smpp],
                              known_devices=entity_devices(config),
                              requests=requests, renderers=renderers,
                              configured=configured_announcer(config),
                              rule_expiry={rule.name: rule.expire_after
                                           for rule in config.parser}))
    influx = config.influx
    if influx is not None and influx.enabled:
        from modemd.sinks.influx import InfluxSink  # heavy import, only when configured

        token = influx.token()
        sinks.append(InfluxSink(
            store, url=influx.url, org=influx.org, bucket=influx.bucket,
            token=token.get_secret_value() if token else None, gateway_id=config.gateway.id,
            verify_ssl=influx.verify_ssl, ssl_ca_cert=str(influx.ca) if influx.ca else None,
            timeout_s=influx.timeout, batch_size=influx.batch_size,
            modem_tag=influx.modem_tag,
        ))
    return sinks


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        port_resolver: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.port_resolver = port_resolver
        self.store: Store | None = None
        self.sinks: list[Sink] = []
        self.pipeline: Pipeline | None = None
        self.verifier: Verifier | None = None
        self.drivers: list[ModemDriver] = []
        self.maintenance: StoreMaintenance | None = None
        self.failure: str | None = None  # why run_forever stopped on its own (exit non-zero)
        self.committer: GroupCommitter | None = None
        self.binds: list[SmppBind] = []
        self.smpp_senders: list[SmppSender] = []
        self.sender: SendService | None = None
        self._stop = threading.Event()
        self._attention = threading.Event()  # the supervisor should look now (store vanished)
        self._ready_sent = False
        self._last_status = ""
        self._started_at = time.monotonic()
        self._stall_reason: str | None = None

    # --- building ---------------------------------------------------------------------------

    def start(self) -> None:
        self._started_at = time.monotonic()
        cfg = self.config
        problems = cfg.file_problems()
        if problems:  # all of them now, not one per restart
            raise ConfigError(problems)
        self.store = store = open_store(cfg.gateway.state_dir)
        store.db.on_vanished = self._attention.set
        # built even when sending is off: a request is then answered with its refusal
        self.sender = build_send_service(cfg, store, on_published=self._send_published)
        self.verifier = build_verifier(cfg, store, sender=self.sender)
        self.sinks = build_sinks(cfg, store, verifier=self.verifier, sender=self.sender)
        engine = None
        discovery = None
        if cfg.parser:
            engine = PayloadEngine(cfg.parser_rules, cfg.devices,
                                   default_country_code=cfg.gateway.default_country_code)
        if cfg.mqtt is not None and cfg.mqtt.enabled and cfg.mqtt.homeassistant:
            from modemd.payload.discovery import discovery_messages

            mq = cfg.mqtt

            allowed = entity_devices(cfg)
            trackers = {rule.name: rule.device_tracker for rule in cfg.parser}

            def discovery(reading: Any) -> list[tuple[str, dict[str, Any]]]:
                if allowed is not None and reading.device not in allowed:
                    return []  # no entities for a device the config does not name
                rule = trackers.get(reading.rule)
                return discovery_messages(reading, gateway_id=cfg.gateway.id, tracker=rule,
                                          base_topic=mq.base_topic,
                                          discovery_prefix=mq.discovery_prefix)

        self.pipeline = Pipeline(
            store,
            routes=[Route(s.name, s.kinds) for s in self.sinks],
            engine=engine,
            senders=AllowList({m.name: m.allowed_senders or None for m in cfg.modem}
                              | {b.name: b.allowed_senders or None for b in cfg.smpp},
                              default_country_code=cfg.gateway.default_country_code),
            multipart_timeout=cfg.gateway.multipart_timeout,
            max_rows=cfg.outbox.max_rows,
            max_age=cfg.outbox.max_age,
            on_enqueued=self._wake_sinks,
            on_rows=self._offer_rows,
            discovery=discovery,
            verifier=self.verifier,
            send_tracker=self.sender,
        )
        if self.verifier is not None:
            self.verifier.on_result = self._wake_sinks
        # Modem workers commit themselves and share fsyncs (Journal.make_durable).
        self.drivers = [
            ModemDriver(
                modem, journal=store.journal, on_committed=self.pipeline.process_now,
                on_state=self._modem_state, sweep_interval=cfg.gateway.sweep_interval,
                health_interval=cfg.gateway.health_interval, port_resolver=self.port_resolver,
            )
            for modem in cfg.modem
        ]
        if cfg.send.enabled:
            from modemd.modem.sending import send_hook

            for driver in self.drivers:
                driver.add_worker_hook(send_hook(self.sender), next_due=functools.partial(
                    self.sender.next_look, driver.config.name))
                driver.sweeps_status_reports = True
        from modemd.modem.modemmanager import warn_about_modemmanager

        warn_about_modemmanager(cfg.modem)  # it would take the port or talk over modemd
        self.maintenance = StoreMaintenance(
            store.db, retention=cfg.store.retention, keep_marks=cfg.outbox.max_age,
            check_interval=cfg.store.check_interval)
        if cfg.smpp:  # deliver_sm go through one group committer (one fsync for what coincides)
            from modemd.sources.smpp.bind import bind_from_config
            from modemd.store.committer import GroupCommitter

            self.committer = GroupCommitter(store.journal, on_committed=self.pipeline.wake)
            self.binds = [bind_from_config(b, self.committer) for b in cfg.smpp]
            for bind in self.binds:
                bind.on_state = self._bind_state
            if cfg.send.enabled:
                self.smpp_senders = self._smpp_senders(self.sender, self.pipeline)
        for sink in self.sinks:
            sink.start()
        self.maintenance.start()
        self.pipeline.start()
        if self.verifier is not None:
            self.verifier.start()
        if self.committer is not None:
            self.committer.start()
        for bind in self.binds:
            bind.start()
            bind.report()  # "connecting": no "connected" retained from a run before survives
        for smpp_sender in self.smpp_senders:
            smpp_sender.start()
        for driver in self.drivers:
            driver.start()
        log.info("modemd started: gateway %s, %d modem(s), %d SMPP bind(s), sinks: %s",
                 cfg.gateway.id, len(self.drivers), len(self.binds),
                 ", ".join(s.name for s in self.sinks) or "none")

    def _smpp_senders(self, service: SendService, pipeline: Pipeline) -> list[SmppSender]:
        """A sender per transceiver bind; the SMSC's receipts settle what they sent."""
        from modemd.send.smpp import SmppSender

        entries = {entry.name: entry for entry in self.config.smpp}
        senders = [
            SmppSender(bind, service,
                       next_look=functools.partial(service.next_look, bind.name),
                       alphabet=entries[bind.name].default_alphabet,
                       source_addr=entries[bind.name].source_addr)
            for bind in self.binds if bind.settings.bind == "transceiver"
        ]
        if senders:
            pipeline.on_smpp_receipt = service.on_smpp_receipt
        return senders

    def _bind_state(self, bind: SmppBind) -> None:
        """An SMPP bind bound, lost its session or stopped: its retained state for MQTT."""
        cfg = self.config
        if self.store is None or cfg.mqtt is None or not cfg.mqtt.enabled:
            return
        document = bind.document()
        if cfg.mqtt.homeassistant:
            from modemd.payload.discovery import smpp_discovery_messages

            document["discovery"] = [
                [topic, payload] for topic, payload in smpp_discovery_messages(
                    cfg.gateway.id, bind.name, bind_type=bind.settings.bind,
                    base_topic=cfg.mqtt.base_topic, discovery_prefix=cfg.mqtt.discovery_prefix)
            ]
        self.store.outbox.put(sink="mqtt", kind="smpp_state", msg_id=None, body=document)
        self._wake_sinks()

    def _send_published(self) -> None:
        self._wake_sinks()
        for driver in self.drivers:
            driver.wake()
        for smpp_sender in self.smpp_senders:
            smpp_sender.wake()

    def _wake_sinks(self) -> None:
        for sink in self.sinks:
            sink.wake()

    def _offer_rows(self, rows: Sequence[OutboxRow]) -> None:
        """The rows a processed message put in the outbox, to the sinks they are for."""
        for sink in self.sinks:
            mine = [row for row in rows if row.sink == sink.name]
            if mine:
                sink.offer(mine)

    def _modem_state(self, state: ModemState) -> None:
        if self.store is None:
            return
        names = {s.name for s in self.sinks}
        document = state.document()
        if "mqtt" in names:
            cfg = self.config
            if cfg.mqtt is not None and cfg.mqtt.homeassistant:
                from modemd.payload.discovery import modem_discovery_messages

                document["discovery"] = [
                    [topic, payload] for topic, payload in modem_discovery_messages(
                        gateway_id=cfg.gateway.id, modem_name=state.name,
                        imei=state.identity.imei, base_topic=cfg.mqtt.base_topic,
                        discovery_prefix=cfg.mqtt.discovery_prefix,
                        model=state.identity.model or None,
                        manufacturer=state.identity.manufacturer or None,
                        firmware=state.identity.revision or None)
                ]
            self.store.outbox.put(sink="mqtt", kind="modem_state", msg_id=None, body=document)
        if "influx" in names and state.online:
            self.store.outbox.put(sink="influx", kind="modem_health", msg_id=None,
                                  body=state.health())
        self._wake_sinks()

    # --- running -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Every thread that must run is running and making progress (the watchdog's
        condition); the reason it is not is logged once."""
        reason = self.stalled()
        if reason != self._stall_reason:
            if reason is not None:
                log.error("not healthy, withholding the watchdog ping: %s", reason)
            elif self._stall_reason is not None:
                log.info("healthy again")
            self._stall_reason = reason
        return reason is None

    def stalled(self) -> str | None:
        if self.pipeline is None:
            return "no pipeline"
        now = time.monotonic()
        reasons = [self.pipeline.stalled(now), *(d.stalled(now) for d in self.drivers)]
        for reason in reasons:
            if reason is not None:
                return reason
        if self.verifier is not None and not self.verifier.alive:
            return "verify thread not running"
        if self.committer is not None and not self.committer.alive:
            return "SMPP group committer not running"
        dead_binds = [b.name for b in self.binds if not b.alive]
        if dead_binds:
            return f"SMPP bind thread(s) not running: {', '.join(dead_binds)}"
        dead_senders = [s.name for s in self.smpp_senders if not s.alive]
        if dead_senders:
            return f"SMPP sender thread(s) not running: {', '.join(dead_senders)}"
        dead = [s.name for s in self.sinks if not s.alive]
        return f"sink thread(s) not running: {', '.join(dead)}" if dead else None

    def run_forever(self) -> None:
        """Supervise until stop(): READY once a modem is up, WATCHDOG while healthy."""
        interval = self.notifier.watchdog_interval
        tick = interval if interval else IDLE_TICK
        # Look for readiness often until READY is sent, then settle to the watchdog's pace
        # (half WatchdogSec); a durable commit that finds the store gone wakes it at once.
        while not self._stop.is_set():
            self._attention.wait(tick if self._ready_sent else 0.05)
            self._attention.clear()
            if self._stop.is_set():
                break
            if self._store_vanished():
                break
            self._maybe_ready()
            if interval is not None and self.healthy():
                self.notifier.watchdog()
        self.notifier.stopping()

    def _store_vanished(self) -> bool:
        """The store file deleted or replaced under us: stop, so nothing more is taken off
        the modems into a file no one will read (the journal already refuses commits)."""
        reason = self.store.db.vanished() if self.store is not None else None
        if reason is None:
            return False
        self.failure = f"store lost: {reason}; messages stay on the modem; stopping"
        log.critical("%s", self.failure)
        return True

    def _maybe_ready(self) -> None:
        up = sum(d.state.online for d in self.drivers)
        status = f"{up}/{len(self.drivers)} modem(s) up"
        if self.binds:
            bound = sum(b.bound.is_set() for b in self.binds)
            status += f", {bound}/{len(self.binds)} smpp bind(s) bound"
        if self._ready_sent:
            if status != self._last_status:
                self._last_status = status
                self.notifier.status(status)
            return
        # READY once the store and a modem are up, or after READY_DEADLINE anyway: a modem
        # unplugged at boot must not keep the unit "activating" until systemd kills it.
        waited = time.monotonic() - self._started_at
        if not self.drivers or up or waited >= READY_DEADLINE:
            self._ready_sent = True
            self._last_status = status
            self.notifier.ready(status)
            log.info("ready: %s", status)

    def request_stop(self) -> None:
        self._stop.set()
        self._attention.set()

    def stop(self) -> None:
        self._stop.set()
        self._attention.set()
        for driver in self.drivers:
            driver.stop()
        for smpp_sender in self.smpp_senders:
            smpp_sender.request_stop()  # no new parts; one in flight waits for its bind
        for bind in self.binds:
            bind.stop()  # its goodbye reads the answers of parts in flight, or they are unknown
        for smpp_sender in self.smpp_senders:
            smpp_sender.join()
        if self.committer is not None:
            self.committer.stop()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.verifier is not None:
            self.verifier.stop()
        if self.maintenance is not None:
            self.maintenance.stop()
        deadline = time.monotonic() + 3.0
        for sink in self.sinks:
            sink.stop(timeout=max(0.1, deadline - time.monotonic()))
        if self.store is not None:
            self.store.close()
