"""Service-number clicks (SA_CLICKS, from the shortlink edge) are billed one SA_CLICK each, exactly once per click
id: packages first, then on demand; a click without its identity is dead-lettered, never dropped silently."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from magpie.v1 import billing_pb2, common_pb2, sa_pb2
from magpie_billing.app import build
from magpie_billing.products import Product
from magpie_billing.units import sa_click_unit_id, units_from_sa_click
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect, wait_ready
from magpie_common.topics import DLQ, SA_CLICKS, USAGE

pytestmark = pytest.mark.integration

PUB = "c" * 32


def click(click_id: str, *, tenant: str = "acme", pub_id: str = PUB) -> sa_pb2.SaClicked:
    return sa_pb2.SaClicked(
        meta=common_pb2.EventMeta(event_id=f"sa-click-{click_id}", tenant_id=tenant, occurred_at_ms=1_700_000_000_000),
        pub_id=pub_id,
        click_id=click_id,
        target=sa_pb2.SA_CLICK_TARGET_MENU,
        menu_item_id="1",
        at_ms=1_700_000_000_000,
    )


def test_a_click_is_one_unit() -> None:
    extracted = units_from_sa_click(click("k1"))
    (unit,) = extracted.units
    assert unit.product is Product.SA_CLICK and unit.quantity == 1 and unit.ref == PUB
    assert unit.unit_id == sa_click_unit_id("acme", PUB, "k1") == units_from_sa_click(click("k1")).units[0].unit_id
    assert unit.unit_id != sa_click_unit_id("acme", PUB, "k2")
    assert unit.occurred_at_ms == 1_700_000_000_000
    assert not units_from_sa_click(click("k1", tenant="")).units
    assert units_from_sa_click(click("", tenant="acme")).problems


async def test_clicks_are_charged_once(settings: Settings) -> None:
    billing = await build(settings)
    workers = [asyncio.ensure_future(w) for w in billing.workers()]
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        transport = httpx.ASGITransport(app=billing.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
            package = await http.post("/internal/tenants/acme/packages", json={"product": "SA_CLICK", "quantity": 1})
            assert package.status_code in (200, 201), package.text
            await producer.send(SA_CLICKS, PUB, click("k1"))
            await producer.send(SA_CLICKS, PUB, click("k1"))  # the same click again (a retried post)
            await producer.send(SA_CLICKS, PUB, click("k2"))
            await producer.send(SA_CLICKS, PUB, click("k3", tenant=""))  # no owner: dead-lettered
            usage = await collect(
                settings, USAGE, billing_pb2.UsageEvent, until=lambda got: len({u.meta.event_id for u in got}) >= 2
            )
            by_id = {u.meta.event_id: u for u in usage}
            assert set(by_id) == {sa_click_unit_id("acme", PUB, "k1"), sa_click_unit_id("acme", PUB, "k2")}
            assert {u.product for u in usage} == {billing_pb2.USAGE_PRODUCT_SA_CLICK}
            assert sorted(u.on_demand_quantity for u in by_id.values()) == [0, 1]  # the package covered one
            letters = await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda got: len(got) >= 1)
            assert letters[0].source_topic.endswith("sa.clicks")
            assert sa_pb2.SaClicked.FromString(letters[0].value).click_id == "k3"

            async def charged() -> int:
                rows = (await http.get("/internal/tenants/acme/summary")).json()["products"]
                return sum(r["charged"] for r in rows if r["product"] == "SA_CLICK")

            assert await charged() == 2
            assert (await wait_ready(http))["sa_click_consumer"] is True
    finally:
        billing.stop()
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 30)
        await producer.stop()
        await billing.close()
