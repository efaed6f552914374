"""The gateway's own MongoDB database (``settings.db_name("gateway")``): collections and their indexes.

Every document that belongs to a tenant carries ``tenant_id`` and every query filters on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure


@dataclass(frozen=True)
class Collections:
    tenants: AsyncCollection
    credentials: AsyncCollection
    sms_apps: AsyncCollection
    signatures: AsyncCollection
    sms_templates: AsyncCollection
    aim_templates: AsyncCollection
    callbacks: AsyncCollection
    tasks: AsyncCollection
    recipient_batches: AsyncCollection
    batch_counts: AsyncCollection
    idempotency: AsyncCollection

    @classmethod
    def of(cls, db: AsyncDatabase) -> Collections:
        return cls(**{name: db[name] for name in cls.__dataclass_fields__})


_INDEXES: dict[str, list[IndexModel]] = {
    "credentials": [IndexModel([("tenant_id", ASCENDING)])],
    "sms_apps": [
        IndexModel([("tenant_id", ASCENDING), ("name_key", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "signatures": [
        IndexModel([("tenant_id", ASCENDING), ("app_id", ASCENDING), ("signature_name", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "sms_templates": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "aim_templates": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "callbacks": [IndexModel([("tenant_id", ASCENDING), ("url_type", ASCENDING)], unique=True)],
    "tasks": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("tpl_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "recipient_batches": [
        IndexModel([("task_id", ASCENDING), ("batch_no", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "batch_counts": [IndexModel([("task_id", ASCENDING), ("batch_no", ASCENDING)])],
}
_TTL_INDEX = "created_at_ttl"


async def ensure_indexes(collections: Collections, *, idempotency_ttl_s: int = 86400) -> None:
    for name, indexes in _INDEXES.items():
        await getattr(collections, name).create_indexes(indexes)
    ttl = IndexModel([("created_at", ASCENDING)], name=_TTL_INDEX, expireAfterSeconds=idempotency_ttl_s)
    try:
        await collections.idempotency.create_indexes([ttl])
    except OperationFailure as exc:
        if exc.code not in (85, 86):  # IndexOptionsConflict / IndexKeySpecsConflict: the TTL changed
            raise
        await collections.idempotency.database.command(
            "collMod",
            collections.idempotency.name,
            index={"name": _TTL_INDEX, "expireAfterSeconds": idempotency_ttl_s},
        )
