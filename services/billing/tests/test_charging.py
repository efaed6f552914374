"""Charging on the real MongoDB and Kafka: packages first, on demand after, every unit exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient, monitoring

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2, link_pb2
from magpie_billing.app import BillingComponents
from magpie_billing.charging import Charger
from magpie_billing.clock import to_ms, utcnow
from magpie_billing.products import Product
from magpie_billing.store import BillingStore
from magpie_billing.units import resolution_unit_id, sms_unit_id, units_from_delivery
from magpie_common.config import Settings
from magpie_common.ids import new_id
from magpie_common.kafka import Decoded, PoisonMessage
from magpie_common.testing import collect
from magpie_common.topics import USAGE

pytestmark = pytest.mark.integration

DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED


def record(topic: str = "delivery") -> ConsumerRecord:
    return ConsumerRecord(topic, 0, 0, 0, 0, None, b"", None, 0, 0, ())


def delivered(
    tenant: str,
    msg_id: str,
    segments: int = 1,
    *,
    status: int = DELIVERED,
    route: int = common_pb2.ROUTE_SMART,
    event_id: str | None = None,
    task_id: str = "task-1",
) -> dispatch_pb2.DeliveryEvent:
    return dispatch_pb2.DeliveryEvent(
        event_id=event_id or new_id("dev_"),
        tenant_id=tenant,
        task_id=task_id,
        msg_id=msg_id,
        status=status,  # type: ignore[arg-type]
        segments=segments,
        route=route,  # type: ignore[arg-type]
        done_at_ms=to_ms(utcnow()),
    )


def batch(*events: dispatch_pb2.DeliveryEvent) -> dispatch_pb2.DeliveryBatch:
    return dispatch_pb2.DeliveryBatch(meta=common_pb2.EventMeta(event_id=new_id("db_")), events=list(events))


def resolved(tenant: str, code: str, *, billable: bool = True, kind: int = link_pb2.LINK_EVENT_TYPE_RESOLVED) -> Any:
    return link_pb2.LinkEvent(
        meta=common_pb2.EventMeta(event_id=new_id("le_"), tenant_id=tenant),
        type=kind,  # type: ignore[arg-type]
        code=code,
        task_id="task-1",
        billable=billable,
        at_ms=to_ms(utcnow()),
    )


async def on_delivery(billing: BillingComponents, *batches: dispatch_pb2.DeliveryBatch) -> None:
    await billing.handlers.on_delivery([Decoded(record(), b) for b in batches])


async def buy(
    billing: BillingComponents,
    tenant: str,
    quantity: int,
    package_id: str,
    *,
    product: Product = Product.AIM_SMS,
    starts_in: timedelta = timedelta(0),
    validity: timedelta = timedelta(days=365),
) -> None:
    await billing.store.add_package(
        tenant, product, quantity, package_id=package_id, valid_from=utcnow() + starts_in, validity=validity
    )


async def remaining(billing: BillingComponents, tenant: str) -> dict[str, int]:
    return {p.package_id: p.remaining for p in await billing.store.list_packages(tenant)}


async def ledger(billing: BillingComponents, tenant: str) -> dict[str, dict[str, Any]]:
    _, docs = await billing.store.ledger_page(tenant, limit=1000)
    return {doc["ref"]: doc for doc in docs}


def draws(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [(d["package_id"], d["quantity"]) for d in doc["packages"]]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def usage_events(settings: Settings, count: int) -> list[billing_pb2.UsageEvent]:
    events = await collect(settings, USAGE, billing_pb2.UsageEvent, until=lambda m: len(m) >= count, timeout_s=30)
    await asyncio.sleep(0.5)  # anything beyond `count` would show up now
    more = await collect(settings, USAGE, billing_pb2.UsageEvent, until=lambda m: len(m) >= count, timeout_s=5)
    assert len(more) == count, f"expected exactly {count} usage events, found {len(more)}"
    return events


async def test_packages_first_then_on_demand_when_the_package_runs_out_mid_batch(
    settings: Settings, billing: BillingComponents
) -> None:
    await buy(billing, "t1", 5, "pkg-5")
    await on_delivery(billing, batch(delivered("t1", "m1", 2), delivered("t1", "m2", 2), delivered("t1", "m3", 3)))

    entries = await ledger(billing, "t1")
    assert draws(entries["m1"]) == [("pkg-5", 2)] and entries["m1"]["on_demand"] == 0
    assert draws(entries["m2"]) == [("pkg-5", 2)] and entries["m2"]["on_demand"] == 0
    assert draws(entries["m3"]) == [("pkg-5", 1)] and entries["m3"]["on_demand"] == 2
    assert entries["m3"]["from_packages"] == 1 and entries["m3"]["quantity"] == 3
    assert all(e["product"] == "AIM_SMS" for e in entries.values())
    assert await remaining(billing, "t1") == {"pkg-5": 0}

    events = {e.meta.event_id: e for e in await usage_events(settings, 3)}
    assert set(events) == {sms_unit_id("t1", m) for m in ("m1", "m2", "m3")}
    m3 = events[sms_unit_id("t1", "m3")]
    assert (m3.product, m3.quantity, m3.package_id, m3.on_demand_quantity) == (
        billing_pb2.USAGE_PRODUCT_AIM_SMS,
        3,
        "pkg-5",
        2,
    )
    assert m3.meta.tenant_id == "t1" and m3.meta.producer == "billing" and m3.task_id == "task-1"

    summary = {row.product: row for row in await billing.store.summary("t1", utcnow())}
    sms = summary[Product.AIM_SMS]
    assert (sms.units, sms.charged, sms.from_packages, sms.on_demand, sms.remaining_quota) == (3, 7, 5, 2, 0)


async def test_two_packages_are_consumed_earliest_expiry_first(billing: BillingComponents) -> None:
    await buy(billing, "t2", 3, "pkg-late", validity=timedelta(days=300))
    await buy(billing, "t2", 3, "pkg-early", validity=timedelta(days=30))
    await on_delivery(billing, batch(*(delivered("t2", f"m{i}") for i in range(4)), delivered("t2", "m4", 3)))

    entries = await ledger(billing, "t2")
    assert [draws(entries[f"m{i}"]) for i in range(4)] == [
        [("pkg-early", 1)],
        [("pkg-early", 1)],
        [("pkg-early", 1)],
        [("pkg-late", 1)],
    ]
    assert draws(entries["m4"]) == [("pkg-late", 2)] and entries["m4"]["on_demand"] == 1
    assert await remaining(billing, "t2") == {"pkg-early": 0, "pkg-late": 0}


async def test_a_unit_is_split_across_packages_when_one_runs_out(billing: BillingComponents) -> None:
    await buy(billing, "t2b", 2, "a", validity=timedelta(days=10))
    await buy(billing, "t2b", 10, "b", validity=timedelta(days=20))
    await on_delivery(billing, batch(delivered("t2b", "long", 5)))
    entry = (await ledger(billing, "t2b"))["long"]
    assert draws(entry) == [("a", 2), ("b", 3)] and entry["on_demand"] == 0
    assert await remaining(billing, "t2b") == {"a": 0, "b": 7}


async def test_expired_and_not_yet_valid_packages_are_ignored(billing: BillingComponents) -> None:
    await buy(billing, "t3", 100, "expired", starts_in=timedelta(days=-400), validity=timedelta(days=365))
    await buy(billing, "t3", 100, "future", starts_in=timedelta(days=1))
    await buy(billing, "t3", 100, "other-product", product=Product.AIM_RESOLUTION)
    await on_delivery(billing, batch(delivered("t3", "m1", 2), delivered("t3", "m2")))

    entries = await ledger(billing, "t3")
    assert {ref: (e["from_packages"], e["on_demand"], e["packages"]) for ref, e in entries.items()} == {
        "m1": (0, 2, []),
        "m2": (0, 1, []),
    }
    assert await remaining(billing, "t3") == {"expired": 100, "future": 100, "other-product": 100}


async def test_the_same_batch_delivered_twice_charges_once_and_re_emits_identical_usage_events(
    settings: Settings, billing: BillingComponents
) -> None:
    await buy(billing, "t4", 10, "pkg")
    same = batch(delivered("t4", "m1", 2), delivered("t4", "m2", 1), delivered("t4", "m3", 4))
    duplicates_before = metric("magpie_billing_duplicate_units_total", product="AIM_SMS")
    await on_delivery(billing, same)
    await on_delivery(billing, same)

    entries = await ledger(billing, "t4")
    assert len(entries) == 3
    assert await remaining(billing, "t4") == {"pkg": 3}
    assert metric("magpie_billing_duplicate_units_total", product="AIM_SMS") - duplicates_before == 3

    events = await usage_events(settings, 6)
    first, second = events[:3], events[3:]
    assert sorted(e.meta.event_id for e in first) == sorted(e.meta.event_id for e in second)
    assert {e.meta.event_id: e.SerializeToString() for e in first} == {
        e.meta.event_id: e.SerializeToString() for e in second
    }


async def test_a_duplicate_delivery_receipt_charges_once(settings: Settings, billing: BillingComponents) -> None:
    await on_delivery(billing, batch(delivered("t5", "m1", 2, event_id="dlr-first")))
    await on_delivery(billing, batch(delivered("t5", "m1", 2, event_id="dlr-second")))
    # and repeated inside one batch
    await on_delivery(billing, batch(delivered("t5", "m2", event_id="x1"), delivered("t5", "m2", event_id="x2")))

    entries = await ledger(billing, "t5")
    assert sorted(entries) == ["m1", "m2"]
    assert entries["m1"]["source_event_id"] == "dlr-first" and entries["m1"]["on_demand"] == 2
    events = await usage_events(settings, 3)
    assert {e.meta.event_id for e in events} == {sms_unit_id("t5", "m1"), sms_unit_id("t5", "m2")}
    assert {e.source_event_id for e in events} == {"dlr-first", "x1"}


async def test_submitted_failed_and_timed_out_messages_are_not_billed_and_vms_is_per_message(
    billing: BillingComponents,
) -> None:
    await on_delivery(
        billing,
        batch(
            delivered("t6", "s", 2, status=dispatch_pb2.DELIVERY_STATUS_SUBMITTED),
            delivered("t6", "f", 2, status=dispatch_pb2.DELIVERY_STATUS_FAILED),
            delivered("t6", "t", 2, status=dispatch_pb2.DELIVERY_STATUS_TIMEOUT),
            delivered("t6", "ok", 2, route=common_pb2.ROUTE_DEGRADED),
            delivered("t6", "video", 3, route=common_pb2.ROUTE_VMS),
        ),
    )
    entries = await ledger(billing, "t6")
    assert sorted(entries) == ["ok", "video"]
    assert (entries["ok"]["product"], entries["ok"]["quantity"]) == ("AIM_SMS", 2)
    assert (entries["video"]["product"], entries["video"]["quantity"]) == ("VMS", 1)


async def test_a_resolution_is_billed_once_even_if_delivered_twice(
    settings: Settings, billing: BillingComponents
) -> None:
    await buy(billing, "t7", 10, "res", product=Product.AIM_RESOLUTION)
    first = resolved("t7", "code1")
    items = [
        Decoded(record("link"), first),
        Decoded(record("link"), resolved("t7", "code2", billable=False)),  # a repeat resolution of a link
        Decoded(record("link"), resolved("t7", "code3", kind=link_pb2.LINK_EVENT_TYPE_CLICKED)),
    ]
    await billing.handlers.on_link(items)
    await billing.handlers.on_link([Decoded(record("link"), first)])  # redelivered
    await billing.handlers.on_link([Decoded(record("link"), resolved("t7", "code1"))])  # same link, new event id

    entries = await ledger(billing, "t7")
    assert list(entries) == ["code1"]
    assert entries["code1"]["product"] == "AIM_RESOLUTION"
    assert draws(entries["code1"]) == [("res", 1)]
    assert entries["code1"]["source_event_id"] == first.meta.event_id
    assert await remaining(billing, "t7") == {"res": 9}
    events = await usage_events(settings, 3)
    assert {e.meta.event_id for e in events} == {resolution_unit_id("t7", "code1")}
    assert {e.product for e in events} == {billing_pb2.USAGE_PRODUCT_AIM_RESOLUTION}


async def test_concurrent_handlers_charge_each_unit_once_and_never_overdraw(billing: BillingComponents) -> None:
    for round_no in range(3):
        tenant = f"t8-{round_no}"
        await buy(billing, tenant, 30, "a", validity=timedelta(days=10))
        await buy(billing, tenant, 25, "b", validity=timedelta(days=20))
        b1 = batch(*(delivered(tenant, f"m{i:03d}", 1 + i % 3) for i in range(0, 40)))
        b2 = batch(*(delivered(tenant, f"m{i:03d}", 1 + i % 3) for i in range(20, 60)))
        b3 = batch(*(delivered(tenant, f"m{i:03d}", 1 + i % 3, event_id=new_id("dup_")) for i in range(50, 70)))
        duplicates_before = metric("magpie_billing_duplicate_units_total", product="AIM_SMS")
        await asyncio.gather(on_delivery(billing, b1), on_delivery(billing, b2), on_delivery(billing, b1, b3))
        # 140 units handed in, 70 distinct: the other 70 were recognised as already charged (or repeated).
        assert metric("magpie_billing_duplicate_units_total", product="AIM_SMS") - duplicates_before == 70

        entries = await ledger(billing, tenant)
        assert sorted(entries) == [f"m{i:03d}" for i in range(70)]
        demanded = sum(1 + i % 3 for i in range(70))
        assert sum(e["quantity"] for e in entries.values()) == demanded
        for entry in entries.values():
            assert entry["from_packages"] + entry["on_demand"] == entry["quantity"]
            assert entry["from_packages"] == sum(q for _, q in draws(entry))
        left = await remaining(billing, tenant)
        assert left == {"a": 0, "b": 0}
        used = {"a": 0, "b": 0}
        for entry in entries.values():
            for package_id, quantity in draws(entry):
                used[package_id] += quantity
        assert used == {"a": 30, "b": 25}
        assert sum(e["on_demand"] for e in entries.values()) == demanded - 55


async def test_an_unbillable_event_dead_letters_its_record_after_the_rest_is_charged(
    billing: BillingComponents,
) -> None:
    bad = delivered("t9", "", 1, event_id="no-msg-id")
    with pytest.raises(PoisonMessage, match="no-msg-id"):
        await on_delivery(billing, batch(delivered("t9", "good"), bad))
    assert list(await ledger(billing, "t9")) == ["good"]


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_batch_of_500_deliveries_is_a_handful_of_round_trips(
    settings: Settings, billing: BillingComponents
) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, tz_aware=True, event_listeners=[counter])
    try:
        charger = Charger(BillingStore(client[settings.db_name("billing")]))
        await buy(billing, "t10", 400, "p1", validity=timedelta(days=10))
        await buy(billing, "t10", 400, "p2", validity=timedelta(days=20))
        units = units_from_delivery(batch(*(delivered("t10", f"m{i}", 2) for i in range(500)))).units
        await client.admin.command("ping")
        counter.commands.clear()
        started = time.perf_counter()
        result = await charger.charge(units)
        elapsed = time.perf_counter() - started
        assert result.charged == 500 and result.duplicates == 0
        data_commands = [c for c in counter.commands if c not in ("ping", "hello", "isMaster", "endSessions")]
        # dedupe find, packages find, insert of the unit marks, insert of the ledger document, package updates, commit
        assert len(data_commands) <= 6, data_commands
        assert elapsed < 10
        assert await remaining(billing, "t10") == {"p1": 0, "p2": 0}
        assert sum(d["on_demand"] for d in result.entries) == 200

        counter.commands.clear()
        again = await charger.charge(units)
        assert again.charged == 0 and again.duplicates == 500
        # the unit marks, then the ledger documents holding them (their entries are re-emitted as usage events)
        assert [c for c in counter.commands if c == "find"] == ["find", "find"]
        assert "insert" not in counter.commands and "commitTransaction" not in counter.commands
    finally:
        await client.close()
