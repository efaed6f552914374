"""Hourly settlements from the ledger, with a settable clock, and the summary built on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from magpie_billing.app import BillingComponents, build
from magpie_billing.products import Product
from magpie_billing.settlement import Settler
from magpie_billing.units import BillableUnit, Source
from magpie_common.config import Settings

pytestmark = pytest.mark.integration

DAY = datetime(2025, 3, 10, tzinfo=UTC)


@pytest.fixture
async def timed(settings: Settings, clock: Any) -> AsyncIterator[tuple[BillingComponents, Any]]:
    clock.now = DAY.replace(hour=8, minute=10)
    components = await build(settings, clock=clock)
    try:
        yield components, clock
    finally:
        await components.close()


def sms(tenant: str, ref: str, quantity: int) -> BillableUnit:
    return BillableUnit(f"{tenant}:{ref}", tenant, Product.AIM_SMS, quantity, Source.DELIVERY, f"ev-{ref}", "task", ref)


async def totals(billing: BillingComponents, tenant: str, clock: Any) -> tuple[int, int, int, int]:
    row = next(r for r in await billing.store.summary(tenant, clock()) if r.product is Product.AIM_SMS)
    return row.units, row.charged, row.from_packages, row.on_demand


async def test_hours_are_settled_after_the_grace_period_and_summaries_agree(
    timed: tuple[BillingComponents, Any],
) -> None:
    billing, clock = timed
    settler = Settler(billing.store, clock=clock, grace=timedelta(minutes=5))
    await billing.store.add_package(
        "acme", Product.AIM_SMS, 3, package_id="p", valid_from=clock(), validity=timedelta(days=365)
    )
    assert (await settler.settle()).settled_through is None  # empty ledger: nothing to settle

    await billing.charger.charge([sms("acme", "m1", 2)])  # 08:10, from the package
    clock.advance(minutes=40)
    await billing.charger.charge([sms("acme", "m2", 2), sms("other", "x1", 1)])  # 08:50: 1 package + 1 on demand
    clock.advance(minutes=30)
    await billing.charger.charge([sms("acme", "m3", 4)])  # 09:20, on demand
    clock.advance(minutes=10)  # 09:30

    report = await settler.settle()
    assert report.settled_through == DAY.replace(hour=9)
    rows = await billing.store.settlement_rows("acme", DAY, DAY + timedelta(days=1))
    keys = ("units", "quantity", "from_packages", "on_demand", "final")
    assert [(r["hour"].hour, *(r[k] for k in keys)) for r in rows] == [
        (8, 2, 4, 3, 1, True),
        (9, 1, 4, 0, 4, False),
    ]
    assert await totals(billing, "acme", clock) == (3, 8, 3, 5)
    assert await totals(billing, "other", clock) == (1, 1, 0, 1)

    clock.now = DAY.replace(hour=10, minute=3)
    await billing.charger.charge([sms("acme", "m4", 1)])
    assert (await settler.settle()).settled_through == DAY.replace(hour=9)  # 09:00-10:00 still within the grace
    assert await totals(billing, "acme", clock) == (4, 9, 3, 6)

    clock.now = DAY.replace(hour=10, minute=6)
    assert (await settler.settle()).settled_through == DAY.replace(hour=10)
    again = await settler.settle()  # recomputing is idempotent
    assert again.settled_through == DAY.replace(hour=10)
    rows = await billing.store.settlement_rows("acme", DAY, DAY + timedelta(days=1))
    assert [(r["hour"].hour, r["quantity"], r["final"]) for r in rows] == [(8, 4, True), (9, 4, True), (10, 1, False)]
    assert await totals(billing, "acme", clock) == (4, 9, 3, 6)  # settlements before 10:00 + ledger after

    transport = httpx.ASGITransport(app=billing.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as http:
        body = (
            await http.get(
                "/internal/tenants/acme/settlements",
                params={"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"},
            )
        ).json()
        assert body["settled_through"] == "2025-03-10T10:00:00.000Z"
        assert [(s["hour"], s["quantity"], s["on_demand"], s["final"]) for s in body["settlements"]] == [
            ("2025-03-10T08:00:00.000Z", 4, 1, True),
            ("2025-03-10T09:00:00.000Z", 4, 4, True),
            ("2025-03-10T10:00:00.000Z", 1, 1, False),
        ]
        default_window = (await http.get("/internal/tenants/acme/settlements")).json()  # the last 24 h
        assert len(default_window["settlements"]) == 3
