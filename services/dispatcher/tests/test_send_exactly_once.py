"""Exactly-once submission: redelivered batches, a dispatcher killed mid-batch, unanswered submits, restarts."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_dispatcher.events import message_id, submitted_event_id
from magpie_dispatcher.testing import (
    Fold,
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

DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED
FAILED = dispatch_pb2.DELIVERY_STATUS_FAILED


def all_final(msg_ids: list[str]) -> object:
    return lambda fold: all(m in fold.finals for m in msg_ids)


def assert_one_final_each(fold: Fold, msg_ids: list[str]) -> None:
    for msg_id in msg_ids:
        assert len(fold.finals[msg_id]) == 1, f"{msg_id}: final event ids {sorted(fold.finals[msg_id])}"
        assert len(fold.final_contents(msg_id)) == 1, f"{msg_id}: different final events"


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_redelivered_batch_is_not_sent_again(settings: Settings) -> None:
    ctx = context("task-redeliver")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(30)])
    ids = [message_id("task-redeliver", 0, i) for i in range(30)]
    async with simulator(dlr_delay=0.1) as sim:
        async with Worker(settings, config_for(sim.smpp_port)):
            await produce(settings, [batch, batch])  # shortlink redelivery: the same record twice
            fold = await collect_delivery(settings, all_final(ids))
            await produce(settings, [batch])  # and once more after everything is final
            fold = await collect_delivery(settings, lambda f: sum(e.status == 1 for e in f.events) >= 90, settle_s=0.5)
        assert sim.duplicates() == []
        assert sim.stats()["accepted"] == 30
    assert Counter(e.status for e in fold.events)[dispatch_pb2.DELIVERY_STATUS_SUBMITTED] == 90
    for msg_id in ids:
        assert fold.submitted[msg_id] == {submitted_event_id(msg_id)}
        assert fold.final(msg_id).status == DELIVERED
    assert_one_final_each(fold, ids)
    # The re-emitted SUBMITTED events are identical (same id, carrier id, submission time).
    for msg_id in ids[:3]:
        assert len({e.SerializeToString() for e in fold.events if e.msg_id == msg_id and e.status == 1}) == 1


async def test_killed_mid_batch_restart_sends_nothing_twice_and_finalises_everyone(settings: Settings) -> None:
    ctx = context("task-crash")
    batches = [dispatch_batch(ctx, b, [recipient(b * 100 + i) for i in range(60)], 6) for b in range(6)]
    ids = [message_id("task-crash", b, b * 100 + i) for b in range(6) for i in range(60)]
    async with simulator(submit_latency=0.3, dlr_delay=0.3) as sim:
        config = config_for(sim.smpp_port, chunk_size=16, chunks_in_flight=2, in_doubt_grace_s=2.0)
        first = await Worker(settings, config).start()
        await produce(settings, batches)
        await wait_for(lambda: sim.stats()["accepted"] >= 50)
        await first.crash()  # mid-batch: submits outstanding, nothing committed, no receipt answered
        accepted_at_crash = sim.stats()["accepted"]
        assert accepted_at_crash < len(ids)
        async with Worker(settings, config):
            fold = await collect_delivery(settings, all_final(ids), timeout_s=60, settle_s=1.0)
        reached_smsc = {s["destination_addr"] for s in sim.submissions()}
        assert sim.duplicates() == []
        assert sim.stats()["accepted"] == len(reached_smsc)
        assert sim.stats()["receipts"]["pending"] == 0
    assert_one_final_each(fold, ids)
    statuses = Counter()
    for b in range(6):
        for i in range(60):
            index = b * 100 + i
            final = fold.final(message_id("task-crash", b, index))
            if f"86138{index:08d}" in reached_smsc:
                # Sent: its true outcome, from its receipt (matched by id, or by destination when in doubt).
                assert final.status == DELIVERED, final
            else:
                # Claimed but never written before the crash: in doubt, not re-sent.
                assert (final.status, final.result_code) == (FAILED, "IN_DOUBT"), final
            statuses[final.result_code] += 1
    assert statuses["IN_DOUBT"] <= 16 * 2 * 6
    assert statuses["DELIVRD"] == len(reached_smsc)


async def test_unanswered_submits_are_in_doubt_and_resolved_by_their_receipts(settings: Settings) -> None:
    ctx = context("task-timeout-resp")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(8)])
    ids = [message_id("task-timeout-resp", 0, i) for i in range(8)]
    async with simulator(submit_latency=1.5, dlr_delay=0.1) as sim:
        config = config_for(sim.smpp_port, {"response_timeout_s": 0.3})
        async with Worker(settings, config):
            await produce(settings, [batch])
            fold = await collect_delivery(settings, all_final(ids), settle_s=0.5)
        assert sim.duplicates() == []
        assert sim.stats()["accepted"] == 8
    for msg_id in ids:
        assert msg_id not in fold.submitted  # no submit_sm_resp: never known as submitted
        assert fold.final(msg_id).status == DELIVERED  # the receipt, matched by destination
    assert_one_final_each(fold, ids)


async def test_receipts_arriving_after_a_restart_are_correlated(settings: Settings) -> None:
    ctx = context("task-restart")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(20)])
    ids = [message_id("task-restart", 0, i) for i in range(20)]
    async with simulator(dlr_delay=2.0, failure_rate=0.3, seed=3) as sim:
        config = config_for(sim.smpp_port)
        async with Worker(settings, config):
            await produce(settings, [batch])
            fold = await collect_delivery(settings, lambda f: all(m in f.submitted for m in ids))
            assert not fold.finals
        assert sim.stats()["receipts"]["delivered"] == 0  # none arrived before the stop
        async with Worker(settings, config):
            fold = await collect_delivery(settings, all_final(ids), settle_s=0.3)
        stats = sim.stats()
        stat_by_destination = {s["destination_addr"]: s["stat"] for s in sim.submissions()}
    assert stats["receipts"]["delivered"] == 20
    assert_one_final_each(fold, ids)
    for i, msg_id in enumerate(ids):
        final = fold.final(msg_id)
        assert final.result_code == stat_by_destination[f"86138{i:08d}"]
        assert final.segments == 1 and final.carrier_msg_id and final.submitted_at_ms > 0


async def test_smsc_restart_reconnects_and_keeps_sending(settings: Settings) -> None:
    ctx = context("task-reconnect")
    first_ids = [message_id("task-reconnect", 0, i) for i in range(5)]
    second_ids = [message_id("task-reconnect", 1, 10 + i) for i in range(5)]
    async with simulator() as sim:
        port = sim.smpp_port
        worker = await Worker(settings, config_for(port)).start()
        try:
            await produce(settings, [dispatch_batch(ctx, 0, [recipient(i) for i in range(5)])])
            await collect_delivery(settings, all_final(first_ids))
        except BaseException:
            await worker.stop()
            raise
    try:
        await wait_for(lambda: not worker.role.pool.all_bound, 5)  # the SMSC went away
        async with simulator(smpp_port=port) as sim2:
            assert await worker.role.pool.wait_bound(10)  # reconnected and bound again
            await produce(settings, [dispatch_batch(ctx, 1, [recipient(10 + i) for i in range(5)])])
            fold = await collect_delivery(settings, all_final(second_ids))
            assert sim2.stats()["accepted"] == 5
    finally:
        await worker.stop()
    assert all(fold.final(m).status == DELIVERED for m in second_ids)
