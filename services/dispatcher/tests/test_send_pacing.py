"""Throttling by the SMSC, pacing by the shared Redis token bucket."""

from __future__ import annotations

import asyncio
import time

import pytest

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_dispatcher.events import message_id
from magpie_dispatcher.ratelimit import CarrierRateLimiter
from magpie_dispatcher.testing import (
    Worker,
    collect_delivery,
    config_for,
    context,
    dispatch_batch,
    produce,
    recipient,
    simulator,
)
from magpie_dispatcher.wiring import redis_pool_client

pytestmark = pytest.mark.integration


async def test_smsc_throttling_is_retried_without_loss_or_duplicates(settings: Settings) -> None:
    ctx = context("task-throttle")
    batches = [dispatch_batch(ctx, b, [recipient(b * 1000 + i) for i in range(100)], 3) for b in range(3)]
    ids = [message_id("task-throttle", b, b * 1000 + i) for b in range(3) for i in range(100)]
    async with simulator(max_tps=150, throttle_burst=20) as sim:
        async with Worker(settings, config_for(sim.smpp_port)):
            await produce(settings, batches)
            fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in ids), timeout_s=60)
        stats = sim.stats()
        assert sim.duplicates() == []
    assert stats["throttled"] > 0  # the SMSC did push back
    assert stats["accepted"] == 300
    assert stats["submit_status"] == {"ESME_ROK": 300, "ESME_RTHROTTLED": stats["throttled"]}
    assert all(fold.final(m).status == dispatch_pb2.DELIVERY_STATUS_DELIVERED for m in ids)


async def test_carrier_tps_paces_submits_below_the_smsc_limit(settings: Settings) -> None:
    ctx = context("task-paced")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(120)])
    ids = [message_id("task-paced", 0, i) for i in range(120)]
    async with simulator(max_tps=80, throttle_burst=40) as sim:
        config = config_for(sim.smpp_port, carrier_tps=60.0, carrier_burst=30.0)
        async with Worker(settings, config):
            await produce(settings, [batch])
            fold = await collect_delivery(settings, lambda f: all(m in f.submitted for m in ids), timeout_s=30)
        stats = sim.stats()
    assert stats["throttled"] == 0  # paced under the SMSC's cap: never throttled
    assert stats["accepted"] == 120
    times = sorted(e.submitted_at_ms for e in fold.events if e.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED)
    spread_s = (times[-1] - times[0]) / 1000
    assert spread_s >= (120 - 30) / 60 * 0.85  # burst, then 60/s


async def test_token_bucket_is_shared_between_processes(settings: Settings) -> None:
    first_redis = redis_pool_client(settings, 8)
    second_redis = redis_pool_client(settings, 8)
    try:
        first = CarrierRateLimiter(settings, first_redis, {"CMCC": 100.0}, burst=10)
        second = CarrierRateLimiter(settings, second_redis, {"CMCC": 100.0}, burst=10)
        assert not first.paced("CTCC") and first.paced("cmcc")

        async def take(limiter: CarrierRateLimiter, count: int) -> None:
            for _ in range(count):
                await limiter.acquire("CMCC")

        started = time.perf_counter()
        await asyncio.gather(take(first, 80), take(second, 80), take(first, 0))
        elapsed = time.perf_counter() - started
        await first.acquire("CTCC")  # not paced: immediate
    finally:
        await first_redis.aclose()
        await second_redis.aclose()
    # 160 tokens at 100/s with a burst of 10: at least 1.5 s whichever process takes them.
    assert 1.4 <= elapsed <= 3.0
