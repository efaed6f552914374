"""Keeps the Redis copy of the registry complete: refills it from MongoDB when Redis has lost its data.

A marker key ``rkey("nr", "warm")`` exists only once Redis holds every profile, device id, portability override
and downgrade (``learning``) of MongoDB. Redis restarted empty (or flushed) = no marker: the worker (which reads
the marker in the same MGET as the numbers) and the capability check refuse to classify ("unknown device" would
be wrong for every number), one replica takes the fill lock and copies MongoDB into Redis with ``SET NX`` (never
overwriting a value an import wrote meanwhile), then sets the marker. Other replicas wait for the marker.

Known window: a record deleted while a fill is running may be copied back into Redis by that fill (MongoDB stays
right; ``POST /internal/registry/reload`` repairs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import redis.asyncio as aioredis

from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_number_resolver.learning import Downgrades
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.registry import DeviceRegistry

log = logging.getLogger(__name__)

LOCK_TTL_S = 60
LOCK_REFRESH_S = 10
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end
"""


class RegistryNotReady(ConnectionError):
    """Redis does not (yet) hold the registry: transient, the consumer loop retries until the fill completes."""


class HotCache:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        profiles: ProfileStore,
        registry: DeviceRegistry,
        portability: PortabilityStore,
        downgrades: Downgrades | None = None,
    ) -> None:
        self.redis = redis
        self.downgrades = downgrades
        self.profiles = profiles
        self.registry = registry
        self.portability = portability
        self.marker = settings.rkey("nr", "warm")
        self.lock = settings.rkey("nr", "warm-lock")
        self._task: asyncio.Task[None] | None = None

    async def is_warm(self) -> bool:
        return bool(await self.redis.exists(self.marker))

    def start_fill(self) -> None:
        """Start a background fill unless one is running (returns at once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._fill(), name="registry-fill")

    async def ensure(self) -> None:
        """Return once Redis holds the registry (filling it from MongoDB when needed)."""
        while not await self.is_warm():
            self.start_fill()
            assert self._task is not None
            await asyncio.shield(self._task)

    async def reload(self) -> dict[str, int]:
        """Force a refill (operator action): drop the marker, fill, return the counts."""
        await self.redis.delete(self.marker)
        return await self._fill_locked(wait_for_other=True)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _fill(self) -> None:
        try:
            await self._fill_locked(wait_for_other=True)
        except Exception:
            log.exception("registry fill failed; it is retried on the next look-up")

    async def _fill_locked(self, *, wait_for_other: bool) -> dict[str, int]:
        token = os.urandom(8).hex()
        while not await self.redis.set(self.lock, token, nx=True, ex=LOCK_TTL_S):
            if not wait_for_other:
                return {}
            if await self.is_warm():
                return {}
            await asyncio.sleep(0.5)
        refresher = asyncio.create_task(self._refresh_lock(token))
        try:
            started = now_ms()
            counts = {
                "profiles": await self.profiles.reload_redis(),
                "devices": await self.registry.reload_redis(),
                "ported": await self.portability.reload_redis(),
            }
            if self.downgrades is not None:
                counts["downgrades"] = await self.downgrades.reload_redis()
            await self.profiles.load_all()
            await self.redis.set(self.marker, now_ms())
            log.info("registry filled into redis", extra={**counts, "ms": now_ms() - started})
            return counts
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await self.redis.eval(_RELEASE, 1, self.lock, token)  # type: ignore[misc]

    async def _refresh_lock(self, token: str) -> None:
        while True:
            await asyncio.sleep(LOCK_REFRESH_S)
            await self.redis.eval(_REFRESH, 1, self.lock, token, LOCK_TTL_S)  # type: ignore[misc]
