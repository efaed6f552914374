"""SMS text: GSM 03.38 / UCS-2 detection, segment counts at the boundaries, splitting with concatenation UDH."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie_common.sms_text import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    GSM7_BASIC,
    GSM7_EXTENSION,
    ConcatInfo,
    SmsEncoding,
    count_segments,
    decode_gsm7,
    decode_text,
    detect_encoding,
    encode_gsm7,
    parse_udh,
    split,
    text_units,
)

GSM = SmsEncoding.GSM7
UCS2 = SmsEncoding.UCS2
EMOJI = "\U0001f600"  # 😀, a surrogate pair in UTF-16


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", GSM, 1),
        ("a", GSM, 1),
        ("a" * 160, GSM, 1),
        ("a" * 161, GSM, 2),
        ("a" * 306, GSM, 2),
        ("a" * 307, GSM, 3),
        ("a" * 153 * 255, GSM, 255),
        # extension characters take two septets
        ("€" * 80, GSM, 1),
        ("€" * 80 + "a", GSM, 2),
        ("a" * 158 + "€", GSM, 1),
        ("a" * 159 + "€", GSM, 2),
        ("a" * 159 + "[", GSM, 2),
        ("a" * 158 + "]", GSM, 1),
        ("{}" * 40, GSM, 1),
        ("{}" * 40 + "|", GSM, 2),
        # € on the 153-septet part boundary moves whole to the next part (152 + 2 would overflow part one), so
        # 306 septets can need 3 parts where a naive ceil(306 / 153) says 2
        ("a" * 152 + "€" + "a" * 151, GSM, 2),
        ("a" * 152 + "€" + "a" * 152, GSM, 3),
        ("a" * 151 + "€" + "a" * 153, GSM, 2),
        # GSM basic table beyond ASCII
        ("Ça coute 5€", GSM, 1),
        ("ÄÖÑÜ§¿äöñüà@£$¥èéùìò", GSM, 1),
        ("ç", UCS2, 1),  # lower-case c-cedilla is not in GSM 03.38 (only Ç is)
        # UCS-2 counts UTF-16 code units
        ("你" * 70, UCS2, 1),
        ("你" * 71, UCS2, 2),
        ("你" * 134, UCS2, 2),
        ("你" * 135, UCS2, 3),
        ("【Magpie】您的验证码是123456，5分钟内有效。", UCS2, 1),
        ("【签名】" + "尊敬的客户您好" * 10, UCS2, 2),
        (EMOJI * 35, UCS2, 1),  # 70 code units
        (EMOJI * 36, UCS2, 2),  # 72 code units: 33 emoji (66 units) + 3
        ("a" * 69 + EMOJI, UCS2, 2),  # 71 code units
        ("a" * 68 + EMOJI, UCS2, 1),  # 70 code units
        (EMOJI * 67, UCS2, 3),  # 134 units, but a pair never splits: 33 + 33 + 1 emoji
        ("Hello " + EMOJI, UCS2, 1),
    ],
)
def test_count_segments(text: str, encoding: SmsEncoding, segments: int) -> None:
    assert count_segments(text) == (encoding, segments)
    parts = split(text, reference=7)
    assert len(parts) == segments
    assert "".join(part.text for part in parts) == text


@pytest.mark.parametrize(
    ("text", "units"),
    [("abc", 3), ("a€", 3), ("[]{}", 8), ("\f", 2), ("你好", 2), (EMOJI, 2), ("a" + EMOJI + "你", 4)],
)
def test_text_units(text: str, units: int) -> None:
    assert text_units(text) == units


def test_extension_char_is_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    parts = split(text, reference=1)
    assert [p.text for p in parts] == ["a" * 152, "€" + "b" * 10]
    assert parts[0].payload == b"a" * 152
    assert parts[1].payload[:2] == b"\x1b\x65"
    for part in parts:
        assert not part.payload.endswith(b"\x1b")
        assert len(part.payload) <= 153


def test_surrogate_pair_is_never_split_across_parts() -> None:
    text = "a" * 66 + EMOJI + "你" * 10
    parts = split(text, reference=1)
    assert [p.text for p in parts] == ["a" * 66, EMOJI + "你" * 10]
    for part in parts:
        assert len(part.payload) <= 134
        part.payload.decode("utf-16-be")  # strict: raises on a lone surrogate


def test_single_part_has_no_udh() -> None:
    [part] = split("Hello", reference=3)
    assert part.udh == b""
    assert part.concat is None
    assert part.esm_class == 0x00
    assert part.data_coding == DATA_CODING_GSM7
    assert part.short_message == b"Hello"


def test_concatenated_parts_carry_8bit_reference_udh() -> None:
    text = "你" * 150
    parts = split(text, reference=0xAB)
    assert len(parts) == 3
    for seq, part in enumerate(parts, start=1):
        assert part.udh == bytes([0x05, 0x00, 0x03, 0xAB, 3, seq])
        assert part.concat == ConcatInfo(reference=0xAB, total=3, seq=seq)
        assert part.esm_class == 0x40
        assert part.data_coding == DATA_CODING_UCS2
        assert part.short_message == part.udh + part.payload
        assert len(part.short_message) <= 140
    assert [len(p.text) for p in parts] == [67, 67, 16]


def test_gsm_parts_fit_140_octets_once_packed() -> None:
    parts = split("x" * 400, reference=5)
    assert [len(p.payload) for p in parts] == [153, 153, 94]
    for part in parts:
        # 6 octets of UDH + 153 septets packed: ceil((6 * 8 + 1 fill bit + 153 * 7) / 8) = 140
        assert len(part.udh) + (len(part.payload) * 7 + 7) // 8 <= 140


def test_random_reference_when_none_given() -> None:
    parts = split("a" * 200)
    assert len({p.concat.reference for p in parts if p.concat}) == 1
    assert 0 <= parts[0].concat.reference <= 255  # type: ignore[union-attr]


def test_too_many_parts() -> None:
    with pytest.raises(ValueError, match="255"):
        split("a" * (153 * 255 + 1))


def test_gsm7_round_trip_of_every_character() -> None:
    alphabet = "".join(ch for ch in GSM7_BASIC if ch != "\x1b") + "".join(GSM7_EXTENSION)
    encoded = encode_gsm7(alphabet)
    assert len(encoded) == 127 + 2 * len(GSM7_EXTENSION)
    assert decode_gsm7(encoded) == alphabet
    assert encode_gsm7("@") == b"\x00"
    assert encode_gsm7("€") == b"\x1b\x65"
    assert encode_gsm7("[x]") == b"\x1b\x3cx\x1b\x3e"


def test_gsm7_rejects_foreign_characters() -> None:
    with pytest.raises(ValueError, match=r"GSM 03\.38"):
        encode_gsm7("你")


@pytest.mark.parametrize(
    ("data", "data_coding", "text"),
    [
        (b"Hello \x1b\x65", 0x00, "Hello €"),
        (b"\x00\x02", 0x00, "@$"),
        ("你好".encode("utf-16-be"), 0x08, "你好"),
        (b"caf\xe9", 0x03, "café"),
        (b"\x01\x02", 0x04, "0102"),
    ],
)
def test_decode_text(data: bytes, data_coding: int, text: str) -> None:
    assert decode_text(data, data_coding) == text


def test_detect_encoding() -> None:
    assert detect_encoding("Your code is 1234 [ok]") is GSM
    assert detect_encoding("【签名】") is UCS2
    assert GSM.data_coding == 0x00
    assert UCS2.data_coding == 0x08


def test_parse_udh() -> None:
    udh, concat, payload = parse_udh(bytes([5, 0, 3, 9, 2, 1]) + b"abc")
    assert (udh, concat, payload) == (bytes([5, 0, 3, 9, 2, 1]), ConcatInfo(9, 2, 1), b"abc")
    # 16-bit reference
    _, concat, payload = parse_udh(bytes([6, 8, 4, 0x12, 0x34, 3, 2]) + b"xy")
    assert concat == ConcatInfo(0x1234, 3, 2)
    assert payload == b"xy"
    # a UDH without concatenation element (port addressing)
    _, concat, payload = parse_udh(bytes([4, 4, 2, 0x0B, 0x84]) + b"z")
    assert concat is None
    assert payload == b"z"
    with pytest.raises(ValueError):
        parse_udh(bytes([9, 0, 3]))


_sms_chars = st.sampled_from([*"abcXYZ 019@€[]{}|~^\\\fÄñ", "你", "好", "【", "】", EMOJI])


@given(st.text(alphabet=_sms_chars, max_size=600))
def test_split_is_lossless_and_consistent_with_count(text: str) -> None:
    encoding, segments = count_segments(text)
    parts = split(text, reference=42)
    assert len(parts) == segments
    assert "".join(decode_text(p.payload, p.data_coding) for p in parts) == text
    limit = 160 if encoding is GSM else 140
    if segments > 1:
        limit = 153 if encoding is GSM else 134
    for part in parts:
        assert len(part.payload) <= limit
