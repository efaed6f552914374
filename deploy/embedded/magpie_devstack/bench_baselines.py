"""What the bare infrastructure does on its own, measured in the same run as the campaign, so the campaign's rate
has a ceiling to be compared with:

- ``broker_baseline``: raw aiokafka, one producer (acks=all, the services' batching settings) and one consumer
  running together on a topic of its own, records of the sizes the campaign's batch records had; records/s from
  the first send to the last record consumed
- ``smpp_baseline``: a bare ``magpie_common.smpp.SmppClient`` (windowed, one transceiver session, an account of
  its own so no receipt reaches the dispatcher) submitting the texts the campaign sent; submit_sm/s from the
  first submit to the last submit_sm_resp, then its receipts awaited
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from magpie_common.config import Settings
from magpie_common.smpp import ESME_ROK, DeliverSm, SmppClient, build_submit_sms

BASELINE_TOPIC = "bench.baseline"
BASELINE_PARTITIONS = 6


def replay_sizes(samples: Sequence[int], count: int) -> list[int]:
    """``count`` record sizes cycling through ``samples`` (the campaign's observed sizes)."""
    if not samples:
        raise ValueError("no record sizes to replay")
    return [samples[i % len(samples)] for i in range(count)]


async def broker_baseline(settings: Settings, sizes: Sequence[int], *, timeout_s: float) -> dict[str, Any]:
    topic = settings.topic_prefix + BASELINE_TOPIC
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())  # type: ignore[arg-type]
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(topic, num_partitions=BASELINE_PARTITIONS, replication_factor=1)])
        while topic not in set(await admin.list_topics()):
            await asyncio.sleep(0.2)
        return await _produce_consume(settings, topic, sizes, timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


async def _produce_consume(settings: Settings, topic: str, sizes: Sequence[int], timeout_s: float) -> dict[str, Any]:
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        client_id="magpie-bench-baseline",
        acks="all",
        enable_idempotence=getattr(settings, "kafka_enable_idempotence", False),
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        client_id="magpie-bench-baseline",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    await producer.start()
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(BASELINE_PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    payloads = {size: b"x" * size for size in set(sizes)}
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        while consumed < len(sizes):
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            consumed += sum(len(records) for records in batches.values())

    try:
        started = time.monotonic()
        reader = asyncio.create_task(consume())
        pending = [
            await producer.send(topic, payloads[size], key=str(i).encode(), partition=i % BASELINE_PARTITIONS)
            for i, size in enumerate(sizes)
        ]
        await asyncio.gather(*pending)
        produced_s = time.monotonic() - started
        await asyncio.wait_for(reader, timeout_s)
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "records": len(sizes),
        "mean_record_bytes": round(sum(sizes) / len(sizes)),
        "produce_seconds": round(produced_s, 3),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(sizes) / elapsed, 1),
        "mb_per_s": round(sum(sizes) / elapsed / 1e6, 2),
    }


async def smpp_baseline(
    host: str,
    port: int,
    system_id: str,
    password: str,
    texts: Sequence[str],
    messages: int,
    *,
    window: int,
    source: str,
    timeout_s: float,
) -> dict[str, Any]:
    if not texts:
        raise ValueError("no texts to submit")
    receipts = 0
    all_receipts = asyncio.Event()
    pdus = [
        pdu
        for i in range(messages)
        for pdu in build_submit_sms(source, f"86170{i:08d}", texts[i % len(texts)], reference=i % 256)
    ]

    async def on_deliver(pdu: DeliverSm) -> int:
        nonlocal receipts
        if pdu.is_delivery_receipt:
            receipts += 1
            if receipts >= len(pdus):
                all_receipts.set()
        return ESME_ROK

    client = SmppClient(host, port, system_id, password, window=window, on_deliver=on_deliver)
    await client.connect_and_bind()
    statuses: dict[int, int] = {}
    queue = iter(pdus)

    async def worker() -> None:
        for pdu in queue:
            resp = await client.submit(pdu)
            statuses[resp.command_status] = statuses.get(resp.command_status, 0) + 1

    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(window))), timeout_s)
        elapsed = time.monotonic() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_receipts.wait(), timeout_s)
        receipts_s = time.monotonic() - started
    finally:
        await client.unbind_and_close()
    return {
        "messages": messages,
        "submits": len(pdus),
        "window": window,
        "submit_status": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 3),
        "submits_per_s": round(len(pdus) / elapsed, 1),
        "messages_per_s": round(messages / elapsed, 1),
        "receipts": receipts,
        "receipts_seconds": round(receipts_s, 3),
    }
