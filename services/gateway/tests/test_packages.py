"""Packages through the gateway, with the real billing service running in-process on its own port (the gateway
talks to it over HTTP via MAGPIE_BILLING_URL): offers, purchases (idempotent with Idempotency-Key, resumable after
billing was down), the live quotas after usage is charged, validation, and tenant isolation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from magpie_billing.app import BillingComponents
from magpie_billing.app import build as build_billing
from magpie_billing.products import Product
from magpie_billing.units import BillableUnit, Source
from magpie_common.config import Settings
from magpie_common.service import http_server

from .conftest import Harness, free_port

pytestmark = pytest.mark.integration

PACKAGES = "/v1/magpie/packages"


@pytest.fixture
async def billing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BillingComponents]:
    """Billing's components and internal API served on a free port; the gateway is pointed at it."""
    components = await build_billing(settings)
    port = free_port()
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    monkeypatch.setenv("MAGPIE_BILLING_URL", f"http://127.0.0.1:{port}/")
    try:
        yield components
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


async def test_offers(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        offers = (await client.get("/v1/magpie/package-offers")).json()["offers"]
        by_type = {o["package_type"]: o for o in offers}
        assert set(by_type) == {
            "AIM_RESOLUTION",
            "AIM_SEND_MARKETING",
            "AIM_SEND_NOTIFICATION",
            "VMS_THREE_NETWORK",
            "SA_CLICKS",
        }
        assert by_type["AIM_SEND_MARKETING"]["products"] == ["AIM_SMS", "AIM_RESOLUTION"]
        assert 100_000 in by_type["AIM_SEND_MARKETING"]["sizes"]
        assert 1_000_000 in by_type["VMS_THREE_NETWORK"]["sizes"]
        assert 300_000 in by_type["SA_CLICKS"]["sizes"]
        assert all(o["validity_days"] == 365 for o in offers)


async def test_purchase_is_idempotent_and_quotas_are_live(harness: Harness, billing: BillingComponents) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        body = {"package_type": "AIM_SEND_MARKETING", "size": 100_000, "quantity": 2}
        headers = {"Idempotency-Key": "order-2026-11-22-1"}
        bought = await client.post(PACKAGES, json=body, headers=headers)
        assert bought.status_code == 200, bought.text
        package = bought.json()
        assert (
            package["package_type"] == "AIM_SEND_MARKETING" and package["package_name"] == "智能信息发送和解析-营销类"
        )
        assert (package["size"], package["quantity"], package["total"], package["remaining"]) == (
            100_000,
            2,
            200_000,
            200_000,
        )
        assert package["status"] == "active" and package["validity_days"] == 365
        assert package["valid_from"].endswith("Z") and package["expires_at"] > package["valid_from"]
        assert [(q["product"], q["total"], q["remaining"]) for q in package["quotas"]] == [
            ("AIM_RESOLUTION", 200_000, 200_000),
            ("AIM_SMS", 200_000, 200_000),
        ]

        replay = await client.post(PACKAGES, json=body, headers=headers)
        assert replay.status_code == 200 and replay.json() == package
        assert replay.headers["Idempotent-Replayed"] == "true"
        other_terms = await client.post(PACKAGES, json={**body, "quantity": 3}, headers=headers)
        assert other_terms.status_code == 409 and other_terms.json()["error_code"] == "KM.00000409"
        in_billing = await billing.store.list_packages(tenant.tenant_id)
        assert sorted((p.product.value, p.total) for p in in_billing) == [
            ("AIM_RESOLUTION", 200_000),
            ("AIM_SMS", 200_000),
        ]

        vms = await client.post(PACKAGES, json={"package_type": "VMS_THREE_NETWORK", "size": 1_000})
        assert vms.status_code == 200 and vms.json()["quantity"] == 1 and vms.json()["total"] == 1_000

        # Usage charged by billing shows in the gateway's view of the packages.
        await billing.charger.charge(
            [
                BillableUnit(
                    unit_id=f"{tenant.tenant_id}-r{i}",
                    tenant_id=tenant.tenant_id,
                    product=Product.AIM_RESOLUTION,
                    quantity=1,
                    source=Source.LINK,
                    source_event_id=f"ev-r{i}",
                    task_id="task-1",
                    ref=f"r{i}",
                )
                for i in range(30)
            ]
        )
        shown = (await client.get(f"{PACKAGES}/{package['package_id']}")).json()
        quotas = {q["product"]: q for q in shown["quotas"]}
        assert quotas["AIM_RESOLUTION"]["used"] == 30 and quotas["AIM_RESOLUTION"]["remaining"] == 199_970
        assert quotas["AIM_SMS"]["remaining"] == 200_000 and shown["remaining"] == 199_970

        listed = (await client.get(PACKAGES)).json()
        assert listed["page_info"]["total"] == 2
        assert {p["package_type"] for p in listed["packages"]} == {"AIM_SEND_MARKETING", "VMS_THREE_NETWORK"}
        only_vms = (await client.get(PACKAGES, params={"package_type": "VMS_THREE_NETWORK"})).json()
        assert [p["package_id"] for p in only_vms["packages"]] == [vms.json()["package_id"]]
        assert (await client.get(PACKAGES, params={"status": "expired"})).json()["page_info"]["total"] == 0
        paged = (await client.get(PACKAGES, params={"limit": 1, "offset": 1})).json()
        assert len(paged["packages"]) == 1 and paged["page_info"] == {"offset": 1, "limit": 1, "total": 2}

        usage = (await client.get("/v1/magpie/package-usage")).json()
        rows = {r["product"]: r for r in usage["products"]}
        assert rows["AIM_RESOLUTION"]["charged"] == 30 and rows["AIM_RESOLUTION"]["from_packages"] == 30
        assert rows["AIM_RESOLUTION"]["remaining_quota"] == 199_970

        # A package bought in billing directly is listed as a single-quota package.
        await billing.store.add_package(
            tenant.tenant_id,
            Product.SA_CLICK,
            5_000,
            package_id="ops-grant-1",
            valid_from=billing.charger.clock(),
            validity=timedelta(days=30),
        )
        granted = (await client.get(f"{PACKAGES}/ops-grant-1")).json()
        assert granted["package_type"] == "SA_CLICKS" and granted["size"] == 5_000 and granted["validity_days"] == 30


async def test_purchase_resumes_after_billing_was_down(
    harness: Harness, billing: BillingComponents, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        body = {"package_type": "SA_CLICKS", "size": 300_000}
        headers = {"Idempotency-Key": "sa-order-1"}
        good_url = os.environ["MAGPIE_BILLING_URL"]
        monkeypatch.setenv("MAGPIE_BILLING_URL", f"http://127.0.0.1:{free_port()}")
        down = await client.post(PACKAGES, json=body, headers=headers)
        assert down.status_code == 503 and down.json()["error_code"] == "KM.00000513"
        listing = await client.get(PACKAGES)
        assert listing.status_code == 503
        monkeypatch.setenv("MAGPIE_BILLING_URL", good_url)
        retried = await client.post(PACKAGES, json=body, headers=headers)
        assert retried.status_code == 200, retried.text
        again = await client.post(PACKAGES, json=body, headers=headers)
        assert again.json()["package_id"] == retried.json()["package_id"]
        assert [(p.product.value, p.total) for p in await billing.store.list_packages(tenant.tenant_id)] == [
            ("SA_CLICK", 300_000)
        ]


async def test_purchase_validation(harness: Harness, billing: BillingComponents) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        not_offered = await client.post(PACKAGES, json={"package_type": "AIM_RESOLUTION", "size": 123})
        assert not_offered.status_code == 400 and not_offered.json()["error_code"] == "KM.00000512"
        assert "100000" in not_offered.json()["error_msg"]
        for body in (
            {"package_type": "AIM_RESOLUTION", "size": 100_000, "quantity": 0},
            {"package_type": "AIM_RESOLUTION", "size": 100_000, "quantity": 101},
            {"package_type": "SMS", "size": 100_000},
            {"package_type": "AIM_RESOLUTION"},
            {"package_type": "AIM_RESOLUTION", "size": 100_000, "price": 1},
        ):
            response = await client.post(PACKAGES, json=body)
            assert response.status_code == 400 and response.json()["error_code"] == "KM.00000400", body
        assert (await client.get(PACKAGES, params={"package_type": "X"})).status_code == 400
        assert (await client.get(PACKAGES, params={"status": "used"})).status_code == 400
        assert await billing.store.list_packages(tenant.tenant_id) == []


async def test_packages_are_tenant_scoped(harness: Harness, billing: BillingComponents) -> None:
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        body = {"package_type": "AIM_RESOLUTION", "size": 100_000}
        mine = await client.post(PACKAGES, json=body, headers={"Idempotency-Key": "same-key"})
        package_id = mine.json()["package_id"]
        missing = await intruder.get(f"{PACKAGES}/{package_id}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "KM.00000404"
        assert (await intruder.get(PACKAGES)).json()["page_info"]["total"] == 0
        theirs = await intruder.post(PACKAGES, json=body, headers={"Idempotency-Key": "same-key"})
        assert theirs.status_code == 200 and theirs.json()["package_id"] != package_id
        assert len(await billing.store.list_packages(owner.tenant_id)) == 1
        assert len(await billing.store.list_packages(other.tenant_id)) == 1
