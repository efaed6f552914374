"""Interned device profiles: every distinct :class:`DeviceProfile` gets a small, permanent integer id.

The registry stores, per number, only the id of its profile (see ``registry``): Redis keeps small integers as
shared objects, so a number costs little more than its key. Ids are allocated once and never reused or
reassigned, so an id read from Redis means the same profile in every process forever, and the in-process
caches (id -> profile -> capability Device -> verdict) never go stale.

Storage
- MongoDB ``profiles``: ``{_id: <int id>, p: <packed profile>}`` with a unique index on ``p`` (the durable truth);
  ``counters`` ``{_id: "profile", seq}`` hands out id ranges ($inc, so replicas never collide).
- Redis hash ``rkey("devprof")``: id -> packed profile (the hot copy, reloaded from MongoDB when Redis is empty).
- In process: packed -> id and id -> profile dicts.

Allocation race: two importers may reserve different ids for the same new profile; the unique index on ``p``
lets exactly one insert win, the loser re-reads the winner's id (its reserved id is simply never used).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from magpie_common.config import Settings
from magpie_number_resolver.capability import Device
from magpie_number_resolver.devices import DeviceProfile, unpack

IN_CHUNK = 100  # $in lists stay short (the embedded MongoDB slows down on long ones)
DUPLICATE_KEY = 11000


class ProfileStore:
    """Id allocation and resolution of device profiles (MongoDB durable, Redis hot, process cache)."""

    def __init__(self, settings: Settings, db: AsyncDatabase, redis: aioredis.Redis) -> None:
        self.db = db
        self.redis = redis
        self.collection = db["profiles"]
        self.counters = db["counters"]
        self.hash_key = settings.rkey("devprof")
        self._ids: dict[str, int] = {}  # packed -> id
        self._profiles: dict[bytes, DeviceProfile] = {}  # id as Redis returns it (b"17") -> profile
        self._devices: dict[bytes, Device] = {}

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("p", unique=True, name="packed_unique")

    # ------------------------------------------------------------------------------------------ allocation

    async def ids_for(self, profiles: Iterable[DeviceProfile]) -> dict[str, int]:
        """packed -> id for every profile, allocating (durably, in MongoDB and Redis) the ones never seen."""
        wanted = {p.packed: p for p in profiles}
        result = {packed: self._ids[packed] for packed in wanted if packed in self._ids}
        missing = [packed for packed in wanted if packed not in result]
        if not missing:
            return result
        known = await self._find_by_packed(missing)
        fresh = [packed for packed in missing if packed not in known]
        if fresh:
            known.update(await self._allocate(fresh))
        # Publish to Redis before any number references these ids (idempotent; also repairs a flushed hash).
        await self.redis.hset(self.hash_key, mapping={str(i): packed for packed, i in known.items()})
        for packed, profile_id in known.items():
            self.remember(profile_id, wanted[packed])
        result.update(known)
        return result

    async def _find_by_packed(self, packed: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(packed), IN_CHUNK):
            chunk = packed[start : start + IN_CHUNK]
            async for doc in self.collection.find({"p": {"$in": chunk}}):
                found[doc["p"]] = int(doc["_id"])
        return found

    async def _reserve(self, count: int) -> int:
        """Reserve ``count`` consecutive ids; returns the first. Concurrent first-time upserts of the counter may
        fail with a duplicate key (or, on some servers, return nothing): the counter then exists, so retry."""
        for _ in range(10):
            try:
                counter = await self.counters.find_one_and_update(
                    {"_id": "profile"},
                    {"$inc": {"seq": count}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if counter is not None:
                return int(counter["seq"]) - count + 1
        raise RuntimeError("could not reserve profile ids (counter upsert kept failing)")

    async def _allocate(self, fresh: list[str]) -> dict[str, int]:
        first = await self._reserve(len(fresh))
        docs = [{"_id": first + offset, "p": packed} for offset, packed in enumerate(fresh)]
        allocated = {doc["p"]: doc["_id"] for doc in docs}
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            lost = [docs[error["index"]]["p"] for error in errors]
            winners = await self._find_by_packed(lost)
            if len(winners) != len(lost):
                raise RuntimeError("profile allocation lost a race but the winner is not readable") from exc
            allocated.update(winners)
        return allocated

    # ------------------------------------------------------------------------------------------ resolution

    def remember(self, profile_id: int, profile: DeviceProfile) -> None:
        """Put a known (id, profile) pair into the process cache."""
        self._ids[profile.packed] = profile_id
        key = str(profile_id).encode()
        self._profiles[key] = profile
        self._devices[key] = profile.to_device()

    def cached_device(self, profile_id: bytes) -> Device | None:
        return self._devices.get(profile_id)

    def cached_profile(self, profile_id: bytes) -> DeviceProfile | None:
        return self._profiles.get(profile_id)

    async def resolve(self, ids: Iterable[bytes]) -> None:
        """Make sure every id is in the process cache (Redis hash first, MongoDB for the rest)."""
        missing = sorted({i for i in ids if i not in self._profiles})
        if not missing:
            return
        values = await self.redis.hmget(self.hash_key, missing)
        still: list[int] = []
        for profile_id, packed in zip(missing, values, strict=True):
            if packed is None:
                still.append(int(profile_id))
            else:
                self.remember(int(profile_id), unpack(packed.decode()))
        if not still:
            return
        repaired: dict[str, str] = {}
        for start in range(0, len(still), IN_CHUNK):
            async for doc in self.collection.find({"_id": {"$in": still[start : start + IN_CHUNK]}}):
                self.remember(int(doc["_id"]), unpack(doc["p"]))
                repaired[str(doc["_id"])] = doc["p"]
        if repaired:
            await self.redis.hset(self.hash_key, mapping=repaired)

    async def load_all(self) -> int:
        """Fill the process cache from the Redis hash (at start-up); returns the number of profiles."""
        count = 0
        async for raw_id, packed in self.redis.hscan_iter(self.hash_key, count=5000):
            if raw_id not in self._profiles:
                self.remember(int(raw_id), unpack(packed.decode()))
            count += 1
        return count

    async def reload_redis(self) -> int:
        """Copy every profile from MongoDB into the Redis hash (after Redis lost its data)."""
        count = 0
        batch: dict[str, str] = {}
        async for doc in self.collection.find({}, batch_size=5000):
            batch[str(doc["_id"])] = doc["p"]
            count += 1
            if len(batch) >= 5000:
                await self.redis.hset(self.hash_key, mapping=batch)
                batch = {}
        if batch:
            await self.redis.hset(self.hash_key, mapping=batch)
        return count
