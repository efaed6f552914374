"""Short codes: HMAC-SHA256 of the recipient's identity, rendered in base62.

A code is ``base62(HMAC-SHA256(secret, "tenant|task|index") mod 62**length)`` with a fixed width, so:

- it is unguessable without the secret (10 characters = 62**10 ≈ 2**59.5 possible codes);
- it is deterministic: a redelivered batch mints exactly the same codes (idempotent minting);
- on a collision with a different owner the minter re-derives with a counter suffix
  (``"tenant|task|index|1"``, ``"|2"``, ...), which is just as deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
import re

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_CODE_LENGTH = 10
MAX_CODE_LENGTH = 32

_CODE_RE = re.compile(f"[0-9A-Za-z]{{1,{MAX_CODE_LENGTH}}}")


def base62(value: int, width: int) -> str:
    """``value`` in base62, left-padded with ``0`` to exactly ``width`` characters."""
    if width < 1:
        raise ValueError("width must be at least 1")
    if value < 0 or value >= 62**width:
        raise ValueError(f"{value} does not fit in {width} base62 characters")
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(BASE62_ALPHABET[rem])
    return "".join(reversed(chars))


def base62_decode(text: str) -> int:
    value = 0
    for char in text:
        digit = BASE62_ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"not a base62 character: {char!r}")
        value = value * 62 + digit
    return value


def code_message(tenant_id: str, task_id: str, index: int, attempt: int = 0) -> bytes:
    """The HMAC input: the recipient's identity, plus the collision counter from the second attempt on."""
    text = f"{tenant_id}|{task_id}|{index}"
    if attempt:
        text += f"|{attempt}"
    return text.encode()


def derive_code(
    secret: bytes,
    tenant_id: str,
    task_id: str,
    index: int,
    *,
    attempt: int = 0,
    length: int = DEFAULT_CODE_LENGTH,
) -> str:
    """The short code of recipient ``index`` of a task (``attempt`` > 0 after collisions)."""
    if not 1 <= length <= MAX_CODE_LENGTH:
        raise ValueError(f"code length must be within 1..{MAX_CODE_LENGTH}")
    digest = hmac.new(secret, code_message(tenant_id, task_id, index, attempt), hashlib.sha256).digest()
    return base62(int.from_bytes(digest, "big") % 62**length, length)


def looks_like_code(text: str) -> bool:
    """Whether ``text`` can be a code at all (base62, bounded length): anything else is a 404 without a lookup."""
    return _CODE_RE.fullmatch(text) is not None
