"""Resolution tasks through the official SDK against the gateway, which mints the links at the real shortlink
service (built in-process, its edge served on its own port); the links are resolved at that edge and the
resolutions come back over Kafka into ``list_resolve_tasks`` and ``list_aim_resolve_details``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ServerResponseException
from huaweicloudsdkkoomessage.v1 import (
    CreateResolveTaskRequest,
    CreateResolveTaskRequestBody,
    CreateShortChainParam,
    ListAimResolveDetailsRequest,
    ListResolveTasksRequest,
)

from magpie.v1 import common_pb2, link_pb2, resolve_pb2
from magpie.v1.template_pb2 import REVIEW_SUBJECT_AIM_TEMPLATE, REVIEW_SUBJECT_DOMAIN
from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_common.topics import CLASSIFIED, LINK
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.wiring import Components, build

from .conftest import (
    Harness,
    Setup,
    call,
    card_body,
    eventually,
    free_port,
    gateway_config,
    recipients,
    sdk_client,
    served_gateway,
    until,
)

pytestmark = pytest.mark.integration

TOKEN = "gateway-shortlink-token"


@contextlib.asynccontextmanager
async def shortlink_edge(settings: Settings) -> AsyncIterator[tuple[str, Components]]:
    """The shortlink edge (with its internal API) served on a free port."""
    port = free_port()
    config = ShortlinkConfig(roles=frozenset({"edge"}), http_port=port, secret="rt-secret", internal_token=TOKEN)
    components = await build(settings, config)
    assert components.app is not None
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", components
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


@dataclass
class Stack:
    url: str  # the gateway
    edge: str  # the shortlink edge
    harness: Harness


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with shortlink_edge(settings) as (edge_url, _):
        config = gateway_config(
            replay_check=True,
            shortlink_url=edge_url,
            shortlink_internal_token=TOKEN,
            link_domain=edge_url + "/",
        )
        async with served_gateway(settings, config) as (url, harness):
            yield Stack(url, edge_url, harness)


async def resolve_at_edge(edge: str, code: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=edge) as handset:
        return await handset.post("/v1/resolve", json={"code": code}, headers={"User-Agent": "test-handset"})


def create_request(setup: Setup, params: list[CreateShortChainParam], **fields: Any) -> CreateResolveTaskRequest:
    body = CreateResolveTaskRequestBody(tpl_id=setup.tpl_id, sms_signs=[setup.sign], params=params, **fields)
    return CreateResolveTaskRequest(body=body)


async def test_individual_links_through_the_sdk(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
    sdk = sdk_client(stack.url, tenant)
    params = [
        CreateShortChainParam(cust_flag=f"1380013800{i}", dync_params={"name": f"会员{i}", "amount": str(10 * i)})
        for i in range(3)
    ]
    created = await call(
        lambda: sdk.create_resolve_task(
            create_request(setup, params, aim_code_type="individual", generation_type="1", expiration_time=3)
        )
    )
    assert created.task_id.startswith("RT") and created.tpl_id == setup.tpl_id
    assert created.sms_signs == [setup.sign] and created.aim_code_type == "individual"
    assert (created.resolving_times, created.resolved_times, created.expiration_time) == (1, 0, 3)
    assert [p.cust_flag for p in created.params] == ["13800138000", "13800138001", "13800138002"]
    for p in created.params:
        assert p.result_code == "0" and p.cust_id == tenant.tenant_id
        assert p.aim_url == f"{stack.edge}/{p.aim_code}" and len(p.aim_code) == 10
        assert p.generate_date.endswith("Z") and p.expire_date > p.generate_date and p.resolved_times == 0
    assert created.params[1].dync_params == {"name": "会员1", "amount": "10"}

    # The links are live at the edge: the card page, and the handset's resolution.
    first = created.params[0]
    async with httpx.AsyncClient() as browser:
        page = await browser.get(f"{stack.edge}/h5/{first.aim_code}")
    assert page.status_code == 200 and "会员0" in page.text
    resolved = await resolve_at_edge(stack.edge, first.aim_code)
    assert resolved.status_code == 200 and resolved.json()["params"] == {"amount": "0", "name": "会员0"}
    assert (await resolve_at_edge(stack.edge, first.aim_code)).status_code == 200  # a repeat counts nothing

    def listed() -> Any:
        found = sdk.list_resolve_tasks(ListResolveTasksRequest(task_id=created.task_id))
        return found if found.resolve_tasks and found.resolve_tasks[0].resolved_times == 1 else None

    tasks = await until(listed)
    (task,) = tasks.resolve_tasks
    assert tasks.page_info.total == 1
    assert (task.task_id, task.tpl_id, task.aim_code_type, task.resolving_times) == (
        created.task_id,
        setup.tpl_id,
        "individual",
        1,
    )
    assert task.sms_signs == [setup.sign] and task.expiration_time == 3
    (shown,) = task.params  # the first link, as KooMessage shows it
    assert shown.aim_code == first.aim_code and shown.resolved_times == 1 and shown.resolved_date is not None

    details = await call(lambda: sdk.list_aim_resolve_details(ListAimResolveDetailsRequest(task_id=created.task_id)))
    assert details.page_info.total == 3
    by_flag = {d.cust_flag: d for d in details.resolve_details}
    assert by_flag["13800138000"].resolved_status == "success" and by_flag["13800138000"].resolved_time
    assert by_flag["13800138001"].resolved_status == "unresolved" and by_flag["13800138001"].resolved_time is None
    assert {d.aim_url for d in details.resolve_details} == {p.aim_url for p in created.params}
    row = by_flag["13800138002"]
    assert (row.task_id, row.tpl_id, row.tpl_name, row.result_code) == (
        created.task_id,
        setup.tpl_id,
        "双十一优惠券",
        "0",
    )
    assert row.send_account  # the user that created the task
    success = await call(
        lambda: sdk.list_aim_resolve_details(
            ListAimResolveDetailsRequest(task_id=created.task_id, resolved_status="success")
        )
    )
    assert [d.cust_flag for d in success.resolve_details] == ["13800138000"]
    by_url = await call(lambda: sdk.list_aim_resolve_details(ListAimResolveDetailsRequest(aim_url=first.aim_url)))
    assert [d.cust_flag for d in by_url.resolve_details] == ["13800138000"]
    by_flag_filter = await call(
        lambda: sdk.list_resolve_tasks(ListResolveTasksRequest(cust_flag="13800138002", offset=0, limit=5))
    )
    assert [t.task_id for t in by_flag_filter.resolve_tasks] == [created.task_id]
    signed = await call(lambda: sdk.list_aim_resolve_details(ListAimResolveDetailsRequest(sms_sign="别的签名")))
    assert signed.resolve_details == [] and signed.page_info.total == 0


async def test_group_link_counts_up_to_its_budget(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, card_params=())
    sdk = sdk_client(stack.url, tenant)
    created = await call(
        lambda: sdk.create_resolve_task(
            create_request(
                setup,
                [CreateShortChainParam(custom_url="https://shop.example/landing")],
                aim_code_type="group",
                resolving_times=2,
                expiration_time=90,
            )
        )
    )
    assert (created.aim_code_type, created.resolving_times, created.expiration_time) == ("group", 2, 90)
    (link,) = created.params
    assert link.result_code == "0" and link.custom_url == "https://shop.example/landing"
    async with httpx.AsyncClient() as browser:
        redirect = await browser.get(link.aim_url)
    assert redirect.status_code == 302 and redirect.headers["location"] == "https://shop.example/landing"
    assert (await resolve_at_edge(stack.edge, link.aim_code)).status_code == 200
    assert (await resolve_at_edge(stack.edge, link.aim_code)).status_code == 200
    assert (await resolve_at_edge(stack.edge, link.aim_code)).status_code == 410  # the budget is spent

    def counted() -> Any:
        found = sdk.list_resolve_tasks(ListResolveTasksRequest(task_id=created.task_id))
        return found.resolve_tasks[0] if found.resolve_tasks[0].resolved_times == 2 else None

    task = await until(counted)
    assert task.params[0].resolved_times == 2
    async with harness.client(tenant) as client:
        raw = await client.get("/v1/aim/resolve-details", params={"task_id": created.task_id})
    (row,) = raw.json()["resolve_details"]
    assert (row["resolved_status"], row["resolved_times"], row["aim_code_type"]) == ("success", 2, "group")
    assert row["last_resolved_time"] >= row["resolved_time"]


async def test_custom_short_codes_and_partial_tasks(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, card_params=())
        await approved_domain(harness, client, "s.shop.example", custom_short_code=True)
        body = {
            "tpl_id": setup.tpl_id,
            "sms_signs": [setup.sign],
            "generation_type": "2",
            "domain": "S.Shop.Example",
            "params": [
                {"cust_flag": "13800138000", "custom_short_code": "Spring01", "custom_url": "https://ignored.example"},
                {"cust_flag": "13800138001", "custom_short_code": "Spring02"},
            ],
        }
        first = await client.post("/v1/aim/resolve-tasks", json=body)
        assert first.status_code == 200, first.text
        assert first.json()["task_state"] == "success" and first.json()["domain"] == "s.shop.example"
        assert [p["aim_code"] for p in first.json()["params"]] == ["Spring01", "Spring02"]
        assert first.json()["params"][0]["aim_url"] == "https://s.shop.example/Spring01"
        assert first.json()["params"][0]["custom_url"] is None  # not supported with custom codes: ignored
        assert first.json()["params"][0]["custom_short_code"] == "Spring01"

        body["params"] = [
            {"cust_flag": "13800138000", "custom_short_code": "Spring01"},
            {"cust_flag": "x", "custom_short_code": "Spring03"},
        ]
        second = await client.post("/v1/aim/resolve-tasks", json=body)
        assert second.status_code == 200, second.text
        taken, fresh = second.json()["params"]
        assert second.json()["task_state"] == "partial"
        assert taken["result_code"] == "KM.90016482" and taken["aim_url"] is None and taken["error_message"]
        assert fresh["result_code"] == "0" and fresh["aim_code"] == "Spring03"
        failed_rows = await client.get(
            "/v1/aim/resolve-details", params={"task_id": second.json()["task_id"], "resolved_status": "fail"}
        )
        assert [r["cust_flag"] for r in failed_rows.json()["resolve_details"]] == ["13800138000"]

        body["params"] = [{"cust_flag": "13800138000", "custom_short_code": "Spring01"}]
        failed = await client.post("/v1/aim/resolve-tasks", json=body)
        assert failed.json()["task_state"] == "failed"
        listed = await client.get("/v1/aim/resolve-tasks", params={"task_id": failed.json()["task_id"]})
        assert listed.json()["resolve_tasks"][0]["task_state"] == "failed"
    assert (await resolve_at_edge(stack.edge, "Spring02")).status_code == 200


async def approved_domain(harness: Harness, client: httpx.AsyncClient, domain: str, *, custom_short_code: bool) -> str:
    """A short-link domain of the tenant, approved by the reviewer (domains_api)."""
    created = await client.post("/v1/magpie/domains", json={"domain": domain, "custom_short_code": custom_short_code})
    assert created.status_code == 200, created.text
    domain_id = str(created.json()["domain_id"])
    await harness.review(REVIEW_SUBJECT_DOMAIN, domain_id)

    async def approved() -> bool:
        return bool((await client.get(f"/v1/magpie/domains/{domain_id}")).json()["status"] == "APPROVED")

    await eventually(approved)
    return domain_id


async def new_template(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/aim/templates", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["tpl_id"])


async def test_resolve_task_errors(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    other = await harness.tenant("other")
    async with harness.client(other) as client:
        other_setup = await harness.prerequisites(client, suffix="_o")
        others = await client.post(
            "/v1/aim/resolve-tasks",
            json={
                "tpl_id": other_setup.tpl_id,
                "sms_signs": [other_setup.sign],
                "params": [{"cust_flag": "13900000001", "dync_params": {"name": "a", "amount": "1"}}],
            },
        )
        assert others.status_code == 200, others.text
        others_task = others.json()["task_id"]
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        unapproved = await new_template(client, {**card_body(), "tpl_name": "未审核"})
        group_tpl = await new_template(client, {**card_body(params=()), "tpl_name": "群发"})
        await harness.review(REVIEW_SUBJECT_AIM_TEMPLATE, group_tpl, vendors={"HUAWEI": True})
        link = {"cust_flag": "13800138000", "dync_params": {"name": "a", "amount": "1"}}
        good = {"tpl_id": setup.tpl_id, "sms_signs": [setup.sign], "params": [link]}

        async def error(changes: dict[str, Any]) -> tuple[int, str]:
            response = await client.post("/v1/aim/resolve-tasks", json={**good, **changes})
            return response.status_code, response.json().get("error_code", "")

        assert await error({"tpl_id": None}) == (400, "KM.00000400")
        assert await error({"tpl_id": "999999999"}) == (400, "KM.00000426")
        assert await error({"tpl_id": other_setup.tpl_id}) == (400, "KM.00000426")  # another tenant's
        assert await error({"tpl_id": unapproved}) == (400, "KM.00000427")
        assert await error({"sms_signs": []}) == (400, "KM.00001075")
        assert await error({"sms_signs": ["  "]}) == (400, "KM.00001075")
        assert await error({"sms_signs": ["喜"]}) == (400, "KM.00001076")
        assert await error({"sms_signs": ["喜" * 17]}) == (400, "KM.00001076")
        assert await error({"sms_signs": ["签名一", "签名二", "签名三", "签名四", "签名五", "签名六"]}) == (
            400,
            "KM.00000400",
        )
        assert await error({"sms_signs": ["喜鹊!"]}) == (400, "KM.00000400")
        assert await error({"aim_code_type": "broadcast"}) == (400, "KM.00000400")
        assert await error({"generation_type": "3"}) == (400, "KM.00000400")
        assert await error({"generation_type": "2"}) == (400, "KM.00000400")  # needs a domain
        assert await error({"domain": "bad_domain!"}) == (400, "KM.00000400")
        assert await error({"domain": "unknown.example"}) == (400, "KM.00000461")  # not the tenant's
        await approved_domain(harness, client, "std.shop.example", custom_short_code=False)
        assert await error({"domain": "std.shop.example"}) == (200, "")
        custom_on_std = {"generation_type": "2", "domain": "std.shop.example"}
        coded = [{**link, "custom_short_code": "Std01"}]
        assert await error({**custom_on_std, "params": coded}) == (400, "KM.00000461")  # registered for standard
        assert await error({"expiration_time": 8}) == (400, "KM.00000400")
        assert await error({"expiration_time": 0}) == (400, "KM.00000400")
        assert await error({"expiration_time": "soon"}) == (400, "KM.00000400")
        assert await error({"params": []}) == (400, "KM.90016414")
        assert await error({"params": None}) == (400, "KM.90016414")
        many = [{"cust_flag": f"1380013{i:04d}", "dync_params": link["dync_params"]} for i in range(101)]
        assert await error({"params": many}) == (400, "KM.90016403")
        assert await error({"params": [link, link]}) == (400, "KM.00000400")  # one link per cust_flag
        assert await error({"params": [{"dync_params": link["dync_params"]}]}) == (400, "KM.00000400")
        assert await error({"params": [{**link, "cust_flag": "1" * 65}]}) == (400, "KM.00000400")
        assert await error({"params": [{**link, "dync_params": {"name": "a"}}]}) == (400, "KM.90016802")
        assert await error({"params": [{**link, "dync_params": {"name": {"x": 1}, "amount": "1"}}]}) == (
            400,
            "KM.00000400",
        )
        assert await error({"params": [{**link, "custom_url": "https://x.example"}]}) == (400, "KM.00000400")
        assert await error({"params": ["13800138000"]}) == (400, "KM.00000400")
        # group tasks
        assert await error({"aim_code_type": "group", "resolving_times": 5}) == (400, "KM.00000400")  # card params
        group = {"tpl_id": group_tpl, "sms_signs": [setup.sign], "aim_code_type": "group"}

        async def group_approved() -> bool:
            found = await client.get("/v1/aim/templates", params={"tpl_id": group_tpl})
            return bool(found.json()["templates"][0]["tpl_state"] == 1)

        await eventually(group_approved)
        assert await error({**group, "resolving_times": 1, "params": [{}]}) == (400, "KM.00000400")
        assert await error({**group, "resolving_times": 3, "params": [{}, {}]}) == (400, "KM.90016403")
        assert await error({**group, "resolving_times": 3, "expiration_time": 181, "params": [{}]}) == (
            400,
            "KM.00000400",
        )
        bad_url = [{"custom_url": "ftp://x.example"}]
        assert await error({**group, "resolving_times": 3, "params": bad_url}) == (400, "KM.00000400")
        assert await error({**group, "resolving_times": 3, "params": [{"custom_url": "https://x/" + "a" * 250}]}) == (
            400,
            "KM.00000400",
        )
        custom = {"generation_type": "2", "domain": "unknown.example"}
        assert await error({**custom, "params": [link]}) == (400, "KM.00000400")  # no custom_short_code
        bad_code = [{**link, "custom_short_code": "a-b"}]
        assert await error({**custom, "params": bad_code}) == (400, "KM.00000400")
        twice = [{**link, "custom_short_code": "Dup01"}, {**link, "cust_flag": "x", "custom_short_code": "Dup01"}]
        assert await error({**custom, "params": twice}) == (400, "KM.90016482")
        # the query side
        bad_window = {"begin_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-02T00:00:01Z"}
        response = await client.get("/v1/aim/resolve-details", params=bad_window)
        assert (response.status_code, response.json()["error_code"]) == (400, "KM.00000400")
        response = await client.get("/v1/aim/resolve-details", params={"resolved_status": "maybe"})
        assert (response.status_code, response.json()["error_code"]) == (400, "KM.00000400")
        response = await client.get("/v1/aim/resolve-tasks", params={"begin_time": "yesterday", "end_time": "now"})
        assert (response.status_code, response.json()["error_code"]) == (400, "KM.00000400")
        response = await client.get("/v1/aim/resolve-tasks", params={"limit": 0})
        assert (response.status_code, response.json()["error_code"]) == (400, "KM.00000400")
        # another tenant's task: never its data
        for path in ("/v1/aim/resolve-tasks", "/v1/aim/resolve-details"):
            response = await client.get(path, params={"task_id": others_task})
            assert response.status_code == 200 and response.json()["page_info"]["total"] == 0
        assert (await client.get("/v1/aim/resolve-tasks", params={"cust_flag": "13900000001"})).json()[
            "resolve_tasks"
        ] == []
        # nothing was written by the refused requests (the one accepted request made the only task)
        assert (await client.get("/v1/aim/resolve-tasks")).json()["page_info"]["total"] == 1


async def test_shortlink_unavailable(settings: Settings) -> None:
    config = gateway_config(
        replay_check=True, shortlink_url=f"http://127.0.0.1:{free_port()}", shortlink_internal_token=TOKEN
    )
    async with served_gateway(settings, config) as (url, harness):
        tenant = await harness.tenant()
        async with harness.client(tenant) as client:
            setup = await harness.prerequisites(client, card_params=())
        sdk = sdk_client(url, tenant)
        with pytest.raises(ServerResponseException) as caught:
            await call(lambda: sdk.create_resolve_task(create_request(setup, [CreateShortChainParam(cust_flag="a")])))
        assert caught.value.status_code == 503 and caught.value.error_code == "KM.00000460"
        async with harness.client(tenant) as client:
            (task,) = (await client.get("/v1/aim/resolve-tasks")).json()["resolve_tasks"]
            assert task["task_state"] == "failed" and task["params"][0]["result_code"] == "KM.00000460"
            rows = (await client.get("/v1/aim/resolve-details", params={"resolved_status": "fail"})).json()
            assert rows["page_info"]["total"] == 1


def classified(task_id: str, tenant_id: str, routes: dict[int, int]) -> resolve_pb2.ClassifiedBatch:
    message = resolve_pb2.ClassifiedBatch(batch_no=0, batch_count=1)
    message.ctx.task_id = task_id
    message.ctx.tenant_id = tenant_id
    message.meta.event_id = f"classified-{task_id}"
    for index, route in sorted(routes.items()):
        mobile = recipients(1, start=index)[0]["cust_flag"]
        reason = "" if route == common_pb2.ROUTE_SMART else "UNKNOWN_DEVICE"
        message.recipients.add(index=index, mobile=mobile, msisdn="86" + mobile, route=route, reason=reason)
    return message


async def test_details_include_send_task_links(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        send = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(6)))
        assert send.status_code == 200, send.text
        send_id = send.json()["task_id"]
        resolve_task = await client.post(
            "/v1/aim/resolve-tasks",
            json={
                "tpl_id": setup.tpl_id,
                "sms_signs": [setup.sign],
                "params": [{"cust_flag": "13700000000", "dync_params": {"name": "a", "amount": "1"}}],
            },
        )
        resolve_id = resolve_task.json()["task_id"]
        # The number check routes 0-2 smart, 3 plain SMS, 4 skipped, 5 invalid; recipient 1 resolves its link.
        routes = {0: 1, 1: 1, 2: 1, 3: 2, 4: 4, 5: 5}
        await harness.producer.send(CLASSIFIED, f"{send_id}:0", classified(send_id, tenant.tenant_id, routes))
        mobile1 = recipients(1, start=1)[0]["cust_flag"]
        event = link_pb2.LinkEvent(
            type=link_pb2.LINK_EVENT_TYPE_RESOLVED, code="c1", task_id=send_id, index=1, mobile=mobile1, billable=True
        )
        event.meta.event_id, event.meta.tenant_id, event.at_ms = "r1", tenant.tenant_id, 1_760_000_000_000
        await harness.producer.send(LINK, f"{send_id}:0", event)

        async def send_rows() -> list[dict[str, Any]] | None:
            rows = (await client.get("/v1/aim/resolve-details", params={"task_id": send_id})).json()
            resolved = [r for r in rows["resolve_details"] if r["resolved_status"] == "success"]
            return rows["resolve_details"] if len(rows["resolve_details"]) == 4 and resolved else None

        rows = await eventually(send_rows)
        assert [r["cust_flag"] for r in rows] == [recipients(1, start=i)[0]["cust_flag"] for i in range(4)]
        assert [r["resolved_status"] for r in rows] == ["unresolved", "success", "unresolved", "unresolved"]
        assert rows[1]["resolved_time"] == "2025-10-09T08:53:20Z" and rows[1]["aim_url"] is None
        assert {r["task_id"] for r in rows} == {send_id} and rows[0]["resolve_id"] == f"{send_id}:0"
        success = await client.get("/v1/aim/resolve-details", params={"task_id": send_id, "resolved_status": "success"})
        assert [r["cust_flag"] for r in success.json()["resolve_details"]] == [mobile1]
        by_mobile = await client.get("/v1/aim/resolve-details", params={"cust_flag": mobile1})
        assert [r["task_id"] for r in by_mobile.json()["resolve_details"]] == [send_id]

        # Without task_id: the resolution task's link first, then the send task's, paged across both.
        everything = (await client.get("/v1/aim/resolve-details", params={"limit": 100})).json()
        assert everything["page_info"]["total"] == 5
        assert [r["task_id"] for r in everything["resolve_details"]] == [resolve_id] + [send_id] * 4
        pages = []
        for offset in range(0, 5, 2):
            chunk = await client.get("/v1/aim/resolve-details", params={"offset": offset, "limit": 2})
            pages.extend(r["resolve_id"] for r in chunk.json()["resolve_details"])
        assert pages == [r["resolve_id"] for r in everything["resolve_details"]]
        unresolved = await client.get("/v1/aim/resolve-details", params={"resolved_status": "unresolved", "offset": 1})
        assert unresolved.json()["page_info"]["total"] == 4
        assert [r["cust_flag"] for r in unresolved.json()["resolve_details"]] == [
            recipients(1, start=i)[0]["cust_flag"] for i in (0, 2, 3)
        ]
