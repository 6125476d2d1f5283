"""Properties over whole multipart sets: shuffled, duplicated, dropped, reused references and
malformed parts (odd-length UCS-2, bad sequence numbers, flipped octets).

* ``assemble`` never raises anything but DecodeError;
* the pipeline never mixes two messages, never leaves a journal row un-ended, and publishes
  every message whose parts all arrived intact, whole, once.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modemd.clock import ManualClock
from modemd.errors import DecodeError
from modemd.pipeline import Pipeline, Route
from modemd.sms import SmsDeliver, assemble, decode_pdu
from modemd.sms.encode import encode_deliver_parts
from modemd.store import Store

SENDER = "+4915112345678"
SCTS = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
ROUTES = [Route("mqtt", frozenset({"sms", "deadletter"}))]
TIMEOUT = 600.0

gsm_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,;=ÄÖÜäöüß€[]",
                   min_size=161, max_size=480)
ucs2_text = st.text(alphabet="жзийклмнопрстуфхцчшщ😀🙂 0123456789", min_size=71,
                    max_size=200).map(lambda text: "ж" + text)  # one letter GSM 7 bit lacks
message_text = st.one_of(gsm_text, ucs2_text)


def _udh_at(pdu: bytes, reference: int) -> int:
    """Where the 8-bit concatenation IE of *pdu* starts (UDHL 05 first)."""
    for index in range(len(pdu) - 5):
        if pdu[index:index + 4] == bytes([5, 0, 3, reference]):
            return index
    raise AssertionError("no concatenation IE")


def odd_ucs2(pdu: bytes, reference: int) -> bytes:
    """The part with its last octet cut and TP-UDL one less: an odd number of UCS-2 octets."""
    udl_at = _udh_at(pdu, reference) - 1
    return pdu[:udl_at] + bytes([pdu[udl_at] - 1]) + pdu[udl_at + 1:-1]


def with_sequence(pdu: bytes, reference: int, sequence: int) -> bytes:
    at = _udh_at(pdu, reference) + 5
    return pdu[:at] + bytes([sequence]) + pdu[at + 1:]


def flipped(pdu: bytes, position: int, mask: int) -> bytes:
    at = position % len(pdu)
    return pdu[:at] + bytes([pdu[at] ^ (mask or 1)]) + pdu[at + 1:]


@st.composite
def malformed_sets(draw: st.DrawFn) -> list[bytes]:
    reference = draw(st.integers(0, 255))
    text = draw(message_text)
    parts = encode_deliver_parts(sender=SENDER, text=text, scts=SCTS, reference=reference)
    out: list[bytes] = []
    for pdu in parts:
        kind = draw(st.sampled_from(["keep", "keep", "twice", "drop", "odd", "seq", "flip"]))
        if kind == "keep":
            out.append(pdu)
        elif kind == "twice":
            out += [pdu, pdu]
        elif kind == "odd":
            out.append(odd_ucs2(pdu, reference))
        elif kind == "seq":
            out.append(with_sequence(pdu, reference, draw(st.sampled_from([0, 7, 255]))))
        elif kind == "flip":
            out.append(flipped(pdu, draw(st.integers(0, 500)), draw(st.integers(0, 255))))
    return draw(st.permutations(out))


@settings(max_examples=400, deadline=None)
@given(malformed_sets())
def test_assemble_raises_only_decode_error(pdus: list[bytes]) -> None:
    messages: list[SmsDeliver] = []
    for pdu in pdus:
        with contextlib.suppress(DecodeError):
            message = decode_pdu(pdu, strict=False)
            if isinstance(message, SmsDeliver):
                messages.append(message)
    if messages:
        with contextlib.suppress(DecodeError):
            assembled = assemble(messages)
            assert len(assembled.parts) + len(assembled.missing) == assembled.total


# --- the pipeline over several messages under one reused reference ---------------------------


@dataclass(frozen=True)
class Sent:
    text: str
    pieces: tuple[str, ...]  # each part's own text, in sequence order
    pdus: tuple[bytes, ...]


def piece_text(pdu: bytes) -> str:
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver) and message.text is not None
    return message.text


@st.composite
def reused_references(draw: st.DrawFn) -> tuple[list[Sent], list[bytes], set[int]]:
    """Messages reusing one reference (each sent 11+ minutes after the last), their parts
    interleaved, some repeated, some dropped or malformed; and which messages arrive intact."""
    reference = draw(st.integers(0, 255))
    texts = draw(st.lists(message_text, min_size=2, max_size=4))
    sent: list[Sent] = []
    feed: list[bytes] = []
    intact: set[int] = set()
    for n, drawn in enumerate(texts):
        text = f"{n}:{drawn}"  # distinct messages
        pdus = encode_deliver_parts(sender=SENDER, text=text,
                                    scts=SCTS + timedelta(minutes=11 * n), reference=reference)
        sent.append(Sent(text, tuple(piece_text(p) for p in pdus), tuple(pdus)))
        whole = True
        for pdu in pdus:
            kind = draw(st.sampled_from(["keep"] * 6 + ["twice", "drop", "odd", "seq"]))
            if kind in ("keep", "twice"):
                feed += [pdu] * (2 if kind == "twice" else 1)
                continue
            whole = False
            ucs2 = decode_pdu(pdu).encoding == "ucs2"  # type: ignore[union-attr]
            if kind == "odd" and ucs2:  # (cut from GSM 7 bit, it is just another text)
                feed.append(odd_ucs2(pdu, reference))
            elif kind == "seq":
                feed.append(with_sequence(pdu, reference, draw(st.sampled_from([0, 9]))))
        if whole:
            intact.add(n)
    return sent, draw(st.permutations(feed)), intact


def _from_one_message(doc: dict[str, Any], sent: list[Sent]) -> bool:
    """The document's text is made of the parts of one message, in order, nothing else."""
    missing = set(doc.get("missing", ()))
    for message in sent:
        if doc["parts"] != len(message.pieces):
            continue
        expected = "".join(piece for seq, piece in enumerate(message.pieces, 1)
                           if seq not in missing)
        if doc["text"] == expected:
            return True
    return False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reused_references())
def test_the_pipeline_never_mixes_messages_and_ends_every_row(
        case: tuple[list[Sent], list[bytes], set[int]]) -> None:
    sent, feed, intact = case
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        try:
            pipeline = Pipeline(store, routes=ROUTES, multipart_timeout=TIMEOUT, clock=clock)
            for pdu in feed:
                store.journal.commit_raw(modem="m1", mode="pdu", raw=pdu)
                clock.advance(1)
                pipeline.run_once()
            while pipeline.run_once():
                pass
            clock.advance(TIMEOUT + 1)
            pipeline.expire_partial_sets()
            conn = store.db.connection()
            states = {row[0] for row in conn.execute("SELECT state FROM journal")}
            assert states <= {"done", "failed"}, states
            assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 0
            docs = [r.body for r in store.outbox.fetch("mqtt", limit=10_000) if r.kind == "sms"]
            clean = [d for d in docs if not d.get("warnings")]
            for doc in clean:
                assert _from_one_message(doc, sent), (doc["text"][:80], doc.get("missing"))
            whole = [d["text"] for d in docs if d["complete"]]
            for n in intact:
                assert whole.count(sent[n].text) == 1, n
        finally:
            store.close()
