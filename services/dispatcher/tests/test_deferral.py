"""Deferred sends end to end (real Kafka, MongoDB, Redis, the carrier simulator as the SMSC): the marketing window,
scheduled batches across a restart, double releases, cancellation. The dispatcher's clock is a fake one, so
"outside the window" and "the scheduled time has come" happen when the test says so."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from magpie.v1 import common_pb2, dispatch_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import EventProducer
from magpie_common.send_window import SendWindow
from magpie_common.topics import DISPATCH, TASK_CONTROL
from magpie_dispatcher.deferral import CANCELLED, REASON_SCHEDULED, REASON_WINDOW, RELEASED, WAITING, Deferrals
from magpie_dispatcher.events import batch_key, message_id
from magpie_dispatcher.testing import Fold, Worker, collect_delivery, config_for, context, dispatch_batch, recipient
from magpie_dispatcher.testing import simulator as smsc

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED
FAILED = dispatch_pb2.DELIVERY_STATUS_FAILED
TEN_PM = int(datetime(2030, 1, 1, 22, 0, tzinfo=SHANGHAI).timestamp() * 1000)
EIGHT_AM = int(datetime(2030, 1, 2, 8, 0, tzinfo=SHANGHAI).timestamp() * 1000)


class FakeClock:
    """Epoch milliseconds that only move when the test moves them."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def worker(settings: Settings, port: int, clock: FakeClock) -> Worker:
    window = SendWindow.parse()  # the default 08:00-21:00 Asia/Shanghai, against the fake clock
    result = Worker(settings, config_for(port, deferral_interval_s=0.1, marketing_window=window))
    result.role.deferrals.clock = clock
    return result


def ids_of(batch: dispatch_pb2.DispatchBatch) -> list[str]:
    return [message_id(batch.ctx.task_id, batch.batch_no, r.index) for r in batch.recipients]


def all_final(msg_ids: list[str]) -> Callable[[Fold], bool]:
    return lambda fold: all(m in fold.finals for m in msg_ids)


async def send(settings: Settings, records: list[tuple[object, str, object]]) -> None:
    producer = EventProducer(settings, client_id="test-deferral")
    await producer.start()
    try:
        await producer.send_many(records)  # type: ignore[arg-type]
    finally:
        await producer.stop()


async def waiting(deferrals: Deferrals, task_id: str, count: int, timeout_s: float = 20.0) -> list[dict[str, object]]:
    async with asyncio.timeout(timeout_s):
        while True:
            docs = await deferrals.store.waiting(task_id)
            if len(docs) >= count:
                return docs
            await asyncio.sleep(0.05)


async def state_of(deferrals: Deferrals, task_id: str, batch_no: int) -> str:
    doc = await deferrals.store.deferred.find_one({"task_id": task_id, "batch_no": batch_no})
    assert doc is not None
    return str(doc["state"])


async def test_marketing_outside_the_window_waits_and_notifications_behind_it_go_at_once(settings: Settings) -> None:
    clock = FakeClock(TEN_PM)
    marketing_ctx = context("task-mkt")
    marketing_ctx.marketing = True
    promo = dispatch_batch(marketing_ctx, 0, [recipient(i) for i in range(5)])
    notice = dispatch_batch(context("task-ntf"), 0, [recipient(i) for i in range(100, 105)])
    async with smsc(dlr_delay=0.05) as sim:
        async with worker(settings, sim.smpp_port, clock) as w:
            # Same key: the same partition, the marketing batch first. The notification must not wait behind it.
            await send(settings, [(DISPATCH, "same-partition", promo), (DISPATCH, "same-partition", notice)])
            fold = await collect_delivery(settings, all_final(ids_of(notice)), settle_s=0.5)
            assert all(fold.final(m).status == DELIVERED for m in ids_of(notice))
            assert not any(m in fold.submitted or m in fold.finals for m in ids_of(promo))
            (doc,) = await waiting(w.role.deferrals, "task-mkt", 1)
            assert doc["reason"] == REASON_WINDOW and doc["due_ms"] == EIGHT_AM and doc["recipients"] == 5
            assert len(sim.messages()) == 5  # the notification only
            clock.ms = EIGHT_AM - 1  # still night: nothing moves
            await asyncio.sleep(0.4)
            assert await state_of(w.role.deferrals, "task-mkt", 0) == WAITING
            clock.ms = EIGHT_AM  # the window opens: released, then sent
            fold = await collect_delivery(settings, all_final(ids_of(promo) + ids_of(notice)), settle_s=0.3)
            assert await state_of(w.role.deferrals, "task-mkt", 0) == RELEASED
        assert sim.duplicates() == []
        assert len(sim.messages()) == 10
    assert all(fold.final(m).status == DELIVERED for m in ids_of(promo))


async def test_marketing_inside_the_window_is_sent_at_once(settings: Settings) -> None:
    clock = FakeClock(EIGHT_AM + 3_600_000)
    ctx = context("task-day")
    ctx.marketing = True
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(3)])
    async with smsc() as sim, worker(settings, sim.smpp_port, clock) as w:
        await send(settings, [(DISPATCH, batch_key("task-day", 0), batch)])
        fold = await collect_delivery(settings, all_final(ids_of(batch)))
        assert await w.role.deferrals.store.deferred.count_documents({}) == 0
    assert all(fold.final(m).status == DELIVERED for m in ids_of(batch))


async def test_scheduled_batch_survives_a_restart_and_is_released_once(settings: Settings) -> None:
    clock = FakeClock(now_ms())
    ctx = context("task-sched")
    ctx.send_at_ms = clock.ms + 3_600_000
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(20)])
    async with smsc(dlr_delay=0.05) as sim:
        first = await worker(settings, sim.smpp_port, clock).start()
        await send(settings, [(DISPATCH, batch_key("task-sched", 0), batch)])
        (doc,) = await waiting(first.role.deferrals, "task-sched", 1)
        assert doc["reason"] == REASON_SCHEDULED and doc["due_ms"] == ctx.send_at_ms
        await first.crash()  # killed: whatever was in hand is replayed, the stored batch stays
        assert sim.stats()["messages"] == 0
        clock.ms = ctx.send_at_ms + 1
        async with worker(settings, sim.smpp_port, clock) as second:
            fold = await collect_delivery(settings, all_final(ids_of(batch)), settle_s=0.5)
            assert await state_of(second.role.deferrals, "task-sched", 0) == RELEASED
        assert sim.duplicates() == []
        assert sim.stats()["messages"] == 20
    for msg_id in ids_of(batch):
        assert fold.final(msg_id).status == DELIVERED
        assert len(fold.finals[msg_id]) == 1


async def test_a_batch_released_twice_is_sent_once(settings: Settings) -> None:
    clock = FakeClock(now_ms())
    ctx = context("task-twice")
    ctx.send_at_ms = clock.ms + 60_000
    batch = dispatch_batch(ctx, 3, [recipient(i) for i in range(15)])
    async with smsc(dlr_delay=0.05) as sim:
        async with worker(settings, sim.smpp_port, clock) as w:
            deferrals = w.role.deferrals
            assert await deferrals.store.defer(batch, ctx.send_at_ms, REASON_SCHEDULED)
            assert not await deferrals.store.defer(batch, ctx.send_at_ms, REASON_SCHEDULED)  # redelivery: no-op
            # Two replicas racing for the due document: exactly one gets it.
            race = [deferrals.store.claim_due(ctx.send_at_ms, 60_000) for _ in range(6)]
            claims = [c for c in await asyncio.gather(*race) if c is not None]
            assert len(claims) == 1
            # The holder "dies" before marking it released; its lease ends and another dispatcher releases it.
            clock.ms = ctx.send_at_ms
            await deferrals.producer.send(DISPATCH, batch_key("task-twice", 3), batch)
            fold = await collect_delivery(settings, all_final(ids_of(batch)), settle_s=0.3)
            clock.ms = ctx.send_at_ms + 60_001
            await asyncio.wait_for(_until_state(deferrals, "task-twice", 3, RELEASED), 20)
            fold = await collect_delivery(
                settings, lambda f: sum(e.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED for e in f.events) >= 30
            )
            await asyncio.sleep(0.5)
        assert sim.duplicates() == []
        assert sim.stats()["messages"] == 15
    submitted = Counter(e.msg_id for e in fold.events if e.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED)
    assert set(submitted.values()) == {2}  # the second copy re-produced the same SUBMITTED events, nothing else
    for msg_id in ids_of(batch):
        assert len(fold.final_contents(msg_id)) == 1
        assert fold.final(msg_id).status == DELIVERED


async def _until_state(deferrals: Deferrals, task_id: str, batch_no: int, state: str) -> None:
    while await state_of(deferrals, task_id, batch_no) != state:
        await asyncio.sleep(0.05)


def cancel_command(task_id: str, tenant_id: str = "tenant-1") -> task_pb2.TaskControl:
    command = task_pb2.TaskControl(
        tenant_id=tenant_id,
        task_id=task_id,
        command=task_pb2.TASK_COMMAND_CANCEL,
        operator="alice",
        requested_at_ms=now_ms(),
    )
    command.meta.event_id = f"cancel-{task_id}"
    command.meta.tenant_id = tenant_id
    return command


async def test_cancelled_task_ends_cancelled_and_is_never_sent(settings: Settings) -> None:
    clock = FakeClock(now_ms())
    ctx = context("task-cancel")
    ctx.send_at_ms = clock.ms + 3_600_000
    first = dispatch_batch(ctx, 0, [recipient(i) for i in range(10)], batch_count=3)
    second = dispatch_batch(ctx, 1, [recipient(i) for i in range(10, 20)], batch_count=3)
    late = dispatch_batch(ctx, 2, [recipient(i) for i in range(20, 25)], batch_count=3)
    other_tenant = context("task-cancel", tenant_id="tenant-2")  # same task id, another tenant: untouched
    other_tenant.send_at_ms = ctx.send_at_ms
    foreign = dispatch_batch(other_tenant, 7, [recipient(i) for i in range(50, 52)])
    async with smsc() as sim:
        async with worker(settings, sim.smpp_port, clock) as w:
            deferrals = w.role.deferrals
            await send(
                settings,
                [(DISPATCH, batch_key("task-cancel", b.batch_no), b) for b in (first, second, foreign)],
            )
            await waiting(deferrals, "task-cancel", 3)
            await send(settings, [(TASK_CONTROL, "task-cancel", cancel_command("task-cancel"))])
            cancelled_ids = ids_of(first) + ids_of(second)
            fold = await collect_delivery(settings, all_final(cancelled_ids))
            await asyncio.wait_for(_until_state(deferrals, "task-cancel", 0, CANCELLED), 20)
            await asyncio.wait_for(_until_state(deferrals, "task-cancel", 1, CANCELLED), 20)
            assert await state_of(deferrals, "task-cancel", 7) == WAITING  # tenant-2's batch
            # A batch still upstream when the cancel came arrives later: cancelled on arrival, even past its time.
            clock.ms = ctx.send_at_ms + 1
            await send(settings, [(DISPATCH, batch_key("task-cancel", 2), late)])
            fold = await collect_delivery(settings, all_final(cancelled_ids + ids_of(late)), settle_s=0.5)
            # tenant-2's batch is due now: released and sent normally.
            fold = await collect_delivery(settings, all_final(cancelled_ids + ids_of(late) + ids_of(foreign)))
        assert sim.stats()["messages"] == 2
    for msg_id in cancelled_ids + ids_of(late):
        final = fold.final(msg_id)
        assert final.status == FAILED and final.result_code == "CANCELLED"
        assert final.submitted_at_ms == 0 and final.done_at_ms > 0 and final.segments == 0
        assert msg_id not in fold.submitted
    assert {fold.final(m).status for m in ids_of(foreign)} == {DELIVERED}


async def test_cancel_leaves_recipients_already_sent_alone(settings: Settings) -> None:
    clock = FakeClock(now_ms())
    ctx = context("task-sent")
    ctx.send_at_ms = clock.ms - 1_000  # due: sent on arrival
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(4)])
    async with smsc() as sim:
        async with worker(settings, sim.smpp_port, clock) as w:
            await send(settings, [(DISPATCH, batch_key("task-sent", 0), batch)])
            await collect_delivery(settings, all_final(ids_of(batch)))
            await send(settings, [(TASK_CONTROL, "task-sent", cancel_command("task-sent"))])
            await asyncio.wait_for(_until_cancel_recorded(w.role.deferrals, "task-sent"), 20)
            # A late redelivery of the batch after the cancel: cancelled, but every recipient was claimed already.
            assert await w.role.deferrals.route(batch) == "cancelled"
            fold = await collect_delivery(settings, all_final(ids_of(batch)), settle_s=0.5)
        assert sim.stats()["messages"] == 4
    for msg_id in ids_of(batch):
        assert fold.final(msg_id).status == DELIVERED
        assert len(fold.final_contents(msg_id)) == 1


async def _until_cancel_recorded(deferrals: Deferrals, task_id: str) -> None:
    while not await deferrals.store.is_cancelled("tenant-1", task_id):
        await asyncio.sleep(0.05)


async def test_promotion_held_by_the_window_can_be_cancelled(settings: Settings) -> None:
    clock = FakeClock(TEN_PM)
    ctx = context("task-night")
    ctx.marketing = True  # no send time: held only by the window, as the gateway leaves it
    held = dispatch_batch(ctx, 0, [recipient(i) for i in range(3)], batch_count=2)
    later = dispatch_batch(ctx, 1, [recipient(i) for i in range(3, 5)], batch_count=2)
    async with smsc() as sim, worker(settings, sim.smpp_port, clock) as w:
        await send(settings, [(DISPATCH, batch_key("task-night", 0), held)])
        await waiting(w.role.deferrals, "task-night", 1)
        await send(settings, [(TASK_CONTROL, "task-night", cancel_command("task-night"))])
        await asyncio.wait_for(_until_state(w.role.deferrals, "task-night", 0, CANCELLED), 20)
        clock.ms = EIGHT_AM  # the window opens: the batch still upstream at cancel time arrives now
        await send(settings, [(DISPATCH, batch_key("task-night", 1), later)])
        fold = await collect_delivery(settings, all_final(ids_of(held) + ids_of(later)), settle_s=0.5)
        assert sim.stats()["messages"] == 0
    assert {(fold.final(m).status, fold.final(m).result_code) for m in ids_of(held) + ids_of(later)} == {
        (FAILED, "CANCELLED")
    }


async def test_plain_promotion_sms_waits_for_the_window_too(settings: Settings) -> None:
    clock = FakeClock(TEN_PM)
    # A DispatchBatch as the gateway's plain SMS sends build it: no link variable, DEGRADED route, no carrier.
    ctx = context("sms-promo", template="会员日全场五折，${1}前有效。拒收请回复R", link_param=-1)
    ctx.marketing = True
    batch = dispatch_batch(ctx, 0, [])
    for i in range(3):
        batch.recipients.add(
            index=i,
            mobile=f"1370000000{i}",
            msisdn=f"861370000000{i}",
            route=common_pb2.ROUTE_DEGRADED,
            sms_params=["12月31日"],
        )
    async with smsc() as sim, worker(settings, sim.smpp_port, clock) as w:
        await send(settings, [(DISPATCH, batch_key("sms-promo", 0), batch)])
        (doc,) = await waiting(w.role.deferrals, "sms-promo", 1)
        assert doc["reason"] == REASON_WINDOW and doc["due_ms"] == EIGHT_AM
        assert sim.stats()["messages"] == 0
        clock.ms = EIGHT_AM
        fold = await collect_delivery(settings, all_final(ids_of(batch)))
        texts = {m["text"] for m in sim.messages()}
    assert texts == {"【喜鹊】会员日全场五折，12月31日前有效。拒收请回复R"}
    assert {fold.final(m).status for m in ids_of(batch)} == {DELIVERED}
