"""Retained device states published under an earlier ``expire_after``: shorten or clear them.

Over MQTT 5 a device's retained state expires on the broker after its rule's
``expire_after`` (so a Home Assistant starting later does not take a silent device for
alive). When the config *shortens* ``expire_after``, the states already on the broker keep
their old, longer expiry. At each connection the MQTT sink reads them back (a subscription
with no-local, which gets the retained messages and never its own publications) and decides
here, from two MQTT 5 user properties it publishes every state with (when it was published,
and by which rule), whether each must go now or expire sooner. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: user properties on each retained device state (MQTT 5): wall-clock seconds, rule name
PUBLISHED_AT = "modemd-published-at"
RULE = "modemd-rule"


@dataclass(frozen=True, slots=True)
class RetainedState:
    """A retained device state as the broker hands it out on subscription."""

    topic: str
    payload: bytes
    rule: str | None
    published_at: float | None
    remaining: int | None  # the message expiry interval left, as the broker says; None: never


@dataclass(frozen=True, slots=True)
class Clear:
    """Its lifetime under the rule's ``expire_after`` has passed: remove it now."""

    topic: str


@dataclass(frozen=True, slots=True)
class Shorten:
    """Publish it again unchanged, to expire when the rule's ``expire_after`` says."""

    topic: str
    payload: bytes
    rule: str
    published_at: float
    expiry: int


def retained_state(topic: str, payload: bytes,
                   user_properties: Iterable[tuple[str, str]] | None,
                   remaining: int | None) -> RetainedState:
    """A retained message read back; the properties of a state modemd did not publish (or an
    older modemd, without them) come back as None."""
    found = dict(user_properties or ())
    published_at: float | None
    try:
        published_at = float(found[PUBLISHED_AT])
    except (KeyError, ValueError):
        published_at = None
    if published_at is not None and not math.isfinite(published_at):
        published_at = None
    return RetainedState(topic=topic, payload=payload, rule=found.get(RULE),
                         published_at=published_at, remaining=remaining)


def reconcile(state: RetainedState, *, expire_after: Mapping[str, int | None],
              now: float) -> Clear | Shorten | None:
    """What to do with a retained state so that it lives no longer than its rule's
    ``expire_after`` now allows (None: it is fine as it is, or not modemd's to judge)."""
    if not state.payload or state.rule is None or state.published_at is None:
        return None
    if state.rule not in expire_after:
        return None  # the rule is gone: removing its entities and states is done elsewhere
    lifetime = expire_after[state.rule]
    if lifetime is None:
        return None  # no expiry wanted now; a longer one from before does no harm
    left = state.published_at + lifetime - now
    if left <= 0:
        return Clear(state.topic)
    if state.remaining is not None and state.remaining <= math.ceil(left):
        return None  # it expires in time already
    return Shorten(topic=state.topic, payload=state.payload, rule=state.rule,
                   published_at=state.published_at, expiry=max(1, math.ceil(left)))
