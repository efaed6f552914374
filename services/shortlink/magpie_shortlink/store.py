"""Link storage: MongoDB (``links``, the durable record) and Redis (the hot copy the edge reads first).

Writes are batched (one ``insert_many`` per batch, one Redis pipeline per batch). ``insert_many`` with
``ordered=False`` is the fast bulk path; a duplicate-key error on a code means the code already exists, and the owner
of the existing document tells whether it is this very recipient (a redelivered batch: nothing to do) or someone else
(a collision: the minter re-derives the code). Documents are never updated after insertion, so a code's owner never
changes and redelivery always reaches the same codes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure
from redis.exceptions import RedisError

from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_shortlink.links import LinkOwner, LinkRecord
from magpie_shortlink.metrics import LOOKUPS

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
INDEX_CONFLICTS = (85, 86)  # IndexOptionsConflict (MongoDB), IndexKeySpecsConflict (some emulators)
RESOLVED_PENDING = b"P"  # first resolution claimed, its billable event not yet acknowledged by Kafka
RESOLVED_DONE = b"D"  # the billable event is durable


@dataclass(frozen=True)
class Lookup:
    record: LinkRecord | None
    source: str  # redis | mongo | miss


class LinkStore:
    def __init__(
        self, settings: Settings, db: AsyncDatabase, redis: aioredis.Redis, *, expired_retention_s: int
    ) -> None:
        self.settings = settings
        self.db = db
        self.links = db["links"]
        self.redis = redis
        self.expired_retention_s = expired_retention_s

    def link_key(self, code: str) -> str:
        return self.settings.rkey("link", code)

    def resolved_key(self, code: str) -> str:
        return self.settings.rkey("resolved", code)

    def counted_key(self, code: str) -> str:
        return self.settings.rkey("counted", code)

    def returned_key(self, code: str) -> str:
        return self.settings.rkey("counted-returned", code)

    async def ensure_indexes(self) -> None:
        """TTL index on ``expires_at``: expired links answer 410 for the retention period, then disappear."""
        try:
            await self.links.create_index(
                "expires_at", name="expires_at_ttl", expireAfterSeconds=self.expired_retention_s
            )
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICTS:
                raise
            # The retention changed since the index was created: adjust it in place.
            await self.db.command(
                {
                    "collMod": "links",
                    "index": {"name": "expires_at_ttl", "expireAfterSeconds": self.expired_retention_s},
                }
            )

    # --- minting ---------------------------------------------------------------------------------------------

    async def insert_new(self, records: Sequence[LinkRecord]) -> set[int]:
        """Insert the records; return the positions whose code already existed (duplicate key)."""
        if not records:
            return set()
        try:
            await self.links.insert_many([r.to_document() for r in records], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if other or exc.details.get("writeConcernErrors"):
                raise
            return {int(e["index"]) for e in errors}
        return set()

    async def owners(self, codes: Sequence[str]) -> dict[str, LinkOwner]:
        """The owners of existing codes (codes not found are absent from the result)."""
        result: dict[str, LinkOwner] = {}
        cursor = self.links.find({"_id": {"$in": list(set(codes))}}, {"tenant_id": 1, "task_id": 1, "index": 1})
        async for doc in cursor:
            result[doc["_id"]] = LinkOwner(doc.get("tenant_id", ""), doc.get("task_id", ""), int(doc.get("index", -1)))
        return result

    async def cache(self, records: Sequence[LinkRecord]) -> None:
        """Write the hot copies in one pipeline, each expiring with its link (expired links are not cached)."""
        now = now_ms()
        live = [r for r in records if r.ttl_ms(now) > 0]
        if not live:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in live:
                pipe.set(self.link_key(record.code), record.to_cache(), px=record.ttl_ms(now))
            await pipe.execute()

    # --- edge ------------------------------------------------------------------------------------------------

    async def lookup(self, code: str) -> Lookup:
        """Redis first; on a miss (or Redis trouble) MongoDB, re-warming Redis with a live link."""
        try:
            raw = await self.redis.get(self.link_key(code))
        except RedisError as exc:
            log.warning("redis lookup failed; reading MongoDB", extra={"error": repr(exc)})
            raw = None
        if raw is not None:
            LOOKUPS.labels("redis").inc()
            return Lookup(LinkRecord.from_cache(code, raw), "redis")
        doc = await self.links.find_one({"_id": code})
        if doc is None:
            LOOKUPS.labels("miss").inc()
            return Lookup(None, "miss")
        LOOKUPS.labels("mongo").inc()
        record = LinkRecord.from_document(doc)
        ttl = record.ttl_ms(now_ms())
        if ttl > 0:
            try:
                await self.redis.set(self.link_key(code), record.to_cache(), px=ttl)
            except RedisError as exc:
                log.warning("redis re-warm failed", extra={"error": repr(exc)})
        return Lookup(record, "mongo")

    async def claim_resolution(self, record: LinkRecord) -> bool:
        """Whether this resolution must carry the billable event (the first one, or a retry of it).

        ``SET NX`` makes exactly one caller the first. Until that caller's event is durable the marker stays
        ``P``; a caller that finds ``P`` (the first crashed before producing, or is still producing) sends the
        billable event again under the same stable event id, which consumers deduplicate. Without Redis the
        answer is "billable" for the same reason: the stable id makes a duplicate harmless.
        """
        key = self.resolved_key(record.code)
        ttl = max(1, record.ttl_ms(now_ms()))
        try:
            for _ in range(2):
                if await self.redis.set(key, RESOLVED_PENDING, nx=True, px=ttl):
                    return True
                state = await self.redis.get(key)
                if state is not None:
                    return state == RESOLVED_PENDING
                # The marker expired between the two calls: claim again.
            return True
        except RedisError as exc:
            log.warning("redis resolution marker unavailable; sending the billable event", extra={"error": repr(exc)})
            return True

    async def claim_counted_resolution(self, record: LinkRecord) -> int | None:
        """The ordinal (1..``max_resolutions``) of this resolution of a group link; None once the budget is spent.

        An ordinal handed back by :meth:`return_counted_resolution` (its event could not be produced) is reused
        first, so a broker hiccup does not eat the budget; otherwise ``INCR`` hands out the next one. Redis is the
        counter: a Redis that lost its data restarts the count (the ordinals, hence the billable event ids, repeat
        and are de-duplicated downstream, so nothing is billed twice). Raises ``RedisError`` when Redis is down: a
        group link is not resolved without its counter.
        """
        ttl = max(1, record.ttl_ms(now_ms()))
        returned = await self.redis.lpop(self.returned_key(record.code))
        if returned is not None:
            return int(returned)
        key = self.counted_key(record.code)
        ordinal = int(await self.redis.incr(key))
        if ordinal == 1:
            await self.redis.pexpire(key, ttl)
        return ordinal if ordinal <= record.max_resolutions else None

    async def return_counted_resolution(self, record: LinkRecord, ordinal: int) -> None:
        """Give back an ordinal whose resolution event could not be produced (best effort)."""
        key = self.returned_key(record.code)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, ordinal)
                pipe.pexpire(key, max(1, record.ttl_ms(now_ms())))
                await pipe.execute()
        except RedisError as exc:
            log.warning("counted resolution not returned", extra={"code": record.code, "error": repr(exc)})

    async def confirm_resolution(self, code: str) -> None:
        """The billable event is durable: later resolutions are repeats."""
        try:
            await self.redis.set(self.resolved_key(code), RESOLVED_DONE, xx=True, keepttl=True)
        except RedisError as exc:
            log.warning("redis resolution marker not confirmed", extra={"error": repr(exc)})
