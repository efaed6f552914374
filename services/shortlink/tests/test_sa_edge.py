"""Service numbers at the edge: the directory fed by snapshots (versions, Redis and MongoDB), the profile a
messaging app gets for an SMS (port, signature, region), images, and clicks (one event per click_id), over ASGI on
the real embedded Kafka, MongoDB and Redis; and the consumer of SA_PUBLISHED run by the served edge."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie.v1 import common_pb2, sa_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.service import http_server
from magpie_common.testing import collect
from magpie_common.topics import SA_CLICKS, SA_PUBLISHED
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.sa_edge import click_event_id
from magpie_shortlink.wiring import Components, build

pytestmark = pytest.mark.integration

LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
LOGO_SHA = hashlib.sha256(LOGO).hexdigest()
PUB = "a" * 32
OTHER_PUB = "b" * 32


def snapshot(
    version: int,
    *,
    pub_id: str = PUB,
    tenant: str = "tenant-sa",
    state: int = 2,
    frozen: bool = False,
    bindings: list[dict[str, Any]] | None = None,
    name: str = "喜鹊商城",
) -> sa_pb2.SaPublished:
    message = sa_pb2.SaPublished(
        meta=common_pb2.EventMeta(event_id=f"snap-{pub_id}-{version}", tenant_id=tenant),
        pub_id=pub_id,
        version=version,
        state=state,
        frozen=frozen,
        name=name,
        intro="服务通知",
        industry=5,
        company_name="喜鹊科技",
        logo=sa_pb2.SaImage(sha256=LOGO_SHA, mime="image/png", size=len(LOGO), width=240, height=240),
        menu_id="m" * 32,
        homepage=sa_pb2.SaHomepage(portal_id="p" * 32, summary="记录美好生活"),
    )
    message.homepage.hotlines.add(tel="400-800-8800", usage="客服")
    top = message.menus.add(id="1", name="热门生活", action_type="OPEN_SUBMENU")
    top.children.add(id="1.1", name="精选推荐", action_type="OPEN_URL", content="https://shop.example.com/p")
    message.menus.add(id="2", name="客服热线", action_type="CALLING", content="400-800-8800")
    default = [{"port": "10690001", "port_type": 1, "signs": ["喜鹊商城"], "regions": ["广东省"]}]
    for i, b in enumerate(bindings if bindings is not None else default):
        message.bindings.add(
            binding_id=f"bind{i}",
            port_id=f"port{i}",
            port=b["port"],
            port_type=b["port_type"],
            signs=b["signs"],
            regions=b["regions"],
            sign_check=1,
            bound_at_ms=1000 + i,
        )
    return message


def chunks(data: bytes, piece: int = 1000) -> list[sa_pb2.SaMediaChunk]:
    count = -(-len(data) // piece)
    return [
        sa_pb2.SaMediaChunk(
            sha256=hashlib.sha256(data).hexdigest(),
            seq=i,
            count=count,
            data=data[i * piece : (i + 1) * piece],
            size=len(data),
            mime="image/png",
        )
        for i in range(count)
    ]


@pytest.fixture
async def client(shortlink: Components) -> AsyncIterator[httpx.AsyncClient]:
    assert shortlink.app is not None
    transport = httpx.ASGITransport(app=shortlink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
        yield http


def sa(shortlink: Components) -> Any:
    assert shortlink.sa is not None
    return shortlink.sa


async def profile(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/v1/sa/profile", params=params)


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == f"KM.00000{status}", body
    return str(body["error_msg"])


async def test_profile_for_a_matching_sms(shortlink: Components, client: httpx.AsyncClient) -> None:
    directory = sa(shortlink).directory
    assert await directory.apply_snapshot(snapshot(3))
    for chunk in chunks(LOGO):
        await directory.apply_chunk(chunk)

    response = await profile(client, port="10690001", sign="【喜鹊商城】", region="44")
    assert response.status_code == 200, response.text
    card = response.json()
    assert card["pub_id"] == PUB and card["version"] == 3 and card["name"] == "喜鹊商城"
    assert card["verified"] is True and card["company_name"] == "喜鹊科技" and card["intro"] == "服务通知"
    assert card["logo_url"] == f"http://edge.test/v1/sa/media/{LOGO_SHA}"
    assert [m["id"] for m in card["menus"]] == ["1", "2"]
    assert card["menus"][0]["children"][0] == {
        "id": "1.1",
        "name": "精选推荐",
        "action_type": "OPEN_URL",
        "content": "https://shop.example.com/p",
        "ext": {},
        "children": [],
    }
    assert card["homepage"]["summary"] == "记录美好生活" and card["homepage"]["background_url"] is None
    assert card["homepage"]["hotlines"] == [{"tel": "400-800-8800", "usage": "客服"}]
    assert card["binding"] == {
        "binding_id": "bind0",
        "port": "10690001",
        "port_type": 1,
        "sign": "喜鹊商城",
        "regions": ["广东省"],
    }
    # region by name, by 6-digit code; and the image
    assert (await profile(client, port="10690001", sign="喜鹊商城", region="广东省")).status_code == 200
    assert (await profile(client, port="10690001", sign="喜鹊商城", region="440300")).status_code == 200
    image = await client.get(f"/v1/sa/media/{LOGO_SHA}")
    assert image.status_code == 200 and image.content == LOGO
    assert image.headers["content-type"] == "image/png" and "immutable" in image.headers["cache-control"]
    error(await client.get(f"/v1/sa/media/{'0' * 64}"), 404)
    error(await client.get("/v1/sa/media/not-a-hash"), 404)


async def test_no_profile_when_sign_port_or_region_differ(shortlink: Components, client: httpx.AsyncClient) -> None:
    assert await sa(shortlink).directory.apply_snapshot(snapshot(1))
    error(await profile(client, port="10690001", sign="别的签名", region="44"), 404)
    error(await profile(client, port="10690002", sign="喜鹊商城", region="44"), 404)
    error(await profile(client, port="1069000", sign="喜鹊商城", region="44"), 404)  # a normal port is exact
    error(await profile(client, port="10690001", sign="喜鹊商城", region="11"), 404)  # bound in 广东省 only
    error(await profile(client, port="10690001", sign="喜鹊商城"), 404)  # no region: only 全国 bindings
    # bad queries
    assert "port" in error(await profile(client, sign="喜鹊商城"), 400)
    assert "port" in error(await profile(client, port="1069-0001", sign="喜鹊商城"), 400)
    assert "sign" in error(await profile(client, port="10690001"), 400)
    assert "sign" in error(await profile(client, port="10690001", sign="【】"), 400)
    assert "region" in error(await profile(client, port="10690001", sign="喜鹊商城", region="99"), 400)
    assert "region" in error(await profile(client, port="10690001", sign="喜鹊商城", region="火星"), 400)


async def test_frozen_and_stale_snapshots(shortlink: Components, client: httpx.AsyncClient) -> None:
    directory = sa(shortlink).directory
    query = {"port": "10690001", "sign": "喜鹊商城", "region": "44"}
    assert await directory.apply_snapshot(snapshot(2))
    assert (await profile(client, **query)).status_code == 200  # now in Redis
    assert await directory.apply_snapshot(snapshot(3, state=4, frozen=True))
    error(await profile(client, **query), 404)
    assert not await directory.apply_snapshot(snapshot(2))  # older: ignored
    error(await profile(client, **query), 404)
    assert await directory.apply_snapshot(snapshot(3, state=4, frozen=True))  # the same again: harmless
    assert await directory.apply_snapshot(snapshot(4))  # unfrozen
    assert (await profile(client, **query)).json()["version"] == 4
    # not effective yet: not shown
    assert await directory.apply_snapshot(snapshot(1, pub_id=OTHER_PUB, state=1, bindings=[]))
    assert await directory.entry_for_pub(OTHER_PUB) is not None


async def test_unbinding_removes_the_signature(shortlink: Components, client: httpx.AsyncClient) -> None:
    directory = sa(shortlink).directory
    query = {"port": "10690001", "sign": "喜鹊商城", "region": "44"}
    assert await directory.apply_snapshot(snapshot(1))
    assert (await profile(client, **query)).status_code == 200
    assert await directory.apply_snapshot(snapshot(2, bindings=[]))
    error(await profile(client, **query), 404)
    # Redis lost everything: MongoDB still answers, and the cache is warmed again
    await shortlink.redis.delete(directory.sign_hash("喜鹊商城"), directory.pub_hash(PUB))
    error(await profile(client, **query), 404)
    assert await directory.apply_snapshot(snapshot(3))
    await shortlink.redis.delete(directory.sign_hash("喜鹊商城"))
    assert (await profile(client, **query)).json()["version"] == 3
    assert await shortlink.redis.hget(directory.sign_hash("喜鹊商城"), "_complete") == b"1"


async def test_the_most_specific_binding_wins(shortlink: Components, client: httpx.AsyncClient) -> None:
    directory = sa(shortlink).directory
    bindings = [
        {"port": "1069", "port_type": 3, "signs": ["Magpie"], "regions": ["全国"]},
        {"port": "12345", "port_type": 5, "signs": ["Magpie"], "regions": ["北京市"]},
    ]
    assert await directory.apply_snapshot(snapshot(1, bindings=bindings, name="全国号"))
    city = [{"port": "106900", "port_type": 3, "signs": ["Magpie"], "regions": ["深圳市"]}]
    assert await directory.apply_snapshot(snapshot(1, pub_id=OTHER_PUB, tenant="other", bindings=city, name="深圳号"))

    async def shown(port: str, **where: str) -> str:
        response = await profile(client, port=port, sign="magpie", **where)
        assert response.status_code == 200, response.text
        return str(response.json()["name"])

    assert await shown("1069001234", region="44") == "全国号"  # prefix port, nationwide
    assert await shown("1069001234", region="44", city="深圳市") == "深圳号"  # a city binding is more specific
    assert await shown("1069991234", region="44", city="深圳市") == "全国号"  # the longer prefix does not match
    assert await shown("9999912345", region="11") == "全国号"  # suffix port, in 北京市
    error(await profile(client, port="9999912345", sign="Magpie"), 404)  # no region: 全国 bindings only
    error(await profile(client, port="9999912346", sign="Magpie", region="11"), 404)


async def test_a_click_is_recorded_once(shortlink: Components, client: httpx.AsyncClient, settings: Settings) -> None:
    assert await sa(shortlink).directory.apply_snapshot(snapshot(5))
    body = {
        "pub_id": PUB,
        "click_id": "clk-0001",
        "menu_id": "1.1",
        "device": {"id": "dev-1", "brand": "HUAWEI", "model": "Mate 60"},
        "port": "10690001",
        "sign": "喜鹊商城",
        "region": "44",
    }
    first = await client.post("/v1/sa/clicks", json=body, headers={"User-Agent": "HwMessaging/11.1.1.400"})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "pub_id": PUB,
        "click_id": "clk-0001",
        "target": "menu",
        "recorded": True,
        "duplicate": False,
    }
    again = await client.post("/v1/sa/clicks", json=body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    homepage = await client.post("/v1/sa/clicks", json={"pub_id": PUB, "click_id": "clk-0002", "homepage": True})
    assert homepage.status_code == 200 and homepage.json()["target"] == "homepage"
    shortcut = await client.post(
        "/v1/sa/clicks", json={"pub_id": PUB, "click_id": "clk-0003", "shortcut": "查快递", "device": "dev-9"}
    )
    assert shortcut.status_code == 200 and shortcut.json()["target"] == "shortcut"

    # One partition (key pub_id): a duplicate of the first click would come before the later clicks.
    events = await collect(settings, SA_CLICKS, sa_pb2.SaClicked, until=lambda got: len(got) >= 3)
    assert [e.click_id for e in events] == ["clk-0001", "clk-0002", "clk-0003"]
    menu = events[0]
    assert menu.meta.event_id == click_event_id(PUB, "clk-0001") and menu.meta.tenant_id == "tenant-sa"
    assert menu.target == sa_pb2.SA_CLICK_TARGET_MENU and menu.menu_item_id == "1.1"
    assert menu.menu_item_name == "精选推荐" and menu.profile_version == 5
    assert (menu.device_id, menu.handset.brand, menu.handset.model) == ("dev-1", "HUAWEI", "Mate 60")
    assert menu.handset.source.startswith("request") and menu.user_agent == "HwMessaging/11.1.1.400"
    assert (menu.port, menu.sign, menu.region) == ("10690001", "喜鹊商城", "44")
    assert events[1].target == sa_pb2.SA_CLICK_TARGET_HOMEPAGE
    assert events[2].target == sa_pb2.SA_CLICK_TARGET_SHORTCUT and events[2].shortcut == "查快递"
    assert events[2].device_id == "dev-9"


async def test_click_refusals(shortlink: Components, client: httpx.AsyncClient) -> None:
    directory = sa(shortlink).directory
    assert await directory.apply_snapshot(snapshot(1))

    async def post(body: Any) -> httpx.Response:
        return await client.post("/v1/sa/clicks", json=body)

    assert "click_id" in error(await post({"pub_id": PUB, "menu_id": "1"}), 400)
    assert "click_id" in error(await post({"pub_id": PUB, "click_id": "a b", "menu_id": "1"}), 400)
    assert "pub_id" in error(await post({"click_id": "c1", "menu_id": "1"}), 400)
    assert "exactly one" in error(await post({"pub_id": PUB, "click_id": "c1"}), 400)
    assert "exactly one" in error(await post({"pub_id": PUB, "click_id": "c1", "menu_id": "1", "homepage": True}), 400)
    assert "homepage" in error(await post({"pub_id": PUB, "click_id": "c1", "homepage": "yes"}), 400)
    assert "device" in error(await post({"pub_id": PUB, "click_id": "c1", "menu_id": "1", "device": 5}), 400)
    assert "object" in error(await post([1, 2]), 400)
    malformed = await client.post("/v1/sa/clicks", content=b"{nope", headers={"Content-Type": "application/json"})
    assert "JSON" in error(malformed, 400)
    assert "menu entry" in error(await post({"pub_id": PUB, "click_id": "c1", "menu_id": "9"}), 404)
    error(await post({"pub_id": "f" * 32, "click_id": "c1", "menu_id": "1"}), 404)
    assert await directory.apply_snapshot(snapshot(2, state=4, frozen=True))
    error(await post({"pub_id": PUB, "click_id": "c1", "menu_id": "1"}), 404)  # frozen: not billed
    no_page = snapshot(3)
    no_page.ClearField("homepage")
    assert await directory.apply_snapshot(no_page)
    assert "homepage" in error(await post({"pub_id": PUB, "click_id": "c2", "homepage": True}), 404)


async def test_the_served_edge_consumes_snapshots(settings: Settings) -> None:
    """The edge role consumes SA_PUBLISHED while it is served (images first, then the snapshot)."""
    from .test_service import free_port

    producer = EventProducer(settings, client_id="sa-test")
    await producer.start()
    port = free_port()
    components = await build(settings, ShortlinkConfig(roles=frozenset({"edge"}), http_port=port, secret="s"))
    assert components.app is not None
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    try:
        for chunk in chunks(LOGO, 700):
            await producer.send(
                SA_PUBLISHED, f"media:{chunk.sha256}:{chunk.seq}", sa_pb2.SaPublicationRecord(chunk=chunk)
            )
        await producer.send(SA_PUBLISHED, f"pub:{PUB}", sa_pb2.SaPublicationRecord(pub=snapshot(7)))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                response = await http.get(
                    "/v1/sa/profile", params={"port": "10690001", "sign": "喜鹊商城", "region": "44"}
                )
                if response.status_code == 200 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert response.status_code == 200, response.text
            assert response.json()["version"] == 7
            logo = await http.get(response.json()["logo_url"])
            assert logo.status_code == 200 and logo.content == LOGO
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()
        await producer.stop()
