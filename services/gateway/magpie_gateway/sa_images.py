"""Image dimensions read from the file header (no image library needed): PNG (IHDR), JPEG (the SOFn segment),
BMP (BITMAPCOREHEADER or BITMAPINFOHEADER and later) and GIF (logical screen). ``None`` when the header is
missing, truncated or not one of these formats."""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range but are not
# frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RSTn, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            return None  # not at a marker: corrupt stream
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            if marker == 0xD9:  # EOI before any frame
                return None
            continue
        if pos + 2 > size:
            return None
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 7 > size:
                return None
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        if marker == 0xDA:  # start of scan before a frame header
            return None
        pos += length
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26 or not data.startswith(b"BM"):
        return None
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    if header_size >= 40:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height means a top-down bitmap
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if len(data) < 10 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` in pixels from the header of a PNG, JPEG, BMP or GIF image."""
    for reader in (_png, _jpeg, _bmp, _gif):
        found = reader(data)
        if found is not None:
            return found if found[0] > 0 and found[1] > 0 else None
    return None
