"""The VMS fallback of smart send tasks at the gateway: the headers, the checks of the VMS template and of the params
mapping (with their codes), the task context handed to the pipeline, and the VMS results of the task's unresolvable
recipients projected into its send details (DELIVERY events with route VMS, as the dispatcher's vms role produces
them for a smart send task)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    ListAimSendDetailsRequest,
    ListAimSendTasksRequest,
    SmsChannel,
)

from magpie.v1 import common_pb2, dispatch_pb2, resolve_pb2, task_pb2, template_pb2
from magpie_common.config import Settings
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, DELIVERY, RECIPIENTS
from magpie_gateway.config import GatewayConfig

from .conftest import Harness, Setup, call, eventually, gateway_config, harness_of, recipients, sdk_client, until
from .vms_samples import media, png, template_body, text

pytestmark = pytest.mark.integration

VMS = template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE
SMS_CONTENT = "尊敬的会员，您的专属优惠已到账，点击 ${1} 查看，${2}前有效。拒收请回复R"  # link ${1}, one sms_param
FALLBACK = "X-Magpie-Fallback"
TEMPLATE = "X-Magpie-Fallback-Vms-Template"
PARAMS = "X-Magpie-Fallback-Vms-Params"


async def vms_template(
    harness: Harness, client: httpx.AsyncClient, *, body: dict[str, Any] | None = None, approved: bool | None = True
) -> str:
    """A VMS template of the client's tenant: approved by the three carriers, rejected by all (``approved=False``)
    or still under review (``approved=None``)."""
    response = await client.post("/v1/aim-basic/templates", json=body or template_body())
    assert response.status_code == 200, response.text
    tpl_id: str = response.json()["tplid"]
    if approved is None:
        return tpl_id
    await harness.review(VMS, tpl_id, approved=approved, vendors=dict.fromkeys(("CMCC", "CUCC", "CTCC"), approved))

    async def decided() -> bool:
        listed = (await client.get("/v1/aim-basic/templates", params={"tpl_id": tpl_id})).json()
        return bool(listed["data"]["templates"][0]["audit_state"] == (0 if approved else 2))

    await eventually(decided)
    return tpl_id


def people(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [{**p, "sms_params": [f"12月{start + i + 1}日"]} for i, p in enumerate(recipients(count, start=start))]


def mapping(**pairs: str) -> str:
    return ",".join(f"{name}={quote(source, safe=':')}" for name, source in pairs.items())


def code(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg"}
    return str(body["error_code"])


# --- through the official SDK -----------------------------------------------------------------------------------
async def test_sdk_task_with_vms_fallback_and_its_vms_results(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, sms_content=SMS_CONTENT)
        tpl_id = await vms_template(harness, client)
    sdk = sdk_client(url, tenant)
    params = [
        CreateResolveTaskParam(cust_flag=p["cust_flag"], dync_params=p["dync_params"], sms_params=p["sms_params"])
        for p in people(3)
    ]
    request = CreateAimSendTaskRequest(
        body=CreateAimSendTaskRequestBody(
            task_name="试驾邀请",
            sms_channel=SmsChannel(sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name),
            resolve_task=AIMResolveTask(
                tpl_id=setup.tpl_id, aim_code_type="individual", generation_type="1", expiration_time=3, params=params
            ),
        )
    )
    invoker = (
        sdk.create_aim_send_task_invoker(request)
        .add_header(FALLBACK, "vms")
        .add_header(TEMPLATE, tpl_id)
        .add_header(PARAMS, "#p_1#=dync:${name},p_2=sms:1")
    )
    created = await call(invoker.invoke)
    task_id = created.task_id
    assert task_id and created.task_state == "Success" and created.submission_count == 3
    assert json.loads(created.raw_content)["fallback"] == "vms"

    # The pipeline gets the template (revision approved now) and where each param's value comes from.
    batches = await collect(
        harness.settings, RECIPIENTS, task_pb2.RecipientBatch, until=lambda m: any(b.ctx.task_id == task_id for b in m)
    )
    (batch,) = [b for b in batches if b.ctx.task_id == task_id]
    ctx = batch.ctx
    assert ctx.fallback == common_pb2.FALLBACK_VMS
    assert (ctx.vms_tpl_id, ctx.vms_tpl_revision, list(ctx.vms_params)) == (tpl_id, 1, ["dync:name", "sms:1"])

    # Recipient 0 is smart, 1 and 2 unresolvable: routed VMS; the vms role reports them on DELIVERY.
    mobiles = [p.cust_flag for p in params]
    classified = resolve_pb2.ClassifiedBatch(ctx=ctx, batch_no=0, batch_count=1)
    classified.meta.event_id = f"classified-{task_id}"
    for index, route, reason in ((0, common_pb2.ROUTE_SMART, ""), (1, common_pb2.ROUTE_VMS, "UNKNOWN_DEVICE")):
        classified.recipients.add(index=index, mobile=mobiles[index], route=route, reason=reason)
    classified.recipients.add(index=2, mobile=mobiles[2], route=common_pb2.ROUTE_VMS, reason="APP_TOO_OLD")
    await harness.producer.send(CLASSIFIED, f"{task_id}:0", classified)
    now = int(datetime.now(UTC).timestamp() * 1000)
    delivered = dispatch_pb2.DeliveryBatch()
    delivered.meta.event_id = f"delivery-{task_id}"
    for index, status, result, route, segments in (
        (0, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", common_pb2.ROUTE_SMART, 2),
        (1, dispatch_pb2.DELIVERY_STATUS_SUBMITTED, "ACCEPTED", common_pb2.ROUTE_VMS, 1),
        (1, dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD", common_pb2.ROUTE_VMS, 1),
        (2, dispatch_pb2.DELIVERY_STATUS_FAILED, "TEMPLATE_NOT_APPROVED", common_pb2.ROUTE_VMS, 1),
    ):
        delivered.events.add(
            event_id=f"{task_id}-{index}-{status}",
            tenant_id=tenant.tenant_id,
            task_id=task_id,
            batch_no=0,
            index=index,
            mobile=mobiles[index],
            msg_id=f"vms-msg-{index}" if route == common_pb2.ROUTE_VMS else f"msg-{index}",
            status=status,  # type: ignore[arg-type]
            result_code=result,
            segments=segments,
            submitted_at_ms=now - 2000,
            done_at_ms=now if status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED else 0,
            route=route,  # type: ignore[arg-type]
            tpl_id=tpl_id if route == common_pb2.ROUTE_VMS else setup.tpl_id,
        )
    await harness.producer.send(DELIVERY, f"{task_id}:0", delivered)

    def final_details() -> Any:
        page = sdk.list_aim_send_details(ListAimSendDetailsRequest(task_id=task_id))
        shown = {d.cust_flag: d for d in page.send_details or []}
        return page if len(shown) == 3 and shown[mobiles[2]].send_status == "FAILED" else None

    page = await until(final_details)
    shown = {d.cust_flag: d for d in page.send_details}
    assert shown[mobiles[0]].send_status == "DELIVERED" and shown[mobiles[1]].send_status == "DELIVERED"
    assert shown[mobiles[1]].msg_id == "vms-msg-1" and shown[mobiles[1]].result_code == "DELIVRD"
    assert shown[mobiles[1]].send_time and shown[mobiles[1]].receive_time
    assert shown[mobiles[2]].result_code == "TEMPLATE_NOT_APPROVED"
    raw = {d["cust_flag"]: d for d in json.loads(page.raw_content)["send_details"]}
    assert [raw[m]["route"] for m in mobiles] == ["SMART", "VMS", "VMS"]
    assert [raw[m]["stage"] for m in mobiles] == ["FINAL"] * 3
    assert raw[mobiles[2]]["reason"] == "APP_TOO_OLD"

    def completed() -> Any:
        found = sdk.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task_id))
        task = found.aim_send_tasks[0]
        return found if task.task_state == "COMPLETED" else None

    found = await until(completed)
    summary = json.loads(found.raw_content)["aim_send_tasks"][0]["magpie_summary"]
    assert (summary["vms"], summary["resolvable"], summary["delivered"], summary["failed"]) == (2, 1, 2, 1)
    assert summary["fallback"] == "vms" and summary["number_check"]["unresolvable"] == 2


# --- checks and codes -------------------------------------------------------------------------------------------
async def test_vms_fallback_rules_have_their_codes(harness: Harness) -> None:
    tenant, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(tenant) as client, harness.client(other) as foreign:
        setup = await harness.prerequisites(client, sms_content=SMS_CONTENT)
        tpl_id = await vms_template(harness, client)
        rejected = await vms_template(harness, client, approved=False)
        reviewing = await vms_template(harness, client, approved=None)
        expired = await vms_template(harness, client)
        await harness.gateway.context.collections.vms_templates.update_one(
            {"_id": expired}, {"$set": {"valid_until": datetime.now(UTC) - timedelta(seconds=1)}}
        )
        theirs = await vms_template(harness, foreign)
        good = mapping(p_1="dync:name", p_2="sms:1")

        async def send(body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            return await client.post("/v1/aim/send-tasks", json=body, headers=headers)

        def vms(template: str | None = tpl_id, params: str | None = good) -> dict[str, str]:
            headers = {FALLBACK: "vms"}
            if template is not None:
                headers[TEMPLATE] = template
            if params is not None:
                headers[PARAMS] = params
            return headers

        task = setup.task(people(2))
        cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
            (task, vms(template=None), "KM.00000400"),  # the vms fallback names no template
            (task, vms(template="x" * 65), "KM.00000400"),
            (task, {FALLBACK: "sms", TEMPLATE: tpl_id}, "KM.00000400"),  # the template goes with vms only
            (task, {PARAMS: good}, "KM.00000400"),
            (task, vms(template="VMS-NOPE"), "KM.00000485"),
            (task, vms(template=theirs), "KM.00000485"),  # another tenant's template is unknown here
            (task, vms(template=rejected), "KM.00000486"),
            (task, vms(template=reviewing), "KM.00000486"),
            (task, vms(template=expired), "KM.00000486"),
            (task, vms(params=None), "KM.00000488"),  # the template's params are not mapped
            (task, vms(params=mapping(p_1="dync:name")), "KM.00000488"),  # #p_2# missing
            (task, vms(params=good + ",p_3=sms:1"), "KM.00000488"),  # no such param
            (task, vms(params=good + ",%23p_1%23=text:x"), "KM.00000488"),  # mapped twice
            (task, vms(params="p_1,p_2=sms:1"), "KM.00000488"),  # not <param>=<source>
            (task, vms(params="q_1=sms:1,p_2=sms:1"), "KM.00000488"),
            (task, vms(params=mapping(p_1="card:name", p_2="sms:1")), "KM.00000488"),
            (task, vms(params=mapping(p_1="dync:colour", p_2="sms:1")), "KM.00000488"),  # not a card param
            (task, vms(params=mapping(p_1="dync:name", p_2="sms:2")), "KM.00000488"),  # one sms_param only
            (task, vms(params=mapping(p_1="dync:name", p_2="sms:0")), "KM.00000488"),
            (task, vms(params=mapping(p_1="dync:name", p_2="text: ")), "KM.00000488"),
            (task, vms(params=mapping(p_1="dync:name", p_2="text:" + "x" * 501)), "KM.00000488"),
        ]
        blank = people(3)
        blank[2]["dync_params"]["name"] = " "
        cases.append((setup.task(blank), vms(), "KM.00000488"))
        long_value = people(2)
        long_value[1]["sms_params"] = ["y" * 501]
        cases.append((setup.task(long_value), vms(), "KM.00000488"))
        for body, headers, expected in cases:
            assert code(await send(body, headers)) == expected, headers
        blank_answer = await send(setup.task(blank), vms())
        assert blank[2]["cust_flag"] in blank_answer.json()["error_msg"]  # the recipient is named
        # The task's own checks come first: the fallback is checked on a valid task.
        assert code(await send(setup.task(people(1), tpl_id="999999999"), vms(template="VMS-NOPE"))) == "KM.00000426"
        # Nothing was created by the refused requests.
        assert await harness.gateway.context.collections.tasks.count_documents({"tenant_id": tenant.tenant_id}) == 0

        # A fixed text (percent-encoded UTF-8) and a duplicate recipient (checked once, like the task).
        fixed = mapping(p_1="dync:name", p_2="text:周末, 10:00")
        twice = people(2)
        twice.append(dict(twice[0]))
        accepted = await send(setup.task(twice), vms(params=fixed))
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["fallback"], accepted.json()["duplicates"]) == ("vms", 1)
        task_id = accepted.json()["task_id"]
        batches = await collect(
            harness.settings,
            RECIPIENTS,
            task_pb2.RecipientBatch,
            until=lambda m: any(b.ctx.task_id == task_id for b in m),
        )
        (batch,) = [b for b in batches if b.ctx.task_id == task_id]
        assert list(batch.ctx.vms_params) == ["dync:name", "text:周末, 10:00"]
        listed = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"][0]
        assert listed["magpie_summary"]["fallback"] == "vms"

        # A static template (no params) takes no mapping.
        static_body = template_body(reslist=[media("png", png()), text("【喜鹊汽车】新车到店，欢迎试驾")])
        static = await vms_template(harness, client, body=static_body)
        assert code(await send(setup.task(people(1)), vms(template=static))) == "KM.00000488"
        ok = await send(setup.task(people(1)), vms(template=static, params=None))
        assert ok.status_code == 200, ok.text

        # Idempotency: the same key with another fallback template is another request.
        key = {"Idempotency-Key": "vms-fallback-1"}
        first = await send(setup.task(people(1, start=50)), {**vms(template=static, params=None), **key})
        assert first.status_code == 200, first.text
        again = await send(setup.task(people(1, start=50)), {**vms(template=static, params=None), **key})
        assert again.json()["task_id"] == first.json()["task_id"]
        changed = await send(setup.task(people(1, start=50)), {**vms(), **key})
        assert changed.status_code == 409 and changed.json()["error_code"] == "KM.00000409"


async def test_default_fallback_vms(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_DEFAULT_FALLBACK", "vms")
    assert GatewayConfig().default_fallback == "vms"
    monkeypatch.setenv("MAGPIE_DEFAULT_FALLBACK", "carrier-pigeon")
    with pytest.raises(ValueError):
        GatewayConfig()
    async with harness_of(settings, gateway_config(default_fallback="vms")) as harness:
        tenant = await harness.tenant()
        async with harness.client(tenant) as client:
            setup: Setup = await harness.prerequisites(client, sms_content=SMS_CONTENT)
            tpl_id = await vms_template(harness, client)
            body = setup.task(people(1))
            # Without X-Magpie-Fallback the default applies: vms, so the template must be named.
            assert code(await client.post("/v1/aim/send-tasks", json=body)) == "KM.00000400"
            sms = await client.post("/v1/aim/send-tasks", json=body, headers={FALLBACK: "sms"})
            assert sms.status_code == 200 and sms.json()["fallback"] == "sms"
            named = await client.post(
                "/v1/aim/send-tasks", json=body, headers={TEMPLATE: tpl_id, PARAMS: "p_1=dync:amount,p_2=sms:1"}
            )
            assert named.status_code == 200, named.text
            assert named.json()["fallback"] == "vms"
