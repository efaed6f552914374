"""Dotted-version parsing and ordering: examples from the seed and hypothesis properties."""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie_number_resolver.capability import Version, VersionError
from magpie_number_resolver.capability.version import version_key

parts_lists = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=6)
# small components and lengths so that equal / prefix-related versions are common
small_parts = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4)
versions = st.one_of(parts_lists, small_parts).map(Version)


def padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


# ---------------------------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("11.1.0.550", "11.1.0.551"),
        ("11.1.0.551", "11.1.1.400"),
        ("9.1.7.389", "9.1.7.390"),
        ("9.1.7.420", "10.1.1.680"),  # 9.x < 10.x
        ("10.1.1.770", "11.0.1.430"),  # 10.x < 11.x
        ("11.0.1.631", "11.0.8.303"),
        ("5.2", "5.17"),  # numeric components, not decimals
        ("5.16.99", "5.17"),
        ("7.2.1", "7.2.2"),
        ("6.0.0", "6.0.1"),
        ("12.3.2.6", "12.3.2.7"),
        ("13.2.20.13", "13.2.20.14"),
        ("10940900", "10940901"),
        ("2.0", "2.0.0.1"),
        ("9", "9.0.1"),
        ("1.9", "2"),
    ],
)
def test_ordering_examples(lower: str, higher: str) -> None:
    a, b = Version.parse_strict(lower), Version.parse_strict(higher)
    assert a < b and b > a and a <= b and b >= a and a != b
    assert not (a > b or b < a or a == b)


@pytest.mark.parametrize(("a", "b"), [("9.1", "9.1.0"), ("2", "2.0.0"), ("0", "0.0"), ("11.0", "11"), ("007", "7")])
def test_padding_equality(a: str, b: str) -> None:
    va, vb = Version.parse_strict(a), Version.parse_strict(b)
    assert va == vb and hash(va) == hash(vb) and not va < vb and not va > vb


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("11.1.0.551", (11, 1, 0, 551)),
        ("11.1.0.551(SP1)", (11, 1, 0, 551)),
        ("V13.2.20.13", (13, 2, 20, 13)),
        ("v6.0.0", (6, 0, 0)),
        ("EMUI 11.0.1", (11, 0, 1)),
        ("HarmonyOS 2.0.0", (2, 0, 0)),
        ("Android 9", (9,)),
        ("One UI 4.1", (4, 1)),
        ("ColorOS11", (11,)),
        ("9.2.3.1A", (9, 2, 3, 1)),
        ("10.", (10,)),
        ("  5.17 build 3", (5, 17)),
        ("１１．１．０．５５１", (11, 1, 0, 551)),  # full-width digits and dots
        ("4.0-beta", (4, 0)),
    ],
)
def test_lenient_parse(text: str, parts: tuple[int, ...]) -> None:
    version = Version.parse(text)
    assert version.parts == parts
    assert version.text == text
    assert version_key(text) == version.key


@pytest.mark.parametrize("text", ["", "abc", "V", "1..2", "..", "EMUI", "2..0(SP1)"])
def test_lenient_parse_rejects(text: str) -> None:
    with pytest.raises(VersionError):
        Version.parse(text)
    assert version_key(text) is None


@pytest.mark.parametrize("text", ["", "1..2", ".1", "1.", "a", "1.2a", " 1", "V1.2", "1,2", "１"])
def test_strict_parse_rejects(text: str) -> None:
    with pytest.raises(VersionError):
        Version.parse_strict(text)


def test_strict_parse_rejects_non_strings() -> None:
    with pytest.raises(VersionError):
        Version.parse_strict(2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("parts", [(), (-1,), (1, -2)])
def test_constructor_rejects(parts: tuple[int, ...]) -> None:
    with pytest.raises(VersionError):
        Version(parts)


def test_not_comparable_with_strings() -> None:
    assert Version.parse_strict("1.0") != "1.0"
    with pytest.raises(TypeError):
        _ = Version.parse_strict("1.0") < "1.1"  # type: ignore[operator]


def test_str_repr_major() -> None:
    v = Version.parse("V13.2.20.13")
    assert str(v) == "13.2.20.13" and repr(v) == "Version('V13.2.20.13')" and v.major == 13


# ---------------------------------------------------------------------------------------------- properties


@given(versions)
def test_reflexive(a: Version) -> None:
    assert a == a and a <= a and a >= a and not a < a and not a > a and (a != a) is False


@given(versions, versions)
def test_antisymmetric(a: Version, b: Version) -> None:
    if a <= b and b <= a:
        assert a == b and hash(a) == hash(b)


@given(versions, versions, versions)
def test_transitive(a: Version, b: Version, c: Version) -> None:
    for x, y, z in itertools.permutations((a, b, c)):
        if x <= y and y <= z:
            assert x <= z
        if x < y and y < z:
            assert x < z


@given(versions, versions)
def test_total_trichotomy(a: Version, b: Version) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    assert (a <= b) == (a < b or a == b) and (a >= b) == (a > b or a == b) and (a != b) is not (a == b)


@given(versions, versions)
def test_consistent_with_zero_padded_tuple_order(a: Version, b: Version) -> None:
    pa, pb = padded(a.parts, b.parts)
    assert (a < b) == (pa < pb)
    assert (a == b) == (pa == pb)
    assert (a > b) == (pa > pb)


@given(parts_lists, parts_lists)
def test_consistent_with_tuple_order_for_equal_lengths(a: list[int], b: list[int]) -> None:
    width = max(len(a), len(b))
    a, b = a + [0] * (width - len(a)), b + [0] * (width - len(b))
    assert (Version(a) < Version(b)) == (tuple(a) < tuple(b))


@given(parts_lists, st.integers(min_value=1, max_value=4))
def test_trailing_zero_padding_is_equal(parts: list[int], zeros: int) -> None:
    a, b = Version(parts), Version(parts + [0] * zeros)
    assert a == b and hash(a) == hash(b) and not a < b and not b < a


@given(parts_lists)
def test_strict_round_trip(parts: list[int]) -> None:
    text = ".".join(map(str, parts))
    v = Version.parse_strict(text)
    assert v.parts == tuple(parts) and str(v) == text and v == Version.parse(text)


@given(
    parts_lists,
    st.sampled_from(["", "V", "v", "EMUI ", "Android ", "HarmonyOS ", "ver. "]),
    st.one_of(
        st.sampled_from(["", "(SP1)", "-beta", " build 3", "A", "_r2", "(C00E160R1P3)"]),
        st.text(min_size=1, max_size=6).filter(
            lambda s: unicodedata.normalize("NFKC", s)[:1] not in ("", *"0123456789.")
        ),
    ),
)
def test_lenient_parse_ignores_prefix_and_suffix(parts: list[int], prefix: str, suffix: str) -> None:
    core = ".".join(map(str, parts))
    v = Version.parse(prefix + core + suffix)
    assert v.parts == tuple(parts)
    assert v == Version.parse_strict(core)


@given(versions, versions)
def test_sorting_agrees_with_keys(a: Version, b: Version) -> None:
    assert sorted([a, b]) == sorted([b, a])
    assert sorted([a, b], key=lambda v: v.key) == sorted([a, b])
