"""Identifiers: time-ordered random ids for new things, stable ids for things derived from other things."""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def new_id(prefix: str = "") -> str:
    """A 26-character ULID-style id: 48 bits of milliseconds then 80 random bits; sorts by creation time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return prefix + "".join(reversed(chars))


def stable_id(*parts: object) -> str:
    """A deterministic id of its parts: the same inputs (e.g. a redelivered message) give the same id."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16)
    return digest.hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)
