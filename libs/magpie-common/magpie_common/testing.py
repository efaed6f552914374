"""Helpers for tests that talk to the real broker: read what a service produced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message

from magpie_common.config import Settings
from magpie_common.topics import Topic, topic_name

M = TypeVar("M", bound=Message)


async def collect(
    settings: Settings,
    topic: Topic,
    message_type: type[M],
    *,
    until: Callable[[list[M]], bool],
    timeout_s: float = 30.0,
) -> list[M]:
    """Read ``topic`` from the beginning (no group, no commits) until ``until(messages)`` holds or time runs out."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, topic),
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    messages: list[M] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not until(messages):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"collected {len(messages)} {message_type.__name__} from {topic.name}")
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                for record in records:
                    message = message_type()
                    message.ParseFromString(record.value or b"")
                    messages.append(message)
        return messages
    finally:
        await consumer.stop()
