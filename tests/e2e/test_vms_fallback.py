"""The VMS fallback of a smart send task on real processes: gateway -> number-resolver (unresolvable numbers routed
VMS) -> shortlink (forwarded without a link) -> dispatcher send role (hand-off) -> vms role -> the carrier
simulator's VMS channel -> reports back on DELIVERY -> the task's send details, the AIM receipts and the billing
(VMS for the fallback messages, AIM_SMS for the smart ones, nothing twice)."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    CreateVmsTemplateRequest,
    CreateVmsTemplateRequestBody,
    ListAimSendDetailsRequest,
    ListVmsTemplateStatusRequest,
    ResourceInfo,
    SmsChannel,
)

from magpie_devstack import campaign
from magpie_devstack.receipts import ReceiptCollector
from magpie_devstack.stack import Stack

from .conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

FINAL = {"DELIVERED", "FAILED", "TIMEOUT", "INVALID", "SKIPPED"}


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def wait(what: str, check: Any, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_smart_send_with_vms_fallback(stack: Stack) -> None:
    with ReceiptCollector() as receipts:
        tenant = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "e2e-vms-fallback")
        campaign.buy_package(stack.url("billing"), tenant.tenant_id, "VMS", 3)
        population = campaign.Population.synthetic(40, seed=11)
        campaign.seed_devices(stack.url("number-resolver"), population)
        client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
        # The VMS fallback sends video SMS: the gateway wants the VMS enterprise filing as well as the AIM one.
        pre = campaign.prerequisites(client, callback_url=receipts.url, suffix="_v", filings=("AIM", "VMS"))

        vms_body = CreateVmsTemplateRequestBody(
            expiration_time="30",
            tpl_name="会员日视频",
            title="会员日",
            reslist=[
                ResourceInfo(type="png", name="banner.png", source="file", content=base64.b64encode(png()).decode()),
                ResourceInfo(type="txt", name="text", source="txt", content="【喜鹊商城】#p_1#，您的会员日礼包已到账"),
            ],
        )
        vms_tpl = client.create_vms_template(CreateVmsTemplateRequest(body=vms_body)).tplid

        def approved() -> bool:
            view = client.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=vms_tpl)).data.templates[0]
            return bool(view.audit_state == 0)

        wait("the carriers approved the VMS template", approved)

        names = {s.mobile: f"会员{i}" for i, s in enumerate(population.subscribers)}
        params = [
            CreateResolveTaskParam(cust_flag=s.mobile, dync_params={"name": names[s.mobile], "amount": "8"})
            for s in population.subscribers
        ]
        request = CreateAimSendTaskRequest(
            body=CreateAimSendTaskRequestBody(
                task_name="会员日",
                sms_channel=SmsChannel(
                    sms_tpl_id=pre.sms_template_id, sms_sign=pre.sign_name, sms_app_name=pre.app_name
                ),
                resolve_task=AIMResolveTask(
                    tpl_id=pre.tpl_id, aim_code_type="individual", generation_type="1", expiration_time=3, params=params
                ),
            )
        )
        created = (
            client.create_aim_send_task_invoker(request)
            .add_header("X-Magpie-Fallback", "vms")
            .add_header("X-Magpie-Fallback-Vms-Template", vms_tpl)
            .add_header("X-Magpie-Fallback-Vms-Params", "#p_1#=dync:name")
            .invoke()
        )
        task_id = created.task_id

        def final_details() -> Any:
            page = client.list_aim_send_details(ListAimSendDetailsRequest(task_id=task_id, limit=100))
            raw = json.loads(page.raw_content)["send_details"]
            done = len(raw) == len(population.subscribers) and all(d["send_status"] in FINAL for d in raw)
            return {d["cust_flag"]: d for d in raw} if done else None

        details = wait("every recipient is final", final_details)
        # Unresolvable numbers (the registry's devices too old; unknown ones unless a provider knows them) got the
        # VMS, the others the smart SMS; invalid numbers nothing.
        fallback = {m for m, d in details.items() if d["route"] == "VMS"}
        capable = {m for m, d in details.items() if d["route"] == "SMART"}
        incapable = {s.mobile for s in population.subscribers if s.kind == "incapable"}
        invalid = {s.mobile for s in population.subscribers if s.kind == "invalid"}
        assert incapable and incapable <= fallback and capable
        assert fallback | capable | invalid == set(details) and not (fallback | capable) & invalid
        for mobile, detail in details.items():
            if mobile in invalid:
                assert (detail["route"], detail["send_status"]) == ("INVALID", "INVALID")
            else:
                assert detail["send_status"] in {"DELIVERED", "FAILED"}, detail
                assert detail["msg_id"] and detail["send_time"] and detail["receive_time"], detail

        # The VMS channel got exactly the fallback recipients, each once, with their own text; the SMSC the others.
        shown = httpx.get(f"{stack.simulator_url}/vms/v1/messages", params={"limit": 1000}, timeout=10).json()
        messages = [m for m in shown["messages"] if m["mobile"] in details]
        assert sorted(m["mobile"] for m in messages) == sorted(fallback)
        assert all(m["texts"] == [f"【喜鹊商城】{names[m['mobile']]}，您的会员日礼包已到账"] for m in messages)
        parts = campaign.carrier_parts(stack.simulator_url)
        assert not fallback & set(parts) and capable <= set(parts)
        assert httpx.get(f"{stack.simulator_url}/duplicates", timeout=10).json().get("duplicates") == []

        # One sms receipt per sent message, VMS ones included (tpl_id = the VMS template).
        sent = [d for d in details.values() if d["send_status"] in {"DELIVERED", "FAILED"}]
        wait("the receipts", lambda: receipts.count("sms") >= len(sent), timeout_s=30)
        by_mobile = {r["cust_flag"]: r for r in receipts.items() if r.get("callback_type") == "sms"}
        assert receipts.count("sms") == len(sent)
        assert all(by_mobile[m]["tpl_id"] == vms_tpl and by_mobile[m]["task_id"] == task_id for m in fallback)

        # Billing: one VMS per delivered fallback message (packages first), AIM_SMS only for the smart ones.
        vms_delivered = sum(1 for m in fallback if details[m]["send_status"] == "DELIVERED")
        sms_delivered = sum(parts[m] for m in capable if details[m]["send_status"] == "DELIVERED")

        def billed() -> Any:
            rows = {
                p["product"]: p for p in campaign.billing_summary(stack.url("billing"), tenant.tenant_id)["products"]
            }
            vms = rows.get("VMS", {})
            sms = rows.get("AIM_SMS", {})
            return rows if vms.get("charged") == vms_delivered and sms.get("charged", 0) == sms_delivered else None

        rows = wait("the deliveries are billed", billed, timeout_s=30)
        assert rows["VMS"]["from_packages"] == min(3, vms_delivered)
        assert rows["VMS"]["on_demand"] == max(0, vms_delivered - 3)
