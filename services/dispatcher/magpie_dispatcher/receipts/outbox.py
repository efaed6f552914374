"""The receipt outbox: every receipt is stored before its Kafka offset is committed, then drained by the sender.

The outbox is written per BATCH, not per receipt (on SecantusDB every document written costs 0.5-3 ms). Collection
``outbox`` of the dispatcher database holds one document per (handler batch x callback URL)::

    _id             stable_id("outbox", url, ids of the receipts the batch offered for the URL)
    tenant_id, callback_type ("sms" | "shortchain" | "template_status" | VMS types), url, url_type (0 single |
    1 template status | 2 batch)
    receipts        [{"id": stable receipt id, "source_event_id", "aim_url", "receipt": the receipt object}, ...]
    delivered       ids of the receipts the customer acknowledged (2xx) while the document is not done yet
    size, count     receipts in the document / not yet delivered (what ``count`` sums: pending, dead)
    state           "pending" -> "done" | "dead"
    attempts        failed attempts of its undelivered receipts (= the envelope's "retry" of their next POST)
    next_at         when the document is next due: now (single mode) or the end of its batch window when queued,
                    its retry time after a failure, and the END OF ITS LEASE while a sender instance holds it
    lease_token     the holder of the lease ("" when free); a claim only takes documents with ``next_at <= now``,
                    so a leased document is never taken by another instance before its lease ends
    last_error, created_at, updated_at, done_at | dead_at
    expire_at       TTL (sparse): done documents are kept MAGPIE_RECEIPT_DONE_RETENTION_S, dead ones
                    MAGPIE_RECEIPT_DEAD_RETENTION_S; pending documents never expire

A receipt's stable id is ``stable_id("receipt", callback_type, source event id, url_type)``. Deduplication is by
receipt, through the unique (multikey) index on ``receipts.id``: no two documents hold the same receipt. ``insert``
writes a batch's documents with one unordered insert_many; a document refused because one of its receipts is
already held elsewhere is stripped of the receipts found recorded (one ``$in`` query on that index) and inserted
again. A replay of the same Kafka records, even regrouped differently into handler batches, therefore creates no
second entry, and a receipt and its deduplication record are one write (nothing to adopt after a crash). The records
live as long as their document (TTL below). On SecantusDB this costs a quarter of the former separate id collection
(measured: 0.03 against 0.12 CPU-seconds of the server per 1,000 receipts).

Partial failures: the sender POSTs a claimed document's undelivered receipts (single mode: one POST each; batch
mode: arrays of up to MAGPIE_RECEIPT_MAX_BATCH, possibly joined with other documents' receipts) and records the
document's outcome ONCE all of them are answered: all acknowledged -> ``done`` (one ``update_many`` by ``_id $in``
for all such documents of a flush); otherwise one ``$set`` of the document: the acknowledged ids are added to
``delivered`` and the others retried together (``attempts`` + 1, ``next_at`` = retry time) or ``dead``. A retry
POSTs only the receipts not in ``delivered``. Non-done outcomes are conditional on the writer's lease token.

Writes per handler batch and URL: one document insert and (once delivered) one ``done`` update; a document taken by
the sweep (not handed over in memory) also costs one claim update. Indexes: ``(state, next_at)`` (the sender's main
sweep, the depth gauge, dead documents), ``(state, url, next_at)`` (a URL's backlog), ``tenant_id``, the TTL index
and the unique ``receipts.id``. Bulk updates by ``_id $in`` go in chunks of ``IN_CHUNK`` ids (SecantusDB matches
``$in`` by scanning the list for every candidate document: quadratic in its length).

Upgrading from the layout with a separate ``outbox_ids`` collection: let the outbox drain (no pending documents),
then start this version; ``outbox_ids`` is no longer read and can be dropped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from magpie_common.ids import stable_id

log = logging.getLogger(__name__)

PENDING = "pending"
DONE = "done"
DEAD = "dead"
DUPLICATE_KEY = 11000
IN_CHUNK = 100
GroupKey = tuple[str, str, str, int]  # tenant, callback_type, url, url_type


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
    """One receipt for one URL, as the producers make it; ``documents`` groups them into outbox documents."""
    return {
        "_id": item_id,
        "tenant_id": tenant_id,
        "callback_type": callback_type,
        "url": url,
        "url_type": url_type,
        "aim_url": aim_url,
        "source_event_id": source_event_id,
        "receipt": receipt,
        "created_at": now,
        "next_at": due_at,
    }


def documents(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outbox documents of a batch's items (``new_item``): one per (tenant, callback type, URL, url_type), repeats
    of a receipt id dropped; due at the earliest of their items."""
    groups: dict[GroupKey, dict[str, dict[str, Any]]] = defaultdict(dict)
    for item in items:
        key = (item["tenant_id"], item["callback_type"], item["url"], item["url_type"])
        groups[key].setdefault(item["_id"], item)
    return [new_document(list(members.values())) for members in groups.values()]


def new_document(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    first = items[0]
    created = min(i["created_at"] for i in items)
    return {
        "_id": stable_id("outbox", first["url"], *(i["_id"] for i in items)),
        "tenant_id": first["tenant_id"],
        "callback_type": first["callback_type"],
        "url": first["url"],
        "url_type": first["url_type"],
        "receipts": [
            {"id": i["_id"], "source_event_id": i["source_event_id"], "aim_url": i["aim_url"], "receipt": i["receipt"]}
            for i in items
        ],
        "delivered": [],
        "size": len(items),
        "count": len(items),
        "state": PENDING,
        "attempts": 0,
        "next_at": min(i["next_at"] for i in items),
        "lease_token": "",
        "last_error": "",
        "created_at": created,
        "updated_at": created,
    }


def open_receipts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The receipts of a document not yet acknowledged."""
    delivered = set(doc.get("delivered", ()))
    return [r for r in doc["receipts"] if r["id"] not in delivered]


def receipt_views(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A document as one row per receipt (its own state: ``done`` once acknowledged), for queries and tests."""
    delivered = set(doc.get("delivered", ()))
    rows = []
    for entry in doc["receipts"]:
        state = DONE if entry["id"] in delivered else doc["state"]
        rows.append(
            {
                "_id": entry["id"],
                "doc_id": doc["_id"],
                "tenant_id": doc["tenant_id"],
                "callback_type": doc["callback_type"],
                "url": doc["url"],
                "url_type": doc["url_type"],
                "aim_url": entry.get("aim_url", ""),
                "source_event_id": entry.get("source_event_id", ""),
                "receipt": entry["receipt"],
                "state": state,
                "attempts": doc["attempts"],
                "last_error": doc["last_error"],
                "next_at": doc["next_at"],
                "created_at": doc["created_at"],
            }
        )
    return rows


def _duplicates(exc: BulkWriteError) -> set[int]:
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return {e["index"] for e in errors}


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
                IndexModel([("tenant_id", ASCENDING)], name="tenant"),
                IndexModel([("expire_at", ASCENDING)], name="ttl", expireAfterSeconds=0, sparse=True),
                IndexModel([("receipts.id", ASCENDING)], name="receipt_ids", unique=True),
            ]
        )

    async def insert(self, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write new documents (``documents``), each cut down to its receipts not yet in the outbox; returns the
        documents written (as written). A document left without a receipt is not written.

        One ``insert_many``; the unique index on ``receipts.id`` refuses a document holding a receipt that another
        document already holds (a replay, regrouped or not, or another instance writing the same records). The
        refused documents lose the receipts found recorded and are inserted again (same ``_id``: two writers
        stripping the same document the same way meet on it), until none is refused."""
        pending = [dict(d) for d in docs if d["receipts"]]
        written: list[dict[str, Any]] = []
        while pending:
            try:
                await self.collection.insert_many(pending, ordered=False)
                written.extend(pending)
                break
            except BulkWriteError as exc:
                refused = _duplicates(exc)
            written.extend(d for i, d in enumerate(pending) if i not in refused)
            retry = [pending[i] for i in sorted(refused)]
            recorded = await self._recorded([r["id"] for d in retry for r in d["receipts"]])
            pending = []
            for doc in retry:
                kept = [r for r in doc["receipts"] if r["id"] not in recorded]
                if len(kept) == len(doc["receipts"]):
                    # Refused on its _id alone: the same document (same receipts) is already there.
                    continue
                if kept:
                    pending.append({**doc, "receipts": kept, "size": len(kept), "count": len(kept)})
        return written

    async def _recorded(self, ids: Sequence[str]) -> set[str]:
        """Of ``ids``, those some outbox document already holds (by the ``receipts.id`` index)."""
        wanted = set(ids)
        found: set[str] = set()
        for part in chunks(list(wanted)):
            cursor = self.collection.find({"receipts.id": {"$in": part}}, {"receipts.id": 1})
            async for doc in cursor:
                found.update(r["id"] for r in doc["receipts"] if r["id"] in wanted)
        return found

    async def due_between(self, lo: datetime, hi: datetime, *, limit: int) -> list[dict[str, Any]]:
        """Pending documents with ``lo <= next_at < hi`` (one bounded slice of the due index), oldest first."""
        query = {"state": PENDING, "next_at": {"$gte": lo, "$lt": hi}}
        return await self.collection.find(query).sort("next_at", ASCENDING).limit(limit).to_list(None)

    async def url_due_between(self, url: str, lo: datetime, hi: datetime, *, limit: int) -> list[dict[str, Any]]:
        """The same for one callback URL (its backlog)."""
        query = {"state": PENDING, "url": url, "next_at": {"$gte": lo, "$lt": hi}}
        return await self.collection.find(query).sort("next_at", ASCENDING).limit(limit).to_list(None)

    async def claim(
        self, docs: Sequence[dict[str, Any]], now: datetime, lease_s: float, token: str
    ) -> list[dict[str, Any]]:
        """Lease the still-due documents among ``docs`` to ``token`` (one bulk write); returns those it got."""
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
        return [{**doc, "next_at": lease_end, "lease_token": token} for doc in docs if doc["_id"] in mine]

    async def apply(
        self, now: datetime, *, done: Sequence[str], updates: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> None:
        """Record outcomes in one bulk write: ``done`` document ids (one update_many per chunk) and per-document
        ``updates`` (id, lease token, ``$set``: retry, dead, release), conditional on the lease."""
        ops: list[UpdateMany | UpdateOne] = []
        if done:
            done_set = {
                "state": DONE,
                "done_at": now,
                "updated_at": now,
                "lease_token": "",
                "expire_at": now + self.done_retention,
            }
            ops.extend(
                UpdateMany({"_id": {"$in": part}, "state": PENDING}, {"$set": done_set}) for part in chunks(done)
            )
        for doc_id, token, fields in updates:
            ops.append(UpdateOne({"_id": doc_id, "state": PENDING, "lease_token": token}, {"$set": fields}))
        if ops:
            await self.collection.bulk_write(ops, ordered=False)

    def retry_fields(
        self, now: datetime, *, delivered: list[str], remaining: int, attempts: int, delay_s: float, error: str
    ) -> dict[str, Any]:
        return {
            "delivered": delivered,
            "count": remaining,
            "attempts": attempts,
            "next_at": now + timedelta(seconds=delay_s),
            "lease_token": "",
            "last_error": error,
            "updated_at": now,
        }

    def dead_fields(
        self, now: datetime, *, delivered: list[str], remaining: int, attempts: int, error: str
    ) -> dict[str, Any]:
        return {
            "state": DEAD,
            "delivered": delivered,
            "count": remaining,
            "attempts": attempts,
            "dead_at": now,
            "lease_token": "",
            "last_error": error,
            "updated_at": now,
            "expire_at": now + self.dead_retention,
        }

    @staticmethod
    def release_fields(now: datetime, *, delivered: list[str], remaining: int) -> dict[str, Any]:
        """Leased but not (entirely) POSTed (graceful stop, lease too short): due again at once."""
        return {"delivered": delivered, "count": remaining, "next_at": now, "lease_token": "", "updated_at": now}

    async def count(self, state: str, *, limit: int = 0) -> int:
        """Receipts in a state, summed over at most ``limit`` documents: pending and dead count their receipts not
        delivered, done all receipts acknowledged (those of done documents and those inside the others)."""
        field = "size" if state == DONE else "count"
        cursor = self.collection.find({"state": state}, {field: 1, "_id": 0})
        if limit:
            cursor = cursor.limit(limit)
        total = sum([int(doc.get(field, 0)) async for doc in cursor])
        if state == DONE:
            total += await self._delivered_in_open()
        return total

    async def _delivered_in_open(self) -> int:
        """Receipts acknowledged inside documents that are not done (partially delivered ones)."""
        query = {"state": {"$in": [PENDING, DEAD]}, "delivered.0": {"$exists": True}}
        return sum([len(d["delivered"]) async for d in self.collection.find(query, {"delivered": 1})])

    async def find_items(self, *, state: str, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Receipts in a state (latest first, one row per receipt: ``receipt_views``), e.g. a tenant's dead
        receipts with their last error."""
        query: dict[str, Any] = {"state": state}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        rows: list[dict[str, Any]] = []
        async for doc in self.collection.find(query).sort("next_at", -1):
            rows.extend(r for r in receipt_views(doc) if r["state"] == state)
            if len(rows) >= limit:
                break
        return rows[:limit]

    async def receipts_of(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every receipt of a tenant in the outbox (``receipt_views``), oldest document first."""
        cursor = self.collection.find({"tenant_id": tenant_id}).sort("created_at", ASCENDING)
        return [row async for doc in cursor for row in receipt_views(doc)]
