"""The minting worker on the real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from magpie.v1 import common_pb2, dispatch_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, DISPATCH, topic_name
from magpie_shortlink.codes import BASE62_ALPHABET, derive_code
from magpie_shortlink.config import SERVICE_NAME, ShortlinkConfig
from magpie_shortlink.links import LinkRecord
from magpie_shortlink.minting import Minter
from magpie_shortlink.wiring import Components, build

pytestmark = pytest.mark.integration

BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]

SMART = common_pb2.ROUTE_SMART
DEGRADED = common_pb2.ROUTE_DEGRADED

MIXED = [
    (0, SMART, {"name": "Li Lei", "amount": "50"}),
    (1, common_pb2.ROUTE_SKIPPED, {"name": "skip"}),
    (2, DEGRADED, {"name": "Han Meimei", "amount": "20"}),
    (3, common_pb2.ROUTE_INVALID, {}),
    (4, common_pb2.ROUTE_VMS, {"name": "vms"}),
    (5, SMART, {"name": "Wang", "amount": "5"}),
]


async def dispatch_records(settings: Settings, count: int, timeout_s: float = 30) -> list[tuple[str, bytes]]:
    """(key, value) of the first ``count`` DISPATCH records."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, DISPATCH), **settings.kafka_client_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[tuple[str, bytes]] = []
    try:
        while len(found) < count:
            batch = await consumer.getmany(timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for records in batch.values():
                found.extend((r.key.decode(), r.value) for r in records)
    finally:
        await consumer.stop()
    return found


async def test_mints_only_sendable_recipients(
    running: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    secret = running.config.secret.encode()
    batch = make_batch(task_id="task-mix", batch_no=3, batch_count=5, recipients=MIXED)
    await running.producer.send(CLASSIFIED, "task-mix:3", batch)

    (out,) = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 1)
    assert out.ctx.task_id == "task-mix" and out.batch_no == 3 and out.batch_count == 5
    assert out.meta.event_id == stable_id("shortlink.dispatch", "tenant-1", "task-mix", 3)
    assert out.meta.producer == SERVICE_NAME and out.meta.trace_id == "trace-1"
    assert [r.index for r in out.recipients] == [0, 2, 5]
    assert [r.route for r in out.recipients] == [SMART, DEGRADED, SMART]
    codes = [r.short_code for r in out.recipients]
    assert len(set(codes)) == 3
    for recipient, (index, _, params) in zip(out.recipients, [MIXED[0], MIXED[2], MIXED[5]], strict=True):
        assert recipient.index == index
        assert len(recipient.short_code) == 10 and set(recipient.short_code) <= set(BASE62_ALPHABET)
        assert recipient.short_code == derive_code(secret, "tenant-1", "task-mix", index)
        assert recipient.short_url == batch.ctx.link_domain + recipient.short_code
        assert dict(recipient.params) == params
        assert list(recipient.sms_params) == [f"value-{index}", "second"]  # the SMS template's other variables
        assert recipient.msisdn == f"861380013{index:04d}" and recipient.mobile == f"1380013{index:04d}"
        assert recipient.carrier == "CMCC"

    ((key, _),) = await dispatch_records(settings, 1)
    assert key == "task-mix:3"

    # Stored in MongoDB (one document per link) and hot in Redis with the link's expiry.
    docs = {d["_id"]: d async for d in running.store.links.find({})}
    assert set(docs) == set(codes)
    first = docs[codes[0]]
    assert first["tenant_id"] == "tenant-1" and first["task_id"] == "task-mix" and first["batch_no"] == 3
    assert first["index"] == 0 and first["route"] == "SMART" and first["tpl_id"] == "100000001"
    assert first["target_url"] == f"{batch.ctx.link_domain}h5/{codes[0]}"
    assert first["aim_url"] == "https://customer.example/aim"
    assert first["expires_at"].timestamp() * 1000 == pytest.approx(batch.ctx.link_expires_at_ms, abs=1)
    assert docs[codes[1]]["route"] == "DEGRADED"
    indexes = await running.store.links.index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == running.config.expired_retention_s
    for code in codes:
        raw = await running.redis.get(settings.rkey("link", code))
        assert raw is not None
        assert LinkRecord.from_cache(code, raw) == LinkRecord.from_document(docs[code])
        ttl_ms = await running.redis.pttl(settings.rkey("link", code))
        assert 0 < ttl_ms <= batch.ctx.link_expires_at_ms - now_ms() + 1000


async def test_batch_without_sendable_recipients_produces_nothing(
    running: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    nothing = make_batch(
        task_id="task-n", batch_no=0, recipients=[(0, common_pb2.ROUTE_SKIPPED, {}), (1, common_pb2.ROUTE_VMS, {})]
    )
    marker = make_batch(task_id="task-n", batch_no=1, recipients=[(5, SMART, {"a": "b"})])
    # Same key: one partition, so once the second batch's output exists the first one has been handled.
    await running.producer.send_many([(CLASSIFIED, "task-n", nothing), (CLASSIFIED, "task-n", marker)])
    out = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 1)
    assert [(m.batch_no, [r.index for r in m.recipients]) for m in out] == [(1, [5])]
    assert len(await dispatch_records(settings, 2, timeout_s=2)) == 1
    assert await running.store.links.count_documents({}) == 1


async def test_redelivery_mints_the_same_codes(
    running: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    batch = make_batch(task_id="task-r", batch_no=0, recipients=MIXED)
    minted_before = REGISTRY.get_sample_value("magpie_shortlink_links_minted_total", {"route": "SMART"}) or 0
    await running.producer.send(CLASSIFIED, "task-r:0", batch)
    await running.producer.send(CLASSIFIED, "task-r:0", batch)  # a redelivery
    first, second = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 2)
    assert first.meta.event_id == second.meta.event_id  # the dispatcher deduplicates on it
    first.meta.ClearField("occurred_at_ms")
    second.meta.ClearField("occurred_at_ms")
    assert first == second
    assert [r.short_code for r in first.recipients] == [r.short_code for r in second.recipients]
    assert await running.store.links.count_documents({}) == 3
    minted_after = REGISTRY.get_sample_value("magpie_shortlink_links_minted_total", {"route": "SMART"}) or 0
    assert minted_after - minted_before == 2  # only new links count


async def test_generated_secret_survives_restarts(settings: Settings, make_batch: BatchFactory) -> None:
    batch = make_batch(task_id="task-s", recipients=[(0, SMART, {"x": "1"}), (1, DEGRADED, {"x": "2"})])
    codes: list[list[str]] = []
    for _ in range(2):  # two processes in a row, no MAGPIE_SHORTLINK_SECRET
        components = await build(settings, ShortlinkConfig(secret=""))
        try:
            assert components.minter is not None
            out = await components.minter.mint_batch(batch)
            assert out is not None
            codes.append([r.short_code for r in out.recipients])
            assert await components.store.db["settings"].count_documents({}) == 1
        finally:
            await components.close()
    assert codes[0] == codes[1]
    assert codes[0][0] != derive_code(b"shortlink-test-secret", "tenant-1", "task-s", 0)


async def test_collisions_with_other_owners_are_re_derived(
    shortlink: Components, settings: Settings, make_batch: BatchFactory
) -> None:
    """One-character codes (62 possible) force collisions, inside a batch and across tasks."""
    secret = b"collide"
    minter = Minter(
        shortlink.store, shortlink.producer, secret, code_length=1, max_attempts=64, default_validity_s=3600
    )
    a_first = [derive_code(secret, "tenant-1", "task-A", i, length=1) for i in range(12)]
    b_first = [derive_code(secret, "tenant-1", "task-B", i, length=1) for i in range(12)]
    # The preconditions that make this test exercise the collision path:
    assert len(set(b_first)) < len(b_first), "a collision inside task B's batch"
    assert set(a_first) & set(b_first), "task B derives codes task A already owns"

    collisions_before = REGISTRY.get_sample_value("magpie_shortlink_code_collisions_total") or 0
    batch_a = make_batch(task_id="task-A", recipients=[(i, SMART, {"i": str(i)}) for i in range(12)])
    batch_b = make_batch(task_id="task-B", recipients=[(i, DEGRADED, {"i": str(i)}) for i in range(12)])
    out_a = await minter.mint_batch(batch_a)
    out_b = await minter.mint_batch(batch_b)
    assert out_a is not None and out_b is not None
    codes_a = [r.short_code for r in out_a.recipients]
    codes_b = [r.short_code for r in out_b.recipients]
    assert codes_a == a_first  # task A came first and had no collision
    assert len(set(codes_a + codes_b)) == 24  # every recipient has its own code
    assert codes_b != b_first
    collisions = (REGISTRY.get_sample_value("magpie_shortlink_code_collisions_total") or 0) - collisions_before
    assert collisions >= 4

    # Each code belongs to the recipient it was handed to, and the re-derived ones follow the counter suffix.
    docs = {d["_id"]: d async for d in shortlink.store.links.find({})}
    assert len(docs) == 24
    for task, out in (("task-A", out_a), ("task-B", out_b)):
        for recipient in out.recipients:
            doc = docs[recipient.short_code]
            assert (doc["task_id"], doc["index"]) == (task, recipient.index)
            candidates = [
                derive_code(secret, "tenant-1", task, recipient.index, attempt=k, length=1) for k in range(64)
            ]
            assert recipient.short_code in candidates

    # Redelivery after collisions reaches the same codes, through the DispatchBatch the ConsumerLoop would produce.
    await minter.handle([Decoded(record=None, message=batch_b)])  # type: ignore[arg-type]
    (again,) = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 1)
    assert [r.short_code for r in again.recipients] == codes_b
    assert await shortlink.store.links.count_documents({}) == 24


async def test_poison_batch_goes_to_dead_letters(running: Components, settings: Settings) -> None:
    from magpie.v1 import billing_pb2
    from magpie_common.topics import DLQ

    await running.producer.send(CLASSIFIED, "x", resolve_pb2.ClassifiedBatch(batch_no=1))
    (letter,) = await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda m: len(m) >= 1)
    assert letter.consumer_group == settings.topic_prefix + SERVICE_NAME
    assert "poison" in letter.error


async def test_changed_retention_updates_the_ttl_index(settings: Settings) -> None:
    for retention in (3600, 7200):
        components = await build(
            settings, ShortlinkConfig(secret="x", roles=frozenset({"edge"}), expired_retention_s=retention)
        )
        try:
            indexes = await components.store.links.index_information()
            assert indexes["expires_at_ttl"]["expireAfterSeconds"] == retention
        finally:
            await components.close()
