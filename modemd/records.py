"""A journal row decoded: a typed value the pipeline matches on, never a tuple with Any."""

from __future__ import annotations

from dataclasses import dataclass

from modemd.errors import DecodeError
from modemd.sms import SmsDeliver, SmsStatusReport, SmsSubmit, decode_pdu, decode_text_record
from modemd.sms.smpp import Alphabets, SmppReceipt, decode_deliver_sm, deliver_fields
from modemd.store.journal import JournalRecord


@dataclass(frozen=True, slots=True)
class Undecodable:
    """The row holds no message modemd can deliver; ``reason`` says why (for the dead letter)."""

    reason: str


Decoded = SmsDeliver | SmsStatusReport | SmppReceipt | Undecodable


def decode_record(record: JournalRecord) -> Decoded:
    """Strict first; what lenient decoding recovers from is in the message's ``warnings``."""
    if record.mode == "invalid":
        return Undecodable("the modem returned a PDU line that is not hexadecimal")
    if record.mode == "smpp":
        try:
            return decode_deliver_sm(record.raw, received_at=record.received_at,
                                     alphabets=Alphabets.from_stored(record.storage))
        except DecodeError as exc:
            return Undecodable(f"undecodable deliver_sm: {exc}")
    message: SmsDeliver | SmsStatusReport | SmsSubmit
    try:
        if record.mode == "text":
            header, _, body = record.raw.decode("utf-8", "replace").partition("\n")
            message = decode_text_record(header, body)
        else:
            message = decode_pdu(record.raw, with_smsc=True, strict=True)
    except DecodeError as strict_error:
        if record.mode != "pdu":
            return Undecodable(f"undecodable text record: {strict_error}")
        try:
            message = decode_pdu(record.raw, with_smsc=True, strict=False)
        except DecodeError:
            return Undecodable(f"undecodable PDU: {strict_error}")
    if isinstance(message, SmsDeliver | SmsStatusReport):
        return message
    return Undecodable(f"not a received message ({type(message).__name__})")


def set_scope(record: JournalRecord) -> str:
    """Where the parts of one long message come in: one modem, or any SMPP bind of this
    gateway (an SMSC may spread the parts over the binds of an account) to one address."""
    if record.mode != "smpp":
        return record.modem
    fields = deliver_fields(record.raw, alphabets=Alphabets.from_stored(record.storage))
    return f"smpp:{fields.destination}"
