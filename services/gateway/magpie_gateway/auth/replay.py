"""Replay protection: a signed request (access key + signature) is accepted at most once.

The signature covers ``X-Sdk-Date``, so a captured request can only be replayed while its date is inside
the clock-skew window (``now - window .. now + window``). Remembering every accepted signature for
``2 x window`` therefore covers the whole period during which the verifier would accept it.

Note: the SDK's ``X-Sdk-Date`` has one-second resolution and carries no nonce, so two byte-identical
requests sent by the same client within the same second have the same signature; the second is rejected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis

from magpie_gateway.auth.signature import DEFAULT_MAX_SKEW

DEFAULT_KEY_PREFIX = "magpie:gateway:replay:"


class ReplayStore(Protocol):
    async def claim(self, access_key: str, signature: str) -> bool:
        """Record the signature; True when this is its first use, False when it was seen before."""
        ...


def replay_ttl(skew_window: timedelta) -> timedelta:
    """How long a signature must be remembered: twice the accepted clock skew."""
    return 2 * skew_window


class RedisReplayStore:
    """Shared across gateway instances: ``SET key 1 NX PX ttl`` where key = prefix + AK + ':' + signature."""

    def __init__(
        self,
        redis: Redis,
        *,
        skew_window: timedelta = DEFAULT_MAX_SKEW,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        ttl_ms = int(replay_ttl(skew_window).total_seconds() * 1000)
        if ttl_ms <= 0:
            raise ValueError("skew_window must be positive")
        self._redis = redis
        self._ttl_ms = ttl_ms
        self._key_prefix = key_prefix

    def key(self, access_key: str, signature: str) -> str:
        return f"{self._key_prefix}{access_key}:{signature}"

    async def claim(self, access_key: str, signature: str) -> bool:
        created = await self._redis.set(self.key(access_key, signature), b"1", nx=True, px=self._ttl_ms)
        return bool(created)


class MemoryReplayStore:
    """Single-process store for development and tests of one gateway instance (not shared)."""

    def __init__(
        self,
        *,
        skew_window: timedelta = DEFAULT_MAX_SKEW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ttl = replay_ttl(skew_window).total_seconds()
        if ttl <= 0:
            raise ValueError("skew_window must be positive")
        self._ttl = ttl
        self._clock = clock
        # Every entry gets the same TTL, so insertion order is expiry order.
        self._expiries: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiries)

    def _purge(self, now: float) -> None:
        while self._expiries:
            key, expires_at = next(iter(self._expiries.items()))
            if expires_at > now:
                return
            del self._expiries[key]

    async def claim(self, access_key: str, signature: str) -> bool:
        now = self._clock()
        self._purge(now)
        key = (access_key, signature)
        if key in self._expiries:
            return False
        self._expiries[key] = now + self._ttl
        return True
