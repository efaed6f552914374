"""Fixtures of the gateway tests: the gateway built in-process on the real embedded infrastructure (consumer
loops running), tenants, httpx clients that sign like the official SDK, and helpers that stand in for the other
services (the reviewer's decisions, the pipeline's recipient events)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkoomessage.v1 import KooMessageClient

from magpie.v1 import template_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.service import http_server
from magpie_common.topics import TEMPLATE_REVIEWED
from magpie_gateway.config import GatewayConfig
from magpie_gateway.wiring import Gateway, build

ADMIN_TOKEN = "test-admin-token"
BASE_URL = "http://gateway.test"


class SdkSigner(httpx.Auth):
    """Signs httpx requests with the official SDK's signer (SDK-HMAC-SHA256), as ``KooMessageClient`` does."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.credentials = BasicCredentials(access_key, secret_key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raw_query = request.url.query.decode()
        query = [
            (unquote(key), unquote(value))
            for key, _, value in (part.partition("=") for part in raw_query.split("&") if part)
        ]
        headers = {"Content-Type": request.headers.get("content-type", "application/json")}
        sdk_request = SdkRequest(
            method=request.method,
            schema=request.url.scheme,
            host=request.url.netloc.decode(),
            resource_path=request.url.raw_path.decode().split("?")[0],
            query_params=query,
            header_params=headers,
            body=request.content or "",
        )
        Signer(self.credentials).sign(sdk_request)
        for name, value in sdk_request.header_params.items():  # X-Sdk-Date, Authorization, X-Sdk-Content-Sha256
            if name.lower() != "host":
                request.headers[name] = str(value)
        yield request


@dataclass
class TenantKeys:
    tenant_id: str
    access_key: str
    secret_key: str


@dataclass
class Harness:
    settings: Settings
    gateway: Gateway
    producer: EventProducer

    def client(self, tenant: TenantKeys) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.gateway.app),
            base_url=BASE_URL,
            auth=SdkSigner(tenant.access_key, tenant.secret_key),
            timeout=60,
        )

    def admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.gateway.app), base_url=BASE_URL, timeout=60)

    async def tenant(self, name: str = "acme") -> TenantKeys:
        async with self.admin() as admin:
            response = await admin.post(
                "/internal/tenants", json={"name": name}, headers={"X-Admin-Token": ADMIN_TOKEN}
            )
        assert response.status_code == 201, response.text
        body = response.json()
        return TenantKeys(body["tenant_id"], body["access_key"], body["secret_key"])

    async def review(
        self,
        subject: int,
        subject_id: str,
        *,
        approved: bool = True,
        revision: int = 1,
        vendors: dict[str, bool] | None = None,
        reason: str = "",
    ) -> None:
        """Produce the reviewer's decision on TEMPLATE_REVIEWED, as template-review does."""
        message = template_pb2.TemplateReviewed(
            subject=subject, subject_id=subject_id, revision=revision, approved=approved, reason=reason
        )
        for vendor, ok in (vendors or {}).items():
            message.vendors.add(vendor=vendor, approved=ok, reason="" if ok else "rejected by vendor")
        message.meta.event_id = f"review-{subject_id}-{revision}-{approved}"
        await self.producer.send(TEMPLATE_REVIEWED, subject_id, message)

    async def prerequisites(
        self,
        client: httpx.AsyncClient,
        *,
        suffix: str = "",
        sms_content: str = "尊敬的会员，您的专属优惠已到账，点击 ${1} 查看。拒收请回复R",
        card_params: tuple[str, ...] = ("name", "amount"),
        approve: bool = True,
    ) -> Setup:
        """App, signature, SMS template and AIM template of the calling tenant, approved by the "reviewer"."""
        app = await client.post("/v1/sms/apps", json={"app_name": f"shop_app{suffix}"})
        assert app.status_code == 200, app.text
        app_id = app.json()["app_id"]
        sign = "喜鹊商城" + suffix.replace("_", "")
        signature = await client.post(
            "/v1/sms/signatures",
            json={
                "signature_name": sign,
                "signature_type": "PROMOTION_TYPE",
                "app_id": app_id,
                "signature_source": 0,
                "is_involved_third": "no",
            },
        )
        assert signature.status_code == 200, signature.text
        signature_id = signature.json()["signature_id"]
        template = await client.post(
            "/v1/sms/templates",
            json={
                "signature_id": signature_id,
                "template_name": "会员日",
                "template_type": "PROMOTION_TYPE",
                "template_content": sms_content,
            },
        )
        assert template.status_code == 200, template.text
        template_id = template.json()["template_id"]
        card = await client.post("/v1/aim/templates", json=card_body(card_params))
        assert card.status_code == 200, card.text
        tpl_id = card.json()["data"]["tpl_id"]
        setup = Setup(f"shop_app{suffix}", app_id, sign, signature_id, template_id, tpl_id)
        if approve:
            await self.review(template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE, signature_id)
            await self.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, template_id)
            await self.review(
                template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE, tpl_id, vendors={"HUAWEI": True, "HONOR": True, "OPPO": False}
            )

            async def approved() -> bool:
                s = (await client.get(f"/v1/sms/signatures/{signature_id}")).json()
                t = (await client.get(f"/v1/sms/templates/{template_id}")).json()
                c = (await client.get("/v1/aim/templates", params={"tpl_id": tpl_id})).json()["templates"][0]
                return s["status"] == "APPROVED" and t["flow_status"] == "APPROVED" and c["tpl_state"] == 1

            await eventually(approved)
        return setup


@dataclass
class Setup:
    app_name: str
    app_id: str
    sign: str
    signature_id: str
    sms_template_id: str
    tpl_id: str

    def task(self, params: list[dict[str, Any]], *, name: str = "双十一", tpl_id: str | None = None) -> dict[str, Any]:
        """A create_aim_send_task body for these prerequisites."""
        return {
            "task_name": name,
            "sms_channel": {"sms_tpl_id": self.sms_template_id, "sms_sign": self.sign, "sms_app_name": self.app_name},
            "resolve_task": {
                "tpl_id": tpl_id or self.tpl_id,
                "aim_code_type": "individual",
                "generation_type": "1",
                "expiration_time": 3,
                "params": params,
            },
        }


def card_body(
    params: tuple[str, ...] = ("name", "amount"), vendors: tuple[str, ...] = ("HUAWEI", "HONOR", "OPPO")
) -> dict[str, Any]:
    return {
        "card_id": "StandardImageAndText",
        "tpl_name": "双十一优惠券",
        "scene": "marketing",
        "use_id": 1,
        "sms_example": "您有一张优惠券待领取",
        "pages": [
            {
                "page_order": 1,
                "contents": [
                    {
                        "type": "image",
                        "src_type": 2,
                        "src": "https://img.example.com/banner.png",
                        "action_type": "OPEN_BROWSER",
                        "action": {"target": "https://shop.example.com"},
                    },
                    {"type": "text", "content": "双十一会员日", "is_text_title": "true"},
                    {"type": "text", "content": "${name}，您有一张 ${amount} 元优惠券"},
                    {
                        "type": "button",
                        "content": "立即领取",
                        "action_type": "OPEN_BROWSER",
                        "action": {"target": "https://shop.example.com/coupon"},
                    },
                ],
            }
        ],
        "params": [{"type": 1, "name": "${" + p + "}", "example": "x"} for p in params],
        "factorys": [{"factory_type": v, "state": 1} for v in vendors],
    }


def recipients(count: int, *, start: int = 0, params: tuple[str, ...] = ("name", "amount")) -> list[dict[str, Any]]:
    return [
        {"cust_flag": f"139{start + i:08d}", "dync_params": {p: f"{p}-{start + i}" for p in params}}
        for i in range(count)
    ]


async def eventually(check: Callable[[], Any], *, timeout_s: float = 30, interval_s: float = 0.1) -> Any:
    """Await ``check()`` (sync or async) until it returns a truthy value; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        last = result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last value {last!r})")
        await asyncio.sleep(interval_s)


def gateway_config(**overrides: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "replay_check": False,
        "allow_loopback_callbacks": False,
        "link_domain": "http://127.0.0.1:18081/",
        "default_fallback": "sms",
        "require_filings": False,  # production default on: test_filing_gate turns it on
    }
    values.update(overrides)
    return GatewayConfig(**values)


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, config: GatewayConfig, *, loops: bool = True) -> AsyncIterator[Gateway]:
    """The gateway (with its consumer loops running unless ``loops`` is False), stopped and closed afterwards.

    Run one gateway with loops per test: the embedded broker rebalances multi-member groups slowly."""
    gateway = await build(settings, config)
    tasks = [asyncio.create_task(loop.run()) for loop in gateway.loops] if loops else []
    try:
        yield gateway
    finally:
        gateway.stop_loops()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=30)
            stuck = [repr(loop) for loop, task in zip(gateway.loops, tasks, strict=True) if task in pending]
            assert not stuck, f"gateway loops did not stop within 30 s: {stuck}"
        await gateway.close()


@contextlib.asynccontextmanager
async def harness_of(settings: Settings, config: GatewayConfig) -> AsyncIterator[Harness]:
    producer = EventProducer(settings, "gateway-tests")
    await producer.start()
    try:
        async with running_gateway(settings, config) as gateway:
            yield Harness(settings, gateway, producer)
    finally:
        await producer.stop()


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    async with harness_of(settings, gateway_config()) as value:
        yield value


# --- the official SDK against the gateway served on a real socket -----------------------------------------------
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served_gateway(settings: Settings, config: GatewayConfig) -> AsyncIterator[tuple[str, Harness]]:
    """The gateway (consumer loops running) served by uvicorn on a free port: ``(base_url, harness)``."""
    port = free_port()
    async with harness_of(settings, config) as harness:
        server = http_server(harness.gateway.app, "127.0.0.1", port)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}", harness
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 30)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, Harness]]:
    """The gateway with replay protection on Redis, served by uvicorn on a free port."""
    async with served_gateway(settings, gateway_config(replay_check=True)) as value:
        yield value


def sdk_client(url: str, tenant: TenantKeys) -> KooMessageClient:
    """The official SDK client of ``tenant`` pointed at the gateway at ``url``."""
    return (
        KooMessageClient.new_builder()
        .with_credentials(BasicCredentials(tenant.access_key, tenant.secret_key))
        .with_endpoints([url])
        .build()
    )


async def call(fn: Callable[[], T]) -> T:
    """Run a blocking SDK call off the event loop (the gateway runs on it)."""
    return await asyncio.to_thread(fn)


async def until(fn: Callable[[], Any], *, timeout_s: float = 30) -> Any:
    """Call the blocking ``fn`` until it returns a truthy value (identical signed GETs are fine: only writes are
    replay-checked)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await call(fn)
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.3)
