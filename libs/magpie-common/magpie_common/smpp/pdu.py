"""SMPP 3.4 PDU codec: the 16-byte header, C-octet strings, TLVs, and one dataclass per supported PDU.

Every PDU class has ``encode() -> bytes`` (the whole PDU, header included) and is decoded by
``decode_pdu(frame)``, which picks the class from the command_id. Strings are ``str`` (latin-1 on the wire, so
any byte survives a round trip); ``short_message`` and TLV values are ``bytes``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Self

from magpie_common.smpp.constants import (
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_MESSAGE_TYPE_MASK,
    ESM_CLASS_UDHI,
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARSTREAM,
    ESME_RINVPARLEN,
    ESME_ROK,
    GENERIC_NACK,
    HEADER_LENGTH,
    RESPONSE_BIT,
    SMPP_VERSION_34,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_SC_INTERFACE_VERSION,
    UNBIND,
    UNBIND_RESP,
)
from magpie_common.smpp.errors import PduError

HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")
_SM_FIXED_MIDDLE = struct.Struct(">BBB")  # esm_class, protocol_id, priority_flag
_SM_FIXED_TAIL = struct.Struct(">BBBBB")  # registered_delivery, replace_if_present, data_coding, default_id, length

MAX_SHORT_MESSAGE = 254

# Maximum sizes of C-octet strings, terminating NUL included (SMPP 3.4 section 4).
_MAX_SYSTEM_ID = 16
_MAX_PASSWORD = 9
_MAX_SYSTEM_TYPE = 13
_MAX_ADDRESS_RANGE = 41
_MAX_SERVICE_TYPE = 6
_MAX_ADDR = 21
_MAX_TIME = 17
_MAX_MESSAGE_ID = 65


def _encode_cstr(value: str, max_size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= max_size:
        raise PduError(f"{name} is {len(raw)} octets, at most {max_size - 1} allowed", command_status=ESME_RINVPARLEN)
    if b"\0" in raw:
        raise PduError(f"{name} contains a NUL octet", command_status=ESME_RINVPARLEN)
    return raw + b"\0"


def _decode_cstr(buf: bytes, pos: int, max_size: int, name: str) -> tuple[str, int]:
    end = buf.find(b"\0", pos, pos + max_size)
    if end < 0:
        raise PduError(f"{name}: no NUL terminator within {max_size} octets", command_status=ESME_RINVCMDLEN)
    return buf[pos:end].decode("latin-1"), end + 1


def encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    """Encode optional parameters in insertion order."""
    parts: list[bytes] = []
    for tag, value in tlvs.items():
        if len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04X} value too long ({len(value)} octets)", command_status=ESME_RINVPARLEN)
        parts.append(_TLV_HEADER.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def decode_tlvs(buf: bytes, pos: int) -> dict[int, bytes]:
    """Decode the optional parameters from ``pos`` to the end of ``buf``."""
    tlvs: dict[int, bytes] = {}
    end = len(buf)
    while pos < end:
        if pos + 4 > end:
            raise PduError("truncated TLV header", command_status=ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEADER.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"TLV 0x{tag:04X} overruns the PDU", command_status=ESME_RINVOPTPARSTREAM)
        tlvs[tag] = bytes(buf[pos : pos + length])
        pos += length
    return tlvs


def tlv_uint8(value: int) -> bytes:
    return bytes((value,))


def tlv_uint16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def tlv_cstring(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def tlv_to_int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def tlv_to_str(value: bytes) -> str:
    """A C-octet-string TLV (the trailing NUL is optional on input)."""
    return value.rstrip(b"\0").decode("latin-1")


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Base of every PDU: the header fields a caller may set (command_length is computed)."""

    command_id: ClassVar[int] = 0

    sequence_number: int = 0
    command_status: int = ESME_ROK

    def encode(self) -> bytes:
        body = self.encode_body()
        return HEADER.pack(HEADER_LENGTH + len(body), self.command_id, self.command_status, self.sequence_number) + body

    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, body: bytes, *, command_status: int, sequence_number: int) -> Self:
        return cls(command_status=command_status, sequence_number=sequence_number)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)


@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = GENERIC_NACK


@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = ENQUIRE_LINK


@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = ENQUIRE_LINK_RESP


@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = UNBIND


@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = UNBIND_RESP


@dataclass(slots=True, kw_only=True)
class BindTransceiver(Pdu):
    command_id: ClassVar[int] = BIND_TRANSCEIVER

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = SMPP_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode_body(self) -> bytes:
        return b"".join(
            (
                _encode_cstr(self.system_id, _MAX_SYSTEM_ID, "system_id"),
                _encode_cstr(self.password, _MAX_PASSWORD, "password"),
                _encode_cstr(self.system_type, _MAX_SYSTEM_TYPE, "system_type"),
                bytes((self.interface_version, self.addr_ton, self.addr_npi)),
                _encode_cstr(self.address_range, _MAX_ADDRESS_RANGE, "address_range"),
            )
        )

    @classmethod
    def decode_body(cls, body: bytes, *, command_status: int, sequence_number: int) -> Self:
        system_id, pos = _decode_cstr(body, 0, _MAX_SYSTEM_ID, "system_id")
        password, pos = _decode_cstr(body, pos, _MAX_PASSWORD, "password")
        system_type, pos = _decode_cstr(body, pos, _MAX_SYSTEM_TYPE, "system_type")
        if pos + 3 > len(body):
            raise PduError("bind body truncated", command_status=ESME_RINVCMDLEN)
        interface_version, addr_ton, addr_npi = body[pos], body[pos + 1], body[pos + 2]
        address_range, _ = _decode_cstr(body, pos + 3, _MAX_ADDRESS_RANGE, "address_range")
        return cls(
            command_status=command_status,
            sequence_number=sequence_number,
            system_id=system_id,
            password=password,
            system_type=system_type,
            interface_version=interface_version,
            addr_ton=addr_ton,
            addr_npi=addr_npi,
            address_range=address_range,
        )


@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(Pdu):
    command_id: ClassVar[int] = BIND_TRANSCEIVER_RESP

    system_id: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode_body(self) -> bytes:
        if self.command_status != ESME_ROK and not self.system_id and not self.tlvs:
            return b""  # SMPP 3.4: the body of an error bind_resp is omitted
        return _encode_cstr(self.system_id, _MAX_SYSTEM_ID, "system_id") + encode_tlvs(self.tlvs)

    @classmethod
    def decode_body(cls, body: bytes, *, command_status: int, sequence_number: int) -> Self:
        if not body:
            return cls(command_status=command_status, sequence_number=sequence_number)
        system_id, pos = _decode_cstr(body, 0, _MAX_SYSTEM_ID, "system_id")
        return cls(
            command_status=command_status,
            sequence_number=sequence_number,
            system_id=system_id,
            tlvs=decode_tlvs(body, pos),
        )

    @property
    def sc_interface_version(self) -> int | None:
        value = self.tlvs.get(TAG_SC_INTERFACE_VERSION)
        return None if value is None else tlv_to_int(value)


@dataclass(slots=True, kw_only=True)
class _ShortMessagePdu(Pdu):
    """The body shared by submit_sm and deliver_sm (SMPP 3.4 sections 4.4.1 and 4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)
    # The body encoded by seal(): encode() then only packs the header (the sequence number changes per attempt).
    sealed_body: bytes | None = field(default=None, repr=False, compare=False)

    def seal(self) -> bytes:
        """Encode the body once (raising ``PduError`` if it does not encode) and reuse it for every later
        ``encode()``. Fields changed after sealing are not encoded: seal again."""
        self.sealed_body = None
        self.sealed_body = body = self.encode_body()
        return body

    def encode_body(self) -> bytes:
        if self.sealed_body is not None:
            return self.sealed_body
        if len(self.short_message) > MAX_SHORT_MESSAGE:
            raise PduError(
                f"short_message is {len(self.short_message)} octets, at most {MAX_SHORT_MESSAGE}; "
                "use the message_payload TLV",
                command_status=ESME_RINVMSGLEN,
            )
        return b"".join(
            (
                _encode_cstr(self.service_type, _MAX_SERVICE_TYPE, "service_type"),
                bytes((self.source_addr_ton, self.source_addr_npi)),
                _encode_cstr(self.source_addr, _MAX_ADDR, "source_addr"),
                bytes((self.dest_addr_ton, self.dest_addr_npi)),
                _encode_cstr(self.destination_addr, _MAX_ADDR, "destination_addr"),
                _SM_FIXED_MIDDLE.pack(self.esm_class, self.protocol_id, self.priority_flag),
                _encode_cstr(self.schedule_delivery_time, _MAX_TIME, "schedule_delivery_time"),
                _encode_cstr(self.validity_period, _MAX_TIME, "validity_period"),
                _SM_FIXED_TAIL.pack(
                    self.registered_delivery,
                    self.replace_if_present_flag,
                    self.data_coding,
                    self.sm_default_msg_id,
                    len(self.short_message),
                ),
                self.short_message,
                encode_tlvs(self.tlvs) if self.tlvs else b"",
            )
        )

    @classmethod
    def decode_body(cls, body: bytes, *, command_status: int, sequence_number: int) -> Self:
        size = len(body)
        service_type, pos = _decode_cstr(body, 0, _MAX_SERVICE_TYPE, "service_type")
        if pos + 2 > size:
            raise PduError("body truncated at source_addr_ton", command_status=ESME_RINVCMDLEN)
        source_addr_ton, source_addr_npi = body[pos], body[pos + 1]
        source_addr, pos = _decode_cstr(body, pos + 2, _MAX_ADDR, "source_addr")
        if pos + 2 > size:
            raise PduError("body truncated at dest_addr_ton", command_status=ESME_RINVCMDLEN)
        dest_addr_ton, dest_addr_npi = body[pos], body[pos + 1]
        destination_addr, pos = _decode_cstr(body, pos + 2, _MAX_ADDR, "destination_addr")
        if pos + 3 > size:
            raise PduError("body truncated at esm_class", command_status=ESME_RINVCMDLEN)
        esm_class, protocol_id, priority_flag = _SM_FIXED_MIDDLE.unpack_from(body, pos)
        schedule_delivery_time, pos = _decode_cstr(body, pos + 3, _MAX_TIME, "schedule_delivery_time")
        validity_period, pos = _decode_cstr(body, pos, _MAX_TIME, "validity_period")
        if pos + 5 > size:
            raise PduError("body truncated at registered_delivery", command_status=ESME_RINVCMDLEN)
        registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length = (
            _SM_FIXED_TAIL.unpack_from(body, pos)
        )
        pos += 5
        if pos + sm_length > size:
            raise PduError("short_message overruns the PDU", command_status=ESME_RINVMSGLEN)
        short_message = bytes(body[pos : pos + sm_length])
        tlvs = decode_tlvs(body, pos + sm_length) if pos + sm_length < size else {}
        return cls(
            command_status=command_status,
            sequence_number=sequence_number,
            service_type=service_type,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            source_addr=source_addr,
            dest_addr_ton=dest_addr_ton,
            dest_addr_npi=dest_addr_npi,
            destination_addr=destination_addr,
            esm_class=esm_class,
            protocol_id=protocol_id,
            priority_flag=priority_flag,
            schedule_delivery_time=schedule_delivery_time,
            validity_period=validity_period,
            registered_delivery=registered_delivery,
            replace_if_present_flag=replace_if_present_flag,
            data_coding=data_coding,
            sm_default_msg_id=sm_default_msg_id,
            short_message=short_message,
            tlvs=tlvs,
        )

    @property
    def message_payload(self) -> bytes | None:
        """The message_payload TLV (used instead of short_message for long or binary content), if present."""
        return self.tlvs.get(TAG_MESSAGE_PAYLOAD)

    @property
    def message_bytes(self) -> bytes:
        """The user data: short_message, or the message_payload TLV when short_message is empty."""
        if self.short_message:
            return self.short_message
        return self.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")

    @property
    def has_udh(self) -> bool:
        return bool(self.esm_class & ESM_CLASS_UDHI)


@dataclass(slots=True, kw_only=True)
class SubmitSm(_ShortMessagePdu):
    command_id: ClassVar[int] = SUBMIT_SM


@dataclass(slots=True, kw_only=True)
class DeliverSm(_ShortMessagePdu):
    command_id: ClassVar[int] = DELIVER_SM

    @property
    def is_delivery_receipt(self) -> bool:
        """esm_class message type 0x04: the SMSC delivery receipt of an earlier submit_sm."""
        return (self.esm_class & ESM_CLASS_MESSAGE_TYPE_MASK) == ESM_CLASS_DELIVERY_RECEIPT

    @property
    def receipted_message_id(self) -> str | None:
        value = self.tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
        return None if value is None else tlv_to_str(value)

    @property
    def message_state(self) -> int | None:
        value = self.tlvs.get(TAG_MESSAGE_STATE)
        return None if value is None else tlv_to_int(value)


@dataclass(slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    message_id: str = ""

    def encode_body(self) -> bytes:
        if self.command_status != ESME_ROK and not self.message_id:
            return b""  # SMPP 3.4: the body of an error submit_sm_resp is omitted
        return _encode_cstr(self.message_id, _MAX_MESSAGE_ID, "message_id")

    @classmethod
    def decode_body(cls, body: bytes, *, command_status: int, sequence_number: int) -> Self:
        if not body:
            return cls(command_status=command_status, sequence_number=sequence_number)
        message_id, _ = _decode_cstr(body, 0, _MAX_MESSAGE_ID, "message_id")
        return cls(command_status=command_status, sequence_number=sequence_number, message_id=message_id)


@dataclass(slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = SUBMIT_SM_RESP


@dataclass(slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = DELIVER_SM_RESP

    def encode_body(self) -> bytes:
        # deliver_sm_resp always carries message_id, which SMPP 3.4 says is unused: a single NUL.
        return _encode_cstr(self.message_id, _MAX_MESSAGE_ID, "message_id")


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        EnquireLink,
        EnquireLinkResp,
        Unbind,
        UnbindResp,
        BindTransceiver,
        BindTransceiverResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
    )
}


def decode_header(frame: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a frame of at least 16 octets."""
    if len(frame) < HEADER_LENGTH:
        raise PduError(f"PDU shorter than its header ({len(frame)} octets)", command_status=ESME_RINVCMDLEN)
    return HEADER.unpack_from(frame, 0)


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one complete PDU (header included) into its dataclass.

    Raises ``PduError`` carrying ``command_id``, ``sequence_number`` and the status to answer with
    (``ESME_RINVCMDID`` for an unsupported command, ``ESME_RINVCMDLEN``/``ESME_RINVMSGLEN``/... for bad bodies).
    """
    command_length, command_id, command_status, sequence_number = decode_header(frame)
    if command_length != len(frame):
        raise PduError(
            f"command_length {command_length} does not match the frame ({len(frame)} octets)",
            command_status=ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence_number,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise PduError(
            f"unsupported command_id 0x{command_id:08X}",
            command_status=ESME_RINVCMDID,
            command_id=command_id,
            sequence_number=sequence_number,
        )
    try:
        return cls.decode_body(
            bytes(frame[HEADER_LENGTH:]), command_status=command_status, sequence_number=sequence_number
        )
    except PduError as exc:
        exc.command_id = command_id
        exc.sequence_number = sequence_number
        raise
