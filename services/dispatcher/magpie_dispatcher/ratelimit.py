"""Per-carrier pacing shared by every dispatcher process: a token bucket in Redis (one small Lua script).

The bucket ``tps:<carrier>`` holds ``tokens`` and the time of the last refill (Redis ``TIME``, so the processes'
clocks do not matter). A process takes tokens in small grants (about 50 ms worth) and hands them out locally, so
Redis sees a few calls per second per carrier instead of one per submit_sm; a grant of zero comes with the time
until the next token, which the process sleeps. One token = one submit_sm (one SMS part).

No library fits better: the usual Python rate limiters are either in-process (aiolimiter) or answer only "allowed
or not" (limits' Redis strategies) without the batch grant and the wait time this needs.
"""

from __future__ import annotations

import asyncio
import math

import redis.asyncio as aioredis

from magpie_common.config import Settings
from magpie_dispatcher.config import carrier_key

_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
end
local grant = math.min(want, math.floor(tokens))
if grant < 0 then grant = 0 end
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait_us = 0
if grant < want then
  wait_us = math.ceil((1 - tokens) / rate * 1000000)
end
return {grant, wait_us}
"""


class _Bucket:
    __slots__ = ("burst", "grant_size", "key", "local", "lock", "rate")

    def __init__(self, key: str, rate: float, burst: float) -> None:
        self.key = key
        self.rate = rate
        self.burst = max(1.0, burst if burst > 0 else rate)
        self.grant_size = max(1, min(int(self.burst), math.ceil(rate * 0.05)))
        self.local = 0
        self.lock = asyncio.Lock()


class CarrierRateLimiter:
    """``await limiter.acquire(carrier)`` before each submit_sm. Carriers without a rate are not paced."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, rates: dict[str, float], burst: float = 0.0) -> None:
        self.settings = settings
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._buckets: dict[str, _Bucket] = {
            carrier: _Bucket(settings.rkey("tps", carrier), rate, burst) for carrier, rate in rates.items() if rate > 0
        }

    def paced(self, carrier: str) -> bool:
        return carrier_key(carrier) in self._buckets

    async def acquire(self, carrier: str) -> None:
        bucket = self._buckets.get(carrier_key(carrier))
        if bucket is None:
            return
        while True:
            if bucket.local > 0:
                bucket.local -= 1
                return
            async with bucket.lock:
                if bucket.local > 0:
                    continue
                grant, wait_us = await self._take(
                    keys=[bucket.key], args=[repr(bucket.rate), repr(bucket.burst), bucket.grant_size]
                )
                bucket.local += int(grant)
                if int(grant) == 0:
                    await asyncio.sleep(max(0.001, int(wait_us) / 1_000_000))
