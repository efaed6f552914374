"""Template reports: the per-template daily counters kept from link events (``template_stats``, fed as the
projector's hooks feed it: the classified recipients' vendors, then the shortlink edge's LinkEvents), read through
the official SDK's ``list_aim_template_reports``; replays and concurrent duplicates count once; request refusals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import ListAimTemplateReportsRequest, ListAimTemplateReportsRequestBody

from magpie.v1 import common_pb2, link_pb2, resolve_pb2, task_pb2
from magpie_gateway import template_stats
from magpie_gateway.db import Collections

from .conftest import Harness, call, card_body, sdk_client

pytestmark = pytest.mark.integration

RESOLVED = link_pb2.LINK_EVENT_TYPE_RESOLVED
CLICKED = link_pb2.LINK_EVENT_TYPE_CLICKED
# Report days are China Standard Time days by default: 2024-05-01 (+08:00) is 2024-04-30T16:00Z..2024-05-01T15:59:59Z.
DAY1_10AM = int(datetime(2024, 5, 1, 2, 0, tzinfo=UTC).timestamp() * 1000)  # 2024-05-01 10:00 +08:00
DAY2_0030 = int(datetime(2024, 4, 30, 16, 30, tzinfo=UTC).timestamp() * 1000) + 86_400_000  # 2024-05-02 00:30 +08


def classified(task_id: str, vendors: dict[int, str]) -> resolve_pb2.ClassifiedBatch:
    message = resolve_pb2.ClassifiedBatch(ctx=task_pb2.TaskContext(task_id=task_id), batch_no=0)
    for index, vendor in vendors.items():
        message.recipients.add(index=index, mobile=f"1390000000{index}", vendor=vendor, route=common_pb2.ROUTE_SMART)
    return message


def link_event(
    tenant_id: str, tpl_id: str, index: int, kind: int, at_ms: int, event_id: str, *, billable: bool = False
) -> link_pb2.LinkEvent:
    event = link_pb2.LinkEvent(
        type=kind,
        code=f"code{index}",
        task_id="task-1",
        batch_no=0,
        index=index,
        mobile=f"1390000000{index}",
        tpl_id=tpl_id,
        at_ms=at_ms,
        billable=billable,
    )
    event.meta.event_id = event_id
    event.meta.tenant_id = tenant_id
    return event


def events(tenant_id: str, tpl_id: str, other_tpl: str) -> list[link_pb2.LinkEvent]:
    return [
        # day 1: recipient 0 (HUAWEI) resolves and re-opens, 2 (OPPO) resolves; 3 (vendor unknown) clicks twice,
        # 1 (HUAWEI) clicks once
        link_event(tenant_id, tpl_id, 0, RESOLVED, DAY1_10AM, "resolved-0", billable=True),
        link_event(tenant_id, tpl_id, 0, RESOLVED, DAY1_10AM + 60_000, "repeat-0a"),
        link_event(tenant_id, tpl_id, 2, RESOLVED, DAY1_10AM + 5_000, "resolved-2", billable=True),
        link_event(tenant_id, tpl_id, 3, CLICKED, DAY1_10AM, "click-3a"),
        link_event(tenant_id, tpl_id, 3, CLICKED, DAY1_10AM + 1_000, "click-3b"),
        link_event(tenant_id, tpl_id, 1, CLICKED, DAY1_10AM + 2_000, "click-1a"),
        # day 2: recipient 0 re-opens, 1 resolves for the first time
        link_event(tenant_id, tpl_id, 0, RESOLVED, DAY2_0030, "repeat-0b"),
        link_event(tenant_id, tpl_id, 1, RESOLVED, DAY2_0030 + 1_000, "resolved-1", billable=True),
        # another template of the tenant, day 1
        link_event(tenant_id, other_tpl, 2, RESOLVED, DAY1_10AM, "resolved-other", billable=True),
        # ignored: no template, no tenant
        link_event(tenant_id, "", 0, RESOLVED, DAY1_10AM, "no-template", billable=True),
        link_event("", tpl_id, 0, RESOLVED, DAY1_10AM, "no-tenant", billable=True),
    ]


async def feed(collections: Collections, tenant_id: str, tpl_id: str, other_tpl: str) -> None:
    await template_stats.record_vendors(collections, [classified("task-1", {0: "HUAWEI", 1: "huawei", 2: "OPPO"})])
    await template_stats.record_link_events(collections, events(tenant_id, tpl_id, other_tpl))


async def create_card(client: httpx.AsyncClient, name: str = "双十一优惠券") -> str:
    response = await client.post("/v1/aim/templates", json={**card_body(), "tpl_name": name})
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["tpl_id"])


def error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code, response.text


def counts(report: Any) -> tuple[str, str, str, int, int, int, int, int]:
    return (
        report.tpl_id,
        report.start_time,
        report.end_time,
        report.resolving_times,
        report.expose_pv,
        report.expose_uv,
        report.click_pv,
        report.click_uv,
    )


DAY1 = ("2024-04-30T16:00:00Z", "2024-05-01T15:59:59Z")
DAY2 = ("2024-05-01T16:00:00Z", "2024-05-02T15:59:59Z")


async def test_template_reports_through_the_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant("reports")
    async with harness.client(tenant) as client:
        tpl_id = await create_card(client)
        other_tpl = await create_card(client, "会员日")  # another body: the same request twice is a replay
    collections = harness.gateway.context.collections
    await feed(collections, tenant.tenant_id, tpl_id, other_tpl)
    await feed(collections, tenant.tenant_id, tpl_id, other_tpl)  # a replay counts nothing
    sdk = sdk_client(url, tenant)

    def query(**fields: Any) -> Any:
        body = {"begin_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T23:00:00Z", **fields}
        return sdk.list_aim_template_reports(
            ListAimTemplateReportsRequest(body=ListAimTemplateReportsRequestBody(**body))
        )

    everything = await call(lambda: query(tpl_ids=[tpl_id, other_tpl]))
    assert [counts(r) for r in everything.template_reports] == [
        (tpl_id, *DAY2, 1, 2, 2, 0, 0),
        (tpl_id, *DAY1, 2, 3, 2, 3, 2),
        (other_tpl, *DAY1, 1, 1, 1, 0, 0),
    ]
    assert (everything.page_info.offset, everything.page_info.limit, everything.page_info.total) == (0, 10, 3)

    huawei = await call(lambda: query(tpl_ids=[tpl_id], factory_type=["huawei"]))
    assert [counts(r) for r in huawei.template_reports] == [
        (tpl_id, *DAY2, 1, 2, 2, 0, 0),
        (tpl_id, *DAY1, 1, 2, 1, 1, 1),
    ]
    oppo_vivo = await call(lambda: query(tpl_ids=[tpl_id], factory_type=["OPPO", "vivo"]))
    assert [counts(r) for r in oppo_vivo.template_reports] == [(tpl_id, *DAY1, 1, 1, 1, 0, 0)]

    paged = await call(lambda: query(tpl_ids=[tpl_id, other_tpl], offset=1, limit=1))
    assert [counts(r) for r in paged.template_reports] == [(tpl_id, *DAY1, 2, 3, 2, 3, 2)]
    assert paged.page_info.total == 3
    day2_only = await call(lambda: query(tpl_ids=[tpl_id], begin_time="2024-05-01T17:00:00Z"))
    assert [r.start_time for r in day2_only.template_reports] == [DAY2[0]]
    too_long = await call(lambda: query(tpl_ids=[tpl_id], begin_time="2024-01-01T00:00:00Z"))
    assert too_long.template_reports == [] and too_long.page_info.total == 0

    # A deleted template keeps its reports.
    async with harness.client(tenant) as client:
        assert (await client.delete(f"/v1/aim/template/{other_tpl}")).status_code == 200
    kept = await call(lambda: query(tpl_ids=[other_tpl], limit=5))
    assert [counts(r) for r in kept.template_reports] == [(other_tpl, *DAY1, 1, 1, 1, 0, 0)]


async def test_concurrent_duplicates_count_once(harness: Harness) -> None:
    tenant = await harness.tenant("dups")
    collections = harness.gateway.context.collections
    batch = events(tenant.tenant_id, "123456789", "987654321")
    await asyncio.gather(*(template_stats.record_link_events(collections, batch) for _ in range(3)))
    docs = await collections.template_stats.find({"tenant_id": tenant.tenant_id}).to_list(None)
    totals = {name: sum(d.get(name, 0) for d in docs) for name in template_stats.COUNTERS}
    assert totals == {"resolving_times": 4, "expose_pv": 6, "expose_uv": 5, "click_pv": 3, "click_uv": 2}
    assert {d["vendor"] for d in docs} == {""}  # no vendors recorded for this task: counted under ""


async def test_report_refusals(harness: Harness) -> None:
    owner = await harness.tenant("owner")
    other = await harness.tenant("other")
    path = "/v1/aim/template-reports/query"
    window = {"begin_time": "2024-05-01T00:00:00Z", "end_time": "2024-05-02T00:00:00Z"}
    async with harness.client(owner) as mine, harness.client(other) as theirs:
        tpl_id = await create_card(mine)
        await feed(harness.gateway.context.collections, owner.tenant_id, tpl_id, "555555555")
        ok = await mine.post(path, json={"tpl_ids": [tpl_id], **window})
        assert ok.status_code == 200 and ok.json()["page_info"]["total"] == 2  # both report days touch the window
        error(await theirs.post(path, json={"tpl_ids": [tpl_id], **window}), 404, "KM.00000404")
        error(await mine.post(path, json={"tpl_ids": [tpl_id, "111111111"], **window}), 404, "KM.00000404")
        for bad in (
            {"tpl_ids": [], **window},
            {**window},
            {"tpl_ids": [str(100_000_000 + i) for i in range(101)], **window},
            {"tpl_ids": [tpl_id]},
            {"tpl_ids": [tpl_id], "begin_time": "2024-05-01T00:00:00Z"},
            {"tpl_ids": [tpl_id], "begin_time": "yesterday", "end_time": "2024-05-02T00:00:00Z"},
            {"tpl_ids": [tpl_id], "begin_time": "2024-05-03T00:00:00Z", "end_time": "2024-05-02T00:00:00Z"},
            {"tpl_ids": [tpl_id], **window, "factory_type": ["nokia"]},
            {"tpl_ids": [tpl_id], **window, "limit": 0},
            {"tpl_ids": [tpl_id], **window, "offset": -1},
        ):
            error(await mine.post(path, json=bad), 400, "KM.00000400")


def test_day_boundaries() -> None:
    at = int(datetime(2024, 5, 1, 15, 59, 59, tzinfo=UTC).timestamp() * 1000)
    assert template_stats.day_start(at, 480) == datetime(2024, 4, 30, 16, 0, tzinfo=UTC)
    assert template_stats.day_start(at + 1000, 480) == datetime(2024, 5, 1, 16, 0, tzinfo=UTC)
    assert template_stats.day_start(at, 0) == datetime(2024, 5, 1, tzinfo=UTC)
    assert template_stats.day_start(at, -300) == datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
