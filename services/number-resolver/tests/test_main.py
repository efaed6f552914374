"""``python -m magpie_number_resolver`` as a process: serves, classifies, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, RECIPIENTS
from magpie_number_resolver.testing import CAPABLE_BUTTONS, device_csv, free_port

pytestmark = pytest.mark.integration


async def test_process_serves_classifies_and_stops_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "REDIS_URL": settings.redis_url,
        "MAGPIE_TOPIC_PREFIX": settings.topic_prefix,
        "MAGPIE_HTTP_PORT": str(port),
    }
    log = (tmp_path / "service.log").open("wb")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "magpie_number_resolver", env=env, stderr=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(300):
                try:
                    ready = await client.get("/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the service never became ready")
            assert ready.json()["checks"] == {
                "redis": True,
                "registry_loaded": True,
                "mongodb": True,
                "consumer": True,
                "link_consumer": True,
                "delivery_consumer": True,
            }
            imported = await client.post(
                "/internal/devices/import",
                content=device_csv({"13800138000": CAPABLE_BUTTONS}),
                headers={"Content-Type": "text/csv"},
            )
            assert imported.json()["imported"] == 1

        producer = EventProducer(settings, "test")
        await producer.start()
        try:
            batch = task_pb2.RecipientBatch(batch_no=0, batch_count=1)
            batch.ctx.task_id = "task-main"
            batch.ctx.approved_vendors.append("HUAWEI")
            batch.ctx.fallback = common_pb2.FALLBACK_SKIP
            batch.recipients.add(index=0, mobile="13800138000")
            batch.recipients.add(index=1, mobile="13900139000")
            await producer.send(RECIPIENTS, "task-main:0", batch)
        finally:
            await producer.stop()
        outputs = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 1)
        assert [(r.route, r.reason) for r in outputs[0].recipients] == [
            (common_pb2.ROUTE_SMART, ""),
            (common_pb2.ROUTE_SKIPPED, "UNKNOWN_DEVICE"),
        ]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        log.close()
    assert code == 0, (tmp_path / "service.log").read_text()
    assert '"msg": "component failed"' not in (tmp_path / "service.log").read_text()
