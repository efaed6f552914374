"""Unit tests of the code derivation (base62 of HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from magpie_shortlink.codes import (
    BASE62_ALPHABET,
    base62,
    base62_decode,
    code_message,
    derive_code,
    looks_like_code,
)


def test_base62_fixed_width_and_round_trip() -> None:
    assert base62(0, 3) == "000"
    assert base62(61, 1) == "z"
    assert base62(62, 2) == "10"
    assert base62(62**10 - 1, 10) == "z" * 10
    for value in (0, 1, 61, 62, 3843, 123456789, 62**10 - 1):
        assert base62_decode(base62(value, 10)) == value


def test_base62_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        base62(62**3, 3)
    with pytest.raises(ValueError):
        base62(-1, 3)
    with pytest.raises(ValueError):
        base62_decode("ab-c")


def test_code_is_hmac_sha256_of_the_identity_in_base62() -> None:
    secret = b"k3y"
    digest = hmac.new(secret, b"tenant-a|task-9|42", hashlib.sha256).digest()
    expected = base62(int.from_bytes(digest, "big") % 62**10, 10)
    assert derive_code(secret, "tenant-a", "task-9", 42) == expected
    assert code_message("tenant-a", "task-9", 42) == b"tenant-a|task-9|42"
    assert code_message("tenant-a", "task-9", 42, 3) == b"tenant-a|task-9|42|3"


def test_code_is_deterministic_and_depends_on_every_input() -> None:
    code = derive_code(b"s", "t", "task", 1)
    assert code == derive_code(b"s", "t", "task", 1)
    variants = {
        derive_code(b"other", "t", "task", 1),
        derive_code(b"s", "t2", "task", 1),
        derive_code(b"s", "t", "task2", 1),
        derive_code(b"s", "t", "task", 2),
        derive_code(b"s", "t", "task", 1, attempt=1),
    }
    assert code not in variants
    assert len(variants) == 5


def test_codes_are_ten_base62_characters_and_spread() -> None:
    codes = [derive_code(b"secret", "tenant", "task", i) for i in range(5000)]
    assert all(len(c) == 10 and set(c) <= set(BASE62_ALPHABET) for c in codes)
    assert len(set(codes)) == len(codes)
    # Every position uses the whole alphabet (no fixed padding in the leading characters).
    for position in range(10):
        assert len({c[position] for c in codes}) == 62


def test_custom_length() -> None:
    assert len(derive_code(b"s", "t", "task", 1, length=1)) == 1
    assert len(derive_code(b"s", "t", "task", 1, length=16)) == 16
    with pytest.raises(ValueError):
        derive_code(b"s", "t", "task", 1, length=0)


def test_looks_like_code() -> None:
    assert looks_like_code("aZ09bY18cX")
    assert not looks_like_code("")
    assert not looks_like_code("abc-def")
    assert not looks_like_code("a" * 33)
    assert not looks_like_code("../etc")
