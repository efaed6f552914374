"""Service-number snapshots for handsets (``sa_publish``), read back from the compacted topic SA_PUBLISHED:
approvals (service number, menu, homepage), binding, freezing and unbinding each publish a complete snapshot with
a higher version; images travel as pieces before the snapshots that show them; a snapshot that could not be
produced stays pending and is published by the worker; the start-up re-check repairs a change whose snapshot was
never produced; one publisher at a time per service number (lease)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from magpie.v1 import sa_pb2
from magpie_common.config import Settings
from magpie_common.topics import SA_PUBLISHED, Topic, topic_name
from magpie_gateway.sa_publish import SaPublicationWorker, publish
from magpie_gateway.timefmt import utc_now

from .conftest import Harness, eventually
from .sa_testkit import BACKGROUND, FASTAPP_LOGO, LOGO, MENU, PORT, PORTAL, approve_pub, create_pub, images

pytestmark = pytest.mark.integration

Records = list[tuple[str, sa_pb2.SaPublicationRecord]]


async def read_topic(settings: Settings, until: Callable[[Records], bool], timeout_s: float = 30) -> Records:
    """Every (key, record) of SA_PUBLISHED from the beginning, until ``until`` holds."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, SA_PUBLISHED),
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: Records = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not until(records):
            assert asyncio.get_running_loop().time() < deadline, f"not found in {len(records)} records"
            batch = await consumer.getmany(timeout_ms=300)
            for partition in batch.values():
                for record in partition:
                    records.append((record.key.decode(), sa_pb2.SaPublicationRecord.FromString(record.value)))
    finally:
        await consumer.stop()
    return records


def snapshots(records: Records, pub_id: str) -> list[sa_pb2.SaPublished]:
    return [r.pub for k, r in records if r.WhichOneof("record") == "pub" and r.pub.pub_id == pub_id]


async def latest(
    settings: Settings, pub_id: str, check: Callable[[sa_pb2.SaPublished], bool]
) -> tuple[sa_pb2.SaPublished, Records]:
    """The newest snapshot of ``pub_id`` once it satisfies ``check``."""

    def done(records: Records) -> bool:
        found = snapshots(records, pub_id)
        return bool(found) and check(max(found, key=lambda s: s.version))

    records = await read_topic(settings, done)
    return max(snapshots(records, pub_id), key=lambda s: s.version), records


def image_bytes(records: Records, sha: str) -> bytes:
    pieces = sorted(
        (r.chunk for _, r in records if r.WhichOneof("record") == "chunk" and r.chunk.sha256 == sha),
        key=lambda c: c.seq,
    )
    unique = {c.seq: c for c in pieces}
    assert unique and len(unique) == next(iter(unique.values())).count
    return b"".join(unique[i].data for i in sorted(unique))


def worker_of(harness: Harness) -> SaPublicationWorker:
    return next(loop for loop in harness.gateway.loops if isinstance(loop, SaPublicationWorker))


async def registered_port(
    harness: Harness,
    http: httpx.AsyncClient,
    licence: str,
    port: str = "10690001",
    signs: tuple[str, ...] = ("喜鹊商城",),
) -> str:
    response = await http.post(
        "/v1/aim-sa/ports",
        json={
            "port": port,
            "port_type": 1,
            "sign": list(signs),
            "sign_check": 1,
            "authorization_files": [f"{licence}:/v1/aim-sa/media/{licence}/file"],
        },
    )
    assert response.status_code == 200, response.text
    port_id = str(response.json()["data"]["id"])
    await harness.review(PORT, port_id)

    async def approved() -> bool:
        rows = (await http.get("/v1/aim-sa/ports", params={"limit": 100})).json()["data"]["data"]
        return any(r["id"] == port_id and r["approve_state"] == 2 for r in rows)

    await eventually(approved)
    return port_id


async def bind(http: httpx.AsyncClient, pub_id: str, port_id: str, province: str = "广东省,北京市") -> str:
    body = {"pub_id": pub_id, "ext_port_id": port_id, "port": "10690001", "sign": ["喜鹊商城"], "province": province}
    response = await http.post("/v1/aim-sa/ports/associate", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def test_approvals_bindings_and_freezing_publish_snapshots(harness: Harness) -> None:
    settings = harness.settings
    tenant = await harness.tenant("喜鹊科技")
    async with harness.client(tenant) as http:
        img = await images(http)
        created = await create_pub(http, img)
        pub_id = created["pub_id"]

        # The service number's approval: effective, its info, no menu or homepage yet.
        await approve_pub(harness, http, pub_id)
        first, records = await latest(settings, pub_id, lambda s: s.state == 2)
        assert (first.name, first.remark, first.intro, first.industry) == (
            "喜鹊商城",
            "通知",
            "此服务号用于发送服务通知类消息",
            5,
        )
        assert first.meta.tenant_id == tenant.tenant_id and first.company_name == "喜鹊科技"
        assert not first.frozen and not first.menus and not first.HasField("homepage") and not first.bindings
        assert first.logo.sha256 == hashlib.sha256(LOGO).hexdigest() and first.logo.mime == "image/png"
        assert (first.logo.width, first.logo.height, first.logo.size) == (240, 240, len(LOGO))
        assert image_bytes(records, first.logo.sha256) == LOGO
        assert {k for k, r in records if r.WhichOneof("record") == "pub"} == {f"pub:{pub_id}"}
        assert all(
            k == f"media:{r.chunk.sha256}:{r.chunk.seq}" for k, r in records if r.WhichOneof("record") == "chunk"
        )

        # Menu and homepage approvals.
        await harness.review(MENU, created["menu_id"])
        await harness.review(PORTAL, created["portal_id"])
        shown, records = await latest(settings, pub_id, lambda s: bool(s.menus) and s.HasField("homepage"))
        assert shown.version > first.version and shown.menu_id == created["menu_id"]
        assert [(m.id, m.name, m.action_type) for m in shown.menus] == [
            ("1", "热门生活", "OPEN_SUBMENU"),
            ("2", "快应用", "OPEN_QUICK"),
            ("3", "打开APP", "OPEN_APP"),
        ]
        assert [(c.id, c.name, c.content) for c in shown.menus[0].children] == [
            ("1.1", "精选推荐", "https://shop.example.com/picks"),
            ("1.2", "客服热线", "400-800-8800"),
        ]
        assert dict(shown.menus[0].children[0].ext) == {"web_title": "精选推荐", "open_in_browser": "0"}
        page = shown.homepage
        assert page.portal_id == created["portal_id"] and page.summary == "记录美好生活，帮助用户实现自我价值"
        assert [(h.tel, h.usage) for h in page.hotlines] == [("400-800-8800", "官方服务电话")]
        assert image_bytes(records, page.background.sha256) == BACKGROUND
        (app,) = page.quick_apps
        assert (app.name, app.deeplink) == ("喜鹊商城", "hap://app/com.example.shop")
        assert image_bytes(records, app.logo.sha256) == FASTAPP_LOGO

        # Binding a port.
        port_id = await registered_port(harness, http, img.licence)
        binding_id = await bind(http, pub_id, port_id)
        bound, _ = await latest(settings, pub_id, lambda s: bool(s.bindings))
        (binding,) = bound.bindings
        assert (binding.binding_id, binding.port_id, binding.port, binding.port_type) == (
            binding_id,
            port_id,
            "10690001",
            1,
        )
        assert list(binding.signs) == ["喜鹊商城"] and list(binding.regions) == ["广东省", "北京市"]
        assert binding.sign_check == 1 and binding.bound_at_ms > 0
        assert bound.version > shown.version and list(bound.menus) == list(shown.menus)

        # Freezing: durable before the answer.
        frozen = await http.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json={"change_reason": "暂停"})
        assert frozen.status_code == 200, frozen.text
        snap, records = await latest(settings, pub_id, lambda s: s.frozen)
        assert snap.state == 4 and snap.version > bound.version and snap.bindings
        doc = await harness.gateway.context.collections.sa_pubs.find_one({"_id": pub_id})
        assert doc is not None and doc["publish_pending"] is False and doc["published_version"] == snap.version

        # Unbinding.
        unbound = await http.post("/v1/aim-sa/ports/disassociate", json={"id": binding_id})
        assert unbound.status_code == 200, unbound.text
        last, records = await latest(settings, pub_id, lambda s: not s.bindings)
        assert last.version > snap.version and last.frozen
        versions = [s.version for s in snapshots(records, pub_id)]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        # every image was sent once, before the first snapshot showing it
        chunk_keys = [k for k, r in records if r.WhichOneof("record") == "chunk"]
        assert len(chunk_keys) == len(set(chunk_keys))


async def test_a_snapshot_that_could_not_be_produced_is_published_later(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = harness.settings
    tenant = await harness.tenant("喜鹊科技")
    async with harness.client(tenant) as http:
        img = await images(http)
        pub_id = (await create_pub(http, img))["pub_id"]
        await approve_pub(harness, http, pub_id)
        await latest(settings, pub_id, lambda s: s.state == 2)

        producer = harness.gateway.context.producer
        send = producer.send

        async def broken(topic: Topic, key: str | bytes, message: Any) -> None:
            if topic == SA_PUBLISHED:
                raise KafkaConnectionError("broker away")
            await send(topic, key, message)

        monkeypatch.setattr(producer, "send", broken)
        frozen = await http.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json={"change_reason": "暂停"})
        assert frozen.status_code == 200, frozen.text  # the freeze stands
        c = harness.gateway.context.collections
        doc = await c.sa_pubs.find_one({"_id": pub_id})
        assert doc is not None and doc["state"] == 4 and doc["publish_pending"] is True
        assert doc["publish_lease_until"] is None  # released for the next publisher

        monkeypatch.setattr(producer, "send", send)
        worker_of(harness).wake()
        snap, _ = await latest(settings, pub_id, lambda s: s.frozen)
        assert snap.state == 4

        async def published() -> bool:
            found = await c.sa_pubs.find_one({"_id": pub_id})
            return found is not None and found["publish_pending"] is False

        await eventually(published)


async def test_the_start_up_recheck_repairs_a_lost_snapshot(harness: Harness) -> None:
    settings = harness.settings
    c = harness.gateway.context.collections
    tenant = await harness.tenant("喜鹊科技")
    async with harness.client(tenant) as http:
        img = await images(http)
        pub_id = (await create_pub(http, img))["pub_id"]
        await approve_pub(harness, http, pub_id)
        await latest(settings, pub_id, lambda s: s.state == 2)
    # A process died between writing a binding and publishing it.
    await c.sa_ports.insert_one(
        {
            "_id": "e" * 32,
            "kind": "binding",
            "unique_key": "binding:" + "e" * 32,
            "tenant_id": tenant.tenant_id,
            "port_id": "f" * 32,
            "port": "10690009",
            "port_type": 1,
            "sign": ["喜鹊商城"],
            "regions": ["全国"],
            "pub_id": pub_id,
            "created_at": utc_now(),
        }
    )
    worker = SaPublicationWorker(harness.gateway.context, interval_s=3600, republish="changed")
    assert await worker.recheck_all() == 1
    assert await worker.publish_pending() == 1
    snap, records = await latest(settings, pub_id, lambda s: bool(s.bindings))
    assert snap.bindings[0].port == "10690009" and list(snap.bindings[0].regions) == ["全国"]
    assert await worker.recheck_all() == 0  # nothing differs any more

    # "all": everything again, images included
    chunks_before = sum(1 for _, r in records if r.WhichOneof("record") == "chunk")
    assert await worker.recheck_all(force=True) == 1
    assert await worker.publish_pending() == 1
    again, records = await latest(settings, pub_id, lambda s: s.version > snap.version)
    assert again.bindings == snap.bindings
    assert sum(1 for _, r in records if r.WhichOneof("record") == "chunk") == 2 * chunks_before
    with pytest.raises(ValueError):
        SaPublicationWorker(harness.gateway.context, republish="sometimes")


async def test_one_publisher_at_a_time(harness: Harness) -> None:
    c = harness.gateway.context.collections
    tenant = await harness.tenant("喜鹊科技")
    async with harness.client(tenant) as http:
        img = await images(http)
        pub_id = (await create_pub(http, img))["pub_id"]
        await approve_pub(harness, http, pub_id)
        await latest(harness.settings, pub_id, lambda s: s.state == 2)
    held = utc_now() + timedelta(seconds=60)
    await c.sa_pubs.update_one(
        {"_id": pub_id}, {"$set": {"publish_pending": True, "publish_lease_until": held, "publish_token": "other"}}
    )
    assert await publish(harness.gateway.context, pub_id) is False  # the holder publishes
    assert await SaPublicationWorker(harness.gateway.context, republish="off").publish_pending() == 0
    await c.sa_pubs.update_one({"_id": pub_id}, {"$set": {"publish_lease_until": utc_now() - timedelta(seconds=1)}})
    assert await publish(harness.gateway.context, pub_id) is True  # an expired lease is taken over
    doc = await c.sa_pubs.find_one({"_id": pub_id})
    assert doc is not None and doc["publish_pending"] is False and doc["publish_token"] is None
    assert await publish(harness.gateway.context, pub_id) is False  # nothing pending
