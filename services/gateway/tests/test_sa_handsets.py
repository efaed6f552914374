"""Service numbers end to end (product spec §4 workflow 4): created and approved at the gateway (official SDK),
port bound per region, published on Kafka, shown by the shortlink edge to a messaging app receiving an SMS from
the port with the signature, clicks billed once each by billing (packages first), hidden while frozen and shown
again once the unfreeze is approved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    FreezePubRequest,
    FreezePubRequestBody,
    LockPortRequest,
    LockPortRequestBody,
    UnfreezePubRequest,
    UnfreezePubRequestBody,
)

from magpie_billing.app import BillingComponents
from magpie_billing.app import build as build_billing
from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.wiring import build as build_shortlink

from .conftest import Harness, call, eventually, free_port, sdk_client
from .sa_testkit import BACKGROUND, LOGO, PUB, images, live_pub
from .test_sa_publish import registered_port

pytestmark = pytest.mark.integration

SMS = {"port": "10690001", "sign": "【喜鹊商城】", "region": "440000"}


@pytest.fixture
async def edge(settings: Settings) -> AsyncIterator[str]:
    """The shortlink edge served on a free port (it consumes SA_PUBLISHED while served)."""
    port = free_port()
    components = await build_shortlink(settings, ShortlinkConfig(roles=frozenset({"edge"}), http_port=port, secret="s"))
    assert components.app is not None
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


@pytest.fixture
async def billing(settings: Settings) -> AsyncIterator[BillingComponents]:
    components = await build_billing(settings)
    workers = [asyncio.ensure_future(w) for w in components.workers()]
    try:
        yield components
    finally:
        components.stop()
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 30)
        await components.close()


async def test_service_number_on_handsets(served: tuple[str, Harness], edge: str, billing: BillingComponents) -> None:
    url, harness = served
    tenant = await harness.tenant("喜鹊科技")
    sdk = sdk_client(url, tenant)
    ledger = httpx.AsyncClient(transport=httpx.ASGITransport(app=billing.app), base_url="http://billing")
    handset = httpx.AsyncClient(base_url=edge, headers={"User-Agent": "HwMessaging/11.1.1.400"})
    async with harness.client(tenant) as http, ledger, handset:
        package = await ledger.post(
            f"/internal/tenants/{tenant.tenant_id}/packages", json={"product": "SA_CLICK", "quantity": 1}
        )
        assert package.status_code in (200, 201), package.text
        img = await images(http)
        created = await live_pub(harness, http, img)
        pub_id = created["pub_id"]
        port_id = await registered_port(harness, http, img.licence)

        # Not bound yet: nothing to show for this SMS.
        assert (await handset.get("/v1/sa/profile", params=SMS)).status_code == 404
        bound = await call(
            lambda: sdk.lock_port(
                LockPortRequest(
                    body=LockPortRequestBody(
                        pub_id=pub_id, ext_port_id=port_id, port="10690001", sign=["喜鹊商城"], province="广东省"
                    )
                )
            )
        )
        assert bound.data.message == "success"

        async def shown() -> dict[str, Any] | None:
            response = await handset.get("/v1/sa/profile", params=SMS)
            return response.json() if response.status_code == 200 else None

        card = await eventually(shown)
        assert card["pub_id"] == pub_id and card["name"] == "喜鹊商城" and card["company_name"] == "喜鹊科技"
        assert [m["id"] for m in card["menus"]] == ["1", "2", "3"]
        assert [c["name"] for c in card["menus"][0]["children"]] == ["精选推荐", "客服热线"]
        assert card["binding"]["port"] == "10690001" and card["binding"]["regions"] == ["广东省"]
        assert (await handset.get(card["logo_url"])).content == LOGO
        assert (await handset.get(card["homepage"]["background_url"])).content == BACKGROUND
        # Another province, another signature: not shown.
        assert (await handset.get("/v1/sa/profile", params={**SMS, "region": "11"})).status_code == 404
        assert (await handset.get("/v1/sa/profile", params={**SMS, "sign": "别家"})).status_code == 404

        # Clicks: a menu entry (posted twice: one click), the homepage.
        menu_click = {"pub_id": pub_id, "click_id": "h1-0001", "menu_id": "1.1", "device": "dev-1"}
        for _ in range(2):
            assert (await handset.post("/v1/sa/clicks", json=menu_click)).status_code == 200
        page_click = {"pub_id": pub_id, "click_id": "h1-0002", "homepage": True}
        assert (await handset.post("/v1/sa/clicks", json=page_click)).status_code == 200

        async def charged() -> dict[str, int] | None:
            rows = (await ledger.get(f"/internal/tenants/{tenant.tenant_id}/summary")).json()["products"]
            row = next((r for r in rows if r["product"] == "SA_CLICK"), None)
            return row if row and row["charged"] >= 2 else None

        summary = await eventually(charged)
        assert summary["charged"] == 2 and summary["from_packages"] == 1 and summary["on_demand"] == 1

        # Frozen: hidden at once (the snapshot is durable before freeze_pub answers), clicks refused.
        frozen = await call(
            lambda: sdk.freeze_pub(FreezePubRequest(pub_id=pub_id, body=FreezePubRequestBody(change_reason="暂停")))
        )
        assert frozen.data.pub_id == pub_id
        await eventually(lambda: hidden(handset))
        refused = await handset.post("/v1/sa/clicks", json={**page_click, "click_id": "h1-0003"})
        assert refused.status_code == 404

        # Unfreezing is reviewed; once approved, shown again.
        await call(
            lambda: sdk.unfreeze_pub(
                UnfreezePubRequest(pub_id=pub_id, body=UnfreezePubRequestBody(change_reason="恢复"))
            )
        )
        assert await hidden(handset)  # still frozen while under review
        await harness.review(PUB, pub_id, revision=2)
        again = await eventually(shown)
        assert again["version"] > card["version"]
        summary = await eventually(charged)
        assert summary["charged"] == 2  # nothing more was billed


async def hidden(handset: httpx.AsyncClient) -> bool:
    return (await handset.get("/v1/sa/profile", params=SMS)).status_code == 404
