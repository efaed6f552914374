"""``list_aim_send_reports`` through the official SDK, and the per-task number-check summary (by reason) of
``list_aim_send_tasks`` / ``list_aim_send_details``, from the read model fed by synthetic CLASSIFIED, DELIVERY and
LINK events (as the number-resolver, dispatcher and shortlink edge produce them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import ListAimSendReportsRequest, ListAimSendReportsRequestBody

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie.v1.template_pb2 import REVIEW_SUBJECT_AIM_TEMPLATE
from magpie_common.topics import CLASSIFIED, DELIVERY, LINK

from .conftest import Harness, call, card_body, eventually, recipients, sdk_client

pytestmark = pytest.mark.integration

SMART, DEGRADED, SKIPPED, INVALID = (
    common_pb2.ROUTE_SMART,
    common_pb2.ROUTE_DEGRADED,
    common_pb2.ROUTE_SKIPPED,
    common_pb2.ROUTE_INVALID,
)
DELIVERED, FAILED = dispatch_pb2.DELIVERY_STATUS_DELIVERED, dispatch_pb2.DELIVERY_STATUS_FAILED
CHINA = timezone(timedelta(hours=8))


def mobile(index: int, start: int = 0) -> str:
    return str(recipients(1, start=start + index)[0]["cust_flag"])


class Pipeline:
    """Plays the number-resolver, the dispatcher and the shortlink edge for one task."""

    def __init__(self, harness: Harness, tenant_id: str, task_id: str, start: int = 0) -> None:
        self.harness = harness
        self.tenant_id = tenant_id
        self.task_id = task_id
        self.start = start

    async def classify(self, routes: dict[int, tuple[int, str]]) -> None:
        message = resolve_pb2.ClassifiedBatch(batch_no=0, batch_count=1)
        message.ctx.task_id, message.ctx.tenant_id = self.task_id, self.tenant_id
        message.meta.event_id = f"classified-{self.task_id}"
        for index, (route, reason) in sorted(routes.items()):
            number = mobile(index, self.start)
            message.recipients.add(index=index, mobile=number, msisdn="86" + number, route=route, reason=reason)
        await self.harness.producer.send(CLASSIFIED, f"{self.task_id}:0", message)

    async def deliver(self, statuses: dict[int, int]) -> None:
        message = dispatch_pb2.DeliveryBatch()
        message.meta.event_id = f"delivery-{self.task_id}"
        for index, status in statuses.items():
            message.events.add(
                event_id=f"{self.task_id}-{index}",
                tenant_id=self.tenant_id,
                task_id=self.task_id,
                index=index,
                mobile=mobile(index, self.start),
                msg_id=f"M-{self.task_id}-{index}",
                status=status,
                result_code="DELIVRD" if status == DELIVERED else "UNDELIV",
                segments=1,
            )
        await self.harness.producer.send(DELIVERY, f"{self.task_id}:0", message)

    async def resolve(self, index: int) -> None:
        event = link_pb2.LinkEvent(
            type=link_pb2.LINK_EVENT_TYPE_RESOLVED,
            code=f"c{index}",
            task_id=self.task_id,
            index=index,
            mobile=mobile(index, self.start),
            billable=True,
            at_ms=1_760_000_000_000,
        )
        event.meta.event_id, event.meta.tenant_id = f"res-{self.task_id}-{index}", self.tenant_id
        await self.harness.producer.send(LINK, f"{self.task_id}:0", event)


async def send_task(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/aim/send-tasks", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["task_id"])


async def summary(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    found = await client.get("/v1/aim/send-tasks", params={"task_id": task_id})
    (task,) = found.json()["aim_send_tasks"]
    return dict(task["magpie_summary"])


async def test_number_check_summary_by_reason(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        people = recipients(8)
        task_id = await send_task(client, setup.task([*people, people[0], people[1]]))  # 2 duplicates
        pending = await summary(client, task_id)
        assert pending["number_check"] == {
            "total": 8,
            "checked": 0,
            "pending": 8,
            "invalid": 0,
            "resolvable": 0,
            "unresolvable": 0,
            "unresolvable_by_reason": {},
        }
        assert pending["duplicates"] == 2
        await Pipeline(harness, tenant.tenant_id, task_id).classify(
            {
                0: (SMART, ""),
                1: (SMART, ""),
                2: (SMART, ""),
                3: (DEGRADED, "UNKNOWN_DEVICE"),
                4: (DEGRADED, "APP_TOO_OLD"),
                5: (SKIPPED, "UNKNOWN_DEVICE"),
                6: (DEGRADED, "VENDOR_NOT_APPROVED"),
                7: (INVALID, "INVALID_NUMBER"),
            }
        )

        async def checked() -> dict[str, Any] | None:
            found = await summary(client, task_id)
            return found if found["number_check"]["checked"] == 8 else None

        done = await eventually(checked)
        assert done["number_check"] == {
            "total": 8,
            "checked": 8,
            "pending": 0,
            "invalid": 1,
            "resolvable": 3,
            "unresolvable": 4,
            "unresolvable_by_reason": {"APP_TOO_OLD": 1, "UNKNOWN_DEVICE": 2, "VENDOR_NOT_APPROVED": 1},
        }
        # ... and per recipient in the send details
        details = await client.get("/v1/aim/send-details", params={"task_id": task_id, "limit": 20})
        rows = {r["cust_flag"]: r for r in details.json()["send_details"]}
        assert rows[mobile(3)]["reason"] == "UNKNOWN_DEVICE" and rows[mobile(3)]["route"] == "DEGRADED"
        assert rows[mobile(5)]["reason"] == "UNKNOWN_DEVICE" and rows[mobile(5)]["send_status"] == "SKIPPED"
        assert rows[mobile(7)]["reason"] == "INVALID_NUMBER" and rows[mobile(7)]["send_status"] == "INVALID"
        assert rows[mobile(0)]["reason"] is None and rows[mobile(0)]["route"] == "SMART"


async def second_template(harness: Harness, client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/aim/templates", json={**card_body(), "tpl_name": "第二个模板"})
    assert created.status_code == 200, created.text
    tpl_id = str(created.json()["data"]["tpl_id"])
    await harness.review(REVIEW_SUBJECT_AIM_TEMPLATE, tpl_id, vendors={"HUAWEI": True})

    async def approved() -> bool:
        found = await client.get("/v1/aim/templates", params={"tpl_id": tpl_id})
        return bool(found.json()["templates"][0]["tpl_state"] == 1)

    await eventually(approved)
    return tpl_id


def report_request(**fields: Any) -> ListAimSendReportsRequest:
    return ListAimSendReportsRequest(body=ListAimSendReportsRequestBody(**fields))


async def test_send_report_through_the_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    other = await harness.tenant("other")
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        tpl2 = await second_template(harness, client)
        people = recipients(5)
        first = await send_task(client, setup.task([*people, people[0]]))  # 6 submitted, 5 unique
        second = await send_task(client, setup.task(recipients(3, start=100), name="第二批"))
        third = await send_task(client, setup.task(recipients(2, start=200), name="第三批", tpl_id=tpl2))
    p1 = Pipeline(harness, tenant.tenant_id, first)
    await p1.classify({0: (SMART, ""), 1: (SMART, ""), 2: (SMART, ""), 3: (DEGRADED, "APP_TOO_OLD"), 4: (INVALID, "")})
    await p1.deliver({0: DELIVERED, 1: DELIVERED, 2: FAILED, 3: DELIVERED})
    await p1.resolve(0)
    await p1.resolve(1)
    p2 = Pipeline(harness, tenant.tenant_id, second, start=100)
    await p2.classify({0: (SMART, ""), 1: (SMART, ""), 2: (SKIPPED, "UNKNOWN_DEVICE")})
    await p2.deliver({0: DELIVERED, 1: DELIVERED})
    await p2.resolve(1)
    p3 = Pipeline(harness, tenant.tenant_id, third, start=200)
    await p3.classify({0: (SMART, ""), 1: (SMART, "")})
    await p3.deliver({0: DELIVERED})
    sdk = sdk_client(url, tenant)
    today = datetime.now(CHINA).strftime("%Y-%m-%d")

    async def projected() -> bool:  # polled with GETs: a repeated identical signed POST is refused as a replay
        async with harness.client(tenant) as client:
            tasks = (await client.get("/v1/aim/send-tasks", params={"tpl_id": setup.tpl_id})).json()
            third_task = (await client.get("/v1/aim/send-tasks", params={"task_id": third})).json()
        totals = [sum(t[k] for t in tasks["aim_send_tasks"]) for k in ("resolve_count", "success_number", "send_count")]
        return totals == [3, 5, 6] and third_task["aim_send_tasks"][0]["success_number"] == 1

    await eventually(projected)
    report = await call(lambda: sdk.list_aim_send_reports(report_request(report_type="1")))
    assert (report.status, report.message) == ("200", "success")
    assert report.data.page_info.total == 2 and report.data.page_info.offset == 0
    by_tpl = {r.tpl_id: r for r in report.data.data_list}
    main = by_tpl[setup.tpl_id]
    assert main.report_time == today and main.tpl_name == "双十一优惠券"
    assert (
        main.submission_count,
        main.support_resolve_count,
        main.send_count,
        main.send_success_count,
        main.resolve_success_count,
    ) == (9, 5, 6, 5, 3)
    other_tpl = by_tpl[tpl2]
    assert (other_tpl.tpl_name, other_tpl.submission_count, other_tpl.support_resolve_count) == ("第二个模板", 2, 2)
    assert (other_tpl.send_count, other_tpl.send_success_count, other_tpl.resolve_success_count) == (1, 1, 0)

    monthly = await call(lambda: sdk.list_aim_send_reports(report_request(report_type="2", tpl_id=setup.tpl_id)))
    (month,) = monthly.data.data_list
    assert month.report_time == today[:7] and month.submission_count == 9 and month.resolve_success_count == 3

    now = datetime.now(UTC)
    window = {"begin_time": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    window["end_time"] = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    named = await call(lambda: sdk.list_aim_send_reports(report_request(tpl_name="第二个", **window)))
    assert [r.tpl_id for r in named.data.data_list] == [tpl2]
    paged = await call(lambda: sdk.list_aim_send_reports(report_request(offset=1, limit=1)))
    assert paged.data.page_info.total == 2 and len(paged.data.data_list) == 1
    assert paged.data.data_list[0].tpl_id == sorted(by_tpl)[1]
    earlier = {"begin_time": "2024-01-01T00:00:00Z", "end_time": "2024-02-01T00:00:00Z"}
    empty = await call(lambda: sdk.list_aim_send_reports(report_request(**earlier)))
    assert empty.data.data_list == [] and empty.data.page_info.total == 0
    others = await call(lambda: sdk_client(url, other).list_aim_send_reports(report_request()))
    assert others.data.data_list == []  # another tenant never sees these tasks


async def test_send_report_errors(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:

        async def error(body: dict[str, Any]) -> tuple[int, str]:
            response = await client.post("/v1/aim/send-reports", json=body)
            return response.status_code, response.json()["error_code"]

        assert await error({"report_type": "3"}) == (400, "KM.00000400")
        assert await error({"report_type": ["1"]}) == (400, "KM.00000400")
        wide = {"begin_time": "2025-01-01T00:00:00Z", "end_time": "2025-06-01T00:00:00Z"}
        assert await error(wide) == (400, "KM.00000400")
        assert (await client.post("/v1/aim/send-reports", json={**wide, "report_type": "2"})).status_code == 200
        too_wide = {"report_type": "2", "begin_time": "2023-01-01T00:00:00Z", "end_time": wide["end_time"]}
        assert await error(too_wide) == (400, "KM.00000400")
        assert await error({"begin_time": "2025-02-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}) == (
            400,
            "KM.00000400",
        )
        assert await error({"begin_time": "May 1st", "end_time": "2025-01-01T00:00:00Z"}) == (400, "KM.00000400")
        assert await error({"offset": -1}) == (400, "KM.00000400")
        assert await error({"limit": 0}) == (400, "KM.00000400")
        assert await error({"limit": 1.5}) == (400, "KM.00000400")
        missing = await client.post("/v1/aim/send-reports")
        assert (missing.status_code, missing.json()["error_code"]) == (400, "KM.90016414")
        fine = await client.post("/v1/aim/send-reports", json={})
        assert fine.status_code == 200 and fine.json()["data"] == {
            "data_list": [],
            "page_info": {"offset": 0, "limit": 20, "total": 0},
        }
