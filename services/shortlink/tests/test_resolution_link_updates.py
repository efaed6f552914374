"""Changing the limits of resolution-task links (``POST /internal/resolution-links/update``): a group link's budget
raised after it was spent, an expired link extended, never lowered, all-or-nothing for links that are gone, and
minting again raising a link found again to the request's limits; on the real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie.v1 import link_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.testing import collect
from magpie_common.topics import LINK
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.links import datetime_to_ms
from magpie_shortlink.resolution_api import PATH, TOKEN_HEADER, UPDATE_PATH
from magpie_shortlink.resolution_links import counted_resolution_event_id
from magpie_shortlink.wiring import Components, build

from .conftest import TEST_SECRET

pytestmark = pytest.mark.integration

TOKEN = "internal-update-token"
AUTH = {TOKEN_HEADER: TOKEN}
DAY_MS = 86_400_000


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
        "tenant_id": "tenant-u",
        "task_id": task_id,
        "tpl_id": "100000010",
        "tpl_name": "周年庆",
        "group": group,
        "max_resolutions": budget,
        "link_domain": "https://mgp.example/",
        "aim_url": "",
        "created_at_ms": created,
        "expires_at_ms": created + DAY_MS,
        "links": links,
    }


async def mint(http: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await http.post(PATH, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return list(response.json()["links"])


async def update(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post(UPDATE_PATH, json={"tenant_id": "tenant-u", **body}, headers=AUTH)


async def resolve(http: httpx.AsyncClient, code: str) -> int:
    response = await http.post("/v1/resolve", json={"code": code}, headers={"User-Agent": "handset/1.0"})
    return response.status_code


async def test_group_budget_raised_after_it_was_spent(
    edge: Components, http: httpx.AsyncClient, settings: Settings
) -> None:
    (link,) = await mint(http, task_body("RT-U1", [{"index": 0}], group=True, budget=2))
    code = link["code"]
    assert [await resolve(http, code) for _ in range(4)] == [200, 200, 410, 410]
    # Refused resolutions do not move the counter past the budget.
    assert await edge.store.redis.get(edge.store.counted_key(code)) == b"2"
    counter_ttl = await edge.store.redis.pttl(edge.store.counted_key(code))
    assert counter_ttl > DAY_MS  # the link's validity plus the expired-link retention

    raised = await update(http, {"task_id": "RT-U1", "links": [{"index": 0, "code": code}], "max_resolutions": 4})
    assert raised.status_code == 200, raised.text
    assert raised.json() == {
        "links": [
            {"index": 0, "code": code, "expires_at_ms": link["expires_at_ms"], "max_resolutions": 4, "group": True}
        ],
        "missing": [],
    }
    # The very next requests see the new budget (the hot copy was rewritten): two more, then 410 again.
    assert [await resolve(http, code) for _ in range(3)] == [200, 200, 410]
    events = await collect(
        settings,
        LINK,
        link_pb2.LinkEvent,
        until=lambda m: sum(e.type == link_pb2.LINK_EVENT_TYPE_RESOLVED for e in m) >= 4,
    )
    ids = sorted(e.meta.event_id for e in events if e.type == link_pb2.LINK_EVENT_TYPE_RESOLVED)
    assert ids == [counted_resolution_event_id(code, n) for n in (1, 2, 3, 4)]
    assert all(e.billable for e in events if e.type == link_pb2.LINK_EVENT_TYPE_RESOLVED)

    # Never lowered; the same request again changes nothing (idempotent).
    lower = await update(http, {"task_id": "RT-U1", "links": [{"index": 0, "code": code}], "max_resolutions": 3})
    assert lower.json()["links"][0]["max_resolutions"] == 4
    stored = await edge.store.links.find_one({"_id": code})
    assert stored is not None and stored["max_resolutions"] == 4


async def test_expired_link_extended_resolves_again(edge: Components, http: httpx.AsyncClient) -> None:
    links = [{"index": 0, "cust_flag": "13800138000"}, {"index": 1, "cust_flag": "13800138001"}]
    first, second = await mint(http, task_body("RT-U2", links))
    assert await resolve(http, first["code"]) == 200
    # Time passes: the links expire (the stored documents say so, the hot copies are gone with their TTL).
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    await edge.store.links.update_many({"task_id": "RT-U2"}, {"$set": {"expires_at": past}})
    for code in (first["code"], second["code"]):
        await edge.store.redis.delete(edge.store.link_key(code))
        assert await resolve(http, code) == 410

    new_expiry = now_ms() + 3 * DAY_MS
    pairs = [{"index": 0, "code": first["code"]}, {"index": 1, "code": second["code"]}]
    extended = await update(http, {"task_id": "RT-U2", "links": pairs, "expires_at_ms": new_expiry})
    assert extended.status_code == 200, extended.text
    assert [item["expires_at_ms"] for item in extended.json()["links"]] == [new_expiry, new_expiry]
    assert await resolve(http, second["code"]) == 200
    assert await resolve(http, first["code"]) == 200
    page = await http.get(f"/h5/{first['code']}")
    assert page.status_code == 200
    cached = await edge.store.redis.pttl(edge.store.link_key(first["code"]))
    assert 2 * DAY_MS < cached <= 3 * DAY_MS

    # Never shortened: an earlier expiry leaves the later one.
    earlier = await update(http, {"task_id": "RT-U2", "links": pairs, "expires_at_ms": now_ms() + DAY_MS})
    assert [item["expires_at_ms"] for item in earlier.json()["links"]] == [new_expiry, new_expiry]


async def test_links_that_are_gone_change_nothing(edge: Components, http: httpx.AsyncClient) -> None:
    links = [{"index": 0, "cust_flag": "a"}, {"index": 1, "cust_flag": "b"}]
    first, second = await mint(http, task_body("RT-U3", links))
    (other,) = await mint(http, task_body("RT-U4", [{"index": 0, "cust_flag": "c"}]))
    await edge.store.links.delete_one({"_id": second["code"]})  # removed by the TTL index after the retention
    later = now_ms() + 2 * DAY_MS
    pairs = [{"index": 0, "code": first["code"]}, {"index": 1, "code": second["code"]}]
    answer = await update(http, {"task_id": "RT-U3", "links": pairs, "expires_at_ms": later})
    assert answer.status_code == 200 and answer.json() == {"links": [], "missing": [1]}
    stored = await edge.store.links.find_one({"_id": first["code"]})
    assert stored is not None and datetime_to_ms(stored["expires_at"]) == first["expires_at_ms"]
    # Another task's code, or the right code under another index: not this task's link.
    foreign = [{"index": 0, "code": other["code"]}]
    assert (await update(http, {"task_id": "RT-U3", "links": foreign, "expires_at_ms": later})).json()["missing"] == [0]
    shifted = [{"index": 1, "code": first["code"]}]
    assert (await update(http, {"task_id": "RT-U3", "links": shifted, "expires_at_ms": later})).json()["missing"] == [1]
    wrong_tenant = {"tenant_id": "someone-else", "task_id": "RT-U3", "links": pairs[:1], "expires_at_ms": later}
    response = await http.post(UPDATE_PATH, json=wrong_tenant, headers=AUTH)
    assert response.json()["missing"] == [0]


async def test_minting_again_raises_a_found_link_to_the_requests_limits(
    edge: Components, http: httpx.AsyncClient
) -> None:
    body = task_body("RT-U5", [{"index": 0}], group=True, budget=2)
    (link,) = await mint(http, body)
    later = body["expires_at_ms"] + 5 * DAY_MS
    (again,) = await mint(http, {**body, "max_resolutions": 7, "expires_at_ms": later})
    assert again["code"] == link["code"] and again["expires_at_ms"] == later
    stored = await edge.store.links.find_one({"_id": link["code"]})
    assert stored is not None and stored["max_resolutions"] == 7
    found = await edge.store.lookup(link["code"])
    assert found.record is not None and found.record.max_resolutions == 7 and found.record.expires_at_ms == later
    # An older request (lower limits) does not lower them.
    (old,) = await mint(http, body)
    assert old["expires_at_ms"] == later


async def test_update_requests_are_checked(edge: Components, http: httpx.AsyncClient) -> None:
    (individual,) = await mint(http, task_body("RT-U6", [{"index": 0, "cust_flag": "a"}]))
    pair = [{"index": 0, "code": individual["code"]}]
    good = {"tenant_id": "tenant-u", "task_id": "RT-U6", "links": pair, "expires_at_ms": now_ms() + DAY_MS}
    assert (await http.post(UPDATE_PATH, json=good)).status_code == 404
    assert (await http.post(UPDATE_PATH, json=good, headers={TOKEN_HEADER: "wrong"})).status_code == 404

    async def error(payload: Any) -> tuple[int, str]:
        response = await http.post(UPDATE_PATH, json=payload, headers=AUTH)
        return response.status_code, response.json()["error_code"]

    assert await error([1]) == (400, "KM.00000400")
    assert await error({**good, "links": []}) == (400, "KM.00000400")
    assert await error({**good, "links": [{"index": 0}]}) == (400, "KM.00000400")
    assert await error({**good, "links": [{"index": 0, "code": "a-b"}]}) == (400, "KM.00000400")
    assert await error({**good, "links": pair + pair}) == (400, "KM.00000400")
    assert await error({**good, "task_id": ""}) == (400, "KM.00000400")
    assert await error({**good, "expires_at_ms": None}) == (400, "KM.00000400")  # nothing to change
    assert await error({**good, "expires_at_ms": 0}) == (400, "KM.00000400")
    assert await error({**good, "max_resolutions": 0}) == (400, "KM.00000400")
    assert await error({**good, "max_resolutions": 5}) == (400, "KM.00000400")  # not a group link
    assert (await http.post(UPDATE_PATH, content=b"{", headers=AUTH)).status_code == 400
    stored = await edge.store.links.find_one({"_id": individual["code"]})
    assert stored is not None and stored["max_resolutions"] == 0
