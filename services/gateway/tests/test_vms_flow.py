"""VMS end to end in-process: the official SDK against the served gateway, the template reviewed by the three
carriers, the task handed to the dispatcher's vms role, delivered by the carrier simulator's VMS channel, its status
final in the gateway, the send-status and reply callbacks received by a local HTTP server, and the delivered
messages billed as product VMS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from huaweicloudsdkkoomessage.v1 import (
    AddVmsCallBackRequest,
    AddVmsCallBackRequestBody,
    ContentParam,
    CreateVmsSendTaskRequest,
    CreateVmsSendTaskRequestBody,
    CreateVmsTemplateRequest,
    CreateVmsTemplateRequestBody,
    ListVmsSendTasksRequest,
    ListVmsTemplateStatusRequest,
    ResourceInfo,
)

from magpie.v1 import billing_pb2, template_pb2
from magpie_billing.app import build as build_billing
from magpie_carrier_simulator import CarrierSimulator, SimulatorConfig
from magpie_common.config import Settings
from magpie_common.testing import collect
from magpie_common.topics import USAGE
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.role import build_vms
from magpie_dispatcher.wiring import redis_pool_client

from .conftest import call, gateway_config, sdk_client, served_gateway, until
from .vms_samples import b64, mp4, png

pytestmark = pytest.mark.integration


class Hooks:
    """The customer's callback server: records every POSTed JSON body by path."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {}
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v.split(b":", 1)[1]) for v in lines if v.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
        self.bodies.setdefault(lines[0].split(b" ")[1].decode(), []).append(orjson.loads(body))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        finally:
            self.server.close()
            await self.server.wait_closed()


@contextlib.asynccontextmanager
async def running(components: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w) for w in components.workers()]
    try:
        yield
    finally:
        components.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await components.close()


async def test_vms_task_is_delivered_reported_called_back_and_billed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGPIE_ALLOW_LOOPBACK_CALLBACKS", "1")  # the customer's server is on this machine
    monkeypatch.setenv("MAGPIE_RECEIPT_BATCH_WINDOW_MS", "100")
    hooks = Hooks()
    sim = CarrierSimulator(
        SimulatorConfig(smpp_port=0, http_port=0, accounts={"magpie": "vmspw"}, dlr_delay=0.1, reject_prefixes=("158",))
    )
    await sim.start()
    redis = redis_pool_client(settings, 16)
    vms_config = VmsConfig(
        carrier_url=f"http://127.0.0.1:{sim.http_port}", account="magpie", password="vmspw", poll_interval_s=0.05
    )
    try:
        async with (
            hooks.running() as hook_url,
            served_gateway(settings, gateway_config(allow_loopback_callbacks=True)) as (url, harness),
        ):
            role = await build_vms(settings, redis, vms_config)
            billing = await build_billing(settings)
            async with running(role), running(billing):
                tenant = await harness.tenant()
                sdk = sdk_client(url, tenant)
                for url_type, path in ((0, "/status"), (1, "/replies")):
                    body = AddVmsCallBackRequestBody(url_type=url_type, callback_url=hook_url + path)
                    await call(lambda body=body: sdk.add_vms_call_back(AddVmsCallBackRequest(body=body)))
                template = CreateVmsTemplateRequestBody(
                    expiration_time="7",
                    tpl_name="试驾邀请",
                    title="新车上市",
                    callbackurl=hook_url + "/template",
                    reslist=[
                        ResourceInfo(index="1-1", type="mp4", name="promo.mp4", source="file", content=b64(mp4())),
                        ResourceInfo(
                            index="1-2", type="txt", name="t", source="txt", content="【喜鹊汽车】#p_1#，欢迎试驾"
                        ),
                        ResourceInfo(index="2-1", type="png", name="car.png", source="file", content=b64(png(300))),
                    ],
                )
                tpl_id = (await call(lambda: sdk.create_vms_template(CreateVmsTemplateRequest(body=template)))).tplid
                # The carriers' review (template-review's role): China Telecom rejects.
                await harness.review(
                    template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE,
                    tpl_id,
                    vendors={"CMCC": True, "CUCC": True, "CTCC": False},
                )
                await until(
                    lambda: (
                        sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=tpl_id))
                        .data.templates[0]
                        .audit_state
                        == 0
                    )
                )
                mobiles = ["13900000001", "18600000002", "18900000003", "15800000004"]  # ok, ok, CTCC, rejected
                task = CreateVmsSendTaskRequestBody(
                    task_name="试驾",
                    tpl_id=tpl_id,
                    mobiles=mobiles,
                    dync_params=[ContentParam("#p_1#", "txt", "txt", "尊敬的车主")],
                )
                task_id = (
                    await call(lambda: sdk.create_vms_send_task(CreateVmsSendTaskRequest(body=task)))
                ).data.task_id

                def final() -> Any:
                    listed = sdk.list_vms_send_tasks(ListVmsSendTasksRequest(task_id=task_id)).data
                    got = listed.aim_basic_send_tasks[0]
                    return got if got.task_state == "sending_complete" else None

                done = await until(final, timeout_s=60)
                assert (done.total_count, done.success_count, done.failed_count, done.timeout_count) == (4, 2, 2, 0)

                # The handsets got the rendered message.
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.http_port}/vms/v1") as channel:
                    shown = (await channel.get("/messages", params={"mobile": "13900000001"})).json()["messages"]
                    assert shown[0]["texts"] == ["【喜鹊汽车】尊敬的车主，欢迎试驾"] and shown[0]["media"] == 2
                    assert (
                        await channel.post("/mo", json={"mobile": "13900000001", "content": "预约"})
                    ).status_code == 200

                async def called_back() -> bool:
                    reports = [r for body in hooks.bodies.get("/status", []) for r in body["reports"]]
                    return (
                        len(reports) == 4 and bool(hooks.bodies.get("/replies")) and bool(hooks.bodies.get("/template"))
                    )

                async with asyncio.timeout(30):
                    while not await called_back():
                        await asyncio.sleep(0.1)
                reports = {r["mobile"]: r for body in hooks.bodies["/status"] for r in body["reports"]}
                assert {m: (r["status"], r["code"]) for m, r in reports.items()} == {
                    "13900000001": ("success", "DELIVRD"),
                    "18600000002": ("success", "DELIVRD"),
                    "18900000003": ("failed", "TEMPLATE_NOT_APPROVED"),
                    "15800000004": ("failed", "REJECTD"),
                }
                assert all(r["task_id"] == task_id for r in reports.values())
                reply = hooks.bodies["/replies"][0]["result"][0]
                assert (reply["task_id"], reply["mobile"], reply["content"]) == (task_id, "13900000001", "预约")
                status = hooks.bodies["/template"][0]
                assert (status["tpl_id"], status["audit_state"]) == (tpl_id, 0)
                assert [d["status"] for d in status["status_detail"]] == [0, 0, 2]

                usage = await collect(
                    settings, USAGE, billing_pb2.UsageEvent, until=lambda got: len({u.meta.event_id for u in got}) >= 2
                )
                assert {u.product for u in usage} == {billing_pb2.USAGE_PRODUCT_VMS}
                assert {u.task_id for u in usage} == {task_id} and len({u.meta.event_id for u in usage}) == 2
    finally:
        await redis.aclose()
        await sim.stop()
