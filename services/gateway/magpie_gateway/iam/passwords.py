"""Password hashing (``hashlib.scrypt``) and the password rules.

Hash format: ``scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`` with a random 16-byte salt and a 32-byte key;
parameters n=2**14, r=8, p=1 (16 MiB of memory, tens of milliseconds): hashing runs in a worker thread so the
event loop is not blocked. Verification reads the parameters from the stored hash, so they can be raised later
without invalidating stored passwords.

Rules (like Huawei Cloud IAM): 8-64 characters, no control characters, at least two of lowercase letters,
uppercase letters, digits and other characters, and not the user name (or the user name reversed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MIN_CHARS = 8
MAX_CHARS = 64
_MAXMEM = 64 * 1024 * 1024


class WeakPassword(ValueError):
    """The password breaks a rule; ``str(exc)`` says which."""


def check_rules(password: str, user_name: str) -> None:
    if not MIN_CHARS <= len(password) <= MAX_CHARS:
        raise WeakPassword(f"password must have {MIN_CHARS}-{MAX_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        raise WeakPassword("password must not contain control characters")
    classes = (
        any(ch.islower() for ch in password),
        any(ch.isupper() for ch in password),
        any(ch.isdigit() for ch in password),
        any(not ch.isalnum() for ch in password),
    )
    if sum(classes) < 2:
        raise WeakPassword("password must mix at least two of: lowercase, uppercase, digits, other characters")
    name = user_name.lower()
    if password.lower() in (name, name[::-1]):
        raise WeakPassword("password must not be the user name or the user name reversed")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length)


def hash_password_sync(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password_sync(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password_sync(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, stored: str | None) -> bool:
    """Check ``password`` against ``stored``; with no stored hash the same work is done and False returned, so
    the answer time does not tell whether the user exists or has a password."""
    if stored is None:
        await asyncio.to_thread(verify_password_sync, password, _dummy_hash())
        return False
    return await asyncio.to_thread(verify_password_sync, password, stored)
