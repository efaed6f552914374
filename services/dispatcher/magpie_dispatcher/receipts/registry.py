"""Callback registry: the tenants' receipt URLs, from ``CallbackConfigured`` on the CALLBACKS topic.

Stored in the dispatcher database, collection ``callbacks``: one document per (tenant, url_type, aim_url),
``_id = stable_id(tenant, url_type, aim_url)``, fields ``tenant_id, url_type, url, aim_url, callback_id,
event_id, updated_at``. A ``deleted`` event removes the document. MongoDB is the source of truth shared by every
dispatcher instance (only one of them consumes a CALLBACKS partition); each instance caches a tenant's
registrations in memory for ``MAGPIE_RECEIPT_CALLBACK_CACHE_MS`` (the instance that applied a change drops its
cache entry at once, the others see it when the entry expires).

Routing: a receipt goes to the receipt URLs (url_type 0 single, 2 batch) registered for the event's ``aim_url``;
when none is registered for that ``aim_url`` (or the event has none), to the tenant's default URLs (empty
``aim_url``). A tenant with both a single and a batch URL gets the receipt on each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DeleteOne, IndexModel, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from magpie.v1 import billing_pb2
from magpie_common.ids import stable_id
from magpie_common.kafka import Decoded
from magpie_dispatcher.receipts.payloads import RECEIPT_URL_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Callback:
    tenant_id: str
    url_type: int
    url: str
    aim_url: str
    callback_id: str

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Callback:
        return cls(
            tenant_id=doc["tenant_id"],
            url_type=int(doc["url_type"]),
            url=doc["url"],
            aim_url=doc.get("aim_url", ""),
            callback_id=doc.get("callback_id", ""),
        )


def callback_doc_id(tenant_id: str, url_type: int, aim_url: str) -> str:
    return stable_id("callback", tenant_id, url_type, aim_url)


def route(callbacks: Sequence[Callback], aim_url: str) -> list[Callback]:
    """The receipt callbacks of an event: those registered for its aim_url, else the tenant's defaults."""
    receipt_urls = [c for c in callbacks if c.url_type in RECEIPT_URL_TYPES]
    if aim_url:
        matched = [c for c in receipt_urls if c.aim_url == aim_url]
        if matched:
            return matched
    return [c for c in receipt_urls if c.aim_url == ""]


class CallbackRegistry:
    """Applies registrations (Kafka handler) and answers lookups through a short-lived in-memory cache."""

    def __init__(self, collection: AsyncCollection, cache_ttl_s: float) -> None:
        self.collection = collection
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, list[Callback]]] = {}

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes([IndexModel([("tenant_id", ASCENDING)], name="tenant")])

    async def handle(self, batch: Sequence[Decoded[billing_pb2.CallbackConfigured]]) -> None:
        """Apply a partition batch in order (last registration wins; replays reapply the same final state)."""
        ops: list[ReplaceOne[Any] | DeleteOne] = []
        tenants: set[str] = set()
        for item in batch:
            event = item.message
            tenant = event.meta.tenant_id
            if not tenant:
                log.warning("callback registration without a tenant ignored", extra={"event_id": event.meta.event_id})
                continue
            doc_id = callback_doc_id(tenant, event.url_type, event.aim_url)
            tenants.add(tenant)
            if event.deleted or not event.url:
                ops.append(DeleteOne({"_id": doc_id}))
                continue
            doc = {
                "_id": doc_id,
                "tenant_id": tenant,
                "url_type": event.url_type,
                "url": event.url,
                "aim_url": event.aim_url,
                "callback_id": event.callback_id,
                "event_id": event.meta.event_id,
                "updated_at": datetime.now(UTC),
            }
            ops.append(ReplaceOne({"_id": doc_id}, doc, upsert=True))
        if ops:
            await self.collection.bulk_write(ops, ordered=True)
        for tenant in tenants:
            self._cache.pop(tenant, None)

    async def stored(self, tenant_id: str) -> list[Callback]:
        """The tenant's registrations as stored (no cache)."""
        docs = await self.collection.find({"tenant_id": tenant_id}).to_list(None)
        return [Callback.from_doc(d) for d in docs]

    async def lookup(self, tenant_ids: Iterable[str]) -> dict[str, list[Callback]]:
        """Registrations of each tenant (an empty list for a tenant without any), one query for the cache misses."""
        now = time.monotonic()
        result: dict[str, list[Callback]] = {}
        missing: list[str] = []
        for tenant in set(tenant_ids):
            entry = self._cache.get(tenant)
            if entry is not None and entry[0] > now:
                result[tenant] = entry[1]
            else:
                missing.append(tenant)
        if missing:
            fetched: dict[str, list[Callback]] = {t: [] for t in missing}
            async for doc in self.collection.find({"tenant_id": {"$in": missing}}):
                fetched[doc["tenant_id"]].append(Callback.from_doc(doc))
            expires = time.monotonic() + self.cache_ttl_s
            for tenant, callbacks in fetched.items():
                self._cache[tenant] = (expires, callbacks)
                result[tenant] = callbacks
            if len(self._cache) > 100_000:
                self._evict(time.monotonic())
        return result

    def _evict(self, now: float) -> None:
        for tenant in [t for t, (exp, _) in self._cache.items() if exp <= now]:
            del self._cache[tenant]
