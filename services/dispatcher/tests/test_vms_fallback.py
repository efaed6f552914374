"""The VMS fallback of smart send tasks in the dispatcher: the send role's hand-off of the recipients routed VMS
(params from their values, VMS_SEND records), the vms role sending them through the simulator's VMS channel with
their events on DELIVERY (not VMS_DELIVERY), cancellation, timeouts, and recipients without a template."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, task_pb2, vms_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect
from magpie_common.topics import DELIVERY, VMS_DELIVERY, VMS_SEND, VMS_TEMPLATES
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.store import DeliveryStore
from magpie_dispatcher.testing import SIM_PASSWORD, SIM_SYSTEM_ID, simulator
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.role import VmsRole, build_vms
from magpie_dispatcher.vms.sender import vms_message_id
from magpie_dispatcher.vms.store import VmsRecord
from magpie_dispatcher.vms_fallback import VmsHandOff, send_records
from magpie_dispatcher.wiring import redis_pool_client

pytestmark = pytest.mark.integration

TENANT = "tenant-aim"
TASK = "T-aim-1"
AIM_URL = "https://customer.example/aim"
SMART, VMS = common_pb2.ROUTE_SMART, common_pb2.ROUTE_VMS
DELIVERED, FAILED, TIMEOUT = (
    dispatch_pb2.DELIVERY_STATUS_DELIVERED,
    dispatch_pb2.DELIVERY_STATUS_FAILED,
    dispatch_pb2.DELIVERY_STATUS_TIMEOUT,
)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def release(tpl_id: str) -> list[tuple[str, vms_pb2.VmsTemplateRecord]]:
    """An approved template (CMCC and CTCC) with params #p_1# #p_2#, as the gateway releases it."""
    media = png()
    sha = hashlib.sha256(media).hexdigest()
    chunk = vms_pb2.VmsMediaChunk(sha256=sha, seq=0, count=1, data=media, size=len(media))
    chunk.meta.tenant_id = TENANT
    released = vms_pb2.VmsTemplateReleased(
        tpl_id=tpl_id,
        revision=1,
        title="新车上市",
        sign="喜鹊汽车",
        params=["#p_1#", "#p_2#"],
        carriers=["CMCC", "CTCC"],
    )
    released.meta.tenant_id = TENANT
    released.elements.add(frame=1, position=1, type="png", media_sha256=sha, media_size=len(media), name="car.png")
    released.elements.add(frame=1, position=2, type="txt", text="【喜鹊汽车】#p_1#您好，#p_2#欢迎试驾")
    return [
        (f"media:{sha}:0", vms_pb2.VmsTemplateRecord(chunk=chunk)),
        (f"tpl:{tpl_id}", vms_pb2.VmsTemplateRecord(template=released)),
    ]


def dispatch_batch(
    batch_no: int, recipients: list[tuple[int, int, str]], *, tpl_id: str = "VMSF"
) -> dispatch_pb2.DispatchBatch:
    """A DispatchBatch of the smart send task as shortlink forwards it: (index, route, mobile)."""
    ctx = task_pb2.TaskContext(
        tenant_id=TENANT,
        task_id=TASK,
        task_name="试驾邀请",
        tpl_id="100000001",
        fallback=common_pb2.FALLBACK_VMS,
        aim_url=AIM_URL,
        vms_tpl_id=tpl_id,
        vms_tpl_revision=1 if tpl_id else 0,
        vms_params=["dync:name", "sms:1"] if tpl_id else [],
    )
    batch = dispatch_pb2.DispatchBatch(ctx=ctx, batch_no=batch_no, batch_count=4)
    batch.meta.trace_id = "trace-v"
    for index, route, mobile in recipients:
        batch.recipients.add(
            index=index,
            mobile=mobile,
            msisdn="86" + mobile,
            route=route,  # type: ignore[arg-type]
            params={"name": f"会员{index}", "amount": "5"},
            sms_params=[f"{index}日", "x"],
            short_code="abc" if route != VMS else "",
        )
    return batch


def finals(batches: list[dispatch_pb2.DeliveryBatch]) -> dict[int, dispatch_pb2.DeliveryEvent]:
    """The final event of each index of the task (one per message, whatever repeats)."""
    found: dict[int, dispatch_pb2.DeliveryEvent] = {}
    for batch in batches:
        for event in batch.events:
            if event.task_id == TASK and event.status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED:
                found.setdefault(event.index, event)
                assert found[event.index] == event
    return found


@contextlib.asynccontextmanager
async def running_role(settings: Settings, sim: Any) -> AsyncIterator[VmsRole]:
    config = VmsConfig(
        carrier_url=f"http://127.0.0.1:{sim.http_port}",
        account=SIM_SYSTEM_ID,
        password=SIM_PASSWORD,
        poll_interval_s=0.05,
        template_wait_s=10.0,
        sweep_interval_s=0.2,
    )
    redis = redis_pool_client(settings, 16)
    role = await build_vms(settings, redis, config)
    tasks = [asyncio.create_task(w) for w in role.workers()]
    try:
        async with asyncio.timeout(30):
            while not await role.ready():
                await asyncio.sleep(0.1)
        yield role
    finally:
        role.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await role.close()
        await redis.aclose()


def test_send_records_fill_params_and_split_big_batches() -> None:
    batch = dispatch_batch(2, [(0, SMART, "13900000001"), (1, VMS, "13900000002"), (1, VMS, "13900000002")])
    ((key, message),) = send_records(batch, [batch.recipients[1]], cancel=False, now=1000, expiration_ms=5000)
    assert key == f"{TASK}:2"
    assert (message.task_id, message.batch_no, message.batch_count, message.tpl_id, message.tpl_revision) == (
        TASK,
        2,
        4,
        "VMSF",
        1,
    )
    assert message.aim_fallback and not message.cancel and message.aim_url == AIM_URL
    assert message.expires_at_ms == 6000 and message.meta.tenant_id == TENANT and message.meta.trace_id == "trace-v"
    assert [(r.index, r.mobile, list(r.params)) for r in message.recipients] == [(1, "13900000002", ["会员1", "1日"])]

    many = dispatch_batch(0, [(i, VMS, f"139{i:08d}") for i in range(1200)])
    records = send_records(many, list(many.recipients), cancel=True, now=1000, expiration_ms=5000)
    assert [len(m.recipients) for _, m in records] == [500, 500, 200]
    assert all(m.cancel and k == f"{TASK}:0" for k, m in records)
    assert len({m.meta.event_id for _, m in records}) == 3
    with pytest.raises(ValueError):
        VmsHandOff(None, None, expiration_h=73)  # type: ignore[arg-type]


async def test_fallback_recipients_are_sent_reported_on_delivery_and_cancelled(settings: Settings) -> None:
    producer = EventProducer(settings, "vms-fallback-test")
    await producer.start()
    redis = redis_pool_client(settings, 8)
    emitter = FinalEmitter(DeliveryStore(settings, redis, receipt_window_s=60, in_doubt_grace_s=60), producer)
    hand_off = VmsHandOff(producer, emitter)
    try:
        async with simulator(http_port=0, dlr_delay=0.05) as sim, running_role(settings, sim) as role:
            await producer.send_many((VMS_TEMPLATES, key, record) for key, record in release("VMSF"))
            # Index 5 is smart (the send role's), 7 CMCC (approved), 8 CUCC (the carrier did not approve).
            sent = dispatch_batch(2, [(5, SMART, "13900000005"), (7, VMS, "13900000021"), (8, VMS, "18600000022")])
            assert await hand_off.hand_off(sent) == 2
            got = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: len(finals(m)) == 2)
            done = finals(got)
            assert (done[7].status, done[7].result_code) == (DELIVERED, "DELIVRD")
            assert (done[8].status, done[8].result_code) == (FAILED, "TEMPLATE_NOT_APPROVED")
            for index, event in done.items():
                assert (event.tenant_id, event.batch_no, event.route, event.tpl_id) == (TENANT, 2, VMS, "VMSF")
                assert event.msg_id == vms_message_id(TASK, index) and event.aim_url == AIM_URL
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.http_port}/vms/v1") as http:
                shown = (await http.get("/messages", params={"mobile": "13900000021"})).json()["messages"]
            assert [m["texts"] for m in shown] == [["【喜鹊汽车】会员7您好，7日欢迎试驾"]]

            # Cancel of a batch with one recipient sent (keeps its outcome) and one never sent (CANCELLED); a send
            # of it afterwards submits nothing.
            accepted = sim._http.vms.stats()["accepted"]
            both = dispatch_batch(2, [(7, VMS, "13900000021"), (9, VMS, "13900000023")])
            await hand_off.cancel(both)
            await hand_off.hand_off(both)
            got = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: 9 in finals(m))
            cancelled = finals(got)[9]
            assert (cancelled.status, cancelled.result_code, cancelled.segments) == (FAILED, "CANCELLED", 0)
            assert cancelled.aim_url == AIM_URL and finals(got)[7].status == DELIVERED
            await asyncio.sleep(0.5)
            assert sim._http.vms.stats()["accepted"] == accepted

            # Timeouts of fallback messages go to DELIVERY as well.
            now = now_ms()
            late = VmsRecord(
                vms_message_id(TASK, 11), TENANT, TASK, 3, 11, "13900000024", "VMSF", now - 1, aim_fallback=True
            )
            await role.store.put_records([late.submitted("V9", "CMCC", now - 5000)], now, schedule=True)
            got = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: 11 in finals(m))
            assert (finals(got)[11].status, finals(got)[11].batch_no) == (TIMEOUT, 3)

            # Nothing of the task went to VMS_DELIVERY (the VMS send tasks' stream).
            marker = vms_pb2.VmsSendBatch(task_id="VTK-marker", tpl_id="VMSF", tpl_revision=1, batch_count=1)
            marker.meta.tenant_id = TENANT
            marker.expires_at_ms = now_ms() + 3_600_000
            marker.recipients.add(index=0, mobile="13900000030", params=["a", "b"])
            await producer.send(VMS_SEND, "VTK-marker:0", marker)
            vms_events = await collect(
                settings,
                VMS_DELIVERY,
                dispatch_pb2.DeliveryBatch,
                until=lambda m: any(e.task_id == "VTK-marker" and e.status != 1 for b in m for e in b.events),
            )
            assert all(e.task_id == "VTK-marker" for b in vms_events for e in b.events)

            # Recipients routed VMS without a template in the context fail at once (nothing stays pending).
            orphan = dispatch_batch(1, [(20, VMS, "13900000031")], tpl_id="")
            assert await hand_off.hand_off(orphan) == 0
            got = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: 20 in finals(m))
            assert (finals(got)[20].status, finals(got)[20].result_code) == (FAILED, "VMS_TEMPLATE_MISSING")
            assert await hand_off.hand_off(dispatch_batch(1, [(21, SMART, "13900000032")])) == 0
    finally:
        await producer.stop()
        await redis.aclose()
