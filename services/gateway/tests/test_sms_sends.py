"""Plain SMS sends (``send_aim_batch_messages``, ``send_aim_batch_different_messages``): through the official SDK
to the gateway, the DispatchBatch records on DISPATCH, the dispatcher's send role submitting them over SMPP to the
carrier simulator, and the DELIVERY receipts; then the request rules through the signed httpx client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    MsgContent,
    SendAimBatchDifferentMessagesRequest,
    SendAimBatchMessagesRequest,
    SmsMultiTemplateTaskRequestBody,
    SmsTaskReq,
)

from magpie.v1 import common_pb2, dispatch_pb2, template_pb2
from magpie_common.sms_text import count_segments
from magpie_common.testing import collect
from magpie_common.topics import DISPATCH
from magpie_dispatcher.events import message_id
from magpie_dispatcher.render import render
from magpie_dispatcher.testing import Worker, collect_delivery, config_for, simulator

from .conftest import BASE_URL, Harness, SdkSigner, Setup, call, eventually, sdk_client

pytestmark = pytest.mark.integration

LINK = "https://s.example/x1"
TYPED_CONTENT = "${2}您好，订单${1}已于${3}发货，运费${4}元。"
TYPED_ATTRIBUTES = [
    {"variable_index": 1, "variable_type": "CHARDIGIT"},
    {"variable_index": 2, "variable_type": "TEXT", "variable_desc": "称呼"},
    {"variable_index": 3, "variable_type": "DATETIME"},
    {"variable_index": 4, "variable_type": "MONEY"},
]


async def typed_template(harness: Harness, client: httpx.AsyncClient, setup: Setup) -> str:
    """An approved notification template with typed variables, under the setup's signature."""
    created = await client.post(
        "/v1/sms/templates",
        json={
            "signature_id": setup.signature_id,
            "template_name": "发货",
            "template_type": "NOTIFY_TYPE",
            "template_content": TYPED_CONTENT,
            "variable_attributes": TYPED_ATTRIBUTES,
        },
    )
    template_id: str = created.json()["template_id"]
    await harness.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, template_id)

    async def approved() -> bool:
        return (await client.get(f"/v1/sms/templates/{template_id}")).json()["flow_status"] == "APPROVED"

    await eventually(approved)
    return template_id


async def test_sdk_sends_reach_the_carrier_through_the_dispatcher(served: tuple[str, Harness]) -> None:
    url, harness = served
    settings = harness.settings
    tenant = await harness.tenant("sms-sender")
    sdk = sdk_client(url, tenant)
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        typed_id = await typed_template(harness, client, setup)

    async with simulator(dlr_delay=0.05) as sim, Worker(settings, config_for(sim.smpp_port)):
        sent = await call(
            lambda: sdk.send_aim_batch_messages(
                SendAimBatchMessagesRequest(
                    body=SmsTaskReq(
                        template_id=setup.sms_template_id,
                        signature="【喜鹊商城】",
                        task_name="会员通知",
                        to=["13800138000", "+86 138-0013-8001", "8613800138000", "12345"],
                        template_params=[LINK],
                        extend="order-42",
                    )
                )
            )
        )
        assert sent.status == "Success" and sent.task_id.startswith("SMS")
        assert [(r.to, r.send_status) for r in sent.result] == [
            ("13800138000", "000000"),
            ("+86 138-0013-8001", "000000"),
            ("8613800138000", "E200041"),
            ("12345", "E000503"),
        ]
        assert [r.msg_id for r in sent.result[:2]] == [message_id(sent.task_id, 0, i) for i in range(2)]
        assert sent.result[2].msg_id is None and sent.result[3].msg_id is None
        assert all(r.create_time.endswith("Z") for r in sent.result)
        diff = await call(
            lambda: sdk.send_aim_batch_different_messages(
                SendAimBatchDifferentMessagesRequest(
                    body=SmsMultiTemplateTaskRequestBody(
                        sms_content=[
                            MsgContent(
                                to=["13800138002"],
                                template_id=typed_id,
                                template_params=["A1234", "王先生", "2026-11-11", "12.50"],
                            ),
                            MsgContent(
                                to=["13800138003", "13800138002"],
                                template_id=setup.sms_template_id,
                                template_params=["https://s.example/x2"],
                            ),
                        ],
                        task_name="分批",
                    )
                )
            )
        )
        assert diff.status == "Success"
        assert [(r.to, r.send_status, r.msg_id) for r in diff.result] == [
            ("13800138002", "000000", message_id(diff.task_id, 0, 0)),
            ("13800138003", "000000", message_id(diff.task_id, 1, 1)),
            ("13800138002", "000000", message_id(diff.task_id, 1, 2)),
        ]

        # The records on DISPATCH decode, carry what the dispatcher needs, and render to the expected texts.
        batches = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda ms: len(ms) >= 3)
        by_task = {(b.ctx.task_id, b.batch_no): b for b in batches}
        first = by_task[(sent.task_id, 0)]
        assert first.ctx.tenant_id == tenant.tenant_id and first.ctx.link_param == -1
        assert (first.ctx.sms_sign, first.ctx.aim_url, first.ctx.task_name) == ("喜鹊商城", "order-42", "会员通知")
        assert first.ctx.tpl_id == setup.sms_template_id and first.ctx.marketing
        assert [(r.index, r.mobile, r.msisdn, r.route) for r in first.recipients] == [
            (0, "13800138000", "8613800138000", common_pb2.ROUTE_DEGRADED),
            (1, "+86 138-0013-8001", "8613800138001", common_pb2.ROUTE_DEGRADED),
        ]
        expected = {
            "8613800138000": f"【喜鹊商城】尊敬的会员，您的专属优惠已到账，点击 {LINK} 查看。拒收请回复R",
            "8613800138001": f"【喜鹊商城】尊敬的会员，您的专属优惠已到账，点击 {LINK} 查看。拒收请回复R",
        }
        assert render(first.ctx, first.recipients[0]).text == expected["8613800138000"]
        typed = by_task[(diff.task_id, 0)]
        assert not typed.ctx.marketing
        typed_text = render(typed.ctx, typed.recipients[0]).text
        assert typed_text == "【喜鹊商城】王先生您好，订单A1234已于2026-11-11发货，运费12.50元。"
        # What the dispatcher will bill per message: the segments of the rendered text.
        segments = {
            message_id(b.ctx.task_id, b.batch_no, r.index): render(b.ctx, r).segments
            for b in by_task.values()
            for r in b.recipients
        }
        assert set(segments) == {r.msg_id for r in [*sent.result, *diff.result] if r.msg_id}
        assert segments[diff.result[0].msg_id] == count_segments(typed_text)[1]

        # The dispatcher submits them to the carrier; receipts come back on DELIVERY.
        msg_ids = list(segments)
        fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in msg_ids), settle_s=0.3)
        assert sim.duplicates() == []
        for destination, text in expected.items():
            assert [m["text"] for m in sim.messages(destination)] == [text]
        texts_to_0002 = {m["text"] for m in sim.messages("8613800138002")}
        assert typed_text in texts_to_0002 and len(texts_to_0002) == 2
        for msg_id in msg_ids:
            final = fold.final(msg_id)
            assert final.status == dispatch_pb2.DELIVERY_STATUS_DELIVERED and final.result_code == "DELIVRD"
            assert final.segments == segments[msg_id] and final.route == common_pb2.ROUTE_DEGRADED
        receipt = fold.final(sent.result[0].msg_id)
        assert (receipt.task_id, receipt.aim_url, receipt.sms_sign) == (sent.task_id, "order-42", "喜鹊商城")
        assert receipt.tpl_id == setup.sms_template_id and receipt.mobile == "13800138000"

    # The gateway's own DELIVERY consumer (the projector) took these events and is still running.
    assert (await harness.gateway.readiness())["consumers"]
    stored = await harness.gateway.context.collections.sms_sends.find_one({"_id": sent.task_id})
    assert stored is not None and stored["tenant_id"] == tenant.tenant_id and stored["state"] == "Success"
    assert [r["send_status"] for r in stored["items"][0]["recipients"]] == ["000000", "000000", "E200041", "E000503"]


# --- rules ---------------------------------------------------------------------------------------------------
async def sms_error(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[int, str, str]:
    response = await client.post(path, json=body)
    payload = response.json()
    return response.status_code, payload.get("error_code", ""), payload.get("error_msg", "")


async def test_send_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        typed_id = await typed_template(harness, client, setup)
        pending = (
            await client.post(
                "/v1/sms/templates",
                json={"signature_id": setup.signature_id, "template_name": "待审", "template_content": "您好"},
            )
        ).json()["template_id"]
        path = "/v1/aim/sms/messages"
        base = {"template_id": setup.sms_template_id, "to": ["13800138000"], "template_params": [LINK]}
        typed = {"template_id": typed_id, "to": ["13800138000"], "template_params": ["A1", "王", "20261111", "1.5"]}
        ok = await client.post(path, json=typed)
        assert ok.status_code == 200 and ok.json()["result"][0]["send_status"] == "000000", ok.text
        assert ok.json()["result"][0]["segments"] == 1  # Magpie extension: what a delivery of it is billed

        cases: list[tuple[dict[str, Any], int, str]] = [
            ({**base, "to": []}, 400, "KM.90016414"),
            ({**base, "to": [f"138{i:08d}" for i in range(501)]}, 400, "KM.90016301"),
            ({**base, "to": ["12345", "abc"]}, 400, "KM.00000400"),
            ({**base, "to": ["1" * 22]}, 400, "KM.00000400"),
            ({**base, "template_params": []}, 400, "KM.00001376"),
            ({**base, "template_params": [LINK, "extra"]}, 400, "KM.00001376"),
            ({**base, "template_params": [""]}, 400, "KM.00000400"),
            ({**base, "signature": ""}, 400, "KM.00001075"),
            ({**base, "signature": "喜" * 17}, 400, "KM.00001076"),
            ({**base, "signature": "别人家"}, 400, "KM.00000424"),
            ({**base, "template_id": None}, 400, "KM.00000400"),
            ({**base, "template_id": "TPLNOTHING"}, 400, "KM.00000425"),
            ({**base, "template_id": pending, "template_params": []}, 400, "KM.00000425"),
            ({**base, "channel_num": "10690x"}, 400, "KM.00000400"),
            ({**base, "task_name": "x" * 31}, 400, "KM.00000400"),
            ({**base, "task_name": "   "}, 400, "KM.00000400"),
            ({**base, "extend": "{x}"}, 400, "KM.00000400"),
            ({**base, "extend": " "}, 400, "KM.00000400"),
            ({**base, "template_params": [LINK * 20]}, 400, "KM.00000400"),
            ({**typed, "template_params": ["A-1", "王", "20261111", "1.5"]}, 400, "KM.00000400"),  # CHARDIGIT
            ({**typed, "template_params": ["A1", "王.", "20261111", "1.5"]}, 400, "KM.00000400"),  # TEXT
            ({**typed, "template_params": ["A1", "王", "明天", "1.5"]}, 400, "KM.00000400"),  # DATETIME
            ({**typed, "template_params": ["A1", "王", "20261111", "$1"]}, 400, "KM.00000400"),  # MONEY
            ({**typed, "template_params": ["A1", "王" * 21, "20261111", "1"]}, 400, "KM.00000400"),  # length
        ]
        for body, status, code in cases:
            got = await sms_error(client, path, body)
            assert got[:2] == (status, code), (body, got)

        diff = "/v1/aim/sms/diff-messages"
        entry = {"to": ["13800138000"], "template_id": setup.sms_template_id, "template_params": [LINK]}
        assert (await sms_error(client, diff, {"sms_content": []}))[:2] == (400, "KM.90016414")
        assert (await sms_error(client, diff, {"sms_content": [entry] * 101}))[:2] == (400, "KM.00000400")
        wrong = await sms_error(client, diff, {"sms_content": [entry, {**entry, "template_params": []}]})
        assert wrong[:2] == (400, "KM.00001376") and "sms_content[1]" in wrong[2]
        too_many = await sms_error(
            client, diff, {"sms_content": [{**entry, "to": [f"138{i:08d}" for i in range(501)]}]}
        )
        assert too_many[:2] == (400, "KM.90016301")

    # Another tenant cannot send with these templates (and learns nothing about them).
    other = await harness.tenant("other")
    async with harness.client(other) as client:
        foreign = await sms_error(client, path, base)
        assert foreign[:2] == (400, "KM.00000425")
    # Only the one valid send above was stored; refused requests left nothing behind.
    sends = harness.gateway.context.collections.sms_sends
    assert await sends.count_documents({}) == 1


async def test_a_send_the_broker_refuses_fails_and_is_recorded_failed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)

    async def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(harness.gateway.context.producer, "send_many", broker_down)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.gateway.app, raise_app_exceptions=False),
        base_url=BASE_URL,
        auth=SdkSigner(tenant.access_key, tenant.secret_key),
    ) as client:
        body = {"template_id": setup.sms_template_id, "to": ["13800138000"], "template_params": [LINK]}
        failed = await client.post("/v1/aim/sms/messages", json=body)
    assert failed.status_code == 500 and failed.json()["error_code"] == "KM.00000500"
    stored = await harness.gateway.context.collections.sms_sends.find_one({"tenant_id": tenant.tenant_id})
    assert stored is not None and stored["state"] == "Failed"
