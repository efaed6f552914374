"""The whole service as ``python -m magpie_shortlink`` runs it, over real sockets, in one process and split by role."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.service import Service
from magpie_common.testing import collect, wait_ready
from magpie_common.topics import CLASSIFIED, DISPATCH, LINK
from magpie_shortlink.__main__ import run
from magpie_shortlink.config import SERVICE_NAME, ShortlinkConfig, parse_roles

pytestmark = pytest.mark.integration

BatchFactory = Callable[..., resolve_pb2.ClassifiedBatch]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_roles_parsing() -> None:
    assert parse_roles("mint,edge") == {"mint", "edge"}
    assert parse_roles(" Edge ") == {"edge"}
    with pytest.raises(ValueError):
        parse_roles("mint,dispatch")
    with pytest.raises(ValueError):
        parse_roles("")


async def start(settings: Settings, roles: str, port: int) -> tuple[Service, asyncio.Task[None]]:
    config = ShortlinkConfig(roles=parse_roles(roles), http_port=port, secret="svc-secret")
    service = Service(SERVICE_NAME, host=config.http_host, port=port)
    return service, asyncio.create_task(run(settings, config, service))


async def stop(service: Service, task: asyncio.Task[None]) -> None:
    service.request_stop()
    await asyncio.wait_for(task, 30)


async def mint_and_resolve(
    settings: Settings, make_batch: BatchFactory, edge_url: str, http: httpx.AsyncClient
) -> list[float]:
    """Send a batch through CLASSIFIED, wait for its DispatchBatch, resolve every link over HTTP; latencies (s)."""
    batch = make_batch(task_id="task-svc", recipients=[(i, common_pb2.ROUTE_SMART, {"n": str(i)}) for i in range(20)])
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        await producer.send(CLASSIFIED, "task-svc:0", batch)
    finally:
        await producer.stop()
    (out,) = await collect(settings, DISPATCH, dispatch_pb2.DispatchBatch, until=lambda m: len(m) >= 1)
    latencies = []
    loop = asyncio.get_running_loop()
    for recipient in out.recipients:
        started = loop.time()
        response = await http.post(f"{edge_url}/v1/resolve", json={"code": recipient.short_code})
        latencies.append(loop.time() - started)
        assert response.status_code == 200
        assert response.json()["params"] == {"n": str(recipient.index)}
    redirect = await http.get(f"{edge_url}/{out.recipients[0].short_code}")
    assert redirect.status_code == 302
    events = await collect(settings, LINK, link_pb2.LinkEvent, until=lambda m: len(m) >= 21)
    assert sum(e.billable for e in events) == 20
    return latencies


async def test_one_process_runs_both_roles(settings: Settings, make_batch: BatchFactory) -> None:
    port = free_port()
    service, task = await start(settings, "mint,edge", port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await wait_ready(http, f"{url}/readyz")
            assert ready == {"redis": True, "mongodb": True, "consumer": True}
            latencies = await mint_and_resolve(settings, make_batch, url, http)
            assert max(latencies) < 2.0
            assert "magpie_shortlink_resolutions_total" in (await http.get(f"{url}/metrics")).text
    finally:
        await stop(service, task)
    assert task.done() and task.exception() is None


async def test_roles_run_separately(settings: Settings, make_batch: BatchFactory) -> None:
    mint_port, edge_port = free_port(), free_port()
    mint_service, mint_task = await start(settings, "mint", mint_port)
    edge_service, edge_task = await start(settings, "edge", edge_port)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            mint_ready = await wait_ready(http, f"http://127.0.0.1:{mint_port}/readyz")
            assert mint_ready == {"redis": True, "mongodb": True, "consumer": True}
            edge_ready = await wait_ready(http, f"http://127.0.0.1:{edge_port}/readyz")
            assert edge_ready == {"redis": True, "mongodb": True}
            # The mint-only process serves only the ops routes.
            assert (await http.post(f"http://127.0.0.1:{mint_port}/v1/resolve", json={"code": "x"})).status_code == 404
            await mint_and_resolve(settings, make_batch, f"http://127.0.0.1:{edge_port}", http)
    finally:
        await stop(edge_service, edge_task)
        await stop(mint_service, mint_task)
