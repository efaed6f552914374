"""Learning: a resolved link makes its number capable; smart messages that never resolve downgrade it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import Decoded, EventProducer
from magpie_common.service import Service
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, DELIVERY, DISPATCH, LINK, RECIPIENTS
from magpie_number_resolver.capability import default_engine
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.devices import DeviceProfile, build_profile, unpack
from magpie_number_resolver.learning import learned_profile
from magpie_number_resolver.testing import APP_TOO_OLD, CAPABLE_RENDER, Running, device_csv, free_port, serve
from magpie_shortlink.__main__ import run as run_shortlink
from magpie_shortlink.config import SERVICE_NAME as SHORTLINK
from magpie_shortlink.config import ShortlinkConfig, parse_roles
from magpie_shortlink.handsets import is_warm as handset_rules_loaded

WEBVIEW = "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 Mobile Safari/537.36"
HUAWEI_UA = f"Mozilla/5.0 (Linux; Android 12; NOH-AN00 Build/HUAWEINOH-AN00; wv) {WEBVIEW} HwMessaging/11.1.0.100"
HUAWEI = {"brand": "HUAWEI", "model": "Mate 40 Pro", "os_name": "HarmonyOS", "os_version": "3.0"}


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def produce(settings: Settings, items: list[tuple[Any, str, Any]]) -> None:
    producer = EventProducer(settings, client_id="test-learning")
    await producer.start()
    try:
        await producer.send_many(items)
    finally:
        await producer.stop()


def recipients(task_id: str, mobiles: list[str]) -> task_pb2.RecipientBatch:
    batch = task_pb2.RecipientBatch(
        meta=common_pb2.EventMeta(event_id=f"rb-{task_id}", tenant_id="t1"),
        ctx=task_pb2.TaskContext(
            tenant_id="t1",
            task_id=task_id,
            tpl_id="100000001",
            tpl_name="card",
            approved_vendors=["HUAWEI"],
            fallback=common_pb2.FALLBACK_SMS,
            link_domain="https://mgp.example/",
            link_expires_at_ms=now_ms() + 3_600_000,
        ),
        batch_count=1,
    )
    for index, mobile in enumerate(mobiles):
        batch.recipients.add(index=index, mobile=mobile, params={"name": f"n{index}"})
    return batch


# ---------------------------------------------------------------------------------------------- merge rules


def test_what_a_resolution_records() -> None:
    engine = default_engine()
    blank = {"brand": "", "model": "", "os_name": "", "os_version": "", "app_version": ""}
    record = build_profile({**HUAWEI, "app_version": "10.0.0.1"})

    assert learned_profile(None, blank, engine) is None  # no vendor, no record: nothing to learn
    kept = learned_profile(record, blank, engine)
    assert kept is not None and kept.observed and kept.app_version == "10.0.0.1" and kept.model == "Mate 40 Pro"

    # Same handset (vendor alias, model spelling): the record stays, the handset's versions update it.
    same = {**blank, "brand": "Huawei", "model": "mate 40 pro", "os_name": "Android", "app_version": "11.1.0.551"}
    merged = learned_profile(record, same, engine)
    assert merged is not None and merged.observed
    assert (merged.brand, merged.model, merged.os_name, merged.os_version, merged.app_version) == (
        "HUAWEI",
        "Mate 40 Pro",
        "HarmonyOS",  # the record's OS stays: WebView User-Agents of HarmonyOS handsets say Android
        "3.0",
        "11.1.0.551",
    )
    partial = learned_profile(DeviceProfile("HUAWEI", "", "", "", "", observed=True), same, engine)
    assert partial is not None and (partial.model, partial.os_name) == ("mate 40 pro", "Android")
    # Another handset behind the number: replaced.
    other = {**blank, "brand": "Xiaomi", "model": "13", "os_name": "Android", "os_version": "13"}
    replaced = learned_profile(record, other, engine)
    assert replaced is not None and (replaced.brand, replaced.model, replaced.app_version) == ("Xiaomi", "13", "")
    assert unpack(replaced.packed) == replaced and unpack(replaced.packed).observed
    assert unpack(record.packed).observed is False and replaced.packed.endswith("\x1f1")


# ---------------------------------------------------------------------------------------------- end to end


async def start_shortlink(settings: Settings) -> tuple[Service, asyncio.Task[None], str]:
    port = free_port()
    config = ShortlinkConfig(roles=parse_roles("mint,edge"), http_port=port, secret="learning-secret")
    service = Service(SHORTLINK, host=config.http_host, port=port)
    task = asyncio.create_task(run_shortlink(settings, config, service))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return service, task, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("shortlink never became ready")


def classified_of(task_id: str) -> Callable[[list[resolve_pb2.ClassifiedBatch]], bool]:
    return lambda batches: any(b.ctx.task_id == task_id for b in batches)


@pytest.mark.integration
async def test_a_resolution_turns_an_unknown_number_into_a_capable_one_for_the_next_task(settings: Settings) -> None:
    unknown, old_app = "13912345678", "13800138002"
    async with serve(settings, ResolverConfig(), worker=True) as resolver:
        await resolver.client.post(
            "/internal/devices/import", content=device_csv({old_app: APP_TOO_OLD}), headers={"Content-Type": "text/csv"}
        )
        service, task, edge = await start_shortlink(settings)
        try:
            await produce(settings, [(RECIPIENTS, "task-1:0", recipients("task-1", [unknown, old_app]))])
            batches = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=classified_of("task-1"))
            first = next(b for b in batches if b.ctx.task_id == "task-1")
            assert [(r.route, r.reason) for r in first.recipients] == [
                (common_pb2.ROUTE_DEGRADED, "UNKNOWN_DEVICE"),
                (common_pb2.ROUTE_DEGRADED, "APP_TOO_OLD"),
            ]
            (dispatched,) = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 1)

            async def rules_loaded() -> bool:  # a resolve call right after start may go without the User-Agent
                return handset_rules_loaded()

            await eventually(rules_loaded, timeout_s=60)
            # Both handsets get the fallback SMS with the link; their messaging apps turn out to render the card.
            async with httpx.AsyncClient(timeout=10) as http:
                for recipient in dispatched.recipients:
                    response = await http.post(
                        f"{edge}/v1/resolve", json={"code": recipient.short_code}, headers={"User-Agent": HUAWEI_UA}
                    )
                    assert response.status_code == 200, response.text

            async def learned() -> bool:
                records = [(await resolver.client.get(f"/internal/devices/{m}")).json() for m in (unknown, old_app)]
                return all(r.get("observed") for r in records)

            await eventually(learned)
            record = (await resolver.client.get(f"/internal/devices/{unknown}")).json()
            assert (record["brand"], record["model"], record["app_version"]) == ("Huawei", "Mate 40 Pro", "11.1.0.100")
            updated = (await resolver.client.get(f"/internal/devices/{old_app}")).json()
            assert (updated["brand"], updated["os_name"], updated["app_version"]) == (
                "HUAWEI",
                "HarmonyOS",
                "11.1.0.100",
            )

            await produce(settings, [(RECIPIENTS, "task-2:0", recipients("task-2", [unknown, old_app]))])
            batches = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=classified_of("task-2"))
            second = next(b for b in batches if b.ctx.task_id == "task-2")
            assert [(r.route, r.reason, r.vendor) for r in second.recipients] == [
                (common_pb2.ROUTE_SMART, "", "HUAWEI"),
                (common_pb2.ROUTE_SMART, "", "HUAWEI"),
            ]
            # The vendor filter still applies to a handset known only from its resolution.
            check = await resolver.client.post(
                "/internal/capabilities/check", json={"mobiles": [unknown], "vendors": ["XIAOMI"]}
            )
            assert check.json()["results"][0]["reason"] == "VENDOR_NOT_APPROVED"
        finally:
            service.request_stop()
            await asyncio.wait_for(task, 30)


@pytest.mark.integration
async def test_group_links_and_brandless_handsets_teach_nothing(api: Running) -> None:
    learner = api.components.learner

    def event(msisdn: str, *, group: bool = False, brand: str = "") -> Decoded[link_pb2.LinkEvent]:
        message = link_pb2.LinkEvent(type=link_pb2.LINK_EVENT_TYPE_RESOLVED, msisdn=msisdn, group=group, at_ms=now_ms())
        message.handset.brand = brand
        return Decoded(None, message)  # type: ignore[arg-type]

    clicked = event("8613900000003", brand="HUAWEI")
    clicked.message.type = link_pb2.LINK_EVENT_TYPE_CLICKED
    await learner.handle(
        [event("8613900000001", group=True, brand="HUAWEI"), event("8613900000002"), event(""), clicked]
    )
    for mobile in ("13900000001", "13900000002", "13900000003"):
        assert (await api.client.get(f"/internal/devices/{mobile}")).status_code == 404

    # A brandless resolution of a number the registry knows marks the record observed, once.
    await api.client.post(
        "/internal/devices/import",
        content=device_csv({"13900000002": APP_TOO_OLD}),
        headers={"Content-Type": "text/csv"},
    )
    resolution = event("8613900000002").message
    assert await learner.learn({"8613900000002": resolution}) == 1
    assert await learner.learn({"8613900000002": resolution}) == 0  # nothing new: no write
    record = (await api.client.get("/internal/devices/13900000002")).json()
    assert record["observed"] is True and record["app_version"] == "10.0.0.1"
    check = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13900000002"]})
    assert check.json()["results"][0]["supported"] is True


# ---------------------------------------------------------------------------------------------- downgrade


def delivery(mobile: str, message: str, *, status: int = dispatch_pb2.DELIVERY_STATUS_DELIVERED, **kw: Any) -> Any:
    return dispatch_pb2.DeliveryEvent(
        event_id=f"d-{message}",
        mobile=mobile,
        msg_id=message,
        status=status,  # type: ignore[arg-type]
        route=kw.get("route", common_pb2.ROUTE_SMART),
        submitted_at_ms=kw.get("submitted_at_ms", now_ms()),
    )


@pytest.mark.integration
async def test_numbers_that_never_resolve_are_downgraded_until_they_do(settings: Settings) -> None:
    mobile = "13800138001"
    config = ResolverConfig(downgrade_after=3, downgrade_ttl_s=3600)
    async with serve(settings, config, worker=True) as resolver:
        client = resolver.client
        await client.post(
            "/internal/devices/import",
            content=device_csv({mobile: CAPABLE_RENDER}),
            headers={"Content-Type": "text/csv"},
        )

        async def check() -> dict[str, Any]:
            response = await client.post("/internal/capabilities/check", json={"mobiles": [mobile]})
            return response.json()["results"][0]  # type: ignore[no-any-return]

        async def sends() -> int:
            return int((await client.get(f"/internal/smart-sends/{mobile}")).json()["unresolved_sends"])

        assert (await check())["supported"]
        first = dispatch_pb2.DeliveryBatch(
            meta=common_pb2.EventMeta(event_id="db-1"),
            events=[
                delivery(mobile, "m1"),
                delivery(mobile, "m1"),  # the same message twice (a redelivered receipt): counted once
                delivery(mobile, "m2"),
                delivery(mobile, "m3", status=dispatch_pb2.DELIVERY_STATUS_FAILED),  # never reached the handset
                delivery(mobile, "m4", status=dispatch_pb2.DELIVERY_STATUS_SUBMITTED),  # not final
                delivery(mobile, "m5", route=common_pb2.ROUTE_DEGRADED),  # plain SMS: says nothing
                delivery("bad number", "m6"),
            ],
        )
        await produce(settings, [(DELIVERY, "t:0", first)])

        async def counted_two() -> bool:
            return await sends() == 2

        await eventually(counted_two)
        assert (await check())["supported"]
        assert (await client.get(f"/internal/downgrades/{mobile}")).status_code == 404

        resolved_before = now_ms()
        await produce(settings, [(DELIVERY, "t:1", dispatch_pb2.DeliveryBatch(events=[delivery(mobile, "m7")]))])

        async def downgraded() -> bool:
            return (await client.get(f"/internal/downgrades/{mobile}")).status_code == 200

        await eventually(downgraded)
        state = (await client.get(f"/internal/downgrades/{mobile}")).json()
        assert state["sends"] == 3 and state["msisdn"] == "8613800138001" and state["expires_at"]
        result = await check()
        assert (result["supported"], result["reason"], result["route"]) == (False, "NEVER_RESOLVED", "DEGRADED")
        # Redis lost its data: the downgrade comes back from MongoDB with the rest of the registry.
        components = resolver.components
        await components.redis.delete(components.downgrades.flag_key("8613800138001"))
        reload = await client.post("/internal/registry/reload")
        assert reload.json()["reloaded"]["downgrades"] == 1
        assert (await check())["reason"] == "NEVER_RESOLVED"
        assert 3000 < await components.redis.ttl(components.downgrades.flag_key("8613800138001")) <= 3600

        # The handset resolves a link (e.g. the fallback SMS's): the downgrade is lifted, the count restarts.
        resolution = link_pb2.LinkEvent(
            type=link_pb2.LINK_EVENT_TYPE_RESOLVED, mobile=mobile, msisdn="8613800138001", at_ms=now_ms()
        )
        await produce(settings, [(LINK, "t:0", resolution)])

        async def lifted() -> bool:
            return (await client.get(f"/internal/downgrades/{mobile}")).status_code == 404

        await eventually(lifted)
        assert (await check())["supported"]
        # A late receipt of a message sent before the resolution does not count.
        late = dispatch_pb2.DeliveryBatch(
            events=[delivery(mobile, "m8", submitted_at_ms=resolved_before), delivery(mobile, "m9")]
        )
        await produce(settings, [(DELIVERY, "t:2", late)])

        async def counted_one() -> bool:
            return await sends() == 1

        await eventually(counted_one)

        # Operators can lift a downgrade; unknown and invalid numbers answer 404 / 400.
        await components.downgrades.count_sends(
            [("8613800138001", "m10", now_ms()), ("8613800138001", "m11", now_ms())]
        )
        assert (await client.get(f"/internal/downgrades/{mobile}")).status_code == 200
        assert (await client.delete(f"/internal/downgrades/{mobile}")).status_code == 204
        assert (await check())["supported"]
        missing = await client.delete(f"/internal/downgrades/{mobile}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "KM.00000404"
        invalid = await client.get("/internal/downgrades/12345")
        assert invalid.status_code == 400 and invalid.json()["error_code"] == "KM.00000400"
        assert (await client.get("/internal/smart-sends/abc")).status_code == 400


@pytest.mark.integration
async def test_a_downgrade_written_to_redis_only_is_repaired_on_the_next_receipt(api: Running) -> None:
    downgrades = api.components.downgrades
    msisdn = "8613800138009"
    now = now_ms()
    assert await downgrades.count_sends([(msisdn, f"m{n}", now) for n in range(2)]) == []
    assert await downgrades.count_sends([(msisdn, "m2", now)]) == [msisdn]
    # The process stopped after the Redis script, before the MongoDB write: MongoDB does not know the downgrade.
    await downgrades.collection.delete_one({"_id": msisdn})
    assert await downgrades.get(msisdn) is None
    assert await downgrades.count_sends([(msisdn, "m3", now)]) == []  # already downgraded: not counted again
    repaired = await downgrades.get(msisdn)
    assert repaired is not None and repaired["sends"] == 3 and repaired["expires_at"]
