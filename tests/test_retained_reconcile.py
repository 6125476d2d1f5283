"""Which retained device states must go or expire sooner after expire_after was shortened
(modemd.sinks.retained.reconcile; the broker side is in tests/test_mqtt_expiry.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modemd.sinks.retained import (
    PUBLISHED_AT,
    RULE,
    Clear,
    RetainedState,
    Shorten,
    reconcile,
    retained_state,
)

NOW = 1_800_000_000.0
TOPIC = "modemd/gw1/device/PUMP01/state"


def state(*, age: float, remaining: int | None, rule: str | None = "pump") -> RetainedState:
    return RetainedState(topic=TOPIC, payload=b'{"device":"PUMP01"}', rule=rule,
                         published_at=NOW - age, remaining=remaining)


def test_older_than_the_new_expire_after_is_cleared() -> None:
    assert reconcile(state(age=600, remaining=3000), expire_after={"pump": 300},
                     now=NOW) == Clear(TOPIC)


def test_younger_is_published_again_to_expire_on_time() -> None:
    action = reconcile(state(age=100, remaining=3500), expire_after={"pump": 300}, now=NOW)
    assert isinstance(action, Shorten)
    assert action.expiry == 200 and action.payload == b'{"device":"PUMP01"}'
    assert action.published_at == NOW - 100 and action.rule == "pump"


def test_a_state_that_expires_in_time_is_left_alone() -> None:
    assert reconcile(state(age=100, remaining=200), expire_after={"pump": 300},
                     now=NOW) is None
    assert reconcile(state(age=100, remaining=50), expire_after={"pump": 300},
                     now=NOW) is None  # the rule got longer: it just goes a bit early


def test_no_expiry_before_and_a_short_one_now() -> None:
    assert isinstance(reconcile(state(age=10, remaining=None), expire_after={"pump": 60},
                                now=NOW), Shorten)


def test_what_modemd_cannot_judge_is_left_alone() -> None:
    for judged in (state(age=600, remaining=None, rule=None),  # not published by modemd
                   state(age=600, remaining=None, rule="gone")):  # rule removed: elsewhere
        assert reconcile(judged, expire_after={"pump": 300}, now=NOW) is None
    assert reconcile(state(age=600, remaining=None), expire_after={"pump": None},
                     now=NOW) is None  # expire_after switched off
    cleared = RetainedState(topic=TOPIC, payload=b"", rule="pump", published_at=NOW - 600,
                            remaining=None)
    assert reconcile(cleared, expire_after={"pump": 300}, now=NOW) is None


def test_properties_are_read_back_and_bad_ones_ignored() -> None:
    good = retained_state(TOPIC, b"{}", [(PUBLISHED_AT, "1799999999.5"), (RULE, "pump")], 40)
    assert (good.published_at, good.rule, good.remaining) == (1799999999.5, "pump", 40)
    for bad in ("soon", "nan", "inf"):
        assert retained_state(TOPIC, b"{}", [(PUBLISHED_AT, bad)], None).published_at is None
    assert retained_state(TOPIC, b"{}", None, None).rule is None


@given(age=st.floats(0, 10**7), lifetime=st.integers(1, 10**7),
       remaining=st.none() | st.integers(0, 10**8))
def test_never_longer_than_the_rule_allows(age: float, lifetime: int,
                                           remaining: int | None) -> None:
    action = reconcile(state(age=age, remaining=remaining), expire_after={"pump": lifetime},
                       now=NOW)
    left = lifetime - age
    if isinstance(action, Clear):
        assert left <= 0
    elif isinstance(action, Shorten):
        assert left > 0 and action.expiry <= max(1, int(left) + 1)
    else:
        assert remaining is not None and left > 0 and remaining <= int(left) + 1
