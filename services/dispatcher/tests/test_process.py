"""``python -m magpie_dispatcher`` as a process: readiness, SIGTERM drains the batch in hand, unbinds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_common.testing import wait_ready
from magpie_dispatcher.events import message_id
from magpie_dispatcher.testing import (
    SIM_PASSWORD,
    SIM_SYSTEM_ID,
    Worker,
    collect_delivery,
    config_for,
    context,
    dispatch_batch,
    produce,
    recipient,
    simulator,
)

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(settings: Settings, smpp_port: int, http_port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "MAGPIE_TOPIC_PREFIX": settings.topic_prefix,
        "MAGPIE_HTTP_PORT": str(http_port),
        "MAGPIE_SMPP_HOST": "127.0.0.1",
        "MAGPIE_SMPP_PORT": str(smpp_port),
        "MAGPIE_SMPP_SYSTEM_ID": SIM_SYSTEM_ID,
        "MAGPIE_SMPP_PASSWORD": SIM_PASSWORD,
        **extra,
    }


async def test_process_ready_then_sigterm_finishes_the_batch_in_hand_and_unbinds(settings: Settings) -> None:
    ctx = context("task-process")
    batch = dispatch_batch(ctx, 0, [recipient(i) for i in range(40)])
    ids = [message_id("task-process", 0, i) for i in range(40)]
    http_port = free_port()
    async with simulator(submit_latency=0.4, dlr_delay=1.0) as sim:
        env = process_env(
            settings,
            sim.smpp_port,
            http_port,
            MAGPIE_DISPATCHER_ROLES="send",
            MAGPIE_DISPATCHER_CHUNK="8",
            MAGPIE_DISPATCHER_CHUNKS_IN_FLIGHT="1",
        )
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "magpie_dispatcher", env=env)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
                assert await wait_ready(client) == {"redis": True, "smpp": True, "consumer": True}
                assert sim.stats()["sessions"]["bound"] >= 1  # ready once every SMSC has a bound session
                await produce(settings, [batch])
                async with asyncio.timeout(20):
                    while sim.stats()["accepted"] < 8:
                        await asyncio.sleep(0.02)
                proc.send_signal(signal.SIGTERM)  # mid-batch: 5 chunks of 8 at 0.4 s each
                async with asyncio.timeout(30):
                    assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert sim.stats()["sessions"]["bound"] == 0  # unbound on the way out
        assert sim.stats()["accepted"] == 40  # the batch in hand was finished
        await collect_delivery(settings, lambda f: all(m in f.submitted for m in ids))
        # A new dispatcher on the same group: the batch was committed (nothing in doubt, nothing re-sent), and the
        # receipts the SMSC kept (those not answered before the unbind) come to it.
        async with Worker(settings, config_for(sim.smpp_port)):
            fold = await collect_delivery(settings, lambda f: all(m in f.finals for m in ids), settle_s=0.5)
        assert sim.stats()["accepted"] == 40 and sim.duplicates() == []
    assert {fold.final(m).status for m in ids} == {dispatch_pb2.DELIVERY_STATUS_DELIVERED}
    assert all(len(fold.final_contents(m)) == 1 for m in ids)


async def test_process_runs_both_roles_by_default(settings: Settings) -> None:
    http_port = free_port()
    async with simulator() as sim:
        env = process_env(settings, sim.smpp_port, http_port)
        env.pop("MAGPIE_DISPATCHER_ROLES", None)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "magpie_dispatcher", env=env)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
                checks = await wait_ready(client, timeout_s=60)
                assert checks == {"redis": True, "smpp": True, "consumer": True, "receipts": True}
                metrics = (await client.get("/metrics")).text
                assert "magpie_dispatcher_smpp_sessions_bound" in metrics
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert sim.stats()["sessions"]["bound"] == 0
