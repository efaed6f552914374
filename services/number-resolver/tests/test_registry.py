"""Registry internals on the real MongoDB and Redis: profile interning, the fast MGET, the refill, the benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ResponseError

from magpie_common.config import Settings
from magpie_common.storage import mongo_client, redis_client, service_db
from magpie_number_resolver.bench import bench_classify_async
from magpie_number_resolver.devices import build_profile
from magpie_number_resolver.fast_mget import mget, pack_mget
from magpie_number_resolver.hotcache import HotCache
from magpie_number_resolver.mongo_bulk import upsert_documents
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.registry import DeviceRegistry

pytestmark = pytest.mark.integration

HUAWEI = {"brand": "HUAWEI", "model": "Mate 40 Pro", "os_name": "HarmonyOS", "os_version": "3.0"}


class Stores:
    def __init__(self, settings: Settings) -> None:
        self.mongo = mongo_client(settings)
        self.db = service_db(self.mongo, settings, "number-resolver")
        self.redis = redis_client(settings)
        self.profiles = ProfileStore(settings, self.db, self.redis)
        self.registry = DeviceRegistry(settings, self.db, self.redis, self.profiles)
        self.portability = PortabilityStore(settings, self.db, self.redis)
        self.hot = HotCache(settings, self.redis, self.profiles, self.registry, self.portability)

    async def close(self) -> None:
        await self.hot.close()
        await self.redis.aclose()
        await self.mongo.close()


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    result = Stores(settings)
    await result.registry.ensure_indexes()
    try:
        yield result
    finally:
        await result.close()


async def test_concurrent_allocation_of_one_new_profile_agrees_on_one_id(settings: Settings, stores: Stores) -> None:
    others = [Stores(settings) for _ in range(3)]
    try:
        profiles = [build_profile({**HUAWEI, "app_version": f"11.1.{i}.1"}) for i in range(5)]
        answers = await asyncio.gather(*(s.profiles.ids_for(profiles) for s in [stores, *others]))
        assert all(answer == answers[0] for answer in answers)
        assert len(set(answers[0].values())) == 5
        assert await stores.profiles.collection.count_documents({}) == 5
        # the Redis hash maps every id back to its profile
        for packed, profile_id in answers[0].items():
            assert await stores.redis.hget(stores.profiles.hash_key, str(profile_id)) == packed.encode()
        # a later allocation continues after every reserved id (losers' ids are never reused)
        extra = build_profile({**HUAWEI, "app_version": "12.0.0.1"})
        new_id = (await stores.profiles.ids_for([extra]))[extra.packed]
        assert new_id > max(answers[0].values())
    finally:
        for other in others:
            await other.close()


async def test_unknown_ids_resolve_from_redis_then_mongodb(settings: Settings, stores: Stores) -> None:
    profile = build_profile({**HUAWEI, "app_version": "11.1.1.400"})
    profile_id = (await stores.profiles.ids_for([profile]))[profile.packed]
    key = str(profile_id).encode()
    fresh = ProfileStore(settings, stores.db, stores.redis)  # another process: empty cache
    assert fresh.cached_device(key) is None
    await fresh.resolve([key])
    assert fresh.cached_profile(key) == profile
    await stores.redis.delete(stores.profiles.hash_key)  # Redis lost the table: MongoDB repairs it
    third = ProfileStore(settings, stores.db, stores.redis)
    await third.resolve([key])
    assert third.cached_device(key) == profile.to_device()
    assert await stores.redis.hget(stores.profiles.hash_key, key) == profile.packed.encode()


async def test_fast_mget_matches_redis_mget(stores: Stores) -> None:
    redis = stores.redis
    await redis.mset({"nr-test:a": "1", "nr-test:b": "\x1f二"})
    keys = [b"nr-test:a", b"nr-test:missing", b"nr-test:b"]
    assert await mget(redis, keys) == await redis.mget(keys) == [b"1", None, "\x1f二".encode()]
    assert await mget(redis, []) == []
    assert pack_mget([b"k"]) == b"*2\r\n$4\r\nMGET\r\n$1\r\nk\r\n"
    await redis.hset("nr-test:h", "f", "v")
    assert await mget(redis, [b"nr-test:h"]) == [None]  # MGET answers nil for other types
    # the pool's connections stay usable after a server error
    with pytest.raises(ResponseError):
        await redis.execute_command("NOT-A-COMMAND")
    assert await mget(redis, [b"nr-test:a"]) == [b"1"]
    await redis.delete("nr-test:a", "nr-test:b", "nr-test:h")


async def test_fill_restores_everything_without_overwriting_newer_values(settings: Settings, stores: Stores) -> None:
    old = build_profile({**HUAWEI, "app_version": "10.0.0.1"})
    new = build_profile({**HUAWEI, "app_version": "11.1.1.400"})
    await stores.registry.upsert_many([("8613800138000", old), ("8613800138001", old)])
    await stores.portability.upsert_many([("8613800138000", "CUCC")])
    assert not await stores.hot.is_warm()
    await stores.hot.ensure()
    assert await stores.hot.is_warm()
    ids = await stores.profiles.ids_for([old, new])

    lost = [stores.hot.marker, stores.registry.key("8613800138000"), stores.portability.key("8613800138000")]
    await stores.redis.delete(*lost)
    await stores.redis.set(stores.registry.key("8613800138001"), ids[new.packed])  # written "during" the fill
    counts = await stores.hot.reload()
    assert counts == {"profiles": 2, "devices": 2, "ported": 1}
    assert await stores.redis.get(stores.registry.key("8613800138000")) == str(ids[old.packed]).encode()
    assert await stores.redis.get(stores.registry.key("8613800138001")) == str(ids[new.packed]).encode()  # kept
    assert await stores.redis.get(stores.portability.key("8613800138000")) == b"CUCC"
    assert await stores.hot.is_warm()


async def test_bench_classify_runs_and_cleans_up(settings: Settings, stores: Stores) -> None:
    result = await bench_classify_async(2_000, 100, numbers=2_000, profiles=200, settings=settings)
    assert result["numbers"] == 2_000 and result["batch"] == 100
    assert result["numbers_per_s"] > 1_000
    assert 30 < result["redis_bytes_per_number"] < 400
    mix = result["route_mix_sample"]
    assert mix["ROUTE_SMART"] > 0 and mix["ROUTE_DEGRADED"] > 0 and mix["ROUTE_INVALID"] > 0
    assert set(result["batch_lookup"]) == {"fast_mget_ids_ms", "mget_ids_ms", "mget_packed_ms", "pipeline_hgetall_ms"}
    leftovers = [k async for k in stores.redis.scan_iter(match="b*.dev:*", count=10_000)]
    assert leftovers == []


async def test_upsert_documents_inserts_new_and_replaces_fields_of_existing(stores: Stores) -> None:
    collection = stores.db["bulk_test"]
    await collection.insert_one({"_id": "a", "v": 1, "keep": "x"})
    docs = [{"_id": key, "v": 2} for key in ("a", "b")] + [{"_id": f"n{i}", "v": i} for i in range(250)]
    await upsert_documents(collection, docs)
    assert await collection.find_one({"_id": "a"}) == {"_id": "a", "v": 2, "keep": "x"}  # $set of given fields
    assert await collection.find_one({"_id": "b"}) == {"_id": "b", "v": 2}
    assert await collection.count_documents({}) == 252
    # two writers racing on the same new documents: both succeed, every document exists once
    race = [{"_id": f"r{i}", "v": i} for i in range(300)]
    await asyncio.gather(upsert_documents(collection, race), upsert_documents(collection, race))
    assert await collection.count_documents({"_id": {"$regex": "^r"}}) == 300
    await upsert_documents(collection, [])
