"""SMS codec: TS 23.040 / 23.038 PDU decode and encode, text-mode records, multipart assembly.

No I/O here; see docs/architecture.md for the contract with the rest of modemd.
"""

from modemd.sms.decode import decode_pdu
from modemd.sms.encode import encode_deliver, encode_deliver_parts, encode_gsm7, pack_septets
from modemd.sms.model import (
    Address,
    Concat,
    DataCoding,
    InformationElement,
    MessageWaiting,
    Ports,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    UserDataHeader,
)
from modemd.sms.reassembly import Assembled, assemble
from modemd.sms.text_mode import decode_text_record

__all__ = [
    "Address",
    "Assembled",
    "Concat",
    "DataCoding",
    "InformationElement",
    "MessageWaiting",
    "Ports",
    "SmsDeliver",
    "SmsStatusReport",
    "SmsSubmit",
    "UserDataHeader",
    "assemble",
    "decode_pdu",
    "decode_text_record",
    "encode_deliver",
    "encode_deliver_parts",
    "encode_gsm7",
    "pack_septets",
]
