"""Helpers for tests that talk to the real broker: read what a service produced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message

from magpie_common.config import Settings
from magpie_common.topics import Topic, topic_name

if TYPE_CHECKING:
    import httpx

M = TypeVar("M", bound=Message)


async def wait_ready(http: httpx.AsyncClient, url: str = "/readyz", *, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll a readiness endpoint until it answers 200 and return its checks; on timeout, raise with the last answer.

    Readiness is eventually true (a consumer loop is ready once its consumer started, MongoDB once a ping answers
    within 2 s): a test that asserts it once, on a loaded machine, asserts a race.
    """
    import httpx

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = "no answer"
    while True:
        try:
            response = await http.get(url)
            if response.status_code == 200:
                checks: dict[str, Any] = response.json()["checks"]
                return checks
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if loop.time() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s} s: {last}")
        await asyncio.sleep(0.1)


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
