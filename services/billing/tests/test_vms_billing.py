"""VMS send tasks are billed per delivered message (product VMS), from VMS_DELIVERY: packages first, then on
demand; failed and timed-out messages are free; a redelivered batch charges nothing twice."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2
from magpie_billing.app import build
from magpie_billing.units import vms_unit_id
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect, wait_ready
from magpie_common.topics import USAGE, VMS_DELIVERY

pytestmark = pytest.mark.integration


def event(msg_id: str, status: int) -> dispatch_pb2.DeliveryEvent:
    # The route is left unset on purpose: everything on VMS_DELIVERY is VMS.
    return dispatch_pb2.DeliveryEvent(
        event_id=f"final-{msg_id}",
        tenant_id="acme",
        task_id="vms-task",
        msg_id=msg_id,
        status=status,  # type: ignore[arg-type]
    )


def duplicates() -> float:
    return REGISTRY.get_sample_value("magpie_billing_duplicate_units_total", {"product": "VMS"}) or 0.0


async def test_vms_deliveries_are_charged_as_vms(settings: Settings) -> None:
    duplicates_before = duplicates()
    billing = await build(settings)
    workers = [asyncio.ensure_future(w) for w in billing.workers()]
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        transport = httpx.ASGITransport(app=billing.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
            package = await http.post("/internal/tenants/acme/packages", json={"product": "VMS", "quantity": 1})
            assert package.status_code in (200, 201), package.text
            batch = dispatch_pb2.DeliveryBatch(
                meta=common_pb2.EventMeta(event_id="vms-batch-1", tenant_id="acme"),
                events=[
                    event("v1", dispatch_pb2.DELIVERY_STATUS_SUBMITTED),
                    event("v1", dispatch_pb2.DELIVERY_STATUS_DELIVERED),
                    event("v2", dispatch_pb2.DELIVERY_STATUS_DELIVERED),
                    event("v3", dispatch_pb2.DELIVERY_STATUS_FAILED),
                    event("v4", dispatch_pb2.DELIVERY_STATUS_TIMEOUT),
                ],
            )
            await producer.send(VMS_DELIVERY, "vms-task:0", batch)
            await producer.send(VMS_DELIVERY, "vms-task:0", batch)  # redelivered
            usage = await collect(
                settings, USAGE, billing_pb2.UsageEvent, until=lambda got: len({u.meta.event_id for u in got}) >= 2
            )
            by_id = {u.meta.event_id: u for u in usage}
            assert set(by_id) == {vms_unit_id("acme", "v1"), vms_unit_id("acme", "v2")}
            assert {u.product for u in usage} == {billing_pb2.USAGE_PRODUCT_VMS}
            assert sorted(u.on_demand_quantity for u in by_id.values()) == [0, 1]  # the package covered one

            async def summary() -> dict[str, int]:
                rows = (await http.get("/internal/tenants/acme/summary")).json()["products"]
                return {r["product"]: r["charged"] for r in rows}

            async with asyncio.timeout(20):  # the redelivered record is consumed and recognised as charged
                while duplicates() - duplicates_before < 2:
                    await asyncio.sleep(0.1)
            assert (await summary())["VMS"] == 2
            assert (await wait_ready(http))["vms_consumer"] is True
    finally:
        billing.stop()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
        await producer.stop()
        await billing.close()
