"""The verifier: challenges in, received SMS weighed against them, results out.

Three entry points, each inside one store transaction so a crash never half-applies one:

* :meth:`Verifier.request` runs on the MQTT client's thread for a request document; the
  challenge is durable before the broker gets its PUBACK, so an accepted request survives
  any crash, and a redelivered one (same id) is answered, not doubled.
* :meth:`Verifier.screen` runs on the pipeline thread, inside the transaction that records a
  received message: it decides whether the SMS answers a challenge, and what of it /sms shows.
* an expiry thread ends challenges whose time ran out (it sleeps until the next one is due).

Results go to the outbox like every other publication (kind ``verify_result``), so they are
delivered at least once through broker outages.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from modemd.errors import StoreError
from modemd.payload.senders import normalise_e164
from modemd.settings import parse_duration
from modemd.store import Store
from modemd.store.outbox import Outbox
from modemd.verify import codes
from modemd.verify.store import Challenge, ChallengeStore, State

log = logging.getLogger(__name__)

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces: ids end up in logs
KIND = "verify_result"
HOUSEKEEPING_EVERY = 3600.0

ResultState = Literal["pending", "verified", "expired", "failed", "rejected"]


@dataclass(frozen=True, slots=True)
class VerifySettings:
    secret: bytes
    result_topic: str
    ttl: float = 300.0
    max_ttl: float = 3600.0
    max_attempts: int = 3
    match: codes.MatchMode = "token"
    keyword: str = ""
    code_length: int = 6
    answers: Literal["withhold", "masked"] = "withhold"
    max_per_number: int = 5
    max_pending: int = 100_000
    scts_tolerance: float = 0.0
    keep_ended: float = 7 * 86400.0
    default_country_code: str | None = None
    sink: str = "mqtt"
    #: the SMS a ``"prompt": true`` request sends; it never holds the code (the send queue
    #: keeps its texts, and codes are kept only as hashes)
    prompt_text: str = "To confirm, reply to this message with the code you were shown."


@dataclass(frozen=True, slots=True)
class Screening:
    """What the verifier made of a received SMS that answered (or tried) a challenge.

    ``document`` is the /sms document with the code masked; ``publish`` whether it goes to
    /sms at all (``answers = "withhold"`` keeps it in the store only).
    """

    document: dict[str, Any]
    publish: bool


class RequestError(ValueError):
    """A verification request that cannot be taken; the text is the ``error`` of the result."""


@dataclass(frozen=True, slots=True)
class _Request:
    id: str
    number: str
    code: str | None
    ttl: float
    prompt: bool


#: Queues an SMS: (request id, destination, text); raises or returns a refusal reason.
Prompter = Callable[[str, str, str], str | None]


class Verifier:
    def __init__(self, store: Store, settings: VerifySettings, *,
                 clock: Callable[[], float] = time.time,
                 on_result: Callable[[], None] = lambda: None,
                 prompter: Prompter | None = None) -> None:
        self.store = store
        self.prompter = prompter
        self.settings = settings
        self.challenges = ChallengeStore(store.db)
        self.challenges.create()
        self.clock = clock
        self.on_result = on_result
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- requests (MQTT thread) ------------------------------------------------------------

    def request(self, payload: bytes, *, response_topic: str | None = None,
                correlation: bytes | None = None) -> None:
        """Take one request document; its result (pending or rejected) is in the outbox."""
        now = self.clock()
        try:
            with self.store.db.transaction() as conn:
                admitted = self._request(conn, payload, now=now, response_topic=response_topic,
                                         correlation=correlation)
        except StoreError as exc:
            # Not taken: the broker still redelivers if we never acknowledge, but paho
            # acknowledges after this returns, so say it plainly.
            log.error("verify: request not stored (%s); the application must retry", exc)
            return
        if admitted is not None and admitted.prompt and self.prompter is not None:
            # after the challenge is durable: the send queue takes its own transaction
            refusal = self.prompter(f"verify-{admitted.id}", admitted.number,
                                    self.settings.prompt_text)
            if refusal is not None:
                log.warning("verify: the prompt for challenge %s was not sent: %s",
                            admitted.id, refusal)
        self._wake.set()
        self.on_result()

    def _request(self, conn: sqlite3.Connection, payload: bytes, *, now: float,
                 response_topic: str | None, correlation: bytes | None) -> _Request | None:
        """Admit or reject one request; the admitted challenge (None: rejected, or a repeat)."""
        given_id: str | None = None
        given_number: str | None = None
        try:
            doc = json.loads(payload)
            if isinstance(doc, dict):
                given_id = doc.get("id") if isinstance(doc.get("id"), str) else None
                given_number = doc.get("number") if isinstance(doc.get("number"), str) else None
            req = self._parse(doc)
            if self._admit(conn, req, now=now, response_topic=response_topic,
                           correlation=correlation):
                return req
        except (RequestError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, RequestError) else "the request is not JSON"
            log.info("verify: request %s rejected: %s", given_id or "(no id)", reason)
            self._result(conn, {"id": given_id, "number": given_number, "state": "rejected",
                                "at": _iso(now), "error": reason},
                         response_topic=response_topic, correlation=correlation)
        return None

    def _parse(self, doc: object) -> _Request:
        s = self.settings
        if not isinstance(doc, dict):
            raise RequestError("the request is not a JSON object")
        challenge_id = doc.get("id")
        if challenge_id is None:
            challenge_id = f"v-{uuid.uuid4().hex[:16]}"
        if not isinstance(challenge_id, str) or not _ID_RE.match(challenge_id):
            raise RequestError("id must be 1-64 printable characters without spaces")
        number = doc.get("number")
        if not isinstance(number, str):
            raise RequestError("number is required (an E.164 number such as +4915112345678)")
        normalised = normalise_e164(number, s.default_country_code)
        if not E164_RE.match(normalised):
            raise RequestError("number must be an E.164 phone number; alphanumeric sender "
                               "ids never verify")
        code = doc.get("code")
        if code is not None and (not isinstance(code, str) or not codes.CODE_RE.match(code)):
            raise RequestError("code must be 4-12 letters or digits")
        ttl_value = doc.get("ttl", s.ttl)
        try:
            ttl = parse_duration(ttl_value)
        except ValueError as exc:
            raise RequestError(f"ttl: {exc}") from None
        if not 0 < ttl <= s.max_ttl:
            raise RequestError(f"ttl must be more than 0 and at most {s.max_ttl:g} s")
        prompt = doc.get("prompt", False)
        if not isinstance(prompt, bool):
            raise RequestError("prompt must be true or false")
        if prompt and self.prompter is None:
            raise RequestError("prompt needs sending ([send] enabled = true)")
        return _Request(id=challenge_id, number=normalised, code=code, ttl=ttl, prompt=prompt)

    def _admit(self, conn: sqlite3.Connection, req: _Request, *, now: float,
               response_topic: str | None, correlation: bytes | None) -> bool:
        """True: a new challenge; False: the same request again, answered with its state."""
        s = self.settings
        existing = self.challenges.get(conn, req.id)
        if existing is not None:
            same = existing.number == req.number and (
                req.code is None or codes.code_hash(s.secret, existing.salt, req.code)
                == existing.code_hash)
            if not same:
                raise RequestError(f"id {req.id!r} is already used by another challenge")
            # The same request again (a QoS 1 redelivery): say where it stands, change nothing.
            self._result(conn, self._document(existing, existing.state, now=now),
                         response_topic=response_topic, correlation=correlation)
            return False
        if self.challenges.created_since(conn, req.number, now - 3600.0) >= s.max_per_number:
            raise RequestError(f"too many challenges for this number (at most "
                               f"{s.max_per_number} an hour)")
        if self.challenges.pending_count(conn) >= s.max_pending:
            raise RequestError("too many pending challenges on this gateway")
        salt = codes.new_salt()
        code = req.code if req.code is not None else codes.generate_code(s.code_length)
        challenge = Challenge(
            id=req.id, number=req.number, salt=salt,
            code_hash=codes.code_hash(s.secret, salt, code), created_at=now,
            expires_at=now + req.ttl, state="pending", attempts=0,
            max_attempts=s.max_attempts, msg_id=None, ended_at=None,
            response_topic=response_topic, correlation=correlation)
        self.challenges.insert(conn, challenge)
        log.info("verify: challenge %s for %s pending for %g s", req.id, _masked(req.number),
                 req.ttl)
        doc = self._document(challenge, "pending", now=now)
        doc["expires_at"] = _iso(challenge.expires_at)
        sealed = codes.seal(s.secret, salt, code) if req.code is None else None
        self._result(conn, doc, response_topic=response_topic, correlation=correlation,
                     sealed=(salt, sealed) if sealed else None)
        return True

    # --- received SMS (pipeline thread) --------------------------------------------------------

    def screen(self, conn: sqlite3.Connection, *, msg_id: str, sender: str | None,
               sender_kind: str, text: str | None, scts: datetime, received_at: float,
               document: dict[str, Any]) -> Screening | None:
        """Weigh one received SMS against the pending challenges of its sender.

        None: it answers nothing (publish it as usual). Otherwise it verified a challenge or
        counted as a wrong attempt, and the returned document (code masked) replaces the
        usual one.
        """
        s = self.settings
        if not text or not sender or sender_kind == "alphanumeric":
            return None  # an alphanumeric sender id can be spoofed by anyone: never verifies
        number = normalise_e164(sender, s.default_country_code)
        if not E164_RE.match(number):
            return None
        pending = self.challenges.pending_for(conn, number)
        if not pending:
            return None
        found = codes.candidates(text, mode=s.match, keyword=s.keyword)
        if not found:
            return None
        sent = scts.timestamp()
        # Only challenges that existed before the SMS was sent, and before it reached us.
        eligible = [c for c in pending
                    if sent >= math.floor(c.created_at) - s.scts_tolerance
                    and received_at >= c.created_at - s.scts_tolerance]
        if not eligible:
            return None
        now = self.clock()
        publish = s.answers == "masked"
        guessed = Screening(document=self._masked_document(document, codes.guesses(text, found)),
                            publish=publish)
        if not self.challenges.first_answer(conn, msg_id, now):
            return guessed  # this very SMS was weighed before: it never counts twice
        for challenge in eligible:
            span = codes.matching_span(s.secret, challenge.salt, challenge.code_hash, found)
            if span is not None:
                self._end(conn, challenge, "verified", now=now, msg_id=msg_id)
                # one SMS verifies at most one challenge
                return Screening(document=self._masked_document(document, (span,)),
                                 publish=publish)
        for challenge in eligible:
            attempts = self.challenges.count_attempt(conn, challenge.id)
            log.info("verify: wrong code for challenge %s (%d of %d)", challenge.id, attempts,
                     challenge.max_attempts)
            if attempts >= challenge.max_attempts:
                self._end(conn, challenge, "failed", now=now, msg_id=None,
                          error="too many wrong codes")
        return guessed

    @staticmethod
    def _masked_document(document: dict[str, Any],
                         spans: tuple[tuple[int, int], ...]) -> dict[str, Any]:
        masked = dict(document)
        if isinstance(masked.get("text"), str):
            masked["text"] = codes.mask(masked["text"], spans)
        masked["verification"] = True
        return masked

    # --- expiry (own thread) --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="verify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        next_housekeeping = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.expire_due()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
                    with self.store.db.transaction() as conn:
                        self.challenges.forget_ended(
                            conn, older_than=self.clock() - self.settings.keep_ended)
                upcoming = self.challenges.next_expiry()
            except StoreError as exc:
                log.error("verify: %s; trying again in 5 s", exc)
                upcoming = None
                self._stop.wait(5.0)
            wait = 60.0 if upcoming is None else min(60.0, max(0.0, upcoming - self.clock()))
            self._wake.wait(wait + 0.01)

    def expire_due(self) -> int:
        """End every pending challenge whose time has run out; how many were ended."""
        now = self.clock()
        with self.store.db.transaction() as conn:
            due = self.challenges.due(conn, now)
            for challenge in due:
                self._end(conn, challenge, "expired", now=now, msg_id=None)
        if due:
            self.on_result()
        return len(due)

    # --- results ----------------------------------------------------------------------------

    def _end(self, conn: sqlite3.Connection, challenge: Challenge, state: State, *, now: float,
             msg_id: str | None, error: str | None = None) -> None:
        if not self.challenges.end(conn, challenge.id, state=state, at=now, msg_id=msg_id):
            return
        log.info("verify: challenge %s %s", challenge.id, state)
        doc = self._document(challenge, state, now=now, msg_id=msg_id)
        if error:
            doc["error"] = error
        self._result(conn, doc, response_topic=challenge.response_topic,
                     correlation=challenge.correlation)

    @staticmethod
    def _document(challenge: Challenge, state: str, *, now: float,
                  msg_id: str | None = None) -> dict[str, Any]:
        return {"id": challenge.id, "number": challenge.number, "state": state,
                "at": _iso(now), "msg_id": msg_id or challenge.msg_id}

    def _result(self, conn: sqlite3.Connection, doc: dict[str, Any], *,
                response_topic: str | None, correlation: bytes | None,
                sealed: tuple[bytes, str] | None = None) -> None:
        """One outbox row for the result topic, and one for the request's response topic."""
        body: dict[str, Any] = {"doc": doc}
        if sealed is not None:
            body["salt"], body["sealed_code"] = sealed[0].hex(), sealed[1]
        Outbox.enqueue(conn, sink=self.settings.sink, kind=KIND, msg_id=doc.get("msg_id"),
                       body={**body, "topic": self.settings.result_topic})
        if response_topic:
            extra = {"correlation_b64": base64.b64encode(correlation).decode("ascii")} \
                if correlation is not None else {}
            Outbox.enqueue(conn, sink=self.settings.sink, kind=KIND, msg_id=doc.get("msg_id"),
                           body={**body, "topic": response_topic, **extra})

    def render(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], bytes | None]:
        """An outbox row's (topic, document, correlation data): the sealed code unsealed."""
        doc = dict(body["doc"])
        if "sealed_code" in body:
            doc["code"] = codes.unseal(self.settings.secret, bytes.fromhex(body["salt"]),
                                       body["sealed_code"])
        correlation = base64.b64decode(body["correlation_b64"]) \
            if "correlation_b64" in body else None
        return str(body["topic"]), doc, correlation


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _masked(number: str) -> str:
    """Enough of a number for a log line to be useful, not enough to be personal data."""
    return number[:5] + "*" * max(0, len(number) - 8) + number[-3:]
