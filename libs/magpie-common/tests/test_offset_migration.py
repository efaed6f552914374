"""Offset migration (``magpie_common.offset_migration``): a group that replaces per-topic groups of an earlier
version starts where they stopped, and only partitions without a commit of their own are seeded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from magpie.v1 import template_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, Decoded, EventProducer
from magpie_common.offset_migration import adopt_legacy_offsets
from magpie_common.topics import TEMPLATE_REVIEWED, topic_name

pytestmark = pytest.mark.integration

NEW_GROUP = "merged"
LEGACY_GROUPS = {"old-reviews": TEMPLATE_REVIEWED}


async def _committed(settings: Settings, group: str, partitions: list[TopicPartition]) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        group_id=settings.topic_prefix + group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        return {tp.partition: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def test_the_new_group_starts_where_the_legacy_groups_stopped(settings: Settings) -> None:
    producer = EventProducer(settings, "offset-migration-tests")
    await producer.start()
    try:
        for i in range(9):
            message = template_pb2.TemplateReviewed(subject_id=f"s{i}", revision=1)
            await producer.send(TEMPLATE_REVIEWED, f"s{i}", message)
        # The group of the earlier version consumes (and commits) all nine decisions.
        seen: list[Decoded[template_pb2.TemplateReviewed]] = []
        all_seen = asyncio.Event()

        async def handle(batch: Sequence[Decoded[template_pb2.TemplateReviewed]]) -> None:
            seen.extend(batch)
            if len(seen) >= 9:
                all_seen.set()

        legacy = ConsumerLoop(
            settings,
            group_id="old-reviews",
            topic=TEMPLATE_REVIEWED,
            message_type=template_pb2.TemplateReviewed,
            handler=handle,
            producer=producer,
        )
        running = asyncio.create_task(legacy.run())
        await asyncio.wait_for(all_seen.wait(), 30)
        legacy.stop()
        await running
    finally:
        await producer.stop()
    partitions = [
        TopicPartition(topic_name(settings, TEMPLATE_REVIEWED), p) for p in range(TEMPLATE_REVIEWED.partitions)
    ]
    old = await _committed(settings, "old-reviews", partitions)
    assert sum(offset or 0 for offset in old.values()) == 9

    seeded = await adopt_legacy_offsets(settings, NEW_GROUP, LEGACY_GROUPS)
    assert seeded == sum(1 for offset in old.values() if offset is not None)
    assert await _committed(settings, NEW_GROUP, partitions) == old
    # Only partitions without a commit of their own are seeded: a second start changes nothing.
    assert await adopt_legacy_offsets(settings, NEW_GROUP, LEGACY_GROUPS) == 0
