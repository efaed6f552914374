"""The receipt outbox: every receipt is stored before its Kafka offset is committed, then drained by the sender.

Collection ``outbox`` of the dispatcher database, one document per (receipt, callback URL)::

    _id             stable id of the receipt: stable_id("receipt", callback_type, source event id, url_type),
                    so a redelivered record or a duplicate event inserts nothing (insert-if-absent)
    tenant_id, callback_type ("sms" | "shortchain" | "template_status"), url, url_type (0 single | 1 template
    status | 2 batch), aim_url,
    source_event_id, receipt (the receipt object)
    state           "pending" -> "done" | "dead"
    attempts        failed attempts so far (= the envelope's "retry" of the next POST)
    next_at         when the receipt is next due: now (single mode) or the end of its batch window when queued,
                    its retry time after a failure, and the END OF ITS LEASE while a sender instance holds it
    lease_token     the holder of the lease ("" when free); a claim only takes items with ``next_at <= now``,
                    so a leased item is never taken by another instance before its lease ends
    last_error, created_at, updated_at, done_at | dead_at
    expire_at       TTL (sparse): done items are kept MAGPIE_RECEIPT_DONE_RETENTION_S (deduplication of late
                    redeliveries), dead ones MAGPIE_RECEIPT_DEAD_RETENTION_S; pending items never expire

Indexes: ``(state, next_at)`` (the sender's main sweep, the depth gauge, dead items), ``(state, url, next_at)``
(a URL's backlog) and the TTL index; everything else goes by ``_id``. Writes are batched for SecantusDB (fast
insert_many, slow single updates): one unordered insert_many per Kafka partition batch (duplicate keys ignored);
claims and outcomes one bulk write of ``update_many`` by ``_id $in`` per round / flush, in chunks of ``IN_CHUNK``
ids (SecantusDB matches ``$in`` by scanning the list for every candidate document: quadratic in its length).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateMany
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

log = logging.getLogger(__name__)

PENDING = "pending"
DONE = "done"
DEAD = "dead"
DUPLICATE_KEY = 11000
IN_CHUNK = 100


def chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i : i + IN_CHUNK]) for i in range(0, len(ids), IN_CHUNK)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_item(
    *,
    item_id: str,
    tenant_id: str,
    callback_type: str,
    url: str,
    url_type: int,
    aim_url: str,
    source_event_id: str,
    receipt: dict[str, Any],
    now: datetime,
    due_at: datetime,
) -> dict[str, Any]:
    return {
        "_id": item_id,
        "tenant_id": tenant_id,
        "callback_type": callback_type,
        "url": url,
        "url_type": url_type,
        "aim_url": aim_url,
        "source_event_id": source_event_id,
        "receipt": receipt,
        "state": PENDING,
        "attempts": 0,
        "next_at": due_at,
        "lease_token": "",
        "last_error": "",
        "created_at": now,
        "updated_at": now,
    }


class Outbox:
    def __init__(self, collection: AsyncCollection, *, done_retention_s: int, dead_retention_s: int) -> None:
        self.collection = collection
        self.done_retention = timedelta(seconds=done_retention_s)
        self.dead_retention = timedelta(seconds=dead_retention_s)

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("state", ASCENDING), ("next_at", ASCENDING)], name="due"),
                IndexModel([("state", ASCENDING), ("url", ASCENDING), ("next_at", ASCENDING)], name="url_due"),
                IndexModel([("expire_at", ASCENDING)], name="ttl", expireAfterSeconds=0, sparse=True),
            ]
        )

    async def insert(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert-if-absent; returns the items that were new (the others already exist: duplicates)."""
        if not items:
            return []
        try:
            await self.collection.insert_many(list(items), ordered=False)
            return list(items)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            duplicates = {e["index"] for e in errors}
            return [item for i, item in enumerate(items) if i not in duplicates]

    async def due_between(self, lo: datetime, hi: datetime, *, limit: int) -> list[dict[str, Any]]:
        """Pending items with ``lo <= next_at < hi`` (one bounded slice of the due index), oldest first."""
        query = {"state": PENDING, "next_at": {"$gte": lo, "$lt": hi}}
        return await self.collection.find(query).sort("next_at", ASCENDING).limit(limit).to_list(None)

    async def url_due_between(self, url: str, lo: datetime, hi: datetime, *, limit: int) -> list[dict[str, Any]]:
        """The same for one callback URL (its backlog)."""
        query = {"state": PENDING, "url": url, "next_at": {"$gte": lo, "$lt": hi}}
        return await self.collection.find(query).sort("next_at", ASCENDING).limit(limit).to_list(None)

    async def claim(
        self, docs: Sequence[dict[str, Any]], now: datetime, lease_s: float, token: str
    ) -> list[dict[str, Any]]:
        """Lease the still-due items among ``docs`` to ``token`` (one bulk write); returns those it got."""
        if not docs:
            return []
        ids = [d["_id"] for d in docs]
        lease_end = now + timedelta(seconds=lease_s)
        claim = {"$set": {"next_at": lease_end, "lease_token": token}}
        ops = [
            UpdateMany({"_id": {"$in": part}, "state": PENDING, "next_at": {"$lte": now}}, claim)
            for part in chunks(ids)
        ]
        result = await self.collection.bulk_write(ops, ordered=False)
        if result.matched_count == len(ids):
            mine = set(ids)  # no other instance got in between: every one is ours
        else:
            mine = set()
            for part in chunks(ids):
                query = {"_id": {"$in": part}, "lease_token": token, "state": PENDING}
                mine.update([d["_id"] async for d in self.collection.find(query, {"_id": 1})])
        claimed = []
        for doc in docs:
            if doc["_id"] in mine:
                claimed.append({**doc, "next_at": lease_end, "lease_token": token})
        return claimed

    async def release(self, ids: Sequence[str], token: str, now: datetime) -> None:
        """Give back leased items that were not POSTed (graceful stop): due again at once."""
        ops = [
            UpdateMany(
                {"_id": {"$in": part}, "lease_token": token, "state": PENDING},
                {"$set": {"next_at": now, "lease_token": ""}},
            )
            for part in chunks(ids)
        ]
        if ops:
            await self.collection.bulk_write(ops, ordered=False)

    async def apply(
        self,
        now: datetime,
        *,
        done: Sequence[str],
        retry: dict[tuple[int, float, str], list[str]],
        dead: dict[tuple[int, str], list[str]],
    ) -> None:
        """Record outcomes in one bulk write: done ids, retries by (attempts, delay, error), dead ones."""
        ops: list[UpdateMany] = []
        if done:
            done_set = {"state": DONE, "done_at": now, "lease_token": "", "expire_at": now + self.done_retention}
            ops.extend(
                UpdateMany({"_id": {"$in": part}, "state": PENDING}, {"$set": done_set}) for part in chunks(done)
            )
        for (attempts, delay_s, error), ids in retry.items():
            retry_set = {
                "attempts": attempts,
                "next_at": now + timedelta(seconds=delay_s),
                "lease_token": "",
                "last_error": error,
                "updated_at": now,
            }
            ops.extend(
                UpdateMany({"_id": {"$in": part}, "state": PENDING}, {"$set": retry_set}) for part in chunks(ids)
            )
        for (attempts, error), ids in dead.items():
            dead_set = {
                "state": DEAD,
                "attempts": attempts,
                "dead_at": now,
                "lease_token": "",
                "last_error": error,
                "updated_at": now,
                "expire_at": now + self.dead_retention,
            }
            ops.extend(UpdateMany({"_id": {"$in": part}, "state": PENDING}, {"$set": dead_set}) for part in chunks(ids))
        if ops:
            await self.collection.bulk_write(ops, ordered=False)

    async def count(self, state: str, *, limit: int = 0) -> int:
        return await self.collection.count_documents({"state": state}, **({"limit": limit} if limit else {}))

    async def find_items(self, *, state: str, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Items in a state (latest first), e.g. a tenant's dead receipts with their last error."""
        query: dict[str, Any] = {"state": state}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        return await self.collection.find(query).sort("next_at", -1).limit(limit).to_list(None)
