"""The Magpie operations on resolution tasks (regenerate failed links, add resolution count, extend validity)
through the signed httpx client, against the gateway and the real shortlink edge (built in-process and served on
its own port): the changes are checked where they matter, at the edge's resolve call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_gateway.timefmt import iso, to_ms, utc_now
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.wiring import Components, build

from .conftest import Harness, TenantKeys, eventually, free_port, gateway_config, harness_of
from .test_resolve_tasks import TOKEN, approved_domain, resolve_at_edge

pytestmark = pytest.mark.integration

BASE = "/v1/magpie/resolve-tasks"
DAY = timedelta(days=1)
CARD = {"name": "会员", "amount": "10"}


@contextlib.asynccontextmanager
async def edge_on(settings: Settings, port: int) -> AsyncIterator[Components]:
    """The shortlink edge (with its internal API) served on ``port``."""
    config = ShortlinkConfig(roles=frozenset({"edge"}), http_port=port, secret="rta-secret", internal_token=TOKEN)
    components = await build(settings, config)
    assert components.app is not None
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield components
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


@contextlib.asynccontextmanager
async def gateway_for(settings: Settings, port: int) -> AsyncIterator[Harness]:
    edge = f"http://127.0.0.1:{port}"
    config = gateway_config(shortlink_url=edge, shortlink_internal_token=TOKEN, link_domain=edge + "/")
    async with harness_of(settings, config) as harness:
        yield harness


@dataclass
class Stack:
    edge: str
    shortlink: Components
    harness: Harness


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    port = free_port()
    async with edge_on(settings, port) as shortlink, gateway_for(settings, port) as harness:
        yield Stack(f"http://127.0.0.1:{port}", shortlink, harness)


async def created(client: httpx.AsyncClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post("/v1/aim/resolve-tasks", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def act(
    client: httpx.AsyncClient, task_id: str, action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(f"{BASE}/{task_id}/{action}", json=body)


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error_code", "")


async def edge_expiry(edge: str, code: str) -> int:
    resolved = await resolve_at_edge(edge, code)
    assert resolved.status_code == 200, resolved.text
    return int(resolved.json()["expires_at_ms"])


async def age(harness: Harness, shortlink: Components | None, task_id: str, *, days_ago: int, valid_days: int) -> None:
    """Let time pass: the task was created ``days_ago`` days ago with ``valid_days`` of validity."""
    c = harness.gateway.context.collections
    created_at = utc_now() - days_ago * DAY
    times = {"created_at": created_at, "expires_at": created_at + valid_days * DAY}
    await c.resolve_tasks.update_one({"_id": task_id}, {"$set": {**times, "expiration_time": valid_days}})
    await c.resolve_links.update_many({"task_id": task_id}, {"$set": times})
    if shortlink is not None:
        await shortlink.store.links.update_many({"task_id": task_id}, {"$set": times})
        async for doc in shortlink.store.links.find({"task_id": task_id}, {"_id": 1}):
            await shortlink.store.redis.delete(shortlink.store.link_key(doc["_id"]))


async def details(client: httpx.AsyncClient, task_id: str) -> dict[str, str]:
    rows = (await client.get("/v1/aim/resolve-details", params={"task_id": task_id})).json()["resolve_details"]
    return {row["cust_flag"]: row["resolved_status"] for row in rows}


async def test_regenerate_mints_only_the_failed_links(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, card_params=())
        await approved_domain(harness, client, "s.regen.example", custom_short_code=True)
        base = {"tpl_id": setup.tpl_id, "sms_signs": [setup.sign], "generation_type": "2", "domain": "s.regen.example"}
        await created(client, {**base, "params": [{"cust_flag": "holder", "custom_short_code": "Keep01"}]})
        params = [
            {"cust_flag": "13800138000", "custom_short_code": "Keep01"},
            {"cust_flag": "13800138001", "custom_short_code": "Fresh01"},
        ]
        task = await created(client, {**base, "task_name": "补发", "params": params})
        assert task["task_state"] == "partial"
        task_id = task["task_id"]
        fresh_url = task["params"][1]["aim_url"]

        # The code is still taken: nothing changes, the failure stays (and asking again is harmless).
        again = await act(client, task_id, "regenerate")
        assert again.status_code == 200, again.text
        body = again.json()
        assert (body["task_state"], body["regenerated_count"], body["minted_count"]) == ("partial", 0, 1)
        assert [p["result_code"] for p in body["params"]] == ["KM.90016482", "0"]

        # The holder's link is gone from the edge (its retention ended): the code is free, the link is minted.
        await stack.shortlink.store.links.delete_one({"_id": "Keep01"})
        await stack.shortlink.store.redis.delete(stack.shortlink.store.link_key("Keep01"))
        regenerated = await act(client, task_id, "regenerate")
        assert regenerated.status_code == 200, regenerated.text
        body = regenerated.json()
        assert (body["task_state"], body["regenerated_count"], body["minted_count"]) == ("success", 1, 2)
        first, second = body["params"]
        assert (first["index"], first["cust_flag"], first["aim_code"], first["result_code"]) == (
            0,
            "13800138000",
            "Keep01",
            "0",
        )
        assert first["aim_url"] == "https://s.regen.example/Keep01" and first["error_message"] is None
        assert second["aim_url"] == fresh_url and second["custom_short_code"] == "Fresh01"
        assert first["expire_date"] == task["params"][0]["expire_date"]

        # The regenerated link is this task's at the edge, and its resolution comes back to the task.
        stored = await stack.shortlink.store.links.find_one({"_id": "Keep01"})
        assert stored is not None and (stored["task_id"], stored["index"]) == (task_id, 0)
        assert (await resolve_at_edge(stack.edge, "Keep01")).status_code == 200

        async def resolved() -> bool:
            return (await details(client, task_id)).get("13800138000") == "success"

        await eventually(resolved)
        listed = (await client.get("/v1/aim/resolve-tasks", params={"task_id": task_id})).json()["resolve_tasks"]
        assert listed[0]["task_state"] == "success" and listed[0]["minted_count"] == 2

        # Idempotent: nothing left to regenerate.
        once_more = (await act(client, task_id, "regenerate")).json()
        assert (once_more["task_state"], once_more["regenerated_count"]) == ("success", 0)


async def test_regenerate_after_the_shortlink_service_was_down(settings: Settings) -> None:
    port = free_port()
    async with gateway_for(settings, port) as harness:
        tenant = await harness.tenant()
        async with harness.client(tenant) as client:
            setup = await harness.prerequisites(client)
            params = [{"cust_flag": f"1390000000{i}", "dync_params": {**CARD, "name": f"会员{i}"}} for i in range(2)]
            body = {"tpl_id": setup.tpl_id, "sms_signs": [setup.sign], "expiration_time": 1, "params": params}
            failed = await created(client, body, status=503)
            assert failed["error_code"] == "KM.00000460"
            (task,) = (await client.get("/v1/aim/resolve-tasks")).json()["resolve_tasks"]
            task_id = task["task_id"]
            assert task["task_state"] == "failed"

            # Still down: 503, and the task is as it was.
            assert error_of(await act(client, task_id, "regenerate")) == (503, "KM.00000460")
            # Two days later the 1-day links have expired: regenerating needs a longer validity first.
            await age(harness, None, task_id, days_ago=2, valid_days=1)
            assert error_of(await act(client, task_id, "regenerate")) == (400, "KM.00000464")
            extended = await act(client, task_id, "validity", {"expiration_time": 4})
            assert extended.status_code == 200, extended.text  # no link minted yet: nothing to tell the edge
            assert extended.json()["task_state"] == "failed" and extended.json()["expiration_time"] == 4
            new_expiry = extended.json()["expire_date"]

            async with edge_on(settings, port) as shortlink:
                regenerated = await act(client, task_id, "regenerate")
                assert regenerated.status_code == 200, regenerated.text
                body = regenerated.json()
                assert (body["task_state"], body["regenerated_count"], body["minted_count"]) == ("success", 2, 2)
                assert [p["cust_flag"] for p in body["params"]] == ["13900000000", "13900000001"]
                assert all(p["expire_date"] == new_expiry for p in body["params"])
                code = body["params"][1]["aim_code"]
                resolved = await resolve_at_edge(f"http://127.0.0.1:{port}", code)
                assert resolved.status_code == 200 and resolved.json()["params"]["name"] == "会员1"
                stored = await shortlink.store.links.find_one({"_id": code})
                assert stored is not None and stored["task_id"] == task_id

            # The edge is down again: a change answers 503 and the task keeps its validity.
            assert error_of(await act(client, task_id, "validity", {"expiration_time": 5})) == (503, "KM.00000460")
            listed = (await client.get("/v1/aim/resolve-tasks", params={"task_id": task_id})).json()
            assert listed["resolve_tasks"][0]["expiration_time"] == 4


async def test_busy_and_interrupted_tasks(stack: Stack) -> None:
    harness = stack.harness
    c = harness.gateway.context.collections
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        params = [{"cust_flag": f"1370000000{i}", "dync_params": CARD} for i in range(2)]
        task = await created(client, {"tpl_id": setup.tpl_id, "sms_signs": [setup.sign], "params": params})
        task_id, codes = task["task_id"], [p["aim_code"] for p in task["params"]]

        # Being created right now (state generating): every change waits.
        await c.resolve_tasks.update_one({"_id": task_id}, {"$set": {"state": "generating"}})
        assert error_of(await act(client, task_id, "regenerate")) == (409, "KM.00000462")
        assert error_of(await act(client, task_id, "validity", {"expiration_time": 7})) == (409, "KM.00000462")
        # Another request holds the task.
        await c.resolve_tasks.update_one(
            {"_id": task_id}, {"$set": {"state": "success", "busy_until": utc_now() + timedelta(minutes=1)}}
        )
        assert error_of(await act(client, task_id, "validity", {"expiration_time": 7})) == (409, "KM.00000462")
        # Its lease lapsed (the holder crashed): the task can be changed again.
        await c.resolve_tasks.update_one({"_id": task_id}, {"$set": {"busy_until": utc_now() - timedelta(seconds=1)}})
        assert (await act(client, task_id, "validity", {"expiration_time": 7})).status_code == 200

        # A creation interrupted after the links were minted but before the results were written: once the task
        # has been generating for too long, regenerating finds the same links again.
        earlier = utc_now() - timedelta(minutes=10)
        await c.resolve_tasks.update_one(
            {"_id": task_id}, {"$set": {"state": "generating", "minted": 0, "created_at": earlier}}
        )
        await c.resolve_links.update_many(
            {"task_id": task_id}, {"$set": {"code": "", "aim_url": "", "result_code": ""}}
        )
        regenerated = (await act(client, task_id, "regenerate")).json()
        assert (regenerated["task_state"], regenerated["regenerated_count"]) == ("success", 2)
        assert [p["aim_code"] for p in regenerated["params"]] == codes
        stored = await c.resolve_tasks.find_one({"_id": task_id})
        assert stored is not None and "busy_until" not in stored and "busy_by" not in stored


async def test_add_resolution_count_to_a_group_link(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    other = await harness.tenant("other")
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, card_params=())
        body = {
            "tpl_id": setup.tpl_id,
            "sms_signs": [setup.sign],
            "aim_code_type": "group",
            "resolving_times": 2,
            "expiration_time": 30,
            "params": [{"custom_url": "https://shop.example/landing"}],
        }
        task = await created(client, body)
        task_id, code = task["task_id"], task["params"][0]["aim_code"]
        statuses = [(await resolve_at_edge(stack.edge, code)).status_code for _ in range(3)]
        assert statuses == [200, 200, 410]  # the budget is spent

        raised = await act(client, task_id, "resolving-times", {"add_resolving_times": 2})
        assert raised.status_code == 200, raised.text
        state = raised.json()
        assert (state["resolving_times"], state["params"][0]["max_resolutions"], state["task_state"]) == (
            4,
            4,
            "success",
        )
        # At once: two more resolutions, then 410 again.
        statuses = [(await resolve_at_edge(stack.edge, code)).status_code for _ in range(3)]
        assert statuses == [200, 200, 410]

        async def counted() -> dict[str, Any] | None:
            found = (await client.get("/v1/aim/resolve-tasks", params={"task_id": task_id})).json()
            listed = found["resolve_tasks"][0]
            return listed if listed["resolved_times"] == 4 else None

        listed = await eventually(counted)
        assert listed["resolving_times"] == 4

        # The total form is idempotent; lower is refused; both or neither field, or a non-positive one: 400.
        same = await act(client, task_id, "resolving-times", {"resolving_times": 4})
        assert same.status_code == 200 and same.json()["resolving_times"] == 4
        assert error_of(await act(client, task_id, "resolving-times", {"resolving_times": 3})) == (400, "KM.00000463")
        too_many = {"add_resolving_times": 2**31}
        assert error_of(await act(client, task_id, "resolving-times", too_many)) == (400, "KM.00000463")
        for bad in ({}, {"add_resolving_times": 1, "resolving_times": 9}, {"add_resolving_times": 0}, {"x": 1}):
            assert error_of(await act(client, task_id, "resolving-times", bad)) == (400, "KM.00000400"), bad
        assert error_of(await act(client, task_id, "resolving-times", {"add_resolving_times": "many"})) == (
            400,
            "KM.00000400",
        )
        total = await act(client, task_id, "resolving-times", {"resolving_times": 5})
        assert total.json()["resolving_times"] == 5
        assert (await resolve_at_edge(stack.edge, code)).status_code == 200

        # A group link is valid at most 180 days from creation.
        assert error_of(await act(client, task_id, "validity", {"expiration_time": 181})) == (400, "KM.00000464")
        longer = await act(client, task_id, "validity", {"expiration_time": 180})
        assert longer.status_code == 200 and longer.json()["expiration_time"] == 180
        assert (await resolve_at_edge(stack.edge, code)).status_code == 410  # the budget (5) is spent again
        await act(client, task_id, "resolving-times", {"add_resolving_times": 1})
        stored = await harness.gateway.context.collections.resolve_tasks.find_one({"_id": task_id})
        assert stored is not None
        assert await edge_expiry(stack.edge, code) == to_ms(stored["created_at"] + 180 * DAY)

        # Individual links resolve once by definition.
        card = await harness.prerequisites(client, suffix="_i")
        single = {"tpl_id": card.tpl_id, "sms_signs": [card.sign], "params": [{"cust_flag": "a", "dync_params": CARD}]}
        individual = await created(client, single)
        refused = await act(client, individual["task_id"], "resolving-times", {"add_resolving_times": 1})
        assert error_of(refused) == (400, "KM.00000463")

    await refused_for_others(harness, other, task_id)


async def refused_for_others(harness: Harness, other: TenantKeys, task_id: str) -> None:
    """Another tenant's task (and an unknown one) is a 404 for every operation, and stays as it was."""
    async with harness.client(other) as client:
        for tid in (task_id, "RT-UNKNOWN"):
            assert error_of(await act(client, tid, "regenerate")) == (404, "KM.00000404")
            assert error_of(await act(client, tid, "resolving-times", {"add_resolving_times": 1})) == (
                404,
                "KM.00000404",
            )
            assert error_of(await act(client, tid, "validity", {"expiration_time": 10})) == (404, "KM.00000404")
    task = await harness.gateway.context.collections.resolve_tasks.find_one({"_id": task_id})
    assert task is not None and task["resolving_times"] == 6 and task["expiration_time"] == 180


async def test_extend_validity_also_of_expired_links(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        params = [{"cust_flag": f"1360000000{i}", "dync_params": CARD} for i in range(3)]
        body = {"tpl_id": setup.tpl_id, "sms_signs": [setup.sign], "expiration_time": 1, "params": params}
        task = await created(client, body)
        task_id = task["task_id"]
        first, second, third = (p["aim_code"] for p in task["params"])
        assert (await resolve_at_edge(stack.edge, first)).status_code == 200

        # Two days later the 1-day links have expired: 410 at the edge, "fail" in the details.
        await age(harness, stack.shortlink, task_id, days_ago=2, valid_days=1)
        assert (await resolve_at_edge(stack.edge, second)).status_code == 410

        async def expired() -> bool:
            return (await details(client, task_id)).get("13600000001") == "fail"

        await eventually(expired)
        same = await act(client, task_id, "validity", {"expiration_time": 1})  # no change: still expired
        assert same.status_code == 200 and same.json()["expiration_time"] == 1
        assert (await resolve_at_edge(stack.edge, second)).status_code == 410

        extended = await act(client, task_id, "validity", {"expiration_time": 3})
        assert extended.status_code == 200, extended.text
        state = extended.json()
        stored = await harness.gateway.context.collections.resolve_tasks.find_one({"_id": task_id})
        assert stored is not None
        new_expiry = to_ms(stored["created_at"] + 3 * DAY)
        assert to_ms(stored["expires_at"]) == new_expiry
        assert state["expire_date"] == iso(stored["expires_at"])
        assert all(p["expire_date"] == state["expire_date"] for p in state["params"])
        # The edge resolves them again, with the new expiry; the first link's first resolution was billed already.
        assert await edge_expiry(stack.edge, second) == new_expiry
        assert await edge_expiry(stack.edge, first) == new_expiry

        async def resolved_again() -> dict[str, str] | None:
            rows = await details(client, task_id)
            return rows if rows.get("13600000001") == "success" else None

        rows = await eventually(resolved_again)
        assert rows == {"13600000000": "success", "13600000001": "success", "13600000002": "unresolved"}

        async def counted() -> dict[str, Any] | None:
            found = (await client.get("/v1/aim/resolve-tasks", params={"task_id": task_id})).json()
            return found["resolve_tasks"][0] if found["resolve_tasks"][0]["resolved_times"] == 2 else None

        assert (await eventually(counted))["expiration_time"] == 3

        # Never shorter, never beyond 7 days from creation for individual links.
        assert error_of(await act(client, task_id, "validity", {"expiration_time": 2})) == (400, "KM.00000464")
        assert error_of(await act(client, task_id, "validity", {"expiration_time": 8})) == (400, "KM.00000464")
        for bad in ({}, {"expiration_time": 0}, {"expiration_time": "long"}, {"expiration_time": 5, "days": 1}):
            assert error_of(await act(client, task_id, "validity", bad)) == (400, "KM.00000400"), bad

        # A link the edge no longer keeps (expired longer ago than its retention): nothing changes anywhere.
        await stack.shortlink.store.links.delete_one({"_id": third})
        gone = await act(client, task_id, "validity", {"expiration_time": 5})
        assert error_of(gone) == (400, "KM.00000464") and "13600000002" in gone.json()["error_msg"]
        assert await edge_expiry(stack.edge, second) == new_expiry
        listed = (await client.get("/v1/aim/resolve-tasks", params={"task_id": task_id})).json()["resolve_tasks"]
        assert listed[0]["expiration_time"] == 3
        # Nothing failed to regenerate: an idempotent answer.
        assert (await act(client, task_id, "regenerate")).json()["regenerated_count"] == 0
