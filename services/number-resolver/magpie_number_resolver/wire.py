"""Building a ClassifiedBatch as protobuf wire bytes, without a Python object per recipient.

Setting fields of upb messages from Python costs ~0.25 µs per field, and copying a map field goes through
``MutableMapping.update``: building a ``ClassifiedRecipient`` the obvious way costs 3-6 µs, more than everything
else the worker does for a number. Protobuf's wire format is a concatenation of fields in any order, so a
recipient's output is assembled from bytes instead:

- the input ``Recipient``'s own bytes (read as a list of raw sub-messages by :data:`RawRecipientBatch`, one parse
  in C for the whole batch) with its fields renumbered to ClassifiedRecipient's: index 1 -> 1, mobile 2 -> 2,
  params 3 -> 4, custom_url 4 -> 5, sms_params 5 -> 11 (:func:`retag_recipient`; fields it does not know are
  dropped, exactly as copying the known fields would);
- ``msisdn`` (field 3), encoded per number;
- route, reason, carrier, vendor and buttons (fields 6-10), serialised once per (verdict, route, carrier) and cached.

``ctx`` is copied as the input's bytes. The result parses to the same message as the field-by-field build (tested
with generated recipients in ``tests/test_wire.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

_VARINT_CACHE = 1 << 14


def encode_varint(value: int) -> bytes:
    """Protobuf varint (negative int32/int64 as 64-bit two's complement, as protobuf encodes them)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


VARINTS: tuple[bytes, ...] = tuple(encode_varint(i) for i in range(_VARINT_CACHE))


def varint(value: int) -> bytes:
    return VARINTS[value] if 0 <= value < _VARINT_CACHE else encode_varint(value)


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    return tag + (VARINTS[size] if size < _VARINT_CACHE else encode_varint(size)) + payload


def _raw_batch_type() -> type[Message]:
    """``RecipientBatch`` with every field kept as raw bytes (a private type; same wire numbers)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="magpie_number_resolver/raw.proto", package="magpie_number_resolver.raw", syntax="proto3"
    )
    message = proto.message_type.add(name="RawRecipientBatch")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    as_bytes = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    message.field.add(name="meta", number=1, type=as_bytes, label=optional)
    message.field.add(name="ctx", number=2, type=as_bytes, label=optional)
    message.field.add(name="recipients", number=5, type=as_bytes, label=repeated)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("magpie_number_resolver.raw.RawRecipientBatch"))


RawRecipientBatch = _raw_batch_type()

# Recipient field -> ClassifiedRecipient tag byte (all length-delimited except index); others are dropped.
_LEN_TAGS = {0x12: b"\x12", 0x1A: b"\x22", 0x22: b"\x2a", 0x2A: b"\x5a", 0x32: b"\x62"}  # custom_code 6 -> 12
_INDEX_TAG = 0x08


def retag_recipient(raw: bytes) -> bytes:
    """A serialised ``Recipient`` as the corresponding fields of a ``ClassifiedRecipient`` (see the docstring)."""
    return retag_all([raw])[0]


def retag_all(raws: Iterable[bytes]) -> list[bytes]:
    """:func:`retag_recipient` of every recipient of a batch (one call: the loop is the hot path of the worker).

    Fast path for the canonical encoding (index, mobile, then only params entries, every length below 128: what
    the gateway writes for nearly every recipient); anything else goes through :func:`retag_fields`."""
    out: list[bytes] = []
    add = out.append
    for raw in raws:
        end = len(raw)
        position = 0
        if end and raw[0] == 0x08:
            position = 1
            while raw[position] & 0x80:
                position += 1
            position += 1
        if position < end and raw[position] == 0x12:
            if raw[position + 1] & 0x80:
                add(retag_fields(raw))
                continue
            position += 2 + raw[position + 1]
        if position == end:
            add(raw)
            continue
        parts = [raw[:position]]
        append = parts.append
        while position < end:
            if raw[position] != 0x1A or raw[position + 1] & 0x80:
                break
            stop = position + 2 + raw[position + 1]
            append(b"\x22" + raw[position + 1 : stop])
            position = stop
        if position == end:
            add(b"".join(parts))
        else:
            add(retag_fields(raw))
    return out


def retag_fields(raw: bytes) -> bytes:
    """:func:`retag_recipient` for any valid encoding (fields in any order, long lengths, unknown fields)."""
    out: list[bytes] = []
    append = out.append
    position = 0
    end = len(raw)
    tags = _LEN_TAGS
    while position < end:
        tag = raw[position]
        if tag & 0x80:  # field number >= 16: not a Recipient field; skip it
            start = position
            while raw[position] & 0x80:
                position += 1
            position += 1
            key = 0
            shift = 0
            for byte in raw[start:position]:
                key |= (byte & 0x7F) << shift
                shift += 7
            position = _skip(raw, position, key & 7)
            continue
        wire_type = tag & 7
        if wire_type == 2:
            length = raw[position + 1]
            start = position + 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                while True:
                    byte = raw[start]
                    start += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
            stop = start + length
            if stop > end:
                raise DecodeError("truncated recipient")
            new = tags.get(tag)
            if new is not None:
                append(new + raw[position + 1 : stop])
            position = stop
        elif tag == _INDEX_TAG:
            stop = position + 1
            while raw[stop] & 0x80:
                stop += 1
            stop += 1
            append(raw[position:stop])
            position = stop
        else:
            position = _skip(raw, position + 1, wire_type)
    return b"".join(out)


def _skip(raw: bytes, position: int, wire_type: int) -> int:
    """The position after the value of an unknown field."""
    if wire_type == 0:
        while raw[position] & 0x80:
            position += 1
        return position + 1
    if wire_type == 1:
        return position + 8
    if wire_type == 5:
        return position + 4
    if wire_type == 2:
        length = 0
        shift = 0
        while True:
            byte = raw[position]
            position += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return position + length
            shift += 7
    raise DecodeError(f"unsupported wire type {wire_type} in a recipient")
