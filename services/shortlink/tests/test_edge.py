"""The edge (redirect, H5 page, resolve call) over ASGI, on the real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client import REGISTRY

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms, stable_id
from magpie_common.testing import collect
from magpie_common.topics import LINK
from magpie_shortlink.wiring import Components

pytestmark = pytest.mark.integration

BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]
SMART = common_pb2.ROUTE_SMART
DEGRADED = common_pb2.ROUTE_DEGRADED
HOSTILE = {"1": "<script>alert('x')</script>", "amount": 'a&b"c', "<img src=x onerror=1>": "key"}


@pytest.fixture
async def client(shortlink: Components) -> AsyncIterator[httpx.AsyncClient]:
    assert shortlink.app is not None
    transport = httpx.ASGITransport(app=shortlink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
        yield http


async def mint(shortlink: Components, batch: resolve_pb2.ClassifiedBatch) -> dispatch_pb2.DispatchBatch:
    assert shortlink.minter is not None
    out = await shortlink.minter.mint_batch(batch)
    assert out is not None
    return out


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_redirect_to_landing_page_emits_click(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    out = await mint(
        shortlink,
        make_batch(
            task_id="task-e",
            batch_no=4,
            recipients=[(0, SMART, {"a": "1"}), (1, DEGRADED, {"a": "2"}), (2, SMART, {}), (3, SMART, {})],
            custom_urls={2: "https://shop.example/p?id=2", 3: "javascript:alert(1)"},
        ),
    )
    smart, degraded, custom, bad_custom = (r.short_code for r in out.recipients)
    for code in (smart, degraded, bad_custom):
        response = await client.get(f"/{code}", headers={"User-Agent": "Mozilla/5.0 test"})
        assert response.status_code == 302
        assert response.headers["location"] == f"https://mgp.example/h5/{code}"
        assert response.headers["cache-control"] == "no-store"
    response = await client.get(f"/{custom}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/p?id=2"
    head = await client.head(f"/{smart}")
    assert head.status_code == 302

    events = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 4)
    assert len(events) == 4  # HEAD is not a click
    assert {e.type for e in events} == {link_pb2.LINK_EVENT_TYPE_CLICKED}
    assert not any(e.billable for e in events)
    assert len({e.meta.event_id for e in events}) == 4
    first = next(e for e in events if e.code == smart)
    assert (first.task_id, first.batch_no, first.index) == ("task-e", 4, 0)
    assert first.meta.tenant_id == "tenant-1" and first.msisdn == "8613800130000" and first.tpl_id == "100000001"
    assert first.user_agent == "Mozilla/5.0 test" and first.aim_url == "https://customer.example/aim"


async def test_h5_page_renders_the_card_escaped(
    shortlink: Components, client: httpx.AsyncClient, make_batch: BatchFactory
) -> None:
    out = await mint(shortlink, make_batch(task_id="task-h", recipients=[(0, DEGRADED, HOSTILE)]))
    code = out.recipients[0].short_code
    response = await client.get(f"/h5/{code}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a&amp;b&quot;c" in page
    assert "&lt;img src=x onerror=1&gt;" in page
    assert "Spring &lt;sale&gt; &amp; more" in page  # the template name


async def test_resolve_returns_the_card_and_bills_once(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    batch = make_batch(task_id="task-res", batch_no=2, recipients=[(7, SMART, {"name": "Li Lei", "amount": "50"})])
    code = (await mint(shortlink, batch)).recipients[0].short_code
    first_before = sample("magpie_shortlink_resolutions_total", {"kind": "first"})
    repeat_before = sample("magpie_shortlink_resolutions_total", {"kind": "repeat"})
    body = {"code": code, "handset": {"brand": "HUAWEI", "model": "Mate 60", "app_version": "11.1.0.551"}}
    cards = []
    for _ in range(2):
        response = await client.post("/v1/resolve", json=body, headers={"User-Agent": "HwMessaging/11.1"})
        assert response.status_code == 200, response.text
        cards.append(response.json())
    assert cards[0] == cards[1]
    assert cards[0] == {
        "code": code,
        "tpl_id": "100000001",
        "tpl_name": "Spring <sale> & more",
        "params": {"amount": "50", "name": "Li Lei"},
        "expires_at": cards[0]["expires_at"],
        "expires_at_ms": batch.ctx.link_expires_at_ms,
    }
    assert cards[0]["expires_at"].endswith("Z")

    events = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 2)
    assert len(events) == 2
    assert all(e.type == link_pb2.LINK_EVENT_TYPE_RESOLVED and e.code == code for e in events)
    billable = [e for e in events if e.billable]
    assert len(billable) == 1
    assert billable[0].meta.event_id == stable_id("resolved", code)
    assert len({e.meta.event_id for e in events}) == 2
    assert billable[0].index == 7 and billable[0].task_id == "task-res" and billable[0].batch_no == 2
    assert billable[0].user_agent == "HwMessaging/11.1"
    assert sample("magpie_shortlink_resolutions_total", {"kind": "first"}) - first_before == 1
    assert sample("magpie_shortlink_resolutions_total", {"kind": "repeat"}) - repeat_before == 1
    assert await shortlink.redis.get(settings.rkey("resolved", code)) == b"D"


async def test_unconfirmed_first_resolution_is_billed_again_with_the_same_id(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    """A crash between claiming the first resolution and producing its event: the retry re-sends it, same id."""
    code = (await mint(shortlink, make_batch(task_id="task-crash", recipients=[(0, SMART, {})]))).recipients[0]
    await shortlink.redis.set(settings.rkey("resolved", code.short_code), b"P", px=60_000)
    assert (await client.post("/v1/resolve", json={"code": code.short_code})).status_code == 200
    assert (await client.post("/v1/resolve", json={"code": code.short_code})).status_code == 200
    events = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 2)
    assert [e.billable for e in events] == [True, False]
    assert events[0].meta.event_id == stable_id("resolved", code.short_code)


async def test_unknown_code_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/ZZZZZZZZZZ")
    assert response.status_code == 404
    assert response.json() == {"error_code": "KM.00000404", "error_msg": "unknown link"}
    html = await client.get("/ZZZZZZZZZZ", headers={"Accept": "text/html,*/*"})
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/html")
    assert (await client.get("/h5/ZZZZZZZZZZ")).status_code == 404
    assert (await client.get("/not-a-code!")).status_code == 404
    assert (await client.get("/a/b/c")).json()["error_code"] == "KM.00000404"
    response = await client.post("/v1/resolve", json={"code": "ZZZZZZZZZZ"})
    assert response.status_code == 404
    assert response.json()["error_code"] == "KM.00000404"
    assert (await client.delete("/v1/resolve")).status_code == 405


async def test_expired_link_is_410(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    batch = make_batch(task_id="task-old", recipients=[(0, SMART, {"a": "1"})], expires_at_ms=now_ms() - 60_000)
    code = (await mint(shortlink, batch)).recipients[0].short_code
    assert await shortlink.redis.get(settings.rkey("link", code)) is None  # never cached
    response = await client.get(f"/{code}")
    assert response.status_code == 410
    assert response.json() == {"error_code": "KM.00000410", "error_msg": "this link has expired"}
    assert (await client.get(f"/h5/{code}")).status_code == 410
    response = await client.post("/v1/resolve", json={"code": code})
    assert response.status_code == 410
    assert response.json()["error_code"] == "KM.00000410"
    assert await shortlink.redis.get(settings.rkey("resolved", code)) is None  # nothing billed


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"code": 5}', b'{"code": "x", "handset": 3}'])
async def test_malformed_resolve_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/v1/resolve", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    payload = response.json()
    assert set(payload) == {"error_code", "error_msg"}
    assert payload["error_code"] == "KM.00000400" and payload["error_msg"]


async def test_redis_miss_falls_back_to_mongodb_and_rewarms(
    shortlink: Components, client: httpx.AsyncClient, settings: Settings, make_batch: BatchFactory
) -> None:
    code = (await mint(shortlink, make_batch(task_id="task-m", recipients=[(3, SMART, {"k": "v"})]))).recipients[0]
    key = settings.rkey("link", code.short_code)
    redis_before = sample("magpie_shortlink_lookups_total", {"source": "redis"})
    mongo_before = sample("magpie_shortlink_lookups_total", {"source": "mongo"})
    assert await shortlink.redis.delete(key) == 1

    response = await client.post("/v1/resolve", json={"code": code.short_code})
    assert response.status_code == 200
    assert response.json()["params"] == {"k": "v"}
    assert sample("magpie_shortlink_lookups_total", {"source": "mongo"}) - mongo_before == 1
    assert await shortlink.redis.get(key) is not None  # re-warmed
    assert await shortlink.redis.pttl(key) > 0

    assert (await client.get(f"/h5/{code.short_code}")).status_code == 200
    assert sample("magpie_shortlink_lookups_total", {"source": "redis"}) - redis_before == 1


async def test_ops_routes_are_served_by_the_edge(shortlink: Components, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.json()["checks"]["redis"] is True and ready.json()["checks"]["mongodb"] is True
    await client.get("/ZZZZZZZZZZ")
    metrics = (await client.get("/metrics")).text
    assert "magpie_shortlink_edge_request_seconds_bucket" in metrics
    assert 'endpoint="redirect",status="404"' in metrics
    assert "magpie_shortlink_lookups_total" in metrics
