"""Number-portability overrides (携号转网): msisdn -> current carrier, taking precedence over the segment carrier.

MongoDB collection ``ported`` (``_id`` = msisdn, ``carrier``, ``updated_at``) is the truth; Redis holds one short
string per ported number, ``rkey("port", msisdn)`` -> ``CMCC`` / ``CUCC`` / ``CTCC`` / ``CBN``, read by the worker
in the same ``MGET`` as the device ids. An override whose carrier equals the segment carrier is kept (harmless).

CSV import (``POST /internal/portability/import``): header ``mobile,carrier``; carrier codes as above (any case).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pymongo.asynchronous.database import AsyncDatabase

from magpie_common.config import Settings
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.devices import FieldError
from magpie_number_resolver.mongo_bulk import upsert_documents

WRITE_CHUNK = 2000


def parse_carrier(value: object, table: SegmentTable) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("carrier is required")
    code = value.strip().upper()
    if not table.is_carrier(code):
        raise FieldError(f"carrier {value!r} is not one of {', '.join(sorted(table.carriers))}")
    return code


class PortabilityStore:
    def __init__(self, settings: Settings, db: AsyncDatabase, redis: aioredis.Redis) -> None:
        self.collection = db["ported"]
        self.redis = redis
        self._prefix = settings.rkey("port", "")

    def key(self, msisdn: str) -> str:
        """The Redis key of a ported number (``settings.rkey("port", msisdn)``)."""
        return self._prefix + msisdn

    async def upsert_many(self, rows: Sequence[tuple[str, str]]) -> int:
        latest = dict(rows)
        items = list(latest.items())
        for start in range(0, len(items), WRITE_CHUNK):
            chunk = items[start : start + WRITE_CHUNK]
            now = datetime.now(UTC)
            await upsert_documents(
                self.collection, [{"_id": msisdn, "carrier": carrier, "updated_at": now} for msisdn, carrier in chunk]
            )
            await self.redis.mset({self._prefix + msisdn: carrier for msisdn, carrier in chunk})
        return len(items)

    async def get(self, msisdn: str) -> dict[str, Any] | None:
        doc = await self.collection.find_one({"_id": msisdn})
        if doc is None:
            return None
        updated = doc.get("updated_at")
        return {"msisdn": msisdn, "carrier": doc["carrier"], "updated_at": updated.isoformat() if updated else None}

    async def delete(self, msisdn: str) -> bool:
        result = await self.collection.delete_one({"_id": msisdn})
        removed = await self.redis.delete(self.key(msisdn))
        return bool(result.deleted_count or removed)

    async def reload_redis(self, chunk: int = 5000) -> int:
        """Copy every override from MongoDB into Redis without overwriting newer values (SET NX)."""
        count = 0
        pending = 0
        pipe = self.redis.pipeline(transaction=False)
        async for doc in self.collection.find({}, {"carrier": 1}, batch_size=chunk):
            pipe.set(self._prefix + doc["_id"], doc["carrier"], nx=True)
            pending += 1
            count += 1
            if pending >= chunk:
                await pipe.execute()
                pending = 0
        if pending:
            await pipe.execute()
        return count
