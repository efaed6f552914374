"""The service in-process on the real Kafka: both consumer loops in group ``billing``, usage events out."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2, link_pb2
from magpie_billing.app import build
from magpie_billing.clock import to_ms, utcnow
from magpie_billing.units import resolution_unit_id, sms_unit_id
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect, wait_ready
from magpie_common.topics import DELIVERY, LINK, USAGE

pytestmark = pytest.mark.integration


def delivered(msg_id: str, segments: int, status: int = dispatch_pb2.DELIVERY_STATUS_DELIVERED) -> object:
    return dispatch_pb2.DeliveryEvent(
        event_id=f"ev-{msg_id}",
        tenant_id="acme",
        task_id="task-9",
        msg_id=msg_id,
        status=status,  # type: ignore[arg-type]
        segments=segments,
        route=common_pb2.ROUTE_SMART,
        done_at_ms=to_ms(utcnow()),
    )


def duplicates() -> float:
    return REGISTRY.get_sample_value("magpie_billing_duplicate_units_total", {"product": "AIM_SMS"}) or 0.0


async def test_consumes_delivery_and_link_topics_and_produces_usage_events(settings: Settings) -> None:
    duplicates_before = duplicates()
    billing = await build(settings)
    workers = [asyncio.ensure_future(w) for w in billing.workers()]
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        transport = httpx.ASGITransport(app=billing.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
            await http.post("/internal/tenants/acme/packages", json={"product": "AIM_SMS", "quantity": 4})
            batch = dispatch_pb2.DeliveryBatch(
                meta=common_pb2.EventMeta(event_id="batch-1", tenant_id="acme"),
                events=[
                    delivered("m1", 2),
                    delivered("m2", 3),
                    delivered("m3", 1, dispatch_pb2.DELIVERY_STATUS_FAILED),
                ],
            )
            link = link_pb2.LinkEvent(
                meta=common_pb2.EventMeta(event_id="link-1", tenant_id="acme"),
                type=link_pb2.LINK_EVENT_TYPE_RESOLVED,
                code="abc",
                task_id="task-9",
                billable=True,
            )
            await producer.send_many([(DELIVERY, "task-9:0", batch), (LINK, "abc", link)])
            await producer.send(DELIVERY, "task-9:0", batch)  # redelivered by an upstream retry

            events = await collect(
                settings,
                USAGE,
                billing_pb2.UsageEvent,
                until=lambda m: len({e.meta.event_id for e in m}) >= 3,
                timeout_s=60,
            )
            # the redelivered record is recognised as already charged (in the same poll or a later one)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while duplicates() - duplicates_before < 2:
                assert loop.time() < deadline, "the redelivered batch was not consumed"
                await asyncio.sleep(0.1)
            assert {e.meta.event_id for e in events} == {
                sms_unit_id("acme", "m1"),
                sms_unit_id("acme", "m2"),
                resolution_unit_id("acme", "abc"),
            }
            by_id = {e.meta.event_id: e for e in events}
            assert by_id[sms_unit_id("acme", "m2")].on_demand_quantity == 1

            summary = (await http.get("/internal/tenants/acme/summary")).json()
            rows = {r["product"]: r for r in summary["products"]}
            assert (rows["AIM_SMS"]["charged"], rows["AIM_SMS"]["from_packages"], rows["AIM_SMS"]["on_demand"]) == (
                5,
                4,
                1,
            )
            assert rows["AIM_RESOLUTION"]["on_demand"] == 1
            assert all((await wait_ready(http)).values())
    finally:
        billing.stop()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
        await producer.stop()
        await billing.close()
