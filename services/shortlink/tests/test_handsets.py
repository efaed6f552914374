"""The handset of a resolve call: User-Agent parsing, the request's own fields, and the LinkEvent that carries it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from magpie.v1 import common_pb2, link_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.testing import collect
from magpie_common.topics import LINK
from magpie_shortlink import handsets
from magpie_shortlink.handsets import app_version_of, describe, is_warm, parse_user_agent, warm_up
from magpie_shortlink.wiring import Components

BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]

WEBVIEW = "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 Mobile Safari/537.36"
HUAWEI_UA = f"Mozilla/5.0 (Linux; Android 12; NOH-AN00 Build/HUAWEINOH-AN00; wv) {WEBVIEW} HwMessaging/11.1.1.400"
VIVO_UA = f"Mozilla/5.0 (Linux; Android 13; V2241A Build/TP1A.220624.014; wv) {WEBVIEW}"
XIAOMI_UA = f"Mozilla/5.0 (Linux; U; Android 13; zh-cn; 2211133C Build/TKQ1.220905.001) {WEBVIEW}"
OPPO_UA = f"Mozilla/5.0 (Linux; Android 13; PGT110 Build/TP1A.220905.001) {WEBVIEW} com.android.mms/13.0.2"


@pytest.mark.parametrize(
    ("user_agent", "brand", "model", "os_version", "app_version"),
    [
        (HUAWEI_UA, "Huawei", "Mate 40 Pro", "12", "11.1.1.400"),
        (VIVO_UA, "Vivo", "X90", "13", ""),
        (XIAOMI_UA, "Xiaomi", "13", "13", ""),
        (OPPO_UA, "OPPO", "Find N2 Flip", "13", "13.0.2"),
    ],
)
def test_user_agent_names_brand_marketing_model_os_and_app(
    user_agent: str, brand: str, model: str, os_version: str, app_version: str
) -> None:
    fields = parse_user_agent(user_agent)
    assert fields == {
        "brand": brand,
        "model": model,
        "os_name": "Android",
        "os_version": os_version,
        "app_version": app_version,
    }


def test_unknown_or_garbage_user_agents_give_empty_fields() -> None:
    assert parse_user_agent("python-httpx/0.28.1")["brand"] == ""
    assert parse_user_agent("\x00\x01 garbage ///")["model"] == ""
    assert app_version_of("HwMessaging/11.1") == "11.1"
    assert app_version_of("Foo/1.0 SmartSMS/5.3.1 Bar/2") == "5.3.1"
    assert app_version_of("Mozilla/5.0 Chrome/99.0") == ""


async def rules_loaded() -> None:
    """Wait until the parser process has loaded its rules (seconds, once per test process)."""
    warm_up()
    for _ in range(600):
        if is_warm():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the User-Agent rules never loaded")


async def test_request_fields_win_and_the_user_agent_fills_the_rest() -> None:
    await rules_loaded()
    handset = await describe(HUAWEI_UA, {"app_version": "11.1.2.300", "brand": " HONOR\x07 "})
    assert (handset.brand, handset.model, handset.app_version) == ("HONOR", "Mate 40 Pro", "11.1.2.300")
    assert (handset.os_name, handset.os_version, handset.source) == ("Android", "12", "request+user_agent")
    only_request = await describe("", {"brand": "HUAWEI", "model": "M" * 200})
    assert only_request.source == "request" and len(only_request.model) == 80
    assert (await describe("curl/8.0", {})).source == ""


@pytest.fixture
async def client(shortlink: Components) -> AsyncIterator[httpx.AsyncClient]:
    assert shortlink.app is not None
    transport = httpx.ASGITransport(app=shortlink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
        yield http


@pytest.mark.integration
async def test_resolution_event_carries_handset_route_and_recipient(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    assert shortlink.minter is not None
    batch = make_batch(task_id="task-ua", recipients=[(3, common_pb2.ROUTE_DEGRADED, {"a": "1"})])
    out = await shortlink.minter.mint_batch(batch)
    assert out is not None
    code = out.recipients[0].short_code
    await rules_loaded()  # the edge loads the User-Agent rules in the background at start
    response = await client.post("/v1/resolve", json={"code": code}, headers={"User-Agent": HUAWEI_UA})
    assert response.status_code == 200, response.text

    (event,) = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 1)
    assert event.type == link_pb2.LINK_EVENT_TYPE_RESOLVED
    assert (event.mobile, event.msisdn) == ("13800130003", "8613800130003")
    assert event.route == common_pb2.ROUTE_DEGRADED and not event.group
    assert (event.handset.brand, event.handset.model, event.handset.app_version) == (
        "Huawei",
        "Mate 40 Pro",
        "11.1.1.400",
    )
    assert event.handset.source == "user_agent"


@pytest.mark.integration
async def test_malformed_handset_fields_are_rejected(
    shortlink: Components, client: httpx.AsyncClient, make_batch: BatchFactory
) -> None:
    assert shortlink.minter is not None
    out = await shortlink.minter.mint_batch(
        make_batch(task_id="task-bad", recipients=[(0, common_pb2.ROUTE_SMART, {})])
    )
    assert out is not None
    code = out.recipients[0].short_code
    for handset in ({"os_name": 12}, {"os_version": ["1"]}, "HUAWEI"):
        response = await client.post("/v1/resolve", json={"code": code, "handset": handset})
        assert response.status_code == 400
        assert response.json()["error_code"] == "KM.00000400"


async def test_a_slow_parse_does_not_hold_the_resolve_call(monkeypatch: pytest.MonkeyPatch) -> None:
    await rules_loaded()
    fresh = VIVO_UA + " Fresh/1.0"
    monkeypatch.setattr(handsets, "PARSE_BUDGET_S", 0.0)
    assert (await describe(fresh, {"brand": "vivo"})).model == ""  # over budget: goes on without the User-Agent
    monkeypatch.setattr(handsets, "PARSE_BUDGET_S", 5.0)
    for _ in range(100):  # the parse completes into the cache anyway
        if fresh in handsets._cache:
            break
        await asyncio.sleep(0.05)
    assert (await describe(fresh, {})).model == "X90"


async def test_a_dead_parser_process_is_replaced() -> None:
    await rules_loaded()
    pool = handsets._pool
    assert pool is not None
    for process in list(pool._processes.values()):  # type: ignore[attr-defined]
        process.kill()
    fields: dict[str, str] = {}
    for attempt in range(300):  # a few calls go without the User-Agent while a new process loads the rules
        fields = await handsets.user_agent_fields(f"{VIVO_UA} Retry/{attempt}")
        if fields["model"]:
            break
        await asyncio.sleep(0.1)
    assert fields["model"] == "X90"
    assert handsets._pool is not pool
