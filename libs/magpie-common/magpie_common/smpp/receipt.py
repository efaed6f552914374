"""Delivery receipts: the SMPP 3.4 Appendix B text format and the deliver_sm that carries it.

``id:IIIIIIIIII sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...``

A receipt travels in a deliver_sm with esm_class 0x04; SMPP 3.4 also puts the message id and state in the
``receipted_message_id`` and ``message_state`` TLVs, which ``receipt_from_deliver_sm`` prefers when present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from magpie_common.smpp.constants import (
    DATA_CODING_DEFAULT,
    ESM_CLASS_DELIVERY_RECEIPT,
    MESSAGE_STATE_ACCEPTED,
    MESSAGE_STATE_DELETED,
    MESSAGE_STATE_DELIVERED,
    MESSAGE_STATE_ENROUTE,
    MESSAGE_STATE_EXPIRED,
    MESSAGE_STATE_REJECTED,
    MESSAGE_STATE_UNDELIVERABLE,
    MESSAGE_STATE_UNKNOWN,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
)
from magpie_common.smpp.errors import SmppError
from magpie_common.smpp.pdu import MAX_SHORT_MESSAGE, DeliverSm, tlv_cstring, tlv_uint8

STAT_DELIVERED: Final = "DELIVRD"
STAT_EXPIRED: Final = "EXPIRED"
STAT_DELETED: Final = "DELETED"
STAT_UNDELIVERABLE: Final = "UNDELIV"
STAT_ACCEPTED: Final = "ACCEPTD"
STAT_UNKNOWN: Final = "UNKNOWN"
STAT_REJECTED: Final = "REJECTD"
STAT_ENROUTE: Final = "ENROUTE"

STAT_TO_MESSAGE_STATE: Final[dict[str, int]] = {
    STAT_ENROUTE: MESSAGE_STATE_ENROUTE,
    STAT_DELIVERED: MESSAGE_STATE_DELIVERED,
    STAT_EXPIRED: MESSAGE_STATE_EXPIRED,
    STAT_DELETED: MESSAGE_STATE_DELETED,
    STAT_UNDELIVERABLE: MESSAGE_STATE_UNDELIVERABLE,
    STAT_ACCEPTED: MESSAGE_STATE_ACCEPTED,
    STAT_UNKNOWN: MESSAGE_STATE_UNKNOWN,
    STAT_REJECTED: MESSAGE_STATE_REJECTED,
}
MESSAGE_STATE_TO_STAT: Final[dict[int, str]] = {state: stat for stat, state in STAT_TO_MESSAGE_STATE.items()}

# States after which nothing more will happen to the message.
FINAL_STATS: Final = frozenset(
    {STAT_DELIVERED, STAT_EXPIRED, STAT_DELETED, STAT_UNDELIVERABLE, STAT_REJECTED, STAT_UNKNOWN}
)

RECEIPT_DATE_FORMAT: Final = "%y%m%d%H%M"
RECEIPT_TEXT_CHARS: Final = 20  # Appendix B: the first 20 characters of the original message


class ReceiptParseError(SmppError, ValueError):
    """The text is not a delivery receipt (no ``id:`` or no ``stat:``)."""


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    stat: str
    err: str = "000"
    sub: int = 1
    dlvrd: int = 0
    submit_date: datetime | None = None
    done_date: datetime | None = None
    text: str = ""

    @property
    def delivered(self) -> bool:
        return self.stat == STAT_DELIVERED

    @property
    def final(self) -> bool:
        return self.stat in FINAL_STATS

    @property
    def message_state(self) -> int:
        return STAT_TO_MESSAGE_STATE.get(self.stat, MESSAGE_STATE_UNKNOWN)


_DATE_CACHE: dict[tuple[int, int, int, int, int], str] = {}  # receipt dates have minute resolution


def _fmt_date(value: datetime | None) -> str:
    if value is None:
        return "0000000000"
    key = (value.year, value.month, value.day, value.hour, value.minute)
    text = _DATE_CACHE.get(key)
    if text is None:
        if len(_DATE_CACHE) > 4096:
            _DATE_CACHE.clear()
        text = _DATE_CACHE[key] = value.strftime(RECEIPT_DATE_FORMAT)
    return text


def _printable(text: str) -> str:
    """Receipts travel with data_coding 0: keep printable ASCII, replace anything else by '?'."""
    head = text[:RECEIPT_TEXT_CHARS]
    ascii_text = head.encode("ascii", "replace").decode("ascii")  # one '?' per non-ASCII character
    if ascii_text.isprintable():  # ASCII printable is exactly ' '..'~'
        return ascii_text
    return "".join(ch if " " <= ch <= "~" else "?" for ch in head)


def build_receipt_text(
    message_id: str,
    *,
    stat: str,
    err: str | int = "000",
    submit_date: datetime | None = None,
    done_date: datetime | None = None,
    sub: int = 1,
    dlvrd: int | None = None,
    text: str = "",
) -> str:
    """The Appendix B receipt text. ``dlvrd`` defaults to 1 for DELIVRD and 0 otherwise; ``text`` is cut to
    its first 20 characters and non-printable / non-ASCII characters become '?'."""
    if dlvrd is None:
        dlvrd = 1 if stat == STAT_DELIVERED else 0
    err_text = f"{err:03d}" if isinstance(err, int) else err
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{_fmt_date(submit_date)} "
        f"done date:{_fmt_date(done_date)} stat:{stat} err:{err_text} text:{_printable(text)}"
    )


def format_receipt(receipt: DeliveryReceipt) -> str:
    return build_receipt_text(
        receipt.message_id,
        stat=receipt.stat,
        err=receipt.err,
        submit_date=receipt.submit_date,
        done_date=receipt.done_date,
        sub=receipt.sub,
        dlvrd=receipt.dlvrd,
        text=receipt.text,
    )


_DATE_KEY = re.compile(r"(submit|done)[ _]date:", re.IGNORECASE)


def _parse_int(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _parse_date(value: str) -> datetime | None:
    digits = value.strip()
    if len(digits) not in (10, 12) or not digits.isdigit():
        return None
    try:
        return datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]) if len(digits) == 12 else 0,
        )
    except ValueError:
        return None


def parse_receipt_text(text: str) -> DeliveryReceipt:
    """Parse an Appendix B receipt. Keys are case-insensitive, ``submit_date`` is accepted for
    ``submit date``, dates may carry seconds (YYMMDDhhmmss); everything after ``text:`` is the text."""
    cut = text.lower().find("text:")
    head, body = (text[:cut], text[cut + 5 :]) if cut >= 0 else (text, "")
    tokens = _DATE_KEY.sub(r"\1_date:", head).split()
    fields: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        key, sep, value = tokens[index].partition(":")
        index += 1
        if not sep:
            continue
        if not value and index < len(tokens) and ":" not in tokens[index]:
            value = tokens[index]  # "id: 123": a space after the colon
            index += 1
        fields.setdefault(key.lower().replace("_", " "), value)
    if cut >= 0:
        fields["text"] = body
    message_id = fields.get("id", "")
    stat = fields.get("stat", "").upper()
    if not message_id or not stat:
        raise ReceiptParseError(f"not a delivery receipt: {text[:80]!r}")
    return DeliveryReceipt(
        message_id=message_id,
        stat=stat,
        err=fields.get("err", "000"),
        sub=_parse_int(fields.get("sub", "")),
        dlvrd=_parse_int(fields.get("dlvrd", "")),
        submit_date=_parse_date(fields.get("submit date", "")),
        done_date=_parse_date(fields.get("done date", "")),
        text=fields.get("text", ""),
    )


def receipt_from_deliver_sm(pdu: DeliverSm) -> DeliveryReceipt:
    """The receipt carried by a deliver_sm (esm_class 0x04). The receipted_message_id / message_state TLVs
    win over the text when both are present. Raises ``ReceiptParseError`` if it is not a receipt."""
    if not pdu.is_delivery_receipt:
        raise ReceiptParseError("deliver_sm is not a delivery receipt (esm_class message type is not 0x04)")
    receipt = parse_receipt_text(pdu.message_bytes.decode("latin-1"))
    tlv_id = pdu.receipted_message_id
    tlv_state = pdu.message_state
    stat = MESSAGE_STATE_TO_STAT.get(tlv_state, receipt.stat) if tlv_state is not None else receipt.stat
    if (tlv_id and tlv_id != receipt.message_id) or stat != receipt.stat:
        return DeliveryReceipt(
            message_id=tlv_id or receipt.message_id,
            stat=stat,
            err=receipt.err,
            sub=receipt.sub,
            dlvrd=receipt.dlvrd,
            submit_date=receipt.submit_date,
            done_date=receipt.done_date,
            text=receipt.text,
        )
    return receipt


def receipt_id_and_stat(pdu: DeliverSm) -> tuple[str, str]:
    """(message id, stat) of the receipt in a deliver_sm: what correlating a receipt needs, read from the
    receipted_message_id and message_state TLVs without parsing the text when both are there (SMPP 3.4 SMSCs send
    them), else from ``receipt_from_deliver_sm``. Raises ``ReceiptParseError`` if it is not a receipt."""
    if not pdu.is_delivery_receipt:
        raise ReceiptParseError("deliver_sm is not a delivery receipt (esm_class message type is not 0x04)")
    tlv_id = pdu.receipted_message_id
    tlv_state = pdu.message_state
    if tlv_id and tlv_state is not None:
        stat = MESSAGE_STATE_TO_STAT.get(tlv_state)
        if stat is not None:
            return tlv_id, stat
    receipt = receipt_from_deliver_sm(pdu)
    return receipt.message_id, receipt.stat


_RECEIPT_TLV_HEADERS = (
    TAG_RECEIPTED_MESSAGE_ID.to_bytes(2, "big"),
    TAG_MESSAGE_STATE.to_bytes(2, "big") + (1).to_bytes(2, "big"),
)


def receipt_deliver_sm_body(receipt: DeliveryReceipt, *, source_addr: str, destination_addr: str) -> bytes:
    """``receipt_deliver_sm(receipt, ...).encode_body()`` (TON/NPI 0) assembled directly: what an SMSC sending
    thousands of receipts per second wants, without building the PDU object."""
    text = format_receipt(receipt).encode("latin-1")
    message_id = receipt.message_id.encode("latin-1")
    source = source_addr.encode("latin-1")
    destination = destination_addr.encode("latin-1")
    if len(text) > MAX_SHORT_MESSAGE or len(source) > 20 or len(destination) > 20 or b"\0" in source + destination:
        return receipt_deliver_sm(receipt, source_addr=source_addr, destination_addr=destination_addr).encode_body()
    tag_id, tag_state = _RECEIPT_TLV_HEADERS
    return b"".join(
        (
            b"\0\0\0",  # service_type "", source_addr_ton 0, source_addr_npi 0
            source,
            b"\0\0\0",  # NUL, dest_addr_ton 0, dest_addr_npi 0
            destination,
            bytes((0, ESM_CLASS_DELIVERY_RECEIPT, 0, 0, 0, 0, 0, 0, DATA_CODING_DEFAULT, 0, len(text))),
            text,
            tag_id,
            (len(message_id) + 1).to_bytes(2, "big"),
            message_id,
            b"\0",
            tag_state,
            bytes((receipt.message_state,)),
        )
    )


def receipt_deliver_sm(
    receipt: DeliveryReceipt,
    *,
    source_addr: str,
    destination_addr: str,
    sequence_number: int = 0,
    source_addr_ton: int = 0,
    source_addr_npi: int = 0,
    dest_addr_ton: int = 0,
    dest_addr_npi: int = 0,
) -> DeliverSm:
    """The deliver_sm an SMSC sends for ``receipt``: the source is the original destination (the handset) and
    the destination the original source; esm_class 0x04; text plus receipted_message_id and message_state."""
    return DeliverSm(
        sequence_number=sequence_number,
        source_addr_ton=source_addr_ton,
        source_addr_npi=source_addr_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_addr_ton,
        dest_addr_npi=dest_addr_npi,
        destination_addr=destination_addr,
        esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        data_coding=DATA_CODING_DEFAULT,
        short_message=format_receipt(receipt).encode("latin-1"),
        tlvs={
            TAG_RECEIPTED_MESSAGE_ID: tlv_cstring(receipt.message_id),
            TAG_MESSAGE_STATE: tlv_uint8(receipt.message_state),
        },
    )
