"""Micro-benchmark of the worker's classification: ``bench_classify(n_devices, batch) -> dict``.

Seeds a registry of ``n_devices`` numbers straight into Redis (pipelined MSET of profile ids over ``profiles``
distinct handset profiles drawn from the capability table, in a throw-away key namespace), then classifies
``numbers`` recipients in RecipientBatches of ``batch`` on one core exactly as the worker does —
validation, carrier, the one MGET per batch, verdicts, building and serialising the ClassifiedBatch — without
Kafka. The mix: 85 % registered numbers, 10 % valid unregistered numbers, 5 % malformed. Keys are removed
afterwards. MongoDB is not touched (every profile is in the process cache, as in a warmed-up worker).

The records of one poll (``per_poll``, 50 as the consumer fetches them) go through
``ClassifyWorker.classify_values`` exactly as the consumer hands them over (the Redis look-up of the next batch is
sent before the output of the current one is built). ``numbers_per_s`` is wall-clock throughput; ``numbers_per_cpu_s``
divides by this process's CPU time, the figure that does not depend on what else the machine runs (see
``load_average_1m``). ``with_provider_cache`` repeats the run with a simulated vendor provider consulted on registry
misses, its answers already cached.

Also measured: ``used_memory`` per registered number, and one batch's Redis look-up (``batch`` keys) as: one
``fast_mget`` of id strings (what the worker does), redis-py's ``mget`` of id strings, redis-py's ``mget`` of
packed profile strings (the rejected per-number encoding) and a pipeline of HGETALL (the other rejected one).

``python -m magpie_number_resolver.bench [n_devices] [batch]`` prints the result as JSON. Redis and the
settings come from the environment (``REDIS_URL``; the embedded run profile by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from magpie.v1 import common_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.storage import mongo_client, redis_client, service_db
from magpie_number_resolver.capability import default_engine
from magpie_number_resolver.capability.bench import make_workload
from magpie_number_resolver.carriers import default_table
from magpie_number_resolver.classifier import Classifier
from magpie_number_resolver.config import SERVICE_NAME
from magpie_number_resolver.devices import DeviceProfile
from magpie_number_resolver.fast_mget import mget
from magpie_number_resolver.hotcache import HotCache
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.providers import ProviderCache, SimulatedProvider
from magpie_number_resolver.registry import DeviceRegistry
from magpie_number_resolver.worker import ClassifyWorker

SEED_CHUNK = 20_000


@dataclass
class _Bench:
    """The worker's classification path as ``app.build`` wires it, minus Kafka (MongoDB is never queried)."""

    settings: Settings
    redis: aioredis.Redis
    mongo: AsyncMongoClient
    profiles: ProfileStore
    hot: HotCache
    worker: ClassifyWorker

    @classmethod
    def create(cls, settings: Settings) -> _Bench:
        mongo = mongo_client(settings)
        db = service_db(mongo, settings, SERVICE_NAME)
        redis = redis_client(settings)
        profiles = ProfileStore(settings, db, redis)
        registry = DeviceRegistry(settings, db, redis, profiles)
        portability = PortabilityStore(settings, db, redis)
        hot = HotCache(settings, redis, profiles, registry, portability)
        classifier = Classifier(
            redis,
            registry,
            portability,
            profiles,
            hot,
            default_engine(),
            default_table(),
            downgrade_prefix=settings.rkey("dg", ""),
        )
        return cls(settings, redis, mongo, profiles, hot, ClassifyWorker(classifier, None))

    async def close(self) -> None:
        await self.redis.aclose()
        await self.mongo.close()


def _profiles(count: int, seed: int) -> list[DeviceProfile]:
    devices = [d for _, d in make_workload(default_engine().table, count * 2, distinct_devices=count, seed=seed) if d]
    seen: dict[str, DeviceProfile] = {}
    for device in devices:
        profile = DeviceProfile(
            brand=device.brand or "",
            model=device.model or "",
            os_name=device.os_name or "",
            os_version=device.os_version or "",
            app_version=device.app_version or "",
            android_version=device.android_version,
            plugin_version=device.plugin_version,
            quick_app_engine_version=device.quick_app_engine_version,
            smart_service_switch=device.smart_info_service,
            rich_media_switch=device.rich_media_display,
        )
        seen.setdefault(profile.packed, profile)
        if len(seen) >= count:
            break
    return list(seen.values())


def _number(i: int) -> str:
    """The i-th registered national number (CMCC 138/139 ranges, spread over 20 million numbers)."""
    return f"{13800000000 + i * 2:011d}"


async def _lookup_comparison(components: _Bench, batch: int, rounds: int = 50) -> dict[str, float]:
    """Milliseconds for one batch look-up under three encodings (median of ``rounds``)."""
    redis = components.redis
    prefix = components.settings.rkey("enc", "")
    packed = components.profiles.cached_profile(b"1").packed
    numbers = [f"86{_number(i)}" for i in range(batch)]
    pipe = redis.pipeline(transaction=False)
    for n in numbers:
        pipe.set(prefix + "id:" + n, 17)
        pipe.set(prefix + "packed:" + n, packed)
        pipe.hset(prefix + "hash:" + n, mapping={"b": "HUAWEI", "m": "Mate 40 Pro", "o": "HarmonyOS", "a": "11.1.0"})
    await pipe.execute()
    timings: dict[str, list[float]] = {
        "fast_mget_ids_ms": [],
        "mget_ids_ms": [],
        "mget_packed_ms": [],
        "pipeline_hgetall_ms": [],
    }
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            await mget(redis, [(prefix + "id:" + n).encode() for n in numbers])
            timings["fast_mget_ids_ms"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await redis.mget([prefix + "id:" + n for n in numbers])
            timings["mget_ids_ms"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await redis.mget([prefix + "packed:" + n for n in numbers])
            timings["mget_packed_ms"].append(time.perf_counter() - started)
            started = time.perf_counter()
            pipe = redis.pipeline(transaction=False)
            for n in numbers:
                pipe.hgetall(prefix + "hash:" + n)
            await pipe.execute()
            timings["pipeline_hgetall_ms"].append(time.perf_counter() - started)
    finally:
        for kind in ("id:", "packed:", "hash:"):
            await redis.unlink(*[prefix + kind + n for n in numbers])
    return {name: round(statistics.median(values) * 1000, 3) for name, values in timings.items()}


async def _timed(
    worker: ClassifyWorker, polls: list[list[tuple[task_pb2.RecipientBatch, bytes]]]
) -> tuple[float, float, list[float]]:
    """Wall seconds, CPU seconds and per-batch latencies of classifying every poll as the consumer would."""
    latencies: list[float] = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    for poll in polls:
        t0 = time.perf_counter()
        await worker.classify_values(poll)
        latencies.append((time.perf_counter() - t0) / len(poll))
    return time.perf_counter() - started, time.process_time() - cpu_started, latencies


async def _with_provider(
    components: _Bench,
    settings: Settings,
    polls: list[list[tuple[task_pb2.RecipientBatch, bytes]]],
    numbers: int,
    start_id: int,
) -> dict[str, Any]:
    """The same run with a vendor provider consulted on registry misses, its answers already in the Redis cache
    (the steady state: one more MGET per batch for the misses). The simulated vendor's profiles get ids in process,
    so MongoDB is still not touched."""
    provider = SimulatedProvider(hit_rate=0.5, latency_ms=0, seed="bench")
    for offset, profile in enumerate(provider.pool):
        components.profiles.remember(start_id + offset, profile)
    await components.redis.hset(
        components.profiles.hash_key, mapping={str(start_id + i): p.packed for i, p in enumerate(provider.pool)}
    )
    classifier = components.worker.classifier
    classifier.provider = ProviderCache(settings, components.redis, components.profiles, provider)
    try:
        for poll in polls:  # fill the provider cache (not timed)
            await components.worker.classify_values(poll)
        asked = provider.numbers_asked
        elapsed, cpu, _ = await _timed(components.worker, polls)
        return {
            "numbers_per_s": round(numbers / elapsed),
            "numbers_per_cpu_s": round(numbers / cpu),
            "numbers_asked_to_vendor_in_timed_run": provider.numbers_asked - asked,
        }
    finally:
        classifier.provider = None


async def bench_classify_async(
    n_devices: int = 1_000_000,
    batch: int = 500,
    *,
    numbers: int = 200_000,
    profiles: int = 3_000,
    per_poll: int = 50,
    settings: Settings | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    if n_devices <= 0 or batch <= 0 or numbers <= 0:
        raise ValueError("n_devices, batch and numbers must be positive")
    base = settings or Settings()
    namespace = "b" + uuid.uuid4().hex[:5]  # as long as the default "magpie": keys of production length
    settings = replace(base, topic_prefix=namespace + ".", mongodb_db=namespace)
    components = _Bench.create(settings)
    redis = components.redis
    rng = random.Random(seed)
    try:
        pool = _profiles(profiles, seed)
        for profile_id, profile in enumerate(pool, start=1):
            components.profiles.remember(profile_id, profile)
        await redis.hset(components.profiles.hash_key, mapping={str(i): p.packed for i, p in enumerate(pool, 1)})

        memory_before = (await redis.info("memory"))["used_memory"]
        started = time.perf_counter()
        prefix = settings.rkey("dev", "")
        for start in range(0, n_devices, SEED_CHUNK):
            end = min(n_devices, start + SEED_CHUNK)
            await redis.mset({f"{prefix}86{_number(i)}": rng.randint(1, len(pool)) for i in range(start, end)})
        seed_s = time.perf_counter() - started
        memory_after = (await redis.info("memory"))["used_memory"]
        await redis.set(components.hot.marker, 1)

        batches: list[task_pb2.RecipientBatch] = []
        for batch_no in range((numbers + batch - 1) // batch):
            message = task_pb2.RecipientBatch(batch_no=batch_no, batch_count=numbers // batch)
            message.ctx.task_id = "bench-task"
            message.ctx.tenant_id = "bench"
            message.ctx.approved_vendors.extend(["HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO"])
            message.ctx.fallback = common_pb2.FALLBACK_SMS
            for index in range(batch_no * batch, min(numbers, (batch_no + 1) * batch)):
                draw = rng.random()
                if draw < 0.85:
                    mobile = _number(rng.randrange(n_devices))
                elif draw < 0.95:
                    mobile = f"{18900000000 + rng.randrange(10**8):011d}"
                else:
                    mobile = f"1380013{rng.randrange(1000):03d}"  # 10 digits
                message.recipients.add(index=index, mobile=mobile, params={"name": "x", "code": str(index)})
            batches.append(message)

        worker = components.worker
        await worker.classify_batch(batches[0])  # warm the verdict cache path once
        # As the consumer hands them over: the serialised records of one poll, in groups of ``per_poll``.
        records = [(message, message.SerializeToString()) for message in batches]
        polls = [records[start : start + per_poll] for start in range(0, len(records), per_poll)]
        elapsed, cpu, latencies = await _timed(worker, polls)
        routes: dict[str, int] = {}
        for message in batches[:20]:
            for recipient in (await worker.classify_batch(message)).recipients:
                name = common_pb2.Route.Name(recipient.route)
                routes[name] = routes.get(name, 0) + 1
        with_provider = await _with_provider(components, settings, polls, numbers, start_id=len(pool) + 1)
        lookups = await _lookup_comparison(components, batch)
        latencies.sort()
        return {
            "n_devices": n_devices,
            "batch": batch,
            "numbers": numbers,
            "distinct_profiles": len(pool),
            "numbers_per_s": round(numbers / elapsed),
            "numbers_per_cpu_s": round(numbers / cpu),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "batch_ms_p50": round(latencies[len(latencies) // 2] * 1000, 3),
            "batch_ms_p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
            "seed_s": round(seed_s, 2),
            "seed_numbers_per_s": round(n_devices / seed_s),
            "redis_bytes_per_number": round((memory_after - memory_before) / n_devices, 1),
            "redis_mb_per_million": round((memory_after - memory_before) / n_devices, 1),
            "with_provider_cache": with_provider,
            "batch_lookup": lookups,
            "route_mix_sample": routes,
        }
    finally:
        cursor_keys = [k async for k in redis.scan_iter(match=namespace + ".*", count=10_000)]
        for start in range(0, len(cursor_keys), 10_000):
            await redis.unlink(*cursor_keys[start : start + 10_000])
        await components.close()


def bench_classify(n_devices: int = 1_000_000, batch: int = 500, **options: Any) -> dict[str, Any]:
    """Synchronous entry point for ``make bench`` (see :func:`bench_classify_async` for the options)."""
    return asyncio.run(bench_classify_async(n_devices, batch, **options))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(bench_classify(*args), indent=2))
