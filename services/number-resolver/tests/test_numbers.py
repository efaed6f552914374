"""Number validation and normalisation (pure)."""

from __future__ import annotations

import time

import pytest

from magpie_number_resolver.numbers import national, normalize, parse

VALID = [
    ("13800138000", "8613800138000"),
    ("+8613800138000", "8613800138000"),
    ("008613800138000", "8613800138000"),
    ("8613800138000", "8613800138000"),
    ("86 138-0013-8000", "8613800138000"),
    ("+86 138 0013 8000", "8613800138000"),
    ("138-0013-8000", "8613800138000"),
    ("  13800138000\t", "8613800138000"),
    ("138\u30000013\u00a08000", "8613800138000"),  # ideographic and no-break spaces
    ("0086-19212345678", "8619212345678"),  # CBN
    ("17012345678", "8617012345678"),  # MVNO (CTCC host)
    ("16512345678", "8616512345678"),  # MVNO (CMCC host)
    ("14712345678", "8614712345678"),  # data plan
    ("13491234567", "8613491234567"),  # CTCC satellite inside 134
    ("17405123456", "8617405123456"),  # CTCC satellite 17400-17405
]

INVALID = [
    "",
    "   ",
    "1380013800",  # 10 digits
    "138001380001",  # 12 digits
    "+86138001380001",  # 12 digits after +86
    "+8513800138000",  # other country code
    "+13800138000",  # "+" without 86
    "0013800138000",  # 00 without 86
    "086 13800138000",
    "(+86)13800138000",  # parentheses are not separators
    "138.0013.8000",  # dots neither
    "1380013800a",
    "１３８００１３８０００",  # full-width digits
    "138\u00b20013800",  # superscript two is a digit for str.isdigit()
    "23800138000",  # not a mobile number
    "12345678901",  # 12x is not mobile
    "10086000000",
    "11012345678",
    "15412345678",  # 154 never allocated
    "14012345678",  # IoT range
    "14612345678",  # IoT (13-digit) range
    "17490000000",  # Inmarsat: not routable
    "17406123456",  # MIIT emergency communications
    "17420123456",  # unallocated part of 174
    "19412345678",  # 194 not allocated
]


@pytest.mark.parametrize(("raw", "msisdn"), VALID)
def test_valid_numbers_normalise_to_msisdn(raw: str, msisdn: str) -> None:
    assert normalize(raw) == msisdn


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_numbers_are_rejected(raw: str) -> None:
    assert normalize(raw) is None


def test_national_checks_format_only_and_parse_adds_the_carrier() -> None:
    assert national("+86 154-1234-5678") == "15412345678"  # well-formed, but
    assert parse("+86 154-1234-5678") is None  # not an allocated segment
    assert parse("13800138000") == ("8613800138000", "CMCC")
    assert parse("008618612345678") == ("8618612345678", "CUCC")
    assert parse("18912345678") == ("8618912345678", "CTCC")
    assert national(12345) is None  # type: ignore[arg-type]


def test_normalisation_is_fast_enough_for_the_worker() -> None:
    numbers = [f"13{i % 10}{i:08d}" for i in range(100_000)] + ["+86 138-0013-8000"] * 20_000
    started = time.perf_counter()
    valid = sum(1 for n in numbers if normalize(n) is not None)
    elapsed = time.perf_counter() - started
    assert valid == len(numbers)
    # The worker needs 100k+/s; a loaded CI machine still does several times that.
    assert len(numbers) / elapsed > 100_000, f"{len(numbers) / elapsed:,.0f} numbers/s"
