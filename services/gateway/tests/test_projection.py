"""The projector on the real broker: synthetic CLASSIFIED, DELIVERY and LINK events (as the number-resolver,
dispatcher and shortlink edge produce them) into send-details and the task counts; replays do not double count,
late events do not overwrite final states, a task completes when every recipient is final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.topics import CLASSIFIED, DELIVERY, LINK

from .conftest import Harness, eventually, recipients

pytestmark = pytest.mark.integration

T0 = 1_750_000_000_000  # epoch ms of the synthetic events
SUBMITTED = dispatch_pb2.DELIVERY_STATUS_SUBMITTED
DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED
FAILED = dispatch_pb2.DELIVERY_STATUS_FAILED
TIMEOUT = dispatch_pb2.DELIVERY_STATUS_TIMEOUT


def mobile(index: int) -> str:
    return recipients(1, start=index)[0]["cust_flag"]


def classified(task_id: str, batch_no: int, routes: dict[int, tuple[int, str]]) -> resolve_pb2.ClassifiedBatch:
    message = resolve_pb2.ClassifiedBatch(batch_no=batch_no, batch_count=2)
    message.ctx.task_id = task_id
    message.meta.event_id = f"classified-{task_id}-{batch_no}"
    for index, (route, reason) in sorted(routes.items()):
        message.recipients.add(
            index=index, mobile=mobile(index), msisdn="86" + mobile(index), route=route, reason=reason
        )
    return message


def delivery(task_id: str, events: list[tuple[int, int, str]], tenant_id: str) -> dispatch_pb2.DeliveryBatch:
    message = dispatch_pb2.DeliveryBatch()
    for index, status, code in events:
        message.events.add(
            event_id=f"{task_id}-{index}-{status}",
            tenant_id=tenant_id,
            task_id=task_id,
            batch_no=index // 500,
            index=index,
            mobile=mobile(index),
            msg_id=f"MSG{index:05d}",
            status=status,
            result_code=code,
            segments=2,
            submitted_at_ms=T0 + index,
            done_at_ms=0 if status == SUBMITTED else T0 + 60_000 + index,
        )
    return message


def resolved(task_id: str, index: int, kind: int = link_pb2.LINK_EVENT_TYPE_RESOLVED) -> link_pb2.LinkEvent:
    return link_pb2.LinkEvent(
        type=kind,
        code=f"c{index}",
        task_id=task_id,
        batch_no=index // 500,
        index=index,
        mobile=mobile(index),
        at_ms=T0 + 120_000 + index,
    )


async def summary(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    (task,) = (await client.get("/v1/aim/send-tasks", params={"task_id": task_id})).json()["aim_send_tasks"]
    return dict(task)


async def details(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/aim/send-details", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_projection_into_details_and_counts(harness: Harness) -> None:
    tenant = await harness.tenant()
    produce = harness.producer.send
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        task = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(1000)))
        task_id = task.json()["task_id"]

        # Number check: batch 0 has 2 invalid, 1 skipped, 1 degraded; batch 1 is all smart.
        routes0 = {i: (common_pb2.ROUTE_SMART, "") for i in range(500)}
        routes0[3] = (common_pb2.ROUTE_INVALID, "INVALID_NUMBER")
        routes0[4] = (common_pb2.ROUTE_INVALID, "INVALID_NUMBER")
        routes0[5] = (common_pb2.ROUTE_SKIPPED, "UNKNOWN_DEVICE")
        routes0[6] = (common_pb2.ROUTE_DEGRADED, "APP_TOO_OLD")
        routes1 = {i: (common_pb2.ROUTE_SMART, "") for i in range(500, 1000)}
        await produce(CLASSIFIED, f"{task_id}:0", classified(task_id, 0, routes0))
        await produce(CLASSIFIED, f"{task_id}:1", classified(task_id, 1, routes1))
        # Delivery: 0-2 and 6-9 submitted; then 0, 1 delivered, 2 failed, 6 timed out; 8 delivered before its
        # SUBMITTED arrives (out of order).
        submitted = [(i, SUBMITTED, "") for i in (0, 1, 2, 6, 7, 9)]
        await produce(DELIVERY, "d1", delivery(task_id, submitted, tenant.tenant_id))
        finals = [(0, DELIVERED, "DELIVRD"), (1, DELIVERED, "DELIVRD"), (2, FAILED, "UNDELIV"), (6, TIMEOUT, "")]
        await produce(DELIVERY, "d2", delivery(task_id, [*finals, (8, DELIVERED, "DELIVRD")], tenant.tenant_id))
        await produce(DELIVERY, "d3", delivery(task_id, [(8, SUBMITTED, "")], tenant.tenant_id))
        await produce(LINK, "c0", resolved(task_id, 0))
        await produce(LINK, "c1", resolved(task_id, 1, link_pb2.LINK_EVENT_TYPE_CLICKED))  # a click is no resolution

        expected_counts = {
            "support_resolve_count": 996,
            "send_count": 7,
            "success_number": 3,
            "resolve_count": 1,
        }

        async def projected() -> dict[str, Any] | None:
            task_view = await summary(client, task_id)
            got = {k: task_view[k] for k in expected_counts}
            return task_view if got == expected_counts and task_view["magpie_summary"]["timeout"] == 1 else None

        task_view = await eventually(projected)
        s = task_view["magpie_summary"]
        assert (s["classified"], s["resolvable"], s["degraded"], s["skipped"], s["invalid"]) == (1000, 996, 1, 1, 2)
        assert (s["sent"], s["delivered"], s["failed"], s["timeout"], s["resolved"]) == (7, 3, 1, 1, 1)
        assert s["final"] == 3 + 1 + 1 + 1 + 2  # delivered, failed, timeout, skipped, invalid
        assert task_view["task_state"] == "Success" and s["state"] == "SENDING"

        page = await details(client, task_id=task_id, offset=0, limit=10)
        assert page["page_info"] == {"offset": 0, "limit": 10, "total": 1000}
        rows = page["send_details"]
        assert [r["cust_flag"] for r in rows] == [mobile(i) for i in range(10)]
        assert [r["send_status"] for r in rows] == [
            "DELIVERED",
            "DELIVERED",
            "FAILED",
            "INVALID",
            "INVALID",
            "SKIPPED",
            "TIMEOUT",
            "SENDING",
            "DELIVERED",
            "SENDING",
        ]
        first = rows[0]
        assert first["msg_id"] == "MSG00000" and first["send_account"] == mobile(0)
        assert first["send_time"] == datetime.fromtimestamp(T0 / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert first["receive_time"] is not None and first["result_code"] == "DELIVRD"
        assert (
            first["tpl_id"] == setup.tpl_id and first["task_name"] == "双十一" and first["tpl_name"] == "双十一优惠券"
        )
        assert first["resolved"] is True and first["route"] == "SMART" and first["segments"] == 2
        assert rows[1]["resolved"] is False  # clicked, not resolved
        assert rows[2]["result_code"] == "UNDELIV"
        assert (rows[3]["result_code"], rows[3]["reason"]) == ("INVALID_NUMBER", "INVALID_NUMBER")
        assert rows[5]["result_code"] == "UNKNOWN_DEVICE"
        assert rows[6]["result_code"] == "TIMEOUT"
        assert (rows[7]["stage"], rows[7]["msg_id"]) == ("SUBMITTED", "MSG00007")
        assert rows[8]["msg_id"] == "MSG00008" and rows[8]["send_time"] is not None  # DELIVERED came before SUBMITTED
        assert rows[9]["stage"] == "SUBMITTED"

        # Replays (a redelivered classification, delivery and resolution) and a late SUBMITTED after DELIVERED.
        await produce(CLASSIFIED, f"{task_id}:0", classified(task_id, 0, routes0))
        await produce(DELIVERY, "d1", delivery(task_id, submitted, tenant.tenant_id))
        await produce(LINK, "c0", resolved(task_id, 0))
        # Sentinels, each on the partition of its replay (same key), so they are applied after it.
        routes0[7] = (common_pb2.ROUTE_DEGRADED, "OS_TOO_OLD")
        await produce(CLASSIFIED, f"{task_id}:0", classified(task_id, 0, routes0))
        await produce(
            DELIVERY, "d1", delivery(task_id, [(0, SUBMITTED, ""), (9, DELIVERED, "DELIVRD")], tenant.tenant_id)
        )
        await produce(LINK, "c0", resolved(task_id, 9))

        async def sentinels_applied() -> dict[str, Any] | None:
            task_view = await summary(client, task_id)
            s = task_view["magpie_summary"]
            return task_view if (s["degraded"], s["delivered"], s["resolved"]) == (2, 4, 2) else None

        task_view = await eventually(sentinels_applied)
        s = task_view["magpie_summary"]
        assert (s["classified"], s["resolvable"], s["skipped"], s["invalid"]) == (1000, 995, 1, 2)
        assert (task_view["send_count"], s["failed"], s["timeout"]) == (7, 1, 1)
        rows = (await details(client, task_id=task_id, offset=0, limit=1))["send_details"]
        assert rows[0]["send_status"] == "DELIVERED" and rows[0]["result_code"] == "DELIVRD"

        # Every recipient final: the task completes.
        rest = [(i, DELIVERED, "DELIVRD") for i in range(1000) if i not in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
        await produce(DELIVERY, "d4", delivery(task_id, rest, tenant.tenant_id))

        async def completed() -> dict[str, Any] | None:
            task_view = await summary(client, task_id)
            return task_view if task_view["task_state"] == "COMPLETED" else None

        task_view = await eventually(completed)
        s = task_view["magpie_summary"]
        assert s["state"] == "COMPLETED" and s["final"] == 1000 and s["completed_time"]
        assert task_view["success_number"] == 995
        completed_tasks = (await client.get("/v1/aim/send-tasks", params={"task_status": "Success"})).json()
        assert [t["task_id"] for t in completed_tasks["aim_send_tasks"]] == [task_id]
        assert (await client.get("/v1/aim/send-tasks", params={"task_status": "Fail"})).json()["aim_send_tasks"] == []


async def test_details_pagination_filters_and_window(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        older = (await client.post("/v1/aim/send-tasks", json=setup.task(recipients(600)))).json()["task_id"]
        newer = (await client.post("/v1/aim/send-tasks", json=setup.task(recipients(20, start=595)))).json()["task_id"]

        # Across the two tasks (newest first) and across the batches of the older one.
        page = await details(client, offset=15, limit=10)
        assert page["page_info"]["total"] == 620
        assert [(r["task_id"], r["index"]) for r in page["send_details"]] == [(newer, i) for i in range(15, 20)] + [
            (older, i) for i in range(5)
        ]
        page = await details(client, task_id=older, offset=495, limit=10)
        assert [r["index"] for r in page["send_details"]] == list(range(495, 505))
        assert [r["cust_flag"] for r in page["send_details"]] == [mobile(i) for i in range(495, 505)]
        assert (await details(client, task_id=older, offset=600, limit=10))["send_details"] == []
        assert (await details(client, task_id=older, offset=9995, limit=10))["send_details"] == []

        # cust_flag: the number in every task that has it.
        both = await details(client, cust_flag=mobile(598))
        assert [(r["task_id"], r["index"]) for r in both["send_details"]] == [(newer, 3), (older, 598)]
        assert both["page_info"]["total"] == 2
        one = await details(client, cust_flag=mobile(598), task_id=older)
        assert [r["index"] for r in one["send_details"]] == [598]
        assert (await details(client, sms_sign=setup.sign, limit=1))["page_info"]["total"] == 620
        assert (await details(client, sms_sign="别的签名"))["page_info"]["total"] == 0
        assert (await details(client, tpl_id="123456789"))["page_info"]["total"] == 0

        # The time window: both ends or none, at most 24 hours.
        now = datetime.now(UTC)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        inside = await details(
            client,
            begin_time=(now - timedelta(hours=1)).strftime(fmt),
            end_time=(now + timedelta(minutes=5)).strftime(fmt),
        )
        assert inside["page_info"]["total"] == 620
        earlier = await details(
            client,
            begin_time=(now - timedelta(hours=5)).strftime(fmt),
            end_time=(now - timedelta(hours=2)).strftime(fmt),
        )
        assert earlier["page_info"]["total"] == 0
        too_wide = await client.get(
            "/v1/aim/send-details",
            params={"begin_time": (now - timedelta(hours=25)).strftime(fmt), "end_time": now.strftime(fmt)},
        )
        assert too_wide.status_code == 400 and too_wide.json()["error_code"] == "KM.00000400"
        reversed_window = await client.get(
            "/v1/aim/send-details",
            params={"begin_time": now.strftime(fmt), "end_time": (now - timedelta(hours=1)).strftime(fmt)},
        )
        assert reversed_window.status_code == 400
