"""SMPP 3.4 codec: byte-exact encodings, round trips, TLVs, decode errors and the stream framer."""

from __future__ import annotations

import struct

import pytest

from magpie_common.smpp.constants import (
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARSTREAM,
    ESME_RINVPARLEN,
    ESME_RINVPASWD,
    ESME_RTHROTTLED,
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_SAR_MSG_REF_NUM,
    TAG_SC_INTERFACE_VERSION,
    status_name,
)
from magpie_common.smpp.errors import FramingError, PduError
from magpie_common.smpp.framing import PduFramer
from magpie_common.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
    tlv_cstring,
    tlv_uint8,
    tlv_uint16,
)


def test_enquire_link_bytes() -> None:
    assert EnquireLink(sequence_number=1).encode() == bytes.fromhex("00000010000000150000000000000001")
    assert EnquireLinkResp(sequence_number=1).encode() == bytes.fromhex("00000010800000150000000000000001")
    assert GenericNack(sequence_number=9, command_status=ESME_RINVCMDID).encode() == bytes.fromhex(
        "00000010800000000000000300000009"
    )


def test_bind_transceiver_bytes() -> None:
    pdu = BindTransceiver(sequence_number=2, system_id="magpie", password="secret")
    expected_body = b"magpie\0secret\0\0\x34\x00\x00\0"
    assert pdu.encode() == struct.pack(">IIII", 16 + len(expected_body), 0x09, 0, 2) + expected_body
    assert decode_pdu(pdu.encode()) == pdu


def test_submit_sm_bytes() -> None:
    pdu = SubmitSm(
        sequence_number=3,
        source_addr="1065",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="8613800000000",
        registered_delivery=1,
        short_message=b"Hi",
    )
    body = (
        b"\0"  # service_type
        + b"\x00\x00" + b"1065\0"
        + b"\x01\x01" + b"8613800000000\0"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        + b"\x02Hi"
    )  # fmt: skip
    assert pdu.encode() == struct.pack(">IIII", 16 + len(body), 0x04, 0, 3) + body


@pytest.mark.parametrize(
    "pdu",
    [
        GenericNack(sequence_number=1, command_status=ESME_RINVCMDLEN),
        EnquireLink(sequence_number=0x7FFFFFFF),
        EnquireLinkResp(sequence_number=2),
        Unbind(sequence_number=3),
        UnbindResp(sequence_number=3),
        BindTransceiver(
            sequence_number=4,
            system_id="x" * 15,
            password="p" * 8,
            system_type="VMA",
            addr_ton=1,
            addr_npi=1,
            address_range="86*",
        ),
        BindTransceiverResp(sequence_number=4, system_id="smsc", tlvs={TAG_SC_INTERFACE_VERSION: tlv_uint8(0x34)}),
        BindTransceiverResp(sequence_number=5, command_status=ESME_RINVPASWD),
        SubmitSm(
            sequence_number=6,
            service_type="CMT",
            source_addr_ton=5,
            source_addr="Magpie",
            destination_addr="8613800000000",
            esm_class=0x40,
            protocol_id=0,
            priority_flag=1,
            schedule_delivery_time="",
            validity_period="260101120000000+",
            registered_delivery=1,
            data_coding=8,
            short_message=bytes([5, 0, 3, 1, 2, 1]) + "你好".encode("utf-16-be"),
            tlvs={TAG_SAR_MSG_REF_NUM: tlv_uint16(513)},
        ),
        SubmitSm(sequence_number=7, destination_addr="1", tlvs={TAG_MESSAGE_PAYLOAD: b"x" * 1000}),
        SubmitSmResp(sequence_number=8, message_id="a" * 64),
        SubmitSmResp(sequence_number=9, command_status=ESME_RTHROTTLED),
        DeliverSm(
            sequence_number=10,
            source_addr="8613800000000",
            destination_addr="1065",
            esm_class=0x04,
            short_message=b"id:1 stat:DELIVRD",
            tlvs={TAG_RECEIPTED_MESSAGE_ID: tlv_cstring("1"), TAG_MESSAGE_STATE: tlv_uint8(2)},
        ),
        DeliverSmResp(sequence_number=10),
    ],
    ids=lambda pdu: type(pdu).__name__,
)
def test_round_trip(pdu: Pdu) -> None:
    encoded = pdu.encode()
    assert struct.unpack(">I", encoded[:4])[0] == len(encoded)
    assert decode_pdu(encoded) == pdu


def test_error_responses_have_no_body() -> None:
    assert len(SubmitSmResp(sequence_number=1, command_status=ESME_RTHROTTLED).encode()) == 16
    assert len(BindTransceiverResp(sequence_number=1, command_status=ESME_RINVPASWD).encode()) == 16
    # deliver_sm_resp always carries the (unused) message_id: a single NUL
    assert DeliverSmResp(sequence_number=1).encode()[16:] == b"\0"


def test_short_message_properties() -> None:
    receipt = DeliverSm(
        esm_class=0x04,
        tlvs={TAG_RECEIPTED_MESSAGE_ID: tlv_cstring("abc"), TAG_MESSAGE_STATE: tlv_uint8(5)},
    )
    assert receipt.is_delivery_receipt
    assert receipt.receipted_message_id == "abc"
    assert receipt.message_state == 5
    assert not DeliverSm(esm_class=0x40).is_delivery_receipt
    payload_only = SubmitSm(tlvs={TAG_MESSAGE_PAYLOAD: b"long"})
    assert payload_only.message_bytes == b"long"
    assert payload_only.message_payload == b"long"
    assert SubmitSm(short_message=b"s").message_bytes == b"s"
    assert SubmitSm(esm_class=0x40).has_udh


def test_encode_rejects_oversized_fields() -> None:
    with pytest.raises(PduError) as exc:
        BindTransceiver(system_id="x" * 16).encode()
    assert exc.value.command_status == ESME_RINVPARLEN
    with pytest.raises(PduError):
        BindTransceiver(password="p" * 9).encode()
    with pytest.raises(PduError) as exc:
        SubmitSm(short_message=b"x" * 255).encode()
    assert exc.value.command_status == ESME_RINVMSGLEN
    with pytest.raises(PduError):
        SubmitSm(destination_addr="1" * 21).encode()


def test_decode_unknown_command_keeps_sequence() -> None:
    frame = struct.pack(">IIII", 16, 0x00000103, 0, 77)  # data_sm: not supported
    with pytest.raises(PduError) as exc:
        decode_pdu(frame)
    assert exc.value.command_status == ESME_RINVCMDID
    assert exc.value.sequence_number == 77
    assert exc.value.command_id == 0x103


def _frame(command_id: int, body: bytes, *, length: int | None = None) -> bytes:
    return struct.pack(">IIII", 16 + len(body) if length is None else length, command_id, 0, 1) + body


_EMPTY_SM_HEAD = b"\0" + b"\0\0\0" + b"\0\0\0" + b"\0\0\0" + b"\0\0" + b"\0\0\0\0"  # up to sm_length


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        pytest.param(_frame(0x15, b"", length=20), ESME_RINVCMDLEN, id="length-mismatch"),
        pytest.param(_frame(0x09, b"x" * 20), ESME_RINVCMDLEN, id="system_id-unterminated"),
        pytest.param(_frame(0x09, b"a\0b\0c\0"), ESME_RINVCMDLEN, id="bind-truncated"),
        pytest.param(_frame(0x04, _EMPTY_SM_HEAD + b"\x32hi"), ESME_RINVMSGLEN, id="sm_length-overrun"),
        pytest.param(
            _frame(0x04, _EMPTY_SM_HEAD + b"\x00" + struct.pack(">HH", 0x0424, 100)),
            ESME_RINVOPTPARSTREAM,
            id="tlv-overrun",
        ),
        pytest.param(_frame(0x04, _EMPTY_SM_HEAD + b"\x00\x04"), ESME_RINVOPTPARSTREAM, id="tlv-header-cut"),
    ],
)
def test_decode_errors(frame: bytes, status: int) -> None:
    with pytest.raises(PduError) as exc:
        decode_pdu(frame)
    assert exc.value.command_status == status
    assert exc.value.sequence_number == 1


def test_status_names() -> None:
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0) == "ESME_ROK"
    assert status_name(0x0E) == "ESME_RINVPASWD"
    assert status_name(0x1234) == "0x00001234"


class TestFramer:
    def frames(self) -> list[bytes]:
        return [
            EnquireLink(sequence_number=1).encode(),
            SubmitSm(sequence_number=2, destination_addr="8613800000000", short_message=b"x" * 200).encode(),
            SubmitSmResp(sequence_number=2, message_id="abc").encode(),
        ]

    def test_one_byte_at_a_time(self) -> None:
        framer = PduFramer()
        stream = b"".join(self.frames())
        out: list[bytes] = []
        for i in range(len(stream)):
            out.extend(framer.feed(stream[i : i + 1]))
        assert out == self.frames()
        assert framer.buffered == 0

    def test_many_in_one_read_and_partial_tail(self) -> None:
        framer = PduFramer()
        stream = b"".join(self.frames())
        out = framer.feed(stream + stream[:10])
        assert out == self.frames()
        assert framer.buffered == 10
        assert framer.feed(stream[10:]) == self.frames()
        assert framer.buffered == 0

    def test_large_volume_compacts(self) -> None:
        framer = PduFramer()
        pdu = SubmitSm(sequence_number=5, destination_addr="1", short_message=b"y" * 100).encode()
        stream = pdu * 2000
        out: list[bytes] = []
        for i in range(0, len(stream), 4093):
            out.extend(framer.feed(stream[i : i + 4093]))
        assert len(out) == 2000
        assert all(frame == pdu for frame in out)

    @pytest.mark.parametrize("length", [0, 8, 15, 70_001, 0xFFFFFFFF])
    def test_absurd_lengths(self, length: int) -> None:
        framer = PduFramer(max_length=70_000)
        with pytest.raises(FramingError) as exc:
            framer.feed(struct.pack(">I", length) + b"\0" * 12)
        assert exc.value.command_status == ESME_RINVCMDLEN

    def test_length_checked_before_body_arrives(self) -> None:
        framer = PduFramer(max_length=1024)
        with pytest.raises(FramingError):
            framer.feed(struct.pack(">I", 1025))
