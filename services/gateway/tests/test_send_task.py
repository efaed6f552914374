"""create_aim_send_task: the events it produces (read back from the real broker), its checks and error codes,
the fallback header, idempotency keys and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from magpie.v1 import common_pb2, task_pb2, template_pb2
from magpie_common.testing import collect
from magpie_common.topics import RECIPIENTS, TASK_ACCEPTED

from .conftest import Harness, card_body, eventually, recipients

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


async def test_task_produces_accepted_and_recipient_batches(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        params = recipients(1197)
        params[10:10] = [dict(params[0]), dict(params[1]), dict(params[0])]  # 3 duplicates, first occurrence wins
        response = await client.post(
            "/v1/aim/send-tasks", json=setup.task(params), headers={"X-Magpie-Fallback": "skip"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        task_id = body["task_id"]
        assert body["task_state"] == "Success"
        assert (body["submission_count"], body["send_count"], body["support_resolve_count"]) == (1200, 0, -1)
        assert body["resolve_task"]["params"] is None  # more than 100: not echoed
        assert body["sms_channel"] == {
            "channel_number": None,
            "sms_tpl_id": setup.sms_template_id,
            "sms_sign": setup.sign,
            "sms_app_name": setup.app_name,
        }
        created = datetime.strptime(body["creation_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert (body["unique_recipients"], body["duplicates"], body["batch_count"]) == (1197, 3, 3)

        accepted = await collect(
            harness.settings,
            TASK_ACCEPTED,
            task_pb2.TaskAccepted,
            until=lambda m: any(a.ctx.task_id == task_id for a in m),
        )
        (event,) = [a for a in accepted if a.ctx.task_id == task_id]
        assert (event.submitted, event.unique_recipients, event.duplicates, event.batch_count) == (1200, 1197, 3, 3)
        ctx = event.ctx
        assert ctx.tenant_id == tenant.tenant_id and ctx.task_name == "双十一"
        assert ctx.tpl_id == setup.tpl_id and ctx.tpl_name == "双十一优惠券"
        assert list(ctx.approved_vendors) == ["HUAWEI", "HONOR"]  # OPPO rejected the card
        assert ctx.sms_template_id == setup.sms_template_id and ctx.sms_sign == setup.sign
        assert ctx.sms_template_content.startswith("尊敬的会员") and ctx.link_param == 1
        assert ctx.sms_app_name == setup.app_name and ctx.marketing
        assert ctx.fallback == common_pb2.FALLBACK_SKIP
        assert ctx.link_domain == "http://127.0.0.1:18081/"
        assert ctx.link_expires_at_ms - ctx.created_at_ms == 3 * DAY_MS
        assert abs(ctx.created_at_ms - created.replace(tzinfo=UTC).timestamp() * 1000) < 1

        batches = await collect(
            harness.settings,
            RECIPIENTS,
            task_pb2.RecipientBatch,
            until=lambda m: len([b for b in m if b.ctx.task_id == task_id]) >= 3,
        )
        mine = sorted((b for b in batches if b.ctx.task_id == task_id), key=lambda b: b.batch_no)
        assert [(b.batch_no, b.batch_count, len(b.recipients)) for b in mine] == [(0, 3, 500), (1, 3, 500), (2, 3, 197)]
        assert len({b.meta.event_id for b in mine}) == 3
        indexes = [r.index for b in mine for r in b.recipients]
        assert indexes == list(range(1197))
        mobiles = [r.mobile for b in mine for r in b.recipients]
        assert mobiles == [p["cust_flag"] for p in recipients(1197)]
        first = mine[0].recipients[0]
        assert dict(first.params) == {"name": "name-0", "amount": "amount-0"} and list(first.sms_params) == []

        listed = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()
        (task,) = listed["aim_send_tasks"]
        assert task["task_state"] == "Success" and task["submission_count"] == 1200
        assert task["magpie_summary"]["unique_recipients"] == 1197
        assert task["magpie_summary"]["fallback"] == "skip"


async def test_link_variable_and_sms_params(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, sms_content="${1}您好，${3}前点击${2}领取")
        # Without a NEWTEXT declaration the first variable carries the link: two sms_params fill ${3} and ${2}.
        missing = setup.task([{"cust_flag": "13900000001", "dync_params": {"name": "a", "amount": "1"}}])
        wrong = await client.post("/v1/aim/send-tasks", json=missing)
        assert wrong.status_code == 400
        assert wrong.json()["error_code"] == "KM.00001376"
        good = setup.task(
            [{"cust_flag": "13900000001", "dync_params": {"name": "a", "amount": 1}, "sms_params": ["12月1日", "x"]}]
        )
        response = await client.post("/v1/aim/send-tasks", json=good)
        assert response.status_code == 200, response.text
        task_id = response.json()["task_id"]
        echoed = response.json()["resolve_task"]["params"]
        assert echoed == [
            {"cust_flag": "13900000001", "dync_params": {"name": "a", "amount": 1}, "sms_params": ["12月1日", "x"]}
        ]
        batches = await collect(
            harness.settings,
            RECIPIENTS,
            task_pb2.RecipientBatch,
            until=lambda m: any(b.ctx.task_id == task_id for b in m),
        )
        (batch,) = [b for b in batches if b.ctx.task_id == task_id]
        assert batch.ctx.link_param == 1
        assert list(batch.recipients[0].sms_params) == ["12月1日", "x"]
        assert dict(batch.recipients[0].params) == {"name": "a", "amount": "1"}

        # Declared with type NEWTEXT, ${2} carries the link; sms_params fill ${1} and ${3} in order of appearance.
        typed = await client.post(
            "/v1/sms/templates",
            json={
                "signature_id": setup.signature_id,
                "template_name": "typed",
                "template_content": "${1}您好，${3}前点击${2}领取",
                "variable_attributes": [{"variable_index": 2, "variable_type": "NEWTEXT"}],
            },
        )
        typed_id = typed.json()["template_id"]
        await harness.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, typed_id)

        async def approved() -> bool:
            return (await client.get(f"/v1/sms/templates/{typed_id}")).json()["flow_status"] == "APPROVED"

        await eventually(approved)
        good["sms_channel"]["sms_tpl_id"] = typed_id  # type: ignore[index]
        typed_task = (await client.post("/v1/aim/send-tasks", json=good)).json()["task_id"]
        batches = await collect(
            harness.settings,
            RECIPIENTS,
            task_pb2.RecipientBatch,
            until=lambda m: any(b.ctx.task_id == typed_task for b in m),
        )
        (batch,) = [b for b in batches if b.ctx.task_id == typed_task]
        assert batch.ctx.link_param == 2


async def test_send_task_errors(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        one = recipients(1)

        async def error(body: dict[str, object], headers: dict[str, str] | None = None) -> str:
            response = await client.post("/v1/aim/send-tasks", json=body, headers=headers or {})
            assert response.status_code == 400, response.text
            assert set(response.json()) == {"error_code", "error_msg"}
            return str(response.json()["error_code"])

        assert await error(setup.task(one, tpl_id="999999999")) == "KM.00000426"
        assert await error(setup.task([])) == "KM.90016414"
        assert await error(setup.task([{"cust_flag": "13900000000", "dync_params": {"name": "x"}}])) == "KM.90016802"
        assert await error(setup.task([{"cust_flag": "13900000000"}])) == "KM.90016802"
        assert await error(setup.task(one, name="x" * 31)) == "KM.00000400"
        assert await error(setup.task(one), {"X-Magpie-Fallback": "vms"}) == "KM.00000400"  # no VMS template named
        assert await error(setup.task(one), {"X-Magpie-Fallback": "carrier-pigeon"}) == "KM.00000400"
        group = setup.task(one)
        group["resolve_task"]["aim_code_type"] = "group"  # type: ignore[index]
        assert await error(group) == "KM.00000429"
        long_links = setup.task(one)
        long_links["resolve_task"]["expiration_time"] = 8  # type: ignore[index]
        assert await error(long_links) == "KM.00000400"
        wrong_app = setup.task(one)
        wrong_app["sms_channel"]["sms_app_name"] = "nope"  # type: ignore[index]
        assert await error(wrong_app) == "KM.00000421"
        wrong_sign = setup.task(one)
        wrong_sign["sms_channel"]["sms_sign"] = "别的签名"  # type: ignore[index]
        assert await error(wrong_sign) == "KM.00000424"

        # An SMS template without a variable for the link.
        static = await client.post(
            "/v1/sms/templates",
            json={"signature_id": setup.signature_id, "template_name": "static", "template_content": "欢迎光临"},
        )
        static_id = static.json()["template_id"]
        no_link = setup.task(one)
        no_link["sms_channel"]["sms_tpl_id"] = static_id  # type: ignore[index]
        assert await error(no_link) == "KM.00000425"  # not approved yet
        await harness.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, static_id)

        async def approved() -> bool:
            return (await client.get(f"/v1/sms/templates/{static_id}")).json()["status"] == "APPROVED"

        await eventually(approved)
        assert await error(no_link) == "KM.00001377"

        # A card template nobody approved yet.
        pending = await client.post("/v1/aim/templates", json={**card_body(), "tpl_name": "pending"})
        assert await error(setup.task(one, tpl_id=pending.json()["data"]["tpl_id"])) == "KM.00000427"

        assert (await client.get("/v1/aim/send-tasks")).json()["aim_send_tasks"] == []


async def test_too_many_recipients(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        params = [{"cust_flag": "1"}] * 1_000_001
        response = await client.post("/v1/aim/send-tasks", json=setup.task(params))
        assert response.status_code == 400
        assert response.json()["error_code"] == "KM.90016301"


async def test_idempotency_key_replay_and_conflict(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        body = setup.task(recipients(3))
        headers = {"Idempotency-Key": "campaign-42"}
        first = await client.post("/v1/aim/send-tasks", json=body, headers=headers)
        assert first.status_code == 200, first.text
        again = await client.post("/v1/aim/send-tasks", json=body, headers=headers)
        assert again.status_code == 200
        assert again.json() == first.json()
        other = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(4)), headers=headers)
        assert other.status_code == 409
        assert other.json()["error_code"] == "KM.00000409"
        tasks = (await client.get("/v1/aim/send-tasks")).json()
        assert [t["task_id"] for t in tasks["aim_send_tasks"]] == [first.json()["task_id"]]
        # Another key is another task; the same key of another tenant is unrelated.
        second = await client.post("/v1/aim/send-tasks", json=body, headers={"Idempotency-Key": "campaign-43"})
        assert second.json()["task_id"] != first.json()["task_id"]


async def test_tenants_cannot_use_or_see_each_others_tasks(harness: Harness) -> None:
    alice, bob = await harness.tenant("alice"), await harness.tenant("bob")
    async with harness.client(alice) as a, harness.client(bob) as b:
        alice_setup = await harness.prerequisites(a)
        bob_setup = await harness.prerequisites(b)
        task = await a.post("/v1/aim/send-tasks", json=alice_setup.task(recipients(2)))
        task_id = task.json()["task_id"]
        # Bob names Alice's card template: it does not exist for him.
        stolen = await b.post("/v1/aim/send-tasks", json=bob_setup.task(recipients(1), tpl_id=alice_setup.tpl_id))
        assert stolen.status_code == 400 and stolen.json()["error_code"] == "KM.00000426"
        assert (await b.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"] == []
        details = (await b.get("/v1/aim/send-details", params={"task_id": task_id})).json()
        assert details == {"send_details": [], "page_info": {"offset": 0, "limit": 10, "total": 0}}
        mine = (await a.get("/v1/aim/send-details", params={"task_id": task_id})).json()
        assert mine["page_info"]["total"] == 2
        assert {d["send_status"] for d in mine["send_details"]} == {"SENDING"}
