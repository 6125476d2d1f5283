"""SMPP binds (receiver or transceiver) to an SMS aggregator's SMSC: deliver_sm into the
journal through the group committer, deliver_sm_resp after the commit."""

from modemd.sources.smpp.bind import SmppBind
from modemd.sources.smpp.session import (
    BindRefused,
    SessionError,
    SessionSettings,
    SubmitResult,
    SubmitUnknown,
)

__all__ = [
    "BindRefused",
    "SessionError",
    "SessionSettings",
    "SmppBind",
    "SubmitResult",
    "SubmitUnknown",
]
