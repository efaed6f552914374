"""Resolution-task links: the internal minting API (token, validation, idempotence, custom codes) and their
resolution at the edge (individual: first resolution billable; group: counted up to the budget, then 410), on the
real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie.v1 import link_pb2
from magpie_billing.units import units_from_link
from magpie_common.config import Settings
from magpie_common.ids import now_ms, stable_id
from magpie_common.testing import collect
from magpie_common.topics import LINK
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.resolution_api import PATH, TOKEN_HEADER
from magpie_shortlink.resolution_links import counted_resolution_event_id, ordinal_of
from magpie_shortlink.wiring import Components, build

from .conftest import TEST_SECRET

pytestmark = pytest.mark.integration

TOKEN = "internal-test-token"
DOMAIN = "https://mgp.example/"
AUTH = {TOKEN_HEADER: TOKEN}


@pytest.fixture
async def edge(settings: Settings) -> AsyncIterator[Components]:
    components = await build(
        settings, ShortlinkConfig(secret=TEST_SECRET, roles=frozenset({"edge"}), internal_token=TOKEN)
    )
    try:
        yield components
    finally:
        await components.close()


@pytest.fixture
async def http(edge: Components) -> AsyncIterator[httpx.AsyncClient]:
    assert edge.app is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge.app), base_url="http://edge.test") as client:
        yield client


def task_body(task_id: str, links: list[dict[str, Any]], *, group: bool = False, budget: int = 1) -> dict[str, Any]:
    created = now_ms()
    return {
        "tenant_id": "tenant-r",
        "task_id": task_id,
        "tpl_id": "100000009",
        "tpl_name": "会员日",
        "group": group,
        "max_resolutions": budget,
        "link_domain": DOMAIN,
        "aim_url": "",
        "created_at_ms": created,
        "expires_at_ms": created + 86_400_000,
        "links": links,
    }


async def mint(http: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await http.post(PATH, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return list(response.json()["links"])


async def resolve(http: httpx.AsyncClient, code: str) -> httpx.Response:
    return await http.post("/v1/resolve", json={"code": code}, headers={"User-Agent": "handset/1.0"})


async def test_individual_links_are_minted_idempotently_and_resolve_once_billably(
    edge: Components, http: httpx.AsyncClient, settings: Settings
) -> None:
    links = [
        {"index": 0, "cust_flag": "13800138000", "params": {"name": "张三"}},
        {"index": 1, "cust_flag": "13800138001", "params": {"name": "李四"}},
    ]
    first = await mint(http, task_body("RT-1", links))
    again = await mint(http, task_body("RT-1", links))  # a retry of the same task: the same links
    assert [link["code"] for link in again] == [link["code"] for link in first]
    assert [link["result_code"] for link in first] == ["0", "0"]
    code0, code1 = (link["code"] for link in first)
    assert first[0]["short_url"] == DOMAIN + code0 and len(code0) == 10 and code0 != code1
    stored = await edge.store.links.find_one({"_id": code0})
    assert stored is not None
    assert (stored["task_id"], stored["index"], stored["mobile"], stored["group"]) == ("RT-1", 0, "13800138000", False)

    # The edge serves them like any link: H5 page, redirect, resolve.
    page = await http.get(f"/h5/{code0}")
    assert page.status_code == 200 and "张三" in page.text
    assert (await resolve(http, code0)).json()["params"] == {"name": "张三"}
    assert (await resolve(http, code0)).status_code == 200  # a repeat: served, not billable
    events = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 2)
    billable = [e for e in events if e.billable]
    assert len(billable) == 1 and billable[0].meta.event_id == stable_id("resolved", code0)
    assert (billable[0].task_id, billable[0].index, billable[0].mobile) == ("RT-1", 0, "13800138000")
    (unit,) = units_from_link(billable[0]).units  # billing charges one AIM_RESOLUTION for it
    assert unit.product == "AIM_RESOLUTION" and unit.tenant_id == "tenant-r" and unit.task_id == "RT-1"


async def test_group_link_counts_resolutions_up_to_its_budget(
    edge: Components, http: httpx.AsyncClient, settings: Settings
) -> None:
    (link,) = await mint(
        http,
        task_body("RT-G", [{"index": 0, "custom_url": "https://shop.example/landing"}], group=True, budget=2),
    )
    code = link["code"]
    redirect = await http.get(f"/{code}")
    assert redirect.status_code == 302 and redirect.headers["location"] == "https://shop.example/landing"
    assert (await resolve(http, code)).status_code == 200
    assert (await resolve(http, code)).status_code == 200
    exhausted = await resolve(http, code)
    assert exhausted.status_code == 410 and "maximum number of resolutions" in exhausted.json()["error_msg"]

    events = await collect(
        settings, LINK, link_pb2.LinkEvent, until=lambda m: sum(e.billable for e in m) >= 2 and len(m) >= 3
    )
    resolved = [e for e in events if e.type == link_pb2.LINK_EVENT_TYPE_RESOLVED]
    assert len(resolved) == 2 and all(e.billable for e in resolved)
    ids = sorted(e.meta.event_id for e in resolved)
    assert ids == [counted_resolution_event_id(code, 1), counted_resolution_event_id(code, 2)]
    assert sorted(ordinal_of(i, code) for i in ids) == [1, 2]
    assert ordinal_of(ids[0], "otherCode1") is None and ordinal_of(stable_id("resolved", code), code) is None

    # An ordinal handed back (its event could not be produced) is used again before the budget moves on.
    record = (await edge.store.lookup(code)).record
    assert record is not None and record.group and record.max_resolutions == 2
    await edge.store.redis.delete(edge.store.counted_key(code))
    assert await edge.store.claim_counted_resolution(record) == 1
    await edge.store.return_counted_resolution(record, 1)
    assert await edge.store.claim_counted_resolution(record) == 1
    assert await edge.store.claim_counted_resolution(record) == 2
    assert await edge.store.claim_counted_resolution(record) is None


async def test_custom_codes(edge: Components, http: httpx.AsyncClient) -> None:
    links = [
        {"index": 0, "cust_flag": "a", "custom_code": "aDC123"},
        {"index": 1, "cust_flag": "b", "custom_code": "healthz"},  # an edge route: never reachable
        {"index": 2, "cust_flag": "c"},
    ]
    minted = await mint(http, task_body("RT-C", links))
    assert [m["result_code"] for m in minted] == ["0", "KM.90016482", "0"]
    assert minted[0]["code"] == "aDC123" and minted[0]["short_url"] == DOMAIN + "aDC123"
    assert minted[1]["code"] == "" and "taken" in minted[1]["error_message"]
    # The same task again finds its own code; another task cannot take it.
    assert (await mint(http, task_body("RT-C", links)))[0]["result_code"] == "0"
    other = await mint(http, task_body("RT-D", [{"index": 0, "cust_flag": "x", "custom_code": "aDC123"}]))
    assert other[0]["result_code"] == "KM.90016482"
    assert (await resolve(http, "aDC123")).status_code == 200


async def test_internal_api_needs_the_token_and_a_valid_request(http: httpx.AsyncClient, settings: Settings) -> None:
    body = task_body("RT-E", [{"index": 0, "cust_flag": "a"}])
    assert (await http.post(PATH, json=body)).status_code == 404
    assert (await http.post(PATH, json=body, headers={TOKEN_HEADER: "wrong"})).status_code == 404

    async def error(payload: Any) -> tuple[int, str]:
        response = await http.post(PATH, json=payload, headers=AUTH)
        return response.status_code, response.json()["error_code"]

    assert await error([1]) == (400, "KM.00000400")
    assert await error({**body, "links": []}) == (400, "KM.00000400")
    assert await error({**body, "tenant_id": ""}) == (400, "KM.00000400")
    assert await error({**body, "expires_at_ms": body["created_at_ms"]}) == (400, "KM.00000400")
    assert await error({**body, "links": [{"index": 0}, {"index": 0}]}) == (400, "KM.00000400")
    assert await error({**body, "links": [{"index": 0, "custom_code": "no-dash"}]}) == (400, "KM.00000400")
    assert await error({**body, "links": [{"index": 0, "params": {"a": 1}}]}) == (400, "KM.00000400")
    assert await error({**body, "group": True, "links": [{"index": 0}, {"index": 1}]}) == (400, "KM.00000400")
    assert await error({**body, "group": True, "max_resolutions": 0}) == (400, "KM.00000400")
    bad_json = await http.post(PATH, content=b"{", headers=AUTH)
    assert bad_json.status_code == 400

    # Without a configured token the internal API does not exist.
    disabled = await build(settings, ShortlinkConfig(secret=TEST_SECRET, roles=frozenset({"edge"})))
    try:
        assert disabled.app is not None and disabled.resolution_minter is None
        transport = httpx.ASGITransport(app=disabled.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            assert (await client.post(PATH, json=body, headers={TOKEN_HEADER: ""})).status_code == 404
    finally:
        await disabled.close()
