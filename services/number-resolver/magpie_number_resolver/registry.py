"""The device registry: msisdn -> handset profile, durable in MongoDB and hot in Redis.

MongoDB (``settings.db_name("number-resolver")``, collection ``devices``, ``_id`` = msisdn) keeps the full record:
the device fields, ``profile`` (the interned profile id, see ``profiles``), ``updated_at``.

Redis keeps one string per number, ``rkey("dev", msisdn)`` -> the decimal profile id (e.g. ``"17"``), and the
profile table once, in the hash ``rkey("devprof")``. The worker reads a whole batch with ONE ``MGET`` and resolves
ids through an in-process cache (profiles are immutable, so the cache never goes stale).

Encoding choice, measured on redis-server 7.0.15 (jemalloc, 64-bit) with 1,000,000 numbers under keys of the
production length (``magpie.dev:8613800138000``), ``used_memory`` delta:

=========================================================  ================  ==========
encoding                                                   bytes per number  MB per 1M
=========================================================  ================  ==========
profile id as a string value, ids < 10,000 (this module)        72.4             72
profile id as a string value, ids >= 10,000                     88.4             88
packed profile string per number (~53 bytes)                    152.5            152
hash per number, 6 short fields (listpack)                      168.4            168
=========================================================  ================  ==========

**Per 10,000,000 numbers: about 724 MB of Redis memory** (72.4 B each; 884 MB once profile ids reach 10,000, and
``make bench`` reports the figure of the run), plus one MongoDB record per number (the durable copy, not read on
the hot path).

Redis stores integer strings below 10,000 as shared objects, so a number costs its key and dict entry only; the
profile table adds ~(profile length + 60) bytes per distinct profile (a few thousand in practice). Shared
integers are disabled under an LRU/LFU ``maxmemory-policy``, which the registry must not use anyway (an evicted key
would read as "unknown device"): give it ``noeviction``.

Look-up of one batch of 500 numbers, one round trip on loopback, redis-py 8.1 + hiredis 3.5, median of 50
(``bench._lookup_comparison``): ``fast_mget`` of id strings 1.2-1.3 ms, redis-py ``mget`` of id strings 1.5-1.7 ms,
redis-py ``mget`` of packed strings 1.5-1.7 ms, pipeline of 500 ``HGETALL`` 12-15 ms. MGET of small values wins by
an order of magnitude over per-number hashes; the worker reads device ids AND portability overrides of a batch in
that one MGET.

Writes go to MongoDB first (bulk upserts in chunks, see ``mongo_bulk``), then Redis (one MSET per chunk):
MongoDB is the truth, and a Redis that lost its data is refilled from it (``hotcache.HotCache``).

SHA1 index: every record also stores ``sha1`` (hex SHA1 of the msisdn, ``devices.sha1_of``) under an index, so the
capability check can answer numbers sent hashed (KooMessage ``encryption_alg`` SHA1) with one indexed query per
call (``msisdns_of_sha1``). Records written before the field existed are given it once by ``ensure_indexes`` (a
marker in ``registry_meta`` records that the backfill ran). A hash of a number the registry does not know has no
match: like an unknown number in the plain check, it is unsupported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from magpie_common.config import Settings
from magpie_number_resolver.devices import ALL_FIELDS, DeviceProfile, sha1_of
from magpie_number_resolver.mongo_bulk import upsert_documents
from magpie_number_resolver.profiles import ProfileStore

WRITE_CHUNK = 2000
SHA1_IN_SLICE = 100  # hashes per $in (long $in lists are slow on the embedded server)
SHA1_BACKFILL_DONE = "sha1_backfill"


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    msisdn: str
    profile: DeviceProfile
    profile_id: int
    updated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"msisdn": self.msisdn, **self.profile.as_dict()}
        body["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return body


class DeviceRegistry:
    """Bulk and single-number writes, reads and deletes of device records."""

    def __init__(self, settings: Settings, db: AsyncDatabase, redis: aioredis.Redis, profiles: ProfileStore) -> None:
        self.settings = settings
        self.collection = db["devices"]
        self.meta = db["registry_meta"]
        self.redis = redis
        self.profiles = profiles
        self._prefix = settings.rkey("dev", "")

    def key(self, msisdn: str) -> str:
        """The Redis key of a number (``settings.rkey("dev", msisdn)``)."""
        return self._prefix + msisdn

    async def ensure_indexes(self) -> None:
        await self.profiles.ensure_indexes()
        await self.collection.create_index("sha1", name="sha1")
        await self.backfill_sha1()

    async def backfill_sha1(self, chunk: int = WRITE_CHUNK) -> int:
        """Give ``sha1`` to the records stored before the SHA1 index existed (once; later writes carry it)."""
        if await self.meta.find_one({"_id": SHA1_BACKFILL_DONE}) is not None:
            return 0
        count = 0
        ops: list[UpdateOne] = []
        async for doc in self.collection.find({"sha1": {"$exists": False}}, {"_id": 1}, batch_size=chunk):
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"sha1": sha1_of(doc["_id"])}}))
            if len(ops) >= chunk:
                await self.collection.bulk_write(ops, ordered=False)
                count += len(ops)
                ops = []
        if ops:
            await self.collection.bulk_write(ops, ordered=False)
            count += len(ops)
        await self.meta.update_one(
            {"_id": SHA1_BACKFILL_DONE}, {"$set": {"at": datetime.now(UTC), "records": count}}, upsert=True
        )
        return count

    async def msisdns_of_sha1(self, hashes: Sequence[str]) -> dict[str, str]:
        """hex SHA1 (lower case) -> msisdn of the registered numbers among ``hashes`` (unknown hashes are absent)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), SHA1_IN_SLICE):
            cursor = self.collection.find({"sha1": {"$in": wanted[start : start + SHA1_IN_SLICE]}}, {"sha1": 1})
            async for doc in cursor:
                found[doc["sha1"]] = doc["_id"]
        return found

    async def upsert_many(self, rows: Sequence[tuple[str, DeviceProfile]]) -> int:
        """Write (msisdn, profile) rows: MongoDB bulk upserts then a Redis pipeline, in chunks. Last row wins."""
        latest: dict[str, DeviceProfile] = {}
        for msisdn, profile in rows:
            latest.pop(msisdn, None)  # keep input order of the last occurrence
            latest[msisdn] = profile
        items = list(latest.items())
        for start in range(0, len(items), WRITE_CHUNK):
            await self._write_chunk(items[start : start + WRITE_CHUNK])
        return len(items)

    async def _write_chunk(self, items: list[tuple[str, DeviceProfile]]) -> None:
        ids = await self.profiles.ids_for(profile for _, profile in items)
        now = datetime.now(UTC)
        await upsert_documents(
            self.collection,
            [
                {
                    "_id": msisdn,
                    **profile.as_dict(),
                    "profile": ids[profile.packed],
                    "sha1": sha1_of(msisdn),
                    "updated_at": now,
                }
                for msisdn, profile in items
            ],
        )
        await self.redis.mset({self._prefix + msisdn: ids[profile.packed] for msisdn, profile in items})

    async def get(self, msisdn: str) -> DeviceRecord | None:
        doc = await self.collection.find_one({"_id": msisdn})
        if doc is None:
            return None
        fields = {name: doc.get(name) for name in ALL_FIELDS}  # stored values were validated
        profile = DeviceProfile(**fields, observed=bool(doc.get("observed", False)))
        return DeviceRecord(msisdn, profile, int(doc["profile"]), doc.get("updated_at"))

    async def delete(self, msisdn: str) -> bool:
        result = await self.collection.delete_one({"_id": msisdn})
        removed = await self.redis.delete(self.key(msisdn))
        return bool(result.deleted_count or removed)

    async def reload_redis(self, chunk: int = 5000) -> int:
        """Copy every number from MongoDB into Redis without overwriting newer values (SET NX)."""
        count = 0
        pipe = self.redis.pipeline(transaction=False)
        pending = 0
        async for doc in self.collection.find({}, {"profile": 1}, batch_size=chunk):
            pipe.set(self._prefix + doc["_id"], int(doc["profile"]), nx=True)
            pending += 1
            count += 1
            if pending >= chunk:
                await pipe.execute()
                pending = 0
        if pending:
            await pipe.execute()
        return count
