"""The ledger's layout on the real MongoDB: one document per charged group of units, one mark per unit, pages of
units across documents, and the in-place conversion of a ledger written one document per unit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_billing.app import BillingComponents
from magpie_billing.clock import utcnow
from magpie_billing.products import Product
from magpie_billing.units import sms_unit_id
from magpie_common.ids import new_id
from magpie_common.kafka import Decoded

pytestmark = pytest.mark.integration


def delivered(tenant: str, msg_id: str, parts: int = 1, task_id: str = "task-1") -> dispatch_pb2.DeliveryEvent:
    return dispatch_pb2.DeliveryEvent(
        event_id=new_id("dev_"),
        tenant_id=tenant,
        task_id=task_id,
        msg_id=msg_id,
        status=dispatch_pb2.DELIVERY_STATUS_DELIVERED,
        route=common_pb2.ROUTE_SMART,
        segments=parts,
    )


async def deliver(billing: BillingComponents, *events: dispatch_pb2.DeliveryEvent) -> None:
    batch = dispatch_pb2.DeliveryBatch(meta=common_pb2.EventMeta(event_id=new_id("db_")), events=list(events))
    record = ConsumerRecord("delivery", 0, 0, 0, 0, None, b"", None, 0, 0, ())
    await billing.handlers.on_delivery([Decoded(record, batch)])


async def test_a_batch_is_one_ledger_document_per_task_and_one_mark_per_unit(billing: BillingComponents) -> None:
    await billing.store.add_package(
        "lay1", Product.AIM_SMS, 250, package_id="p1", valid_from=utcnow(), validity=timedelta(days=30)
    )
    events = [delivered("lay1", f"a{i}", 1 + i % 2) for i in range(300)]
    events += [delivered("lay1", f"b{i}", task_id="task-2") for i in range(200)]
    await deliver(billing, *events)

    docs = await billing.store.ledger.find({"tenant_id": "lay1"}).to_list()
    assert sorted((d["task_id"], d["count"]) for d in docs) == [("task-1", 300), ("task-2", 200)]
    task1 = next(d for d in docs if d["task_id"] == "task-1")
    assert task1["quantity"] == sum(1 + i % 2 for i in range(300)) == 450
    assert task1["from_packages"] + task1["on_demand"] == task1["quantity"]
    assert sum(d["from_packages"] for d in docs) == 250  # the package paid what it held, the rest on demand
    assert await billing.store.charged_units.count_documents({}) == 500  # this test's own database
    assert await billing.store.charged_units.find_one({"_id": sms_unit_id("lay1", "a7")}) == {
        "_id": sms_unit_id("lay1", "a7"),
        "b": task1["_id"],
    }
    summary = {p.product: p for p in await billing.store.summary("lay1", utcnow())}
    assert (summary[Product.AIM_SMS].units, summary[Product.AIM_SMS].charged) == (500, 650)


async def test_ledger_pages_cut_across_documents_in_charge_order(billing: BillingComponents) -> None:
    for start in (0, 40, 80):  # three charges: three ledger documents of 40 units each
        await deliver(billing, *(delivered("lay2", f"m{i:03d}") for i in range(start, start + 40)))
    total, page = await billing.store.ledger_page("lay2", offset=30, limit=60)
    assert total == 120
    assert [e["ref"] for e in page] == [f"m{i:03d}" for i in range(30, 90)]
    assert all(e["_id"] == sms_unit_id("lay2", e["ref"]) and e["tenant_id"] == "lay2" for e in page)
    total, tail = await billing.store.ledger_page("lay2", offset=110, limit=100)
    assert (total, [e["ref"] for e in tail]) == (120, [f"m{i:03d}" for i in range(110, 120)])
    assert await billing.store.ledger_page("lay2", offset=500) == (120, [])
    total, only = await billing.store.ledger_page("lay2", task_id="other")
    assert (total, only) == (0, [])


def legacy_document(tenant: str, msg_id: str, quantity: int) -> dict[str, Any]:
    """A ledger document as the one-document-per-unit layout wrote it."""
    now = utcnow()
    return {
        "_id": sms_unit_id(tenant, msg_id),
        "tenant_id": tenant,
        "product": Product.AIM_SMS.value,
        "quantity": quantity,
        "packages": [],
        "from_packages": 0,
        "on_demand": quantity,
        "source": "delivery",
        "source_event_id": f"old-{msg_id}",
        "task_id": "old-task",
        "ref": msg_id,
        "trace_id": "",
        "occurred_at": now,
        "charged_at": now,
    }


async def test_a_ledger_of_unit_documents_is_converted_and_its_units_are_never_charged_again(
    billing: BillingComponents,
) -> None:
    await billing.store.ledger.insert_many([legacy_document("lay3", f"old{i}", 1 + i % 2) for i in range(7)])
    assert await billing.store.migrate_unit_documents(chunk=3) == 7
    assert await billing.store.migrate_unit_documents() == 0  # idempotent
    await billing.store.ensure_indexes()  # what start-up runs: nothing left to convert

    total, entries = await billing.store.ledger_page("lay3")
    assert total == 7 and {e["ref"] for e in entries} == {f"old{i}" for i in range(7)}
    assert all(e["source_event_id"].startswith("old-") and e["task_id"] == "old-task" for e in entries)
    # A redelivered event of a unit charged before the upgrade is recognised; a new one is charged.
    await deliver(billing, delivered("lay3", "old2", 1), delivered("lay3", "new1", 1))
    total, entries = await billing.store.ledger_page("lay3", limit=100)
    assert total == 8 and sorted(e["ref"] for e in entries).count("old2") == 1
    summary = {p.product: p for p in await billing.store.summary("lay3", utcnow())}
    assert (summary[Product.AIM_SMS].units, summary[Product.AIM_SMS].charged) == (8, 1 + 10)
