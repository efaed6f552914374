"""Link storage: MongoDB (``links``, the durable record) and Redis (the hot copy the edge reads first).

Writes are batched (one ``insert_many`` per batch, one Redis pipeline per batch). ``insert_many`` with
``ordered=False`` is the fast bulk path; a duplicate-key error on a code means the code already exists, and the owner
of the existing document tells whether it is this very recipient (a redelivered batch: nothing to do) or someone else
(a collision: the minter re-derives the code). A code's owner never changes after insertion, so redelivery always
reaches the same codes. The only later changes are the limits of resolution-task links (``expires_at`` and a group
link's ``max_resolutions``, raised with ``$max`` by :mod:`magpie_shortlink.resolution_links`), after which
:meth:`LinkStore.refresh` rewrites the hot copies; a re-warm from MongoDB never overwrites an existing hot copy
(``SET NX``), so a lookup that read the document just before such a change cannot put the old limits back.
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
# The next ordinal of a group link's counted resolutions, or 0 once the budget (ARGV[1]) is spent; the counter is
# never incremented past the budget. ARGV[2]: the counter's lifetime (ms), set when it is created.
_CLAIM_COUNTED = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


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

    async def refresh(self, records: Sequence[LinkRecord]) -> None:
        """After a change of the limits of stored links: rewrite their hot copies (a link expired no more is hot
        again) and let their resolution state live as long as they do (the first-resolution marker; a group
        link's counters, see :meth:`counter_ttl_ms`). Raises ``RedisError``: the caller retries."""
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                ttl = record.ttl_ms(now)
                if ttl > 0:
                    pipe.set(self.link_key(record.code), record.to_cache(), px=ttl)
                    pipe.pexpire(self.resolved_key(record.code), ttl)
                else:
                    pipe.delete(self.link_key(record.code))
                if record.group:
                    pipe.pexpire(self.counted_key(record.code), self.counter_ttl_ms(record))
                    pipe.pexpire(self.returned_key(record.code), self.counter_ttl_ms(record))
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
                await self.redis.set(self.link_key(code), record.to_cache(), px=ttl, nx=True)
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
        first, so a broker hiccup does not eat the budget; otherwise the counter hands out the next one. The counter
        never moves past the budget (refused resolutions leave it alone), so a budget raised later
        (:mod:`magpie_shortlink.resolution_links`) is available in full at once. It lives as long as the link plus
        the expired-link retention, so a link extended after it expired keeps its count. Redis is the counter: a
        Redis that lost its data restarts the count (the ordinals, hence the billable event ids, repeat and are
        de-duplicated downstream, so nothing is billed twice). Raises ``RedisError`` when Redis is down: a group
        link is not resolved without its counter.
        """
        returned = await self.redis.lpop(self.returned_key(record.code))
        if returned is not None:
            return int(returned)
        keep_ms = self.counter_ttl_ms(record)
        ordinal = int(
            await self.redis.eval(_CLAIM_COUNTED, 1, self.counted_key(record.code), record.max_resolutions, keep_ms)
        )
        return ordinal if ordinal > 0 else None

    def counter_ttl_ms(self, record: LinkRecord) -> int:
        """How long a group link's counters live: its validity plus the retention of expired links."""
        return max(1, record.ttl_ms(now_ms())) + self.expired_retention_s * 1000

    async def return_counted_resolution(self, record: LinkRecord, ordinal: int) -> None:
        """Give back an ordinal whose resolution event could not be produced (best effort)."""
        key = self.returned_key(record.code)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, ordinal)
                pipe.pexpire(key, self.counter_ttl_ms(record))
                await pipe.execute()
        except RedisError as exc:
            log.warning("counted resolution not returned", extra={"code": record.code, "error": repr(exc)})

    async def confirm_resolution(self, code: str) -> None:
        """The billable event is durable: later resolutions are repeats."""
        try:
            await self.redis.set(self.resolved_key(code), RESOLVED_DONE, xx=True, keepttl=True)
        except RedisError as exc:
            log.warning("redis resolution marker not confirmed", extra={"error": repr(exc)})
