"""The sending side end to end on the real Kafka and Redis with the carrier simulator as the SMSC."""

from __future__ import annotations

import pytest

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_common.sms_text import count_segments
from magpie_dispatcher.events import final_event_id, message_id, submitted_event_id
from magpie_dispatcher.render import render_text
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

LONG_TEMPLATE = (
    "尊敬的客户，您本月的账单已经生成，本期应还金额为${2}元，最后还款日为${3}。"
    "为避免影响您的信用记录，请在到期日前按时还款。查看账单明细请点击 ${1} 。"
    "如已还款请忽略本消息。感谢您一直以来的支持与信任，祝您生活愉快。回T退订"
)


def everyone_final(msg_ids: list[str]) -> object:
    return lambda fold: all(m in fold.finals for m in msg_ids)


async def test_batch_submitted_then_delivered_with_segments(settings: Settings) -> None:
    short_ctx = context("task-short")
    long_ctx = context("task-long", template=LONG_TEMPLATE)
    short = dispatch_batch(short_ctx, 0, [recipient(i) for i in range(10)])
    long = dispatch_batch(long_ctx, 0, [recipient(100, carrier="CUCC", sms_params=["1,234.56", "2026年1月15日"])])
    long_text = render_text(long_ctx, long.recipients[0])
    assert count_segments(long_text)[1] == 3
    async with simulator(dlr_delay=0.2) as sim:
        async with Worker(settings, config_for(sim.smpp_port)):
            await produce(settings, [short, long])
            ids = [message_id("task-short", 0, i) for i in range(10)] + [message_id("task-long", 0, 100)]
            fold = await collect_delivery(settings, everyone_final(ids), settle_s=0.5)
        assert sim.duplicates() == []
        stats = sim.stats()
    assert stats["accepted"] == 10 + 3
    assert stats["messages"] == 11
    for msg_id in ids:
        assert fold.submitted[msg_id] == {submitted_event_id(msg_id)}
        final = fold.final(msg_id)
        assert final.event_id == final_event_id(msg_id)
        assert final.status == dispatch_pb2.DELIVERY_STATUS_DELIVERED
        assert final.result_code == "DELIVRD"
    long_events = [e for e in fold.events if e.msg_id == ids[-1]]
    assert {e.segments for e in long_events} == {3}
    assert {e.carrier for e in long_events} == {"CUCC"}
    short_events = [e for e in fold.events if e.msg_id in ids[:-1]]
    assert {e.segments for e in short_events} == {1}
    submitted = next(e for e in fold.events if e.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED and e.index == 3)
    assert submitted.submitted_at_ms > 0 and submitted.carrier_msg_id
    assert submitted.tenant_id == "tenant-1" and submitted.task_id == "task-short" and submitted.mobile
    # What the handset got: the rendered texts, the long one reassembled from its 3 UDH parts.
    messages = {m["destination"]: m for m in sim.messages()}
    assert messages["8613800000100"]["text"] == long_text
    assert messages["8613800000100"]["parts"] == 3
    assert (
        messages["8613800000003"]["text"] == "【喜鹊】您的订单已发货，查看详情 https://mgp.example/c000000003 回T退订"
    )
    assert messages["8613800000003"]["source"] == "10690001"


async def test_undeliverable_messages_end_failed_with_the_carrier_stat(settings: Settings) -> None:
    ctx = context("task-fail")
    batch = dispatch_batch(ctx, 2, [recipient(i) for i in range(40)])
    ids = [message_id("task-fail", 2, i) for i in range(40)]
    async with simulator(failure_rate=0.5, seed=7) as sim:
        async with Worker(settings, config_for(sim.smpp_port)):
            await produce(settings, [batch])
            fold: Fold = await collect_delivery(settings, everyone_final(ids))
        outcome_by_destination = {s["destination_addr"]: s["stat"] for s in sim.submissions()}
    failed = 0
    for i, msg_id in enumerate(ids):
        final = fold.final(msg_id)
        expected = outcome_by_destination[f"86138{i:08d}"]
        if expected == "DELIVRD":
            assert final.status == dispatch_pb2.DELIVERY_STATUS_DELIVERED
        else:
            failed += 1
            assert final.status == dispatch_pb2.DELIVERY_STATUS_FAILED
            assert final.result_code == "UNDELIV"
    assert 5 < failed < 35


async def test_submit_refused_by_the_smsc_fails_the_recipient_without_retry(settings: Settings) -> None:
    ctx = context("task-refused")
    bad = recipient(1)
    bad.msisdn = ""
    bad.mobile = ""  # the simulator refuses an empty destination with ESME_RINVDSTADR
    batch = dispatch_batch(ctx, 0, [recipient(0), bad])
    ids = [message_id("task-refused", 0, i) for i in range(2)]
    async with simulator() as sim:
        async with Worker(settings, config_for(sim.smpp_port)):
            await produce(settings, [batch])
            fold = await collect_delivery(settings, everyone_final(ids), settle_s=0.3)
        assert sim.stats()["refused"] == 1
    assert fold.final(ids[0]).status == dispatch_pb2.DELIVERY_STATUS_DELIVERED
    refused = fold.final(ids[1])
    assert refused.status == dispatch_pb2.DELIVERY_STATUS_FAILED
    assert refused.result_code == "ESME_RINVDSTADR"
    assert ids[1] not in fold.submitted
