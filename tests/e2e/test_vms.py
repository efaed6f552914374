"""Video SMS on real processes: a VMS template reviewed by template-review for the three carriers, a send task
delivered by the dispatcher's vms role through the carrier simulator's VMS channel, the task's final status, the
customer's send-status callbacks and the VMS billing."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
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

from magpie_devstack import campaign
from magpie_devstack.stack import Stack

from .conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


class Hooks:
    """The customer's callback server (a thread): JSON bodies by path."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {}
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.bodies.setdefault(self.path, []).append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Hooks:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with Hooks() as server:
        yield server


def wait(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_vms_end_to_end(stack: Stack, hooks: Hooks) -> None:
    tenant = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "vms-e2e")
    campaign.buy_package(stack.url("billing"), tenant.tenant_id, "VMS", 2)
    client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
    campaign.approved_filings(client, ("VMS",))  # sending VMS needs the approved VMS enterprise filing
    client.add_vms_call_back(
        AddVmsCallBackRequest(body=AddVmsCallBackRequestBody(url_type=0, callback_url=hooks.url + "/status"))
    )
    body = CreateVmsTemplateRequestBody(
        expiration_time="30",
        tpl_name="新车上市",
        title="试驾邀请",
        reslist=[
            ResourceInfo(type="png", name="car.png", source="file", content=base64.b64encode(png()).decode()),
            ResourceInfo(type="txt", name="text", source="txt", content="【喜鹊汽车】#p_1#，诚邀您周末试驾"),
        ],
    )
    tpl_id = client.create_vms_template(CreateVmsTemplateRequest(body=body)).tplid

    def approved() -> bool:
        view = client.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=tpl_id)).data.templates[0]
        return view.audit_state == 0 and [d.status for d in view.status_detail] == [0, 0, 0]

    wait("the carriers approved the template", approved)
    mobiles = ["13900000001", "18600000002", "18900000003"]
    task = CreateVmsSendTaskRequestBody(
        task_name="周末试驾", tpl_id=tpl_id, mobiles=mobiles, dync_params=[ContentParam("#p_1#", "txt", "txt", "车主")]
    )
    task_id = client.create_vms_send_task(CreateVmsSendTaskRequest(body=task)).data.task_id

    def final() -> Any:
        view = client.list_vms_send_tasks(ListVmsSendTasksRequest(task_id=task_id)).data.aim_basic_send_tasks[0]
        return view if view.task_state in {"sending_complete", "sending_failed"} else None

    done = wait("the task is final", final)
    assert done.total_count == 3 and done.success_count + done.failed_count == 3 and done.success_count >= 1
    shown = httpx.get(f"{stack.simulator_url}/vms/v1/messages", timeout=10).json()["messages"]
    assert {m["mobile"] for m in shown} == set(mobiles)
    assert all(m["texts"] == ["【喜鹊汽车】车主，诚邀您周末试驾"] for m in shown)

    reports = wait(
        "three send-status reports",
        lambda: (r := [x for body in hooks.bodies.get("/status", []) for x in body["reports"]]) and len(r) >= 3 and r,
    )
    assert {r["mobile"] for r in reports} == set(mobiles) and all(r["task_id"] == task_id for r in reports)
    assert sum(1 for r in reports if r["status"] == "success") == done.success_count

    def billed() -> Any:
        rows = {p["product"]: p for p in campaign.billing_summary(stack.url("billing"), tenant.tenant_id)["products"]}
        return rows.get("VMS") if rows.get("VMS", {}).get("charged") == done.success_count else None

    vms = wait("the delivered messages are billed", billed)
    assert vms["from_packages"] == min(2, done.success_count)
