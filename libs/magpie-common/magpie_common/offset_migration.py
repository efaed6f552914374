"""Carrying the committed offsets of renamed consumer groups over to the group that replaces them.

A service that merges the per-topic consumer groups of an earlier version into one group (``ConsumerLoop`` with
``routes``) would otherwise start that group from ``auto_offset_reset``: ``earliest`` replays every retained record
(harmless for idempotent handlers only while their deduplication records outlive the topic's retention, and a long
catch-up during which new events wait), ``latest`` loses whatever was produced while no instance ran. Instead,
before the consumer starts, every partition for which the new group has no committed offset gets the one the old
group committed for it (offset commits outside a group generation, as a manually assigned consumer makes them).

What a restart of an existing deployment then does: the new group continues exactly where the old groups stopped
(nothing lost, nothing replayed beyond the at-least-once window). While old instances still run (a rolling
upgrade), they keep committing in their own groups after the copy: the records they process meanwhile are
processed again by the new group, which the idempotent handlers make harmless. Two instances seeding at once
write the same offsets; a seed landing after the new group's first commit moves that partition back to the old
group's position, again a harmless replay. A partition the old group never committed starts from
``auto_offset_reset`` (earliest), as before. Once every partition has a commit in the new group this is a few
offset look-ups at start-up and nothing else; the old groups can then be deleted.

Used by the gateway (``magpie_gateway.wiring``) and the dispatcher's receipts role
(``magpie_dispatcher.receipts.wiring``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from magpie_common.config import Settings
from magpie_common.topics import Topic, topic_name

log = logging.getLogger(__name__)


def _consumer(settings: Settings, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        group_id=settings.topic_prefix + group,
        client_id=settings.topic_prefix + group,
        enable_auto_commit=False,
    )


def _partitions(settings: Settings, topic: Topic) -> list[TopicPartition]:
    return [TopicPartition(topic_name(settings, topic), p) for p in range(topic.partitions)]


async def _committed(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer.assign(partitions)
    found = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
    return {tp: offset for tp, offset in zip(partitions, found, strict=True) if offset is not None}


async def _legacy_offsets(settings: Settings, group: str, topic: Topic) -> dict[TopicPartition, int]:
    consumer = _consumer(settings, group)
    await consumer.start()
    try:
        return await _committed(consumer, _partitions(settings, topic))
    finally:
        await consumer.stop()


async def adopt_legacy_offsets(settings: Settings, group: str, legacy: Mapping[str, Topic]) -> int:
    """Give ``group`` the committed offset of the ``legacy`` group (name -> the topic it read) for every partition
    it has none for; returns how many partitions were seeded. Both names are without the deployment's prefix (it
    is added, as ``ConsumerLoop`` does)."""
    consumer = _consumer(settings, group)
    await consumer.start()
    try:
        all_partitions = [tp for topic in legacy.values() for tp in _partitions(settings, topic)]
        current = await _committed(consumer, all_partitions)
        missing = {
            name: topic
            for name, topic in legacy.items()
            if any(tp not in current for tp in _partitions(settings, topic))
        }
        if not missing:
            return 0
        found = await asyncio.gather(*(_legacy_offsets(settings, name, topic) for name, topic in missing.items()))
        seed = {
            tp: OffsetAndMetadata(offset, "")
            for offsets in found
            for tp, offset in offsets.items()
            if tp not in current
        }
        if seed:
            await consumer.commit(seed)
            log.info(
                "consumer group seeded from the committed offsets of its predecessors",
                extra={"group": group, "legacy_groups": sorted(missing), "partitions": len(seed)},
            )
        return len(seed)
    finally:
        await consumer.stop()
