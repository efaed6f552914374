"""The pipeline worker end to end: RecipientBatch on the real broker in, ClassifiedBatch out."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from magpie.v1 import billing_pb2, common_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import stable_id
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, DLQ, RECIPIENTS
from magpie_number_resolver.testing import (
    APP_TOO_OLD,
    CAPABLE_BUTTONS,
    CAPABLE_RENDER,
    OS_TOO_OLD,
    UNKNOWN_MODEL,
    VIVO_CAPABLE,
    VIVO_SWITCH_OFF,
    Running,
    device_csv,
)

pytestmark = pytest.mark.integration

DEVICES = {
    "13800138000": CAPABLE_BUTTONS,
    "13800138001": CAPABLE_RENDER,
    "13800138002": APP_TOO_OLD,
    "13800138003": OS_TOO_OLD,
    "13800138004": UNKNOWN_MODEL,
    "13800138005": VIVO_SWITCH_OFF,
    "13800138006": VIVO_CAPABLE,
}
# (mobile as submitted, route when the fallback is SMS, reason, vendor, buttons, carrier, msisdn)
EXPECTED = [
    ("13800138000", common_pb2.ROUTE_SMART, "", "HUAWEI", True, "CMCC", "8613800138000"),
    ("+86 138-0013-8001", common_pb2.ROUTE_SMART, "", "HUAWEI", False, "CMCC", "8613800138001"),
    ("13800138002", common_pb2.ROUTE_DEGRADED, "APP_TOO_OLD", "HUAWEI", False, "CMCC", "8613800138002"),
    ("13800138003", common_pb2.ROUTE_DEGRADED, "OS_TOO_OLD", "HUAWEI", False, "CMCC", "8613800138003"),
    ("13800138004", common_pb2.ROUTE_DEGRADED, "UNKNOWN_MODEL", "HUAWEI", False, "CMCC", "8613800138004"),
    ("13800138005", common_pb2.ROUTE_DEGRADED, "SWITCH_OFF", "VIVO", False, "CMCC", "8613800138005"),
    ("13800138006", common_pb2.ROUTE_DEGRADED, "VENDOR_NOT_APPROVED", "VIVO", False, "CMCC", "8613800138006"),
    ("18912345678", common_pb2.ROUTE_DEGRADED, "UNKNOWN_DEVICE", "", False, "CTCC", "8618912345678"),
    ("12345678901", common_pb2.ROUTE_INVALID, "INVALID_NUMBER", "", False, "", ""),
    ("1380013800", common_pb2.ROUTE_INVALID, "INVALID_NUMBER", "", False, "", ""),
]
FALLBACKS = {
    "task-sms": (common_pb2.FALLBACK_SMS, common_pb2.ROUTE_DEGRADED),
    "task-skip": (common_pb2.FALLBACK_SKIP, common_pb2.ROUTE_SKIPPED),
    "task-vms": (common_pb2.FALLBACK_VMS, common_pb2.ROUTE_VMS),
    "task-default": (common_pb2.FALLBACK_UNSPECIFIED, common_pb2.ROUTE_DEGRADED),
}


def recipient_batch(task_id: str, fallback: int, batch_no: int = 0) -> task_pb2.RecipientBatch:
    batch = task_pb2.RecipientBatch(
        meta=common_pb2.EventMeta(event_id=f"rb-{task_id}-{batch_no}", tenant_id="tenant-1", trace_id="trace-7"),
        ctx=task_pb2.TaskContext(
            tenant_id="tenant-1",
            task_id=task_id,
            tpl_id="100000001",
            approved_vendors=["HUAWEI", "HONOR"],
            fallback=fallback,  # type: ignore[arg-type]
        ),
        batch_no=batch_no,
        batch_count=3,
    )
    for index, (mobile, *_rest) in enumerate(EXPECTED):
        batch.recipients.add(
            index=100 * batch_no + index,
            mobile=mobile,
            params={"name": f"user{index}", "amount": "9.90"},
            custom_url=f"https://shop.example/p/{index}" if index % 2 else "",
            sms_params=[f"v{index}", "fixed"],
        )
    return batch


async def seed(service: Running) -> None:
    response = await service.client.post(
        "/internal/devices/import", content=device_csv(DEVICES), headers={"Content-Type": "text/csv"}
    )
    assert response.json()["imported"] == len(DEVICES)
    await service.client.put("/internal/portability/13800138003", json={"carrier": "CUCC"})


def check_batch(out: resolve_pb2.ClassifiedBatch, fallback_route: int) -> None:
    assert out.ctx.task_id in FALLBACKS
    assert out.meta.event_id == stable_id("classified", out.ctx.task_id, out.batch_no)
    assert (out.meta.tenant_id, out.meta.producer, out.meta.trace_id) == ("tenant-1", "number-resolver", "trace-7")
    assert (out.batch_count, out.ctx.tpl_id, list(out.ctx.approved_vendors)) == (3, "100000001", ["HUAWEI", "HONOR"])
    assert len(out.recipients) == len(EXPECTED)
    for index, (recipient, expected) in enumerate(zip(out.recipients, EXPECTED, strict=True)):
        mobile, route, reason, vendor, buttons, carrier, msisdn = expected
        if route == common_pb2.ROUTE_DEGRADED:
            route = fallback_route
        if mobile == "13800138003":
            carrier = "CUCC"  # the portability override wins over the CMCC segment
        got = (recipient.mobile, recipient.route, recipient.reason, recipient.vendor, recipient.buttons)
        assert got == (mobile, route, reason, vendor, buttons), f"recipient {index}"
        assert (recipient.carrier, recipient.msisdn) == (carrier, msisdn), f"recipient {index}"
        assert recipient.index == 100 * out.batch_no + index
        assert dict(recipient.params) == {"name": f"user{index}", "amount": "9.90"}
        assert list(recipient.sms_params) == [f"v{index}", "fixed"]
        assert recipient.custom_url == (f"https://shop.example/p/{index}" if index % 2 else "")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_route_and_reason_for_every_fallback(settings: Settings, service: Running) -> None:
    await seed(service)
    counter = "magpie_number_resolver_recipients_classified_total"
    before = {
        "skipped": sample(counter, route="SKIPPED", reason="APP_TOO_OLD"),
        "smart": sample(counter, route="SMART", reason=""),
        "batches": sample("magpie_number_resolver_batch_seconds_count"),
    }
    producer = service.components.producer
    for task_id, (fallback, _) in FALLBACKS.items():
        await producer.send(RECIPIENTS, f"{task_id}:0", recipient_batch(task_id, fallback))
    outputs = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 4)
    assert sorted(o.ctx.task_id for o in outputs) == sorted(FALLBACKS)
    for out in outputs:
        check_batch(out, FALLBACKS[out.ctx.task_id][1])

    assert sample(counter, route="SKIPPED", reason="APP_TOO_OLD") - before["skipped"] == 1
    assert sample(counter, route="SMART", reason="") - before["smart"] == 8
    assert sample("magpie_number_resolver_batch_seconds_count") - before["batches"] == 4
    metrics = (await service.client.get("/metrics")).text  # the same registry, served by the service
    assert 'magpie_number_resolver_recipients_classified_total{reason="OS_TOO_OLD",route="VMS"}' in metrics


async def test_redelivery_yields_the_same_event(settings: Settings, service: Running) -> None:
    await seed(service)
    producer = service.components.producer
    for batch_no in range(3):
        batch = recipient_batch("task-sms", common_pb2.FALLBACK_SMS, batch_no)
        await producer.send(RECIPIENTS, f"task-sms:{batch_no}", batch)
    first = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 3)

    # A new owner of the partitions (the state after a crash before the commit) replays the same records.
    replay = ConsumerLoop(
        settings,
        group_id="number-resolver-replay",
        topic=RECIPIENTS,
        message_type=task_pb2.RecipientBatch,
        handler=service.components.worker.handle,
        producer=producer,
    )
    runner = asyncio.create_task(replay.run())
    try:
        both = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 6)
    finally:
        replay.stop()
        await asyncio.wait_for(runner, 30)
    assert len(both) == 6
    by_id: dict[str, list[resolve_pb2.ClassifiedBatch]] = {}
    for out in both:
        by_id.setdefault(out.meta.event_id, []).append(out)
    assert sorted(by_id) == sorted(stable_id("classified", "task-sms", n) for n in range(3))
    for copies in by_id.values():
        assert len(copies) == 2
        a, b = copies
        assert (a.batch_no, list(a.recipients)) == (b.batch_no, list(b.recipients))
    assert {o.meta.event_id for o in first} == set(by_id)


async def test_poison_batch_is_dead_lettered(settings: Settings, service: Running) -> None:
    producer = service.components.producer
    await producer.send(RECIPIENTS, "no-task:0", task_pb2.RecipientBatch(batch_no=0))
    await producer.send(RECIPIENTS, "task-sms:9", recipient_batch("task-sms", common_pb2.FALLBACK_SMS, 9))
    letters = await collect(settings, DLQ, billing_pb2.DeadLetter, until=lambda m: len(m) >= 1)
    assert "poison" in letters[0].error
    outputs = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 1)
    assert [o.batch_no for o in outputs] == [9]


async def test_worker_waits_for_a_refill_instead_of_answering_unknown(settings: Settings, service: Running) -> None:
    await seed(service)
    components = service.components
    keys = [k async for k in components.redis.scan_iter(match=settings.topic_prefix + "*")]
    await components.redis.delete(*keys)  # Redis lost everything of this deployment
    fresh = EventProducer(settings, "test")
    await fresh.start()
    try:
        await fresh.send(RECIPIENTS, "task-vms:0", recipient_batch("task-vms", common_pb2.FALLBACK_VMS))
    finally:
        await fresh.stop()
    outputs = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 1)
    check_batch(outputs[0], common_pb2.ROUTE_VMS)
    assert await components.hot.is_warm()
