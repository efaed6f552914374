"""The fate of a message: delivered, undeliverable (failure injection) or rejected (blackhole destinations).

The failure draw hashes the seed with the destination and the message key (its text, or for a concatenated
message its reference), so a given seed fails the same messages in every run whatever the arrival order, and all
parts of a concatenated message share one fate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from magpie_common.smpp.receipt import STAT_DELIVERED, STAT_REJECTED, STAT_UNDELIVERABLE

ERR_NONE = "000"
ERR_UNDELIVERABLE = "001"
ERR_REJECTED = "002"

_SCALE = float(1 << 64)


class OutcomePolicy:
    def __init__(self, *, failure_rate: float, seed: int, reject_prefixes: Sequence[str] = ()) -> None:
        self.failure_rate = failure_rate
        self.reject_prefixes = tuple(p for p in reject_prefixes if p)
        self._seed = str(seed).encode() + b"|"

    def decide(self, destination: str, message_key: bytes) -> tuple[str, str]:
        """(stat, err) for a message to ``destination``."""
        if self.reject_prefixes and destination.startswith(self.reject_prefixes):
            return STAT_REJECTED, ERR_REJECTED
        rate = self.failure_rate
        if rate <= 0.0:
            return STAT_DELIVERED, ERR_NONE
        if rate >= 1.0:
            return STAT_UNDELIVERABLE, ERR_UNDELIVERABLE
        digest = hashlib.blake2b(self._seed + destination.encode() + b"|" + message_key, digest_size=8).digest()
        if int.from_bytes(digest, "big") / _SCALE < rate:
            return STAT_UNDELIVERABLE, ERR_UNDELIVERABLE
        return STAT_DELIVERED, ERR_NONE
