"""Delivery receipts: the SMPP 3.4 Appendix B text, tolerant parsing, and the deliver_sm that carries one."""

from __future__ import annotations

from datetime import datetime

import pytest

from magpie_common.smpp.constants import (
    MESSAGE_STATE_DELIVERED,
    MESSAGE_STATE_REJECTED,
    MESSAGE_STATE_UNDELIVERABLE,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
)
from magpie_common.smpp.pdu import DeliverSm, decode_pdu, tlv_cstring, tlv_uint8
from magpie_common.smpp.receipt import (
    DeliveryReceipt,
    ReceiptParseError,
    build_receipt_text,
    format_receipt,
    parse_receipt_text,
    receipt_deliver_sm,
    receipt_deliver_sm_body,
    receipt_from_deliver_sm,
    receipt_id_and_stat,
)
from magpie_common.smpp.submit import build_submit_sms

SUBMITTED = datetime(2026, 3, 14, 15, 9)
DONE = datetime(2026, 3, 14, 15, 10)


def test_build_appendix_b_format() -> None:
    text = build_receipt_text(
        "1a2b3c", stat="DELIVRD", submit_date=SUBMITTED, done_date=DONE, text="Your code is 123456, valid 5 min"
    )
    assert text == (
        "id:1a2b3c sub:001 dlvrd:001 submit date:2603141509 done date:2603141510 stat:DELIVRD err:000 "
        "text:Your code is 123456,"
    )


def test_build_failure_and_non_ascii_text() -> None:
    text = build_receipt_text("9", stat="UNDELIV", err=1, submit_date=SUBMITTED, done_date=DONE, text="【签名】hi")
    assert "dlvrd:000" in text
    assert "stat:UNDELIV err:001" in text
    assert text.endswith("text:????hi")


@pytest.mark.parametrize("stat", ["DELIVRD", "UNDELIV", "REJECTD", "EXPIRED"])
def test_round_trip(stat: str) -> None:
    receipt = DeliveryReceipt(
        message_id="0123456789abcdef",
        stat=stat,
        err="000" if stat == "DELIVRD" else "001",
        sub=1,
        dlvrd=1 if stat == "DELIVRD" else 0,
        submit_date=SUBMITTED,
        done_date=DONE,
        text="hello world",
    )
    assert parse_receipt_text(format_receipt(receipt)) == receipt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "id:ABC sub:001 dlvrd:001 submit date:2603141509 done date:2603141510 stat:DELIVRD err:000 Text:ok",
            DeliveryReceipt("ABC", "DELIVRD", "000", 1, 1, SUBMITTED, DONE, "ok"),
        ),
        (  # underscores in the date keys, seconds in the dates, lower-case stat, no text field
            "ID:77 SUB:1 DLVRD:0 SUBMIT_DATE:260314150905 DONE_DATE:260314151006 STAT:undeliv ERR:12",
            DeliveryReceipt(
                "77", "UNDELIV", "12", 1, 0, datetime(2026, 3, 14, 15, 9, 5), datetime(2026, 3, 14, 15, 10, 6), ""
            ),
        ),
        (  # a space after the colon, a text that looks like fields
            "id: 5 sub:001 dlvrd:001 submit date:2603141509 done date:2603141510 stat:DELIVRD err:000 "
            "text:id:6 stat:UNDELIV",
            DeliveryReceipt("5", "DELIVRD", "000", 1, 1, SUBMITTED, DONE, "id:6 stat:UNDELIV"),
        ),
        (  # dates a vendor left empty or zero
            "id:8 sub:001 dlvrd:000 submit date:0000000000 done date: stat:REJECTD err:002 text:",
            DeliveryReceipt("8", "REJECTD", "002", 1, 0, None, None, ""),
        ),
    ],
)
def test_parse_variants(text: str, expected: DeliveryReceipt) -> None:
    assert parse_receipt_text(text) == expected


@pytest.mark.parametrize("text", ["", "hello", "id:1 sub:001", "stat:DELIVRD err:000"])
def test_parse_rejects_non_receipts(text: str) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt_text(text)


def test_receipt_properties() -> None:
    delivered = DeliveryReceipt("1", "DELIVRD")
    assert delivered.delivered and delivered.final
    assert delivered.message_state == MESSAGE_STATE_DELIVERED
    assert DeliveryReceipt("1", "UNDELIV").message_state == MESSAGE_STATE_UNDELIVERABLE
    assert not DeliveryReceipt("1", "ENROUTE").final


def test_receipt_deliver_sm_round_trip() -> None:
    receipt = DeliveryReceipt("feed01", "REJECTD", "002", 1, 0, SUBMITTED, DONE, "x")
    pdu = receipt_deliver_sm(receipt, source_addr="8613800000000", destination_addr="1065", sequence_number=4)
    decoded = decode_pdu(pdu.encode())
    assert isinstance(decoded, DeliverSm)
    assert decoded.esm_class == 0x04
    assert decoded.is_delivery_receipt
    assert decoded.source_addr == "8613800000000"
    assert decoded.destination_addr == "1065"
    assert decoded.receipted_message_id == "feed01"
    assert decoded.message_state == MESSAGE_STATE_REJECTED
    assert receipt_from_deliver_sm(decoded) == receipt


def test_tlvs_win_over_text() -> None:
    pdu = DeliverSm(
        esm_class=0x04,
        short_message=b"id:00ff sub:001 dlvrd:001 submit date:2603141509 done date:2603141510 stat:DELIVRD err:000",
        tlvs={TAG_RECEIPTED_MESSAGE_ID: tlv_cstring("255"), TAG_MESSAGE_STATE: tlv_uint8(MESSAGE_STATE_UNDELIVERABLE)},
    )
    receipt = receipt_from_deliver_sm(pdu)
    assert receipt.message_id == "255"
    assert receipt.stat == "UNDELIV"


def test_mobile_originated_message_is_not_a_receipt() -> None:
    with pytest.raises(ReceiptParseError):
        receipt_from_deliver_sm(DeliverSm(esm_class=0x00, short_message=b"id:1 stat:DELIVRD"))


def test_build_submit_sms() -> None:
    [single] = build_submit_sms("1065", "8613800000000", "Code 1234")
    assert single.data_coding == 0x00
    assert single.esm_class == 0x00
    assert single.registered_delivery == 1
    assert single.short_message == b"Code 1234"
    parts = build_submit_sms("1065", "8613800000000", "【签名】" + "您好" * 60, reference=9, registered_delivery=0)
    assert len(parts) == 2
    assert all(p.esm_class == 0x40 and p.data_coding == 0x08 and p.registered_delivery == 0 for p in parts)
    assert [p.short_message[:6] for p in parts] == [bytes([5, 0, 3, 9, 2, 1]), bytes([5, 0, 3, 9, 2, 2])]


@pytest.mark.parametrize(
    ("stat", "text", "source"),
    [
        ("DELIVRD", "【喜鹊】您的订单已发货 https://m.example/c1", "8613800000001"),
        ("UNDELIV", "plain ascii text that is longer than twenty", "13800000000"),
        ("REJECTD", "tab\there", "1"),
        ("EXPIRED", "", "8613800000001"),
    ],
)
def test_receipt_body_assembled_directly_equals_the_encoded_pdu(stat: str, text: str, source: str) -> None:
    receipt = DeliveryReceipt(
        message_id="a1b2c3d4e50000000001",
        stat=stat,
        err="001",
        submit_date=datetime(2026, 1, 2, 3, 4),
        done_date=datetime(2026, 1, 2, 3, 5, 59),
        text=text,
    )
    pdu = receipt_deliver_sm(receipt, source_addr=source, destination_addr="10690001")
    assert receipt_deliver_sm_body(receipt, source_addr=source, destination_addr="10690001") == pdu.encode_body()


def test_printable_replaces_every_non_ascii_or_control_character() -> None:
    text = build_receipt_text("1", stat="DELIVRD", text="a\x01b【c】d\x7fe~ 汉字")
    assert text.endswith("text:a?b?c?d?e~ ??")


def test_id_and_stat_from_the_tlvs_or_the_text() -> None:
    with_tlvs = DeliverSm(
        esm_class=0x04,
        short_message=b"id:text-id sub:001 dlvrd:000 stat:UNDELIV err:001 text:",
        tlvs={TAG_RECEIPTED_MESSAGE_ID: tlv_cstring("tlv-id"), TAG_MESSAGE_STATE: tlv_uint8(MESSAGE_STATE_DELIVERED)},
    )
    assert (
        receipt_id_and_stat(with_tlvs)
        == ("tlv-id", "DELIVRD")
        == (
            receipt_from_deliver_sm(with_tlvs).message_id,
            receipt_from_deliver_sm(with_tlvs).stat,
        )
    )
    text_only = DeliverSm(esm_class=0x04, short_message=b"id:text-id sub:001 dlvrd:000 stat:UNDELIV err:001 text:")
    assert receipt_id_and_stat(text_only) == ("text-id", "UNDELIV")
    with pytest.raises(ReceiptParseError):
        receipt_id_and_stat(DeliverSm(esm_class=0x00, short_message=b"id:1 stat:DELIVRD"))
