"""The consumer loop on the real broker: outputs before commits, dead letters, idempotent replay."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from magpie.v1 import billing_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, Decoded, EventProducer, PoisonMessage, Route
from magpie_common.testing import collect
from magpie_common.topics import DLQ, RECIPIENTS, TASK_ACCEPTED

pytestmark = pytest.mark.integration


def batch(task: str, no: int) -> task_pb2.RecipientBatch:
    msg = task_pb2.RecipientBatch(batch_no=no)
    msg.ctx.task_id = task
    msg.recipients.add(index=no, mobile=f"1380013{no:04d}")
    return msg


async def test_handler_outputs_then_commit_and_dead_letters(settings: Settings) -> None:
    producer = EventProducer(settings, "test")
    await producer.start()
    seen: list[int] = []

    async def handler(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        for item in items:
            if item.message.batch_no == 13:
                raise PoisonMessage("unlucky batch")
            if item.message.batch_no == 14:
                raise ValueError("a bug that never heals")
            seen.append(item.message.batch_no)
            accepted = task_pb2.TaskAccepted(ctx=item.message.ctx, batch_count=item.message.batch_no)
            await producer.send(TASK_ACCEPTED, item.message.ctx.task_id, accepted)

    for no in range(20):
        await producer.send(RECIPIENTS, "task-1", batch("task-1", no))
    await producer.send(RECIPIENTS, "task-1", b"\xff\xff not a protobuf")
    loop = ConsumerLoop(
        settings,
        group_id="loop-test",
        topic=RECIPIENTS,
        message_type=task_pb2.RecipientBatch,
        handler=handler,
        producer=producer,
        max_retries=1,
        retry_backoff_s=0.01,
    )
    runner = asyncio.create_task(loop.run())
    outputs = await collect(
        settings, TASK_ACCEPTED, task_pb2.TaskAccepted, until=lambda m: len({o.batch_count for o in m}) >= 18
    )
    letters = await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda m: len(m) >= 3)
    loop.stop()
    await asyncio.wait_for(runner, 10)

    # At-least-once: records of a failed batch are retried one by one, so an output may repeat (consumers dedupe).
    assert {o.batch_count for o in outputs} == {n for n in range(20) if n not in (13, 14)}
    errors = sorted(letter.error for letter in letters)
    assert any("poison" in e for e in errors)
    assert any("never heals" in e for e in errors)
    assert any("undecodable" in e for e in errors)
    assert all(letter.consumer_group == settings.topic_prefix + "loop-test" for letter in letters)

    # Everything was committed: a new loop in the same group sees nothing more.
    seen.clear()
    loop2 = ConsumerLoop(
        settings,
        group_id="loop-test",
        topic=RECIPIENTS,
        message_type=task_pb2.RecipientBatch,
        handler=handler,
        producer=producer,
    )
    runner2 = asyncio.create_task(loop2.run())
    await asyncio.sleep(3)
    loop2.stop()
    await asyncio.wait_for(runner2, 10)
    await producer.stop()
    assert seen == []


async def test_uncommitted_batch_is_replayed_to_the_next_owner(settings: Settings) -> None:
    producer = EventProducer(settings, "test")
    await producer.start()
    for no in range(5):
        await producer.send(RECIPIENTS, f"task-{no}", batch(f"task-{no}", no))

    failed_once = asyncio.Event()

    async def failing(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        failed_once.set()
        raise ConnectionError("database unreachable")  # transient: retried until the service stops

    loop = ConsumerLoop(
        settings,
        group_id="replay",
        topic=RECIPIENTS,
        message_type=task_pb2.RecipientBatch,
        handler=failing,
        producer=producer,
        retry_backoff_s=0.01,
    )
    runner = asyncio.create_task(loop.run())
    await asyncio.wait_for(failed_once.wait(), 60)  # joined the group, fetched, and is retrying
    await asyncio.sleep(0.5)
    loop.stop()
    await asyncio.wait_for(runner, 15)

    got: list[int] = []

    async def healthy(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        got.extend(i.message.batch_no for i in items)

    loop2 = ConsumerLoop(
        settings,
        group_id="replay",
        topic=RECIPIENTS,
        message_type=task_pb2.RecipientBatch,
        handler=healthy,
        producer=producer,
    )
    runner2 = asyncio.create_task(loop2.run())
    for _ in range(600):  # a group join may take a broker's rebalance delay
        if len(got) >= 5:
            break
        await asyncio.sleep(0.1)
    loop2.stop()
    await asyncio.wait_for(runner2, 10)
    await producer.stop()
    assert sorted(got) == [0, 1, 2, 3, 4]
    # Nothing was dead-lettered: an outage is not the data's fault.
    with pytest.raises(TimeoutError):
        await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda m: len(m) >= 1, timeout_s=1.5)


async def test_one_consumer_routes_several_topics_to_their_handlers(settings: Settings) -> None:
    producer = EventProducer(settings, "test")
    await producer.start()
    for no in range(12):
        await producer.send(RECIPIENTS, f"task-{no % 3}", batch(f"task-{no % 3}", no))
    for no in range(4):
        await producer.send(TASK_ACCEPTED, f"task-{no}", task_pb2.TaskAccepted(batch_count=no))
    recipients: list[list[int]] = []
    accepted: list[int] = []

    async def on_recipients(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        recipients.append([i.message.batch_no for i in items])

    async def on_accepted(items: Sequence[Decoded[task_pb2.TaskAccepted]]) -> None:
        accepted.extend(i.message.batch_count for i in items)

    loop: ConsumerLoop[task_pb2.RecipientBatch] = ConsumerLoop(
        settings,
        group_id="routes",
        producer=producer,
        routes=[
            Route(RECIPIENTS, task_pb2.RecipientBatch, on_recipients, max_records=2),
            Route(TASK_ACCEPTED, task_pb2.TaskAccepted, on_accepted, max_records=100),
        ],
    )
    runner = asyncio.create_task(loop.run())
    for _ in range(600):
        if sum(map(len, recipients)) >= 12 and len(accepted) >= 4:
            break
        await asyncio.sleep(0.1)
    loop.stop()
    await asyncio.wait_for(runner, 15)
    assert sorted(n for call in recipients for n in call) == list(range(12))
    assert max(map(len, recipients)) <= 2  # each handler call gets at most its route's max_records
    assert sorted(accepted) == [0, 1, 2, 3]

    # Committed after the handlers: the same group starts where it stopped.
    again: list[int] = []

    async def count(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        again.extend(i.message.batch_no for i in items)

    await producer.send(RECIPIENTS, "task-9", batch("task-9", 99))
    loop2: ConsumerLoop[task_pb2.RecipientBatch] = ConsumerLoop(
        settings,
        group_id="routes",
        producer=producer,
        routes=[
            Route(RECIPIENTS, task_pb2.RecipientBatch, count),
            Route(TASK_ACCEPTED, task_pb2.TaskAccepted, on_accepted),
        ],
    )
    runner2 = asyncio.create_task(loop2.run())
    for _ in range(600):
        if again:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    loop2.stop()
    await asyncio.wait_for(runner2, 15)
    await producer.stop()
    assert again == [99]


def test_a_loop_takes_one_topic_or_routes() -> None:
    async def nothing(items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        return None

    settings = Settings(topic_prefix="x.")
    with pytest.raises(ValueError):
        ConsumerLoop(settings, group_id="g", producer=None, topic=RECIPIENTS)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ConsumerLoop(
            settings,
            group_id="g",
            producer=None,  # type: ignore[arg-type]
            topic=RECIPIENTS,
            message_type=task_pb2.RecipientBatch,
            handler=nothing,
            routes=[Route(RECIPIENTS, task_pb2.RecipientBatch, nothing)],
        )
    with pytest.raises(ValueError):
        ConsumerLoop(
            settings,
            group_id="g",
            producer=None,  # type: ignore[arg-type]
            routes=[Route(RECIPIENTS, task_pb2.RecipientBatch, nothing)] * 2,
        )
