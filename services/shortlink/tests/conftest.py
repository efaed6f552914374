"""Fixtures of the shortlink tests: the service's components on the real embedded infrastructure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import pytest

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.wiring import Components, build

TEST_SECRET = "shortlink-test-secret"
LINK_DOMAIN = "https://mgp.example/"

RecipientSpec = tuple[int, "common_pb2.Route.ValueType", Mapping[str, str]]
BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]


def classified_batch(
    *,
    task_id: str = "task-1",
    tenant_id: str = "tenant-1",
    batch_no: int = 0,
    batch_count: int = 1,
    recipients: Sequence[RecipientSpec] = (),
    expires_at_ms: int | None = None,
    custom_urls: Mapping[int, str] | None = None,
) -> resolve_pb2.ClassifiedBatch:
    """A ClassifiedBatch as the number resolver produces it; recipients are (index, route, params)."""
    ctx = task_pb2.TaskContext(
        tenant_id=tenant_id,
        task_id=task_id,
        task_name="spring promo",
        tpl_id="100000001",
        tpl_name="Spring <sale> & more",
        link_expires_at_ms=expires_at_ms if expires_at_ms is not None else now_ms() + 3_600_000,
        link_domain=LINK_DOMAIN,
        created_at_ms=now_ms(),
        aim_url="https://customer.example/aim",
    )
    batch = resolve_pb2.ClassifiedBatch(
        meta=common_pb2.EventMeta(event_id=f"cls-{task_id}-{batch_no}", tenant_id=tenant_id, trace_id="trace-1"),
        ctx=ctx,
        batch_no=batch_no,
        batch_count=batch_count,
    )
    for index, route, params in recipients:
        batch.recipients.add(
            index=index,
            mobile=f"1380013{index:04d}",
            msisdn=f"861380013{index:04d}",
            params=dict(params),
            sms_params=[f"value-{index}", "second"],
            custom_url=(custom_urls or {}).get(index, ""),
            route=route,
            carrier="CMCC",
            vendor="HUAWEI",
        )
    return batch


@pytest.fixture
def make_batch() -> BatchFactory:
    return classified_batch


@pytest.fixture
async def shortlink(settings: Settings) -> AsyncIterator[Components]:
    """Both roles built (producer started), the consumer loop not running."""
    components = await build(settings, ShortlinkConfig(secret=TEST_SECRET))
    try:
        yield components
    finally:
        await components.close()


@pytest.fixture
async def running(shortlink: Components) -> AsyncIterator[Components]:
    """The components with the minting loop consuming CLASSIFIED."""
    loop = shortlink.consumer_loop()
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(200):
            if loop.ready:
                break
            await asyncio.sleep(0.05)
        yield shortlink
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
