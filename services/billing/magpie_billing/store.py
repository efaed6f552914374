"""The billing database: quota packages, the ledger (one document per charged batch) and hourly settlements.

Collections of ``settings.db_name("billing")``:

- ``packages``: ``tenant_id, package_id, product, total, remaining, valid_from, expires_at, created_at,
  updated_at``; unique ``(tenant_id, package_id)`` (idempotent purchase), ``(tenant_id, product, expires_at)``.
- ``ledger``: one document per charge of a group of units with the same ``tenant_id, product, task_id, source``:
  ``charged_at``, the totals ``count, quantity, from_packages, on_demand`` and ``units`` [{``unit_id, quantity,
  packages [{package_id, quantity}], from_packages, on_demand, source_event_id, ref, trace_id, occurred_at``}].
  A campaign of a million recipients writes about a thousand of these instead of a million indexed documents.
- ``charged_units``: ``_id`` = unit id, ``b`` = the ledger document holding it. Inserted in the charge transaction
  with the ledger document, its unique ``_id`` is what makes charging idempotent; it has no other index.
- ``settlements``: one document per (tenant, hour, product) of ``charged_at``: ``units, quantity,
  from_packages, on_demand, final``; recomputed from the ledger by ``magpie_billing.settlement``.
- ``settlement_state``: the watermark ``settled_through`` (every hour before it is final).

A ledger written by an earlier version (one document per unit, ``_id`` = unit id, no ``units``) is converted in
place at start-up (``migrate_unit_documents``): each such document becomes a ledger document of one unit, with its
``charged_units`` entry, so a unit charged before the upgrade is still recognised when its event is redelivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from magpie_billing.clock import iso, utcnow
from magpie_billing.products import Product

WATERMARK_ID = "watermark"


class PackageConflict(Exception):
    """A purchase reused a package id of the tenant with different terms."""


@dataclass(frozen=True, slots=True)
class Package:
    tenant_id: str
    package_id: str
    product: Product
    total: int
    remaining: int
    valid_from: datetime
    expires_at: datetime
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Package:
        return cls(
            tenant_id=doc["tenant_id"],
            package_id=doc["package_id"],
            product=Product(doc["product"]),
            total=int(doc["total"]),
            remaining=int(doc["remaining"]),
            valid_from=doc["valid_from"],
            expires_at=doc["expires_at"],
            created_at=doc["created_at"],
        )

    def status(self, now: datetime) -> str:
        if now >= self.expires_at:
            return "expired"
        if now < self.valid_from:
            return "pending"
        return "active" if self.remaining > 0 else "exhausted"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "package_id": self.package_id,
            "tenant_id": self.tenant_id,
            "product": self.product.value,
            "total": self.total,
            "remaining": self.remaining,
            "used": self.total - self.remaining,
            "valid_from": iso(self.valid_from),
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "status": self.status(now),
        }


@dataclass(frozen=True, slots=True)
class ProductSummary:
    product: Product
    units: int = 0  # ledger entries (messages, resolutions, ...)
    charged: int = 0  # quantity charged (SMS segments, resolutions, ...)
    from_packages: int = 0
    on_demand: int = 0
    remaining_quota: int = 0  # in packages usable now
    active_packages: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product.value,
            "units": self.units,
            "charged": self.charged,
            "from_packages": self.from_packages,
            "on_demand": self.on_demand,
            "remaining_quota": self.remaining_quota,
            "active_packages": self.active_packages,
        }


#: The fields of a ledger document that every unit in it shares.
BATCH_FIELDS = ("tenant_id", "product", "task_id", "source", "charged_at")


def unit_entries(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The units of a ledger document as one flat entry each (``_id`` = unit id plus the shared fields)."""
    shared = {key: batch.get(key, "") for key in BATCH_FIELDS}
    entries = []
    for unit in batch.get("units", []):
        entry = {"_id": unit["unit_id"], **shared, **unit}
        del entry["unit_id"]
        entries.append(entry)
    return entries


def ledger_entry_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "unit_id": doc["_id"],
        "product": doc["product"],
        "quantity": doc["quantity"],
        "packages": [{"package_id": d["package_id"], "quantity": d["quantity"]} for d in doc.get("packages", [])],
        "from_packages": doc["from_packages"],
        "on_demand": doc["on_demand"],
        "source": doc["source"],
        "source_event_id": doc["source_event_id"],
        "task_id": doc.get("task_id", ""),
        "ref": doc.get("ref", ""),
        "occurred_at": iso(doc["occurred_at"]),
        "charged_at": iso(doc["charged_at"]),
    }


def settlement_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "hour": iso(doc["hour"]),
        "product": doc["product"],
        "units": doc["units"],
        "quantity": doc["quantity"],
        "from_packages": doc["from_packages"],
        "on_demand": doc["on_demand"],
        "final": doc["final"],
    }


_TOTALS_GROUP = {
    "units": {"$sum": "$count"},
    "charged": {"$sum": "$quantity"},
    "from_packages": {"$sum": "$from_packages"},
    "on_demand": {"$sum": "$on_demand"},
}


class BillingStore:
    """Reads and administrative writes of the billing database (charging itself lives in ``charging``)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.packages: AsyncCollection = db["packages"]
        self.ledger: AsyncCollection = db["ledger"]
        self.charged_units: AsyncCollection = db["charged_units"]
        self.settlements: AsyncCollection = db["settlements"]
        self.state: AsyncCollection = db["settlement_state"]

    async def ensure_indexes(self) -> None:
        await self.packages.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("package_id", ASCENDING)], unique=True),
                IndexModel([("tenant_id", ASCENDING), ("product", ASCENDING), ("expires_at", ASCENDING)]),
            ]
        )
        await self.ledger.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("charged_at", ASCENDING)]),
                IndexModel([("tenant_id", ASCENDING), ("task_id", ASCENDING), ("charged_at", ASCENDING)]),
                IndexModel([("tenant_id", ASCENDING), ("product", ASCENDING), ("charged_at", ASCENDING)]),
                IndexModel([("charged_at", ASCENDING)]),
            ]
        )
        await self.settlements.create_indexes(
            [IndexModel([("tenant_id", ASCENDING), ("hour", ASCENDING), ("product", ASCENDING)])]
        )
        await self.migrate_unit_documents()

    async def migrate_unit_documents(self, chunk: int = 500) -> int:
        """Convert ledger documents of the one-document-per-unit layout in place; returns how many.

        Resumable and idempotent: the ``charged_units`` entry is written before its document is replaced, and a
        converted document no longer matches the query."""
        converted = 0
        legacy = {"units": {"$exists": False}}
        while True:
            docs = await self.ledger.find(legacy).limit(chunk).to_list()
            if not docs:
                return converted
            await self.charged_units.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$set": {"b": d["_id"]}}, upsert=True) for d in docs], ordered=False
            )
            replacements = []
            for doc in docs:
                unit = {
                    "unit_id": doc["_id"],
                    **{k: doc.get(k) for k in ("quantity", "packages", "from_packages", "on_demand")},
                    **{k: doc.get(k, "") for k in ("source_event_id", "ref", "trace_id")},
                    "occurred_at": doc.get("occurred_at", doc["charged_at"]),
                }
                batch = {
                    **{k: doc.get(k, "") for k in BATCH_FIELDS},
                    "count": 1,
                    **{k: doc.get(k, 0) for k in ("quantity", "from_packages", "on_demand")},
                    "units": [unit],
                }
                replacements.append(ReplaceOne({"_id": doc["_id"], "units": {"$exists": False}}, batch))
            await self.ledger.bulk_write(replacements, ordered=False)
            converted += len(docs)

    # --- packages ---------------------------------------------------------------------------------------------

    async def add_package(
        self,
        tenant_id: str,
        product: Product,
        quantity: int,
        *,
        package_id: str,
        valid_from: datetime,
        validity: timedelta,
        created_at: datetime | None = None,
    ) -> tuple[Package, bool]:
        """Create a package; (package, True). Repeating a purchase with the same ``package_id`` and terms returns
        the existing package, (package, False); the same id with other terms raises ``PackageConflict``."""
        if quantity <= 0:
            raise ValueError("a package holds a positive quantity")
        if validity <= timedelta(0):
            raise ValueError("a package is valid for a positive duration")
        doc = {
            "tenant_id": tenant_id,
            "package_id": package_id,
            "product": product.value,
            "total": quantity,
            "remaining": quantity,
            "valid_from": valid_from,
            "expires_at": valid_from + validity,
            "created_at": created_at or utcnow(),
            "updated_at": created_at or utcnow(),
        }
        try:
            await self.packages.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.packages.find_one({"tenant_id": tenant_id, "package_id": package_id})
            if existing is None:  # pragma: no cover - a unique-key race with a deletion, which never happens
                raise
            package = Package.from_doc(existing)
            if (
                package.product != product
                or package.total != quantity
                or package.expires_at - package.valid_from != validity
            ):
                raise PackageConflict(
                    f"package {package_id} already exists with product {package.product.value}, "
                    f"quantity {package.total}, validity {(package.expires_at - package.valid_from).days} days"
                ) from None
            return package, False
        return Package.from_doc(doc), True

    async def list_packages(self, tenant_id: str) -> list[Package]:
        cursor = self.packages.find({"tenant_id": tenant_id}).sort([("product", 1), ("expires_at", 1)])
        return [Package.from_doc(doc) async for doc in cursor]

    # --- ledger -----------------------------------------------------------------------------------------------

    async def ledger_page(
        self,
        tenant_id: str,
        *,
        task_id: str | None = None,
        product: Product | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total units matching, one page of unit entries in charge order; see ``unit_entries``).

        Walks the matching ledger documents' counts (a small projection) to find the documents that hold the
        page, then reads only those."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if task_id:
            query["task_id"] = task_id
        if product is not None:
            query["product"] = product.value
        order = [("charged_at", 1), ("_id", 1)]
        total = 0
        wanted: list[tuple[Any, int]] = []  # (ledger document id, units of it before the page starts)
        async for doc in self.ledger.find(query, projection={"count": 1}).sort(order):
            count = int(doc.get("count", 0))
            if total + count > offset and total < offset + limit:
                wanted.append((doc["_id"], max(0, offset - total)))
            total += count
        if not wanted:
            return total, []
        by_id = {d["_id"]: d async for d in self.ledger.find({"_id": {"$in": [i for i, _ in wanted]}})}
        page: list[dict[str, Any]] = []
        for doc_id, skip in wanted:
            page.extend(unit_entries(by_id[doc_id])[skip:])
        return total, page[:limit]

    async def entries_of(self, unit_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The unit entries of the given units that are in the ledger, by unit id."""
        if not unit_ids:
            return {}
        marks = {d["_id"]: d["b"] async for d in self.charged_units.find({"_id": {"$in": unit_ids}})}
        if not marks:
            return {}
        found: dict[str, dict[str, Any]] = {}
        async for batch in self.ledger.find({"_id": {"$in": sorted(set(marks.values()), key=str)}}):
            for entry in unit_entries(batch):
                if entry["_id"] in marks:
                    found[entry["_id"]] = entry
        return found

    # --- settlements and summary ------------------------------------------------------------------------------

    async def watermark(self) -> datetime | None:
        doc = await self.state.find_one({"_id": WATERMARK_ID})
        return None if doc is None else doc["settled_through"]

    async def settlement_rows(self, tenant_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        cursor = self.settlements.find({"tenant_id": tenant_id, "hour": {"$gte": start, "$lt": end}}).sort(
            [("hour", 1), ("product", 1)]
        )
        return await cursor.to_list()

    async def summary(self, tenant_id: str, now: datetime) -> list[ProductSummary]:
        """Per product: what was charged (final settlements plus the ledger since the watermark, so the cost does
        not grow with the ledger) and the quota left in packages usable now."""
        totals: dict[str, dict[str, int]] = {}

        def add(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                acc = totals.setdefault(row["_id"], dict.fromkeys(_TOTALS_GROUP, 0))
                for key in _TOTALS_GROUP:
                    acc[key] += int(row[key])

        watermark = await self.watermark()
        ledger_match: dict[str, Any] = {"tenant_id": tenant_id}
        if watermark is not None:
            ledger_match["charged_at"] = {"$gte": watermark}
            settled = await self.settlements.aggregate(
                [
                    {"$match": {"tenant_id": tenant_id, "hour": {"$lt": watermark}}},
                    {
                        "$group": {
                            "_id": "$product",
                            "units": {"$sum": "$units"},
                            "charged": {"$sum": "$quantity"},
                            "from_packages": {"$sum": "$from_packages"},
                            "on_demand": {"$sum": "$on_demand"},
                        }
                    },
                ]
            )
            add(await settled.to_list())
        recent = await self.ledger.aggregate(
            [{"$match": ledger_match}, {"$group": {"_id": "$product", **_TOTALS_GROUP}}]
        )
        add(await recent.to_list())

        quota: dict[str, list[int]] = {}
        async for doc in self.packages.find(
            {"tenant_id": tenant_id, "expires_at": {"$gt": now}, "remaining": {"$gt": 0}}
        ):
            if doc["valid_from"] <= now:
                acc = quota.setdefault(doc["product"], [0, 0])
                acc[0] += int(doc["remaining"])
                acc[1] += 1
        result = []
        for product in Product:
            t = totals.get(product.value, {})
            remaining, active = quota.get(product.value, [0, 0])
            result.append(
                ProductSummary(
                    product=product,
                    units=t.get("units", 0),
                    charged=t.get("charged", 0),
                    from_packages=t.get("from_packages", 0),
                    on_demand=t.get("on_demand", 0),
                    remaining_quota=remaining,
                    active_packages=active,
                )
            )
        return result
