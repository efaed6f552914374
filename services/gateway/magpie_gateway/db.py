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
    send_schedules: AsyncCollection  # scheduled send tasks (``_id`` = task id), see send_schedules.py
    recipient_batches: AsyncCollection
    batch_counts: AsyncCollection
    idempotency: AsyncCollection
    # IAM
    users: AsyncCollection
    policies: AsyncCollection
    tokens: AsyncCollection
    # AIM templates: materials and thumbnails
    aim_materials: AsyncCollection
    # AIM template reports: daily counters, their de-duplication marks, recipients' handset vendors
    template_stats: AsyncCollection
    template_stat_marks: AsyncCollection
    recipient_vendors: AsyncCollection
    # resolution tasks (links minted without sending)
    resolve_tasks: AsyncCollection
    resolve_links: AsyncCollection  # one per link of a resolution task (``<task_id>:<index>``)
    # SMS signature files and direct SMS sends
    signature_files: AsyncCollection
    sms_sends: AsyncCollection
    # VMS (video SMS)
    vms_templates: AsyncCollection
    vms_tasks: AsyncCollection
    vms_callbacks: AsyncCollection
    # service numbers (SA)
    sa_pubs: AsyncCollection
    sa_menus: AsyncCollection
    sa_portals: AsyncCollection
    sa_ports: AsyncCollection
    sa_media: AsyncCollection
    # console features
    filings: AsyncCollection
    domains: AsyncCollection
    jump_links: AsyncCollection
    exports: AsyncCollection
    files: AsyncCollection  # metadata of stored files (bytes in GridFS, see files.py)
    package_orders: AsyncCollection  # packages bought through the gateway (the quotas themselves are billing's)
    recipient_files: AsyncCollection  # uploaded recipient files: metadata (recipient_files.py)
    recipient_file_rows: AsyncCollection  # their de-duplicated rows, columnar, ROWS_PER_DOC per document

    @property
    def database(self) -> AsyncDatabase:
        return self.tenants.database

    @classmethod
    def of(cls, db: AsyncDatabase) -> Collections:
        return cls(**{name: db[name] for name in cls.__dataclass_fields__})


_INDEXES: dict[str, list[IndexModel]] = {
    "tenants": [IndexModel([("name", ASCENDING)])],  # IAM domain name lookup (POST /v3/auth/tokens)
    "credentials": [
        IndexModel([("tenant_id", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)]),
    ],
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
    "users": [
        IndexModel([("tenant_id", ASCENDING), ("name_key", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("policies", ASCENDING)]),
    ],
    "policies": [IndexModel([("tenant_id", ASCENDING), ("name_key", ASCENDING)], unique=True)],
    "tokens": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "aim_materials": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("aim_resource_id", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("video_id", ASCENDING)]),
    ],
    "template_stats": [IndexModel([("tenant_id", ASCENDING), ("tpl_id", ASCENDING), ("day", ASCENDING)])],
    "template_stat_marks": [IndexModel([("at", ASCENDING)], expireAfterSeconds=35 * 86400)],
    "recipient_vendors": [
        IndexModel([("batch_key", ASCENDING)]),
        IndexModel([("created_at", ASCENDING)], expireAfterSeconds=190 * 86400),
    ],
    "resolve_tasks": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("tpl_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "resolve_links": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("task_id", ASCENDING), ("index", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("cust_flag", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("code", ASCENDING)]),
    ],
    "signature_files": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "sms_sends": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "vms_templates": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "vms_tasks": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "vms_callbacks": [IndexModel([("tenant_id", ASCENDING), ("url_type", ASCENDING)], unique=True)],
    "sa_pubs": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        # a name may repeat within a tenant only with different remarks; names are not shared across tenants
        IndexModel([("tenant_id", ASCENDING), ("name_key", ASCENDING), ("remark_key", ASCENDING)], unique=True),
        IndexModel([("name_keys", ASCENDING)]),
        IndexModel([("publish_pending", ASCENDING)]),  # handset snapshots to publish (sa_publish)
    ],
    "sa_menus": [IndexModel([("tenant_id", ASCENDING), ("pub_id", ASCENDING)])],
    "sa_portals": [IndexModel([("tenant_id", ASCENDING), ("pub_id", ASCENDING)])],
    "sa_ports": [
        IndexModel([("tenant_id", ASCENDING), ("kind", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("unique_key", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("port_id", ASCENDING)]),
    ],
    "sa_media": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "filings": [IndexModel([("tenant_id", ASCENDING), ("product", ASCENDING)])],
    "domains": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("name_key", ASCENDING)], unique=True),
    ],
    "jump_links": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "exports": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("state", ASCENDING), ("created_at", ASCENDING)]),
    ],
    "package_orders": [IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)])],
    "files": [IndexModel([("tenant_id", ASCENDING), ("kind", ASCENDING), ("created_at", DESCENDING)])],
    "recipient_files": [
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),  # an upload that never finished
    ],
    "recipient_file_rows": [
        IndexModel([("file_id", ASCENDING), ("n", ASCENDING)]),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
    ],
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
