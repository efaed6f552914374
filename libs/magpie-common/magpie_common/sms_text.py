"""SMS text: GSM 03.38 vs UCS-2 detection, segment counting and splitting into concatenated parts.

- GSM 7-bit default alphabet (data_coding 0x00): 160 septets in one SMS, 153 per part of a concatenated
  SMS; characters of the extension table (``^ { } \\ [ ~ ] | €`` and form feed) take 2 septets (escape + code)
  and are never split across parts. On SMPP the septets travel unpacked, one per octet.
- UCS-2 (data_coding 0x08): 70 UTF-16 code units in one SMS, 67 per part; a character outside the BMP (emoji)
  is a surrogate pair, 2 code units, never split across parts. Encoded as UTF-16BE.
- Concatenation uses the 8-bit reference UDH ``05 00 03 ref total seq`` (6 octets), esm_class UDHI 0x40.

Chinese text (``【签名】...``) is UCS-2: none of it is in the GSM alphabet.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DATA_CODING_GSM7: Final = 0x00
DATA_CODING_ASCII: Final = 0x01
DATA_CODING_LATIN1: Final = 0x03
DATA_CODING_UCS2: Final = 0x08

ESM_CLASS_UDHI: Final = 0x40

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67
MAX_PARTS: Final = 255

_ESCAPE: Final = 0x1B

# GSM 03.38 default alphabet, position = septet value (0x1B is the escape to the extension table).
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: character -> septet following the escape.
GSM7_EXTENSION: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_BASIC_CODE: Final[dict[str, int]] = {ch: code for code, ch in enumerate(GSM7_BASIC) if code != _ESCAPE}
_EXTENSION_CHAR: Final[dict[int, str]] = {code: ch for ch, code in GSM7_EXTENSION.items()}
# Septet cost of every GSM character; a character missing here is not GSM-7.
_GSM7_COST: Final[dict[str, int]] = {**dict.fromkeys(_BASIC_CODE, 1), **dict.fromkeys(GSM7_EXTENSION, 2)}
_GSM7_CHARS: Final = frozenset(_GSM7_COST)
# str.translate tables: text -> one latin-1 char per septet (escape + code for the extension table), and back.
_ENCODE_TABLE: Final[dict[int, str]] = {
    **{ord(ch): chr(code) for ch, code in _BASIC_CODE.items()},
    **{ord(ch): "\x1b" + chr(code) for ch, code in GSM7_EXTENSION.items()},
}
_DECODE_TABLE: Final[dict[int, str]] = {code: ch for code, ch in enumerate(GSM7_BASIC) if code != _ESCAPE}


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"

    @property
    def data_coding(self) -> int:
        return DATA_CODING_GSM7 if self is SmsEncoding.GSM7 else DATA_CODING_UCS2

    @property
    def single_limit(self) -> int:
        """Units (septets or UTF-16 code units) in a single, unconcatenated SMS."""
        return GSM7_SINGLE if self is SmsEncoding.GSM7 else UCS2_SINGLE

    @property
    def part_limit(self) -> int:
        """Units per part of a concatenated SMS (the UDH takes the rest)."""
        return GSM7_PART if self is SmsEncoding.GSM7 else UCS2_PART


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 default alphabet or its extension table."""
    return _GSM7_CHARS.issuperset(text)


def detect_encoding(text: str) -> SmsEncoding:
    return SmsEncoding.GSM7 if is_gsm7(text) else SmsEncoding.UCS2


def _units(ch: str, encoding: SmsEncoding) -> int:
    if encoding is SmsEncoding.GSM7:
        return _GSM7_COST[ch]
    return 2 if ord(ch) > 0xFFFF else 1


def text_units(text: str, encoding: SmsEncoding | None = None) -> int:
    """Length in septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2)."""
    encoding = encoding or detect_encoding(text)
    if encoding is SmsEncoding.GSM7:
        return len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _chunks(text: str, encoding: SmsEncoding) -> list[str]:
    """Cut ``text`` into parts of at most ``part_limit`` units, never splitting a 2-unit character."""
    limit = encoding.part_limit
    chunks: list[str] = []
    start = 0
    used = 0
    for index, ch in enumerate(text):
        cost = _units(ch, encoding)
        if used + cost > limit:
            chunks.append(text[start:index])
            start = index
            used = 0
        used += cost
    chunks.append(text[start:])
    return chunks


def count_segments(text: str) -> tuple[SmsEncoding, int]:
    """(encoding, number of SMS) for ``text``. An empty text is one (empty) SMS."""
    encoding = detect_encoding(text)
    if text_units(text, encoding) <= encoding.single_limit:
        return encoding, 1
    return encoding, len(_chunks(text, encoding))


def encode_gsm7(text: str) -> bytes:
    """GSM 03.38 septets, unpacked (one per octet), extension characters as ``0x1B code``.
    Raises ``ValueError`` for a character outside the alphabet."""
    if not _GSM7_CHARS.issuperset(text):
        bad = next(ch for ch in text if ch not in _GSM7_CHARS)
        raise ValueError(f"character {bad!r} is not in the GSM 03.38 alphabet")
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Inverse of ``encode_gsm7``. An unknown extension code decodes as the basic character (GSM 03.38 rule);
    an octet above 0x7F (not a septet) decodes as its latin-1 character."""
    if b"\x1b" not in data:
        return data.decode("latin-1").translate(_DECODE_TABLE)
    out: list[str] = []
    escape = False
    for octet in data:
        if escape:
            escape = False
            ext = _EXTENSION_CHAR.get(octet)
            if ext is not None:
                out.append(ext)
                continue
            out.append(GSM7_BASIC[octet] if octet < 0x80 and octet != _ESCAPE else chr(octet))
        elif octet == _ESCAPE:
            escape = True
        elif octet < 0x80:
            out.append(GSM7_BASIC[octet])
        else:
            out.append(chr(octet))
    if escape:
        out.append(" ")  # a trailing escape: GSM 03.38 displays a space
    return "".join(out)


def encode_text(text: str, encoding: SmsEncoding) -> bytes:
    if encoding is SmsEncoding.GSM7:
        return encode_gsm7(text)
    return text.encode("utf-16-be")


def decode_text(data: bytes, data_coding: int) -> str:
    """Decode user data (without UDH) for a data_coding value. 0x00 is GSM 03.38 unpacked, 0x01 ASCII,
    0x03 latin-1, 0x08 UCS-2 (UTF-16BE; a dangling odd octet is dropped); any other coding is binary and comes
    back as hex."""
    if data_coding == DATA_CODING_GSM7:
        return decode_gsm7(data)
    if data_coding == DATA_CODING_UCS2:
        return data[: len(data) & ~1].decode("utf-16-be", errors="replace")
    if data_coding in (DATA_CODING_ASCII, DATA_CODING_LATIN1):
        return data.decode("latin-1")
    return data.hex()


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Concatenation of one part: reference (8- or 16-bit), total parts, this part's 1-based sequence."""

    reference: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One SMS of a (possibly concatenated) message, ready for submit_sm."""

    text: str
    payload: bytes  # encoded text, without UDH
    udh: bytes  # b"" for a single SMS; 05 00 03 ref total seq for a part
    encoding: SmsEncoding
    concat: ConcatInfo | None

    @property
    def short_message(self) -> bytes:
        return self.udh + self.payload

    @property
    def data_coding(self) -> int:
        return self.encoding.data_coding

    @property
    def esm_class(self) -> int:
        return ESM_CLASS_UDHI if self.udh else 0x00


def concat_udh(reference: int, total: int, seq: int) -> bytes:
    """The 8-bit reference concatenation UDH: ``05 00 03 ref total seq``."""
    return bytes((0x05, 0x00, 0x03, reference & 0xFF, total, seq))


def split(text: str, *, reference: int | None = None) -> list[SmsPart]:
    """Split ``text`` into the SMS that carry it: one part without UDH if it fits a single SMS, else parts of
    153 septets / 67 code units each with a concatenation UDH. ``reference`` (0-255) identifies the message
    among concatenated messages to the same handset; a random one is drawn when omitted.
    Raises ``ValueError`` above 255 parts."""
    encoding = detect_encoding(text)
    if text_units(text, encoding) <= encoding.single_limit:
        return [SmsPart(text=text, payload=encode_text(text, encoding), udh=b"", encoding=encoding, concat=None)]
    chunks = _chunks(text, encoding)
    total = len(chunks)
    if total > MAX_PARTS:
        raise ValueError(f"text needs {total} parts, at most {MAX_PARTS} are possible")
    ref = secrets.randbelow(256) if reference is None else reference & 0xFF
    return [
        SmsPart(
            text=chunk,
            payload=encode_text(chunk, encoding),
            udh=concat_udh(ref, total, seq),
            encoding=encoding,
            concat=ConcatInfo(reference=ref, total=total, seq=seq),
        )
        for seq, chunk in enumerate(chunks, start=1)
    ]


def parse_udh(short_message: bytes) -> tuple[bytes, ConcatInfo | None, bytes]:
    """Split user data that starts with a UDH into (udh, concatenation info or None, payload). Understands the
    8-bit (IEI 0x00) and 16-bit (IEI 0x08) reference concatenation elements. Raises ``ValueError`` if the UDH
    length overruns the data."""
    if not short_message:
        raise ValueError("empty user data has no UDH")
    udh_len = short_message[0]
    if 1 + udh_len > len(short_message):
        raise ValueError(f"UDH length {udh_len} overruns {len(short_message)} octets of user data")
    udh = short_message[: 1 + udh_len]
    concat: ConcatInfo | None = None
    pos = 1
    while pos + 2 <= len(udh):
        iei, iel = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + iel]
        if len(value) < iel:
            break
        if iei == 0x00 and iel == 3:
            concat = ConcatInfo(reference=value[0], total=value[1], seq=value[2])
        elif iei == 0x08 and iel == 4:
            concat = ConcatInfo(reference=(value[0] << 8) | value[1], total=value[2], seq=value[3])
        pos += 2 + iel
    return udh, concat, short_message[1 + udh_len :]
