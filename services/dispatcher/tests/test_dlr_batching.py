"""Receipts group-committed: a window of deliver_sm is answered after ONE produce, flushes overlap up to the limit,
nothing is answered before its produce is acknowledged; several SMPP sessions per SMSC are all used."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pytest
import redis.asyncio as aioredis

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.smpp import ESME_ROK, ESME_RX_T_APPN, DeliverSm, DeliveryReceipt, receipt_deliver_sm
from magpie_common.topics import Topic
from magpie_dispatcher.config import SmscConfig
from magpie_dispatcher.dlr import ReceiptProcessor
from magpie_dispatcher.events import message_id
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.records import MessageRecord
from magpie_dispatcher.smsc import SmscLink
from magpie_dispatcher.store import DeliveryStore
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


class HeldProducer:
    """Stands in for Kafka: every send_many waits until released; what each produce carried is recorded."""

    def __init__(self) -> None:
        self.produces: list[list[dispatch_pb2.DeliveryEvent]] = []
        self.acknowledged: list[int] = []  # produce numbers acknowledged, in order
        self.release = asyncio.Event()

    async def send_many(self, items: Iterable[tuple[Topic, str, dispatch_pb2.DeliveryBatch]]) -> None:
        events = [event for _, _, batch in items for event in batch.events]
        number = len(self.produces)
        self.produces.append(events)
        await self.release.wait()
        self.acknowledged.append(number)


def record_for(index: int, smsc: str) -> MessageRecord:
    return MessageRecord(
        msg_id=message_id("task-group", 0, index),
        tenant_id="tenant-1",
        task_id="task-group",
        batch_no=0,
        index=index,
        mobile=f"138{index:08d}",
        destination=f"86138{index:08d}",
        parts=1,
        segments=1,
        route=1,
        carrier="CMCC",
        tpl_id="tpl-1",
        sms_sign="喜鹊",
        aim_url="",
        smsc=smsc,
    )


def receipt_pdu(index: int) -> DeliverSm:
    return receipt_deliver_sm(
        DeliveryReceipt(message_id=f"cid-{index}", stat="DELIVRD"),
        source_addr=f"86138{index:08d}",
        destination_addr="10690001",
    )


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def submitted_records(store: DeliveryStore, smsc: str, count: int) -> None:
    records = [record_for(i, smsc) for i in range(count)]
    assert await store.claim(records) == [None] * count
    now = now_ms()
    await store.record_outcomes(submitted=[r.submitted([f"cid-{r.index}"], now) for r in records], now_ms=now)


async def test_a_window_of_receipts_is_answered_after_one_produce(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    store = DeliveryStore(settings, redis, receipt_window_s=60, in_doubt_grace_s=60)
    producer = HeldProducer()
    processor = ReceiptProcessor(store, FinalEmitter(store, producer), flush_s=0.0, flush_max=1000)  # type: ignore[arg-type]
    link = SmscLink(SmscConfig(), processor.on_deliver)
    runner = asyncio.create_task(processor.run())
    try:
        await submitted_records(store, link.ns, 64)
        await asyncio.sleep(0)
        window = asyncio.create_task(processor.on_deliver_many(link, [receipt_pdu(i) for i in range(64)]))
        await wait_until(lambda: len(producer.produces) == 1)
        await asyncio.sleep(0.05)
        assert not window.done()  # nothing is answered before the produce is acknowledged
        producer.release.set()
        statuses = await window
        assert statuses == [ESME_ROK] * 64
        assert len(producer.produces) == 1  # the whole window: one produce
        assert {e.msg_id for e in producer.produces[0]} == {message_id("task-group", 0, i) for i in range(64)}
        assert {e.status for e in producer.produces[0]} == {dispatch_pb2.DELIVERY_STATUS_DELIVERED}
    finally:
        processor.stop()
        producer.release.set()
        await runner
        await redis.aclose()


async def test_flushes_overlap_up_to_the_limit_and_each_answers_after_its_own_produce(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    store = DeliveryStore(settings, redis, receipt_window_s=60, in_doubt_grace_s=60)
    producer = HeldProducer()
    emitter = FinalEmitter(store, producer)  # type: ignore[arg-type]
    processor = ReceiptProcessor(store, emitter, flush_s=0.0, flush_max=1000, flushes_in_flight=2)
    link = SmscLink(SmscConfig(), processor.on_deliver)
    runner = asyncio.create_task(processor.run())
    try:
        await submitted_records(store, link.ns, 30)
        await asyncio.sleep(0)
        reads = []
        for first in (0, 10, 20):  # three socket reads of 10 receipts, while the produces are held
            reads.append(
                asyncio.create_task(processor.on_deliver_many(link, [receipt_pdu(first + i) for i in range(10)]))
            )
            await wait_until(lambda: len(producer.produces) == min(2, len(reads)))
        await asyncio.sleep(0.05)
        assert len(producer.produces) == 2  # at most two flushes in flight: the third read waits
        assert not any(read.done() for read in reads)
        producer.release.set()
        assert [await read for read in reads] == [[ESME_ROK] * 10] * 3
        assert len(producer.produces) == 3 and sorted(len(p) for p in producer.produces) == [10, 10, 10]
    finally:
        processor.stop()
        producer.release.set()
        await runner
        await redis.aclose()


async def test_receipts_are_refused_for_redelivery_when_the_produce_fails(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    store = DeliveryStore(settings, redis, receipt_window_s=60, in_doubt_grace_s=60)

    class FailingProducer:
        async def send_many(self, items: object) -> None:
            raise ConnectionError("broker down")

    processor = ReceiptProcessor(store, FinalEmitter(store, FailingProducer()), flush_s=0.0)  # type: ignore[arg-type]
    link = SmscLink(SmscConfig(), processor.on_deliver)
    runner = asyncio.create_task(processor.run())
    try:
        await submitted_records(store, link.ns, 5)
        await asyncio.sleep(0)
        assert await processor.on_deliver_many(link, [receipt_pdu(i) for i in range(5)]) == [ESME_RX_T_APPN] * 5
    finally:
        processor.stop()
        await runner
        await redis.aclose()


async def test_every_session_of_an_smsc_is_bound_and_used(settings: Settings) -> None:
    ctx = context("task-sessions")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(120)])
    ids = [message_id("task-sessions", 0, i) for i in range(120)]
    async with simulator(dlr_delay=0.05) as sim:
        config = config_for(sim.smpp_port, {"sessions": 3, "window": 16}, chunk_size=16)
        async with Worker(settings, config) as worker:
            await wait_until(lambda: sim.stats()["sessions"]["bound"] == 3)
            (link,) = worker.role.pool.links.values()
            assert link.bound_sessions == 3
            await produce(settings, [batch])
            fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in ids))
            assert all(session.submits > 0 for session in sim.sessions)  # the submits spread over the sessions
    assert {fold.final(m).status for m in ids} == {dispatch_pb2.DELIVERY_STATUS_DELIVERED}
    assert sim.duplicates() == []
