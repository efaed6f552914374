"""Split an SMPP byte stream into PDU frames, whatever the read boundaries are."""

from __future__ import annotations

import struct

from magpie_common.smpp.constants import DEFAULT_MAX_PDU_LENGTH, ESME_RINVCMDLEN, HEADER_LENGTH
from magpie_common.smpp.errors import FramingError

_LENGTH = struct.Struct(">I")
_COMPACT_THRESHOLD = 65_536


class PduFramer:
    """Accumulates bytes and yields complete frames (header included).

    ``feed(data)`` returns the frames completed by ``data`` (possibly none, possibly many). A command_length
    below 16 or above ``max_length`` raises ``FramingError``: the stream cannot be resynchronised and the
    connection must be closed (after a generic_nack, if the sender wishes).
    """

    __slots__ = ("_buffer", "_offset", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self._offset = 0
        self.max_length = max_length

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a frame."""
        return len(self._buffer) - self._offset

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset = self._offset
        end = len(buffer)
        while end - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length < HEADER_LENGTH or length > self.max_length:
                raise FramingError(
                    f"command_length {length} outside [{HEADER_LENGTH}, {self.max_length}]",
                    command_status=ESME_RINVCMDLEN,
                )
            if end - offset < length:
                break
            frames.append(bytes(buffer[offset : offset + length]))
            offset += length
        if offset == end:
            buffer.clear()
            offset = 0
        elif offset > _COMPACT_THRESHOLD:
            del buffer[:offset]
            offset = 0
        self._offset = offset
        return frames
