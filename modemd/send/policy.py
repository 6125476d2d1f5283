"""What may be sent at all: [send] enabled, the destination allow-list, short codes, premium
ranges, and the hourly limit. Each check gives the reason a refused request carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modemd.payload.senders import SenderPatterns
from modemd.send.request import SendRequest

if TYPE_CHECKING:
    from modemd.config import SendConfig

# libphonenumber's numbering plans say which ranges cost extra; loaded on first use (a
# daemon that sends nothing does not carry them)
_COSTLY: dict[str, str] = {
    "PREMIUM_RATE": "a premium-rate number",
    "SHARED_COST": "a shared-cost number",
}


def costly_kind(number: str) -> str | None:
    """"a premium-rate number" etc. when libphonenumber's plans say so; None otherwise.

    A number libphonenumber cannot read at all counts as costly: a range we cannot classify
    is not one to send to without a person's say-so.
    """
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "a number in no known numbering plan"
    kind: Any = phonenumbers.number_type(parsed)
    for name, reason in _COSTLY.items():
        if kind == getattr(phonenumbers.PhoneNumberType, name):
            return reason
    return None


class SendPolicy:
    def __init__(self, config: SendConfig, *, default_country_code: str | None = None) -> None:
        self.config = config
        self.allowed = SenderPatterns(config.allowed_destinations,
                                      default_country_code=default_country_code)

    def refusal(self, request: SendRequest, *, accepted_last_hour: int,
                modems: frozenset[str]) -> str | None:
        """Why ``request`` must not be sent, or None."""
        cfg = self.config
        if not cfg.enabled:
            return "sending is disabled ([send] enabled = false)"
        if not self.allowed.matches_normalised(request.to):
            return f"destination {request.to} is not in [send] allowed_destinations"
        if not request.to.startswith("+"):
            if not cfg.allow_short_codes:
                return (f"destination {request.to} is a short code or national number; "
                        "set [send] allow_short_codes = true to allow it")
        elif not cfg.allow_premium:
            kind = costly_kind(request.to)
            if kind is not None:
                return (f"destination {request.to} is {kind}; set [send] allow_premium = true "
                        "to allow it")
        if request.modem is not None and request.modem not in modems:
            return (f"modem {request.modem!r} is not configured (neither a [[modem]] nor an "
                    "[[smpp]] transceiver bind)")
        if accepted_last_hour >= cfg.max_per_hour:
            return f"rate limit: {cfg.max_per_hour} messages per hour ([send] max_per_hour)"
        return None
