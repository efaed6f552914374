"""Delivery receipts: multi-part counting, duplicates, orphans, the receipt window (TIMEOUT) and late receipts."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.smpp import ESME_ROK, DeliverSm, DeliveryReceipt, receipt_deliver_sm
from magpie_dispatcher.events import final_event_id, message_id
from magpie_dispatcher.records import MessageRecord
from magpie_dispatcher.testing import (
    Worker,
    collect_delivery,
    config_for,
    context,
    dispatch_batch,
    produce,
    recipient,
    simulator,
)

pytestmark = pytest.mark.integration

LONG_TEMPLATE = "您好，" + "这是一条很长的测试短信，用来验证长短信的分段与回执的合并。" * 5 + "链接 ${1}"


def counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_no_receipt_in_the_window_is_timeout_and_a_late_receipt_changes_nothing(settings: Settings) -> None:
    ctx = context("task-window")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(10)])
    ids = [message_id("task-window", 0, i) for i in range(10)]
    timeouts_before = counter("magpie_dispatcher_timeouts_total")
    async with simulator(dlr_delay=2.0) as sim:
        config = config_for(sim.smpp_port, receipt_window_s=0.5, sweep_interval_s=0.1)
        async with Worker(settings, config):
            await produce(settings, [batch])
            fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in ids))
            assert {fold.final(m).status for m in ids} == {dispatch_pb2.DELIVERY_STATUS_TIMEOUT}
            assert {fold.final(m).result_code for m in ids} == {"TIMEOUT"}
            # The receipts come after the window: acknowledged, and no second final state.
            async with asyncio.timeout(10):
                while sim.stats()["receipts"]["delivered"] < 10:
                    await asyncio.sleep(0.05)
            fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in ids), settle_s=0.5)
    assert counter("magpie_dispatcher_timeouts_total") - timeouts_before == 10
    for msg_id in ids:
        assert list(fold.finals[msg_id]) == [final_event_id(msg_id)]
        assert len(fold.final_contents(msg_id)) == 1


async def test_multipart_message_is_final_when_every_part_has_its_receipt(settings: Settings) -> None:
    ctx = context("task-parts", template=LONG_TEMPLATE)
    batch = dispatch_batch(ctx, 0, [recipient(7)])
    msg_id = message_id("task-parts", 0, 7)
    # The simulator's own receipts never come (dlr_delay): the test sends them.
    async with simulator(dlr_delay=3600) as sim, Worker(settings, config_for(sim.smpp_port)) as worker:
        await produce(settings, [batch])
        fold = await collect_delivery(settings, lambda f: msg_id in f.submitted)
        parts = sorted(sim.submissions(), key=lambda s: s["concat"]["seq"])
        assert len(parts) == 3 and {e.segments for e in fold.events} == {3}
        link = next(iter(worker.role.pool.links.values()))
        deliver = worker.role.processor.on_deliver

        def receipt(part: dict[str, str], stat: str) -> DeliverSm:
            return receipt_deliver_sm(
                DeliveryReceipt(message_id=part["message_id"], stat=stat),
                source_addr=part["destination_addr"],
                destination_addr=part["source_addr"],
            )

        assert await deliver(link, receipt(parts[0], "DELIVRD")) == ESME_ROK
        assert await deliver(link, receipt(parts[0], "DELIVRD")) == ESME_ROK  # a duplicate counts once
        assert await deliver(link, receipt(parts[2], "DELIVRD")) == ESME_ROK
        fold = await collect_delivery(settings, lambda f: msg_id in f.submitted, settle_s=0.5)
        assert msg_id not in fold.finals  # 2 of 3 parts
        assert await deliver(link, receipt(parts[1], "UNDELIV")) == ESME_ROK
        assert await deliver(link, receipt(parts[2], "DELIVRD")) == ESME_ROK  # after the end: nothing new
        fold = await collect_delivery(settings, lambda f: msg_id in f.finals, settle_s=0.5)
    final = fold.final(msg_id)
    assert (final.status, final.result_code, final.segments) == (dispatch_pb2.DELIVERY_STATUS_FAILED, "UNDELIV", 3)
    assert final.carrier_msg_id == parts[0]["message_id"]
    assert len(fold.final_contents(msg_id)) == 1


async def test_orphan_and_non_final_receipts_are_acknowledged_without_events(settings: Settings) -> None:
    async with simulator() as sim, Worker(settings, config_for(sim.smpp_port)) as worker:
        link = next(iter(worker.role.pool.links.values()))
        deliver = worker.role.processor.on_deliver
        unknown_before = counter("magpie_dispatcher_orphan_receipts_total", {"reason": "unknown"})
        not_final_before = counter("magpie_dispatcher_orphan_receipts_total", {"reason": "not_final"})
        orphan = receipt_deliver_sm(
            DeliveryReceipt(message_id="no-such-id", stat="DELIVRD"),
            source_addr="8613999999999",
            destination_addr="10690001",
        )
        enroute = receipt_deliver_sm(
            DeliveryReceipt(message_id="no-such-id", stat="ENROUTE"),
            source_addr="8613999999999",
            destination_addr="10690001",
        )
        assert await deliver(link, orphan) == ESME_ROK
        assert await deliver(link, enroute) == ESME_ROK
        assert counter("magpie_dispatcher_orphan_receipts_total", {"reason": "unknown"}) == unknown_before + 1
        assert counter("magpie_dispatcher_orphan_receipts_total", {"reason": "not_final"}) == not_final_before + 1
        fold = await collect_delivery(settings, lambda f: True, settle_s=0.5)
    assert fold.events == []


async def test_receipt_racing_the_record_of_its_submit_resp_is_not_lost(settings: Settings) -> None:
    """The receipt's first lookup misses, then the sender records the submit_sm_resp before the receipt looks in
    the pending registry: the receipt must still find its message."""
    async with simulator() as sim, Worker(settings, config_for(sim.smpp_port)) as worker:
        role = worker.role
        link = next(iter(role.pool.links.values()))
        msg_id = message_id("task-race", 0, 1)
        record = MessageRecord(
            msg_id=msg_id,
            tenant_id="tenant-1",
            task_id="task-race",
            batch_no=0,
            index=1,
            mobile="13800000001",
            destination="8613800000001",
            parts=1,
            segments=1,
            route=1,
            carrier="CMCC",
            tpl_id="tpl-1",
            sms_sign="喜鹊",
            aim_url="",
            smsc=link.ns,
        )
        assert await role.store.claim([record]) == [None]
        original = role.store.pending_by_destination

        async def record_first(keys: list[tuple[str, str]]) -> list[list[MessageRecord]]:
            await role.store.record_outcomes(submitted=[record.submitted(["race-1"], now_ms())], now_ms=now_ms())
            return await original(keys)

        role.store.pending_by_destination = record_first  # type: ignore[method-assign]
        receipt = receipt_deliver_sm(
            DeliveryReceipt(message_id="race-1", stat="DELIVRD"),
            source_addr="8613800000001",
            destination_addr="10690001",
        )
        assert await role.processor.on_deliver(link, receipt) == ESME_ROK
        fold = await collect_delivery(settings, lambda f: msg_id in f.finals)
    final = fold.final(msg_id)
    assert (final.status, final.carrier_msg_id) == (dispatch_pb2.DELIVERY_STATUS_DELIVERED, "race-1")
