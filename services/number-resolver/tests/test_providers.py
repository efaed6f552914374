"""Vendor capability providers: the simulated vendor (in process and over HTTP), the Redis cache, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import REGISTRY

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.kafka import EventProducer
from magpie_common.service import http_server
from magpie_common.testing import collect
from magpie_common.topics import CLASSIFIED, RECIPIENTS
from magpie_number_resolver.capability import default_engine
from magpie_number_resolver.classifier import capability_of
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.providers import HttpProvider, ProviderError, SimulatedProvider, build_provider
from magpie_number_resolver.testing import CAPABLE_BUTTONS, device_csv, free_port, serve
from magpie_number_resolver.vendor_sim import create_app

pytestmark = pytest.mark.integration

NUMBERS = [f"1390013{n:04d}" for n in range(40)]


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def expected(provider: SimulatedProvider, mobile: str, vendors: frozenset[str] | None) -> tuple[bool, str]:
    """(supported, reason) the resolver must answer for a number only the provider knows."""
    profile = provider.answer("86" + mobile)
    if profile is None:
        return False, "UNKNOWN_DEVICE"
    capability = capability_of(default_engine().evaluate(profile.to_device(), vendors))
    return capability.smart, capability.reason


@dataclass
class Vendor:
    url: str
    provider: SimulatedProvider


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    """The simulated vendor service on a real socket."""
    provider = SimulatedProvider(hit_rate=0.6, latency_ms=5, seed="tests")
    port = free_port()
    server = http_server(create_app(provider), "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield Vendor(f"http://127.0.0.1:{port}/v1/devices/lookup", provider)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def test_simulated_answers_are_deterministic_with_the_configured_hit_rate() -> None:
    first = SimulatedProvider(hit_rate=0.3, latency_ms=0, seed="a")
    again = SimulatedProvider(hit_rate=0.3, latency_ms=0, seed="a")
    other = SimulatedProvider(hit_rate=0.3, latency_ms=0, seed="b")
    numbers = [f"86138{n:08d}" for n in range(3000)]
    answers = [first.answer(n) for n in numbers]
    assert answers == [again.answer(n) for n in numbers]
    assert answers != [other.answer(n) for n in numbers]
    hits = sum(1 for a in answers if a is not None)
    assert 0.26 * len(numbers) < hits < 0.34 * len(numbers)
    assert len({a.packed for a in answers if a is not None}) > 100  # a realistic spread of handsets
    assert SimulatedProvider(hit_rate=0.0, latency_ms=0).answer(numbers[0]) is None
    with pytest.raises(ValueError, match="hit_rate"):
        SimulatedProvider(hit_rate=1.5)


def test_provider_configuration_is_checked() -> None:
    assert build_provider(ResolverConfig()) is None
    assert isinstance(build_provider(ResolverConfig(provider="simulated")), SimulatedProvider)
    with pytest.raises(ValueError, match="MAGPIE_NR_PROVIDER_URL"):
        build_provider(ResolverConfig(provider="http"))
    with pytest.raises(ValueError, match="none, simulated, http"):
        build_provider(ResolverConfig(provider="carrier-pigeon"))


async def test_registry_misses_are_answered_by_the_vendor_over_http_then_from_the_cache(
    settings: Settings, vendor: Vendor
) -> None:
    config = ResolverConfig(provider="http", provider_url=vendor.url, provider_batch=15)
    async with serve(settings, config, worker=False) as running:
        registered = NUMBERS[0]
        await running.client.post(
            "/internal/devices/import",
            content=device_csv({registered: CAPABLE_BUTTONS}),
            headers={"Content-Type": "text/csv"},
        )
        for vendors in (None, ["HUAWEI", "HONOR"]):
            body = {"mobiles": NUMBERS, "vendors": vendors}
            response = await running.client.post("/internal/capabilities/check", json=body)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            allowed = None if vendors is None else frozenset(vendors)
            for mobile, result in zip(NUMBERS, results, strict=True):
                if mobile == registered:  # the registry wins: the vendor is never asked about it
                    assert (result["supported"], result["buttons"]) == (True, True)
                    continue
                assert (result["supported"], result["reason"]) == expected(vendor.provider, mobile, allowed), mobile
        # 39 numbers asked once, in chunks of 15; the second check was answered from the Redis cache.
        stats = (await httpx.AsyncClient().get(vendor.url.replace("/devices/lookup", "/stats"))).json()
        assert stats == {"calls": 3, "numbers": 39}

        cache = running.components.provider
        assert cache is not None
        redis = running.components.redis
        hit = next(m for m in NUMBERS[1:] if vendor.provider.answer("86" + m) is not None)
        miss = next(m for m in NUMBERS[1:] if vendor.provider.answer("86" + m) is None)
        assert 0 < await redis.ttl(cache.key("86" + hit)) <= config.provider_ttl_s
        assert config.provider_ttl_s - 60 < await redis.ttl(cache.key("86" + hit))
        assert await redis.get(cache.key("86" + miss)) == b"-"
        assert config.provider_negative_ttl_s - 60 < await redis.ttl(cache.key("86" + miss))
        assert await redis.get(cache.key("86" + registered)) is None


async def test_the_pipeline_consults_the_in_process_provider(settings: Settings) -> None:
    config = ResolverConfig(provider="simulated", sim_hit_rate=0.7, sim_latency_ms=1, sim_seed="pipeline")
    simulated = SimulatedProvider(hit_rate=0.7, latency_ms=0, seed="pipeline")
    async with serve(settings, config, worker=True) as running:
        batch = task_pb2.RecipientBatch(
            meta=common_pb2.EventMeta(event_id="rb-p", tenant_id="t1"),
            ctx=task_pb2.TaskContext(
                tenant_id="t1", task_id="task-p", approved_vendors=["HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO"]
            ),
            batch_count=1,
        )
        for index, mobile in enumerate(NUMBERS):
            batch.recipients.add(index=index, mobile=mobile)
        producer = EventProducer(settings, client_id="test-provider")
        await producer.start()
        try:
            await producer.send(RECIPIENTS, "task-p:0", batch)
        finally:
            await producer.stop()
        (out,) = await collect(settings, CLASSIFIED, resolve_pb2.ClassifiedBatch, until=lambda m: len(m) >= 1)
        allowed = frozenset({"HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO"})
        for mobile, recipient in zip(NUMBERS, out.recipients, strict=True):
            smart, reason = expected(simulated, mobile, allowed)
            assert (recipient.route == common_pb2.ROUTE_SMART, recipient.reason) == (smart, reason), mobile
        assert running.components.provider is not None


async def test_an_unavailable_or_slow_vendor_leaves_numbers_unknown_and_uncached(settings: Settings) -> None:
    errors_before = sample("magpie_number_resolver_provider_calls_total", {"provider": "http", "result": "error"})
    closed = f"http://127.0.0.1:{free_port()}/v1/devices/lookup"
    async with serve(settings, ResolverConfig(provider="http", provider_url=closed), worker=False) as running:
        response = await running.client.post("/internal/capabilities/check", json={"mobiles": NUMBERS[:5]})
        assert response.status_code == 200
        assert {r["reason"] for r in response.json()["results"]} == {"UNKNOWN_DEVICE"}
        cache = running.components.provider
        assert cache is not None
        assert await running.components.redis.exists(*[cache.key("86" + m) for m in NUMBERS[:5]]) == 0
    errors = sample("magpie_number_resolver_provider_calls_total", {"provider": "http", "result": "error"})
    assert errors - errors_before == 1

    slow = ResolverConfig(provider="simulated", sim_hit_rate=1.0, sim_latency_ms=2000, provider_timeout_ms=100)
    async with serve(settings, slow, worker=False) as running:
        started = asyncio.get_running_loop().time()
        response = await running.client.post("/internal/capabilities/check", json={"mobiles": NUMBERS[:3]})
        assert asyncio.get_running_loop().time() - started < 1.5
        assert {r["reason"] for r in response.json()["results"]} == {"UNKNOWN_DEVICE"}


async def test_vendor_answers_are_validated() -> None:
    def vendor(request: httpx.Request) -> httpx.Response:
        assert b"8613900130000" in request.content
        return httpx.Response(
            200,
            json={
                "devices": {
                    "8613900130000": {"brand": "HUAWEI", "model": "Mate 40 Pro", "os_name": "HarmonyOS"},  # no versions
                    "8613900130001": "HUAWEI",
                    "8613900130002": None,
                    "8613900130003": {
                        "brand": "HUAWEI",
                        "model": "Mate 40 Pro",
                        "os_name": "HarmonyOS",
                        "os_version": "3.0",
                        "app_version": "11.1.1.400",
                    },
                    "8600000000000": None,  # not asked: ignored
                }
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(vendor))
    provider = HttpProvider("http://vendor.test/lookup", client=client)
    asked = [f"861390013000{n}" for n in range(5)]
    answer = await provider.lookup(asked)
    assert set(answer) == {"8613900130002", "8613900130003"}  # invalid entries are not answers
    assert answer["8613900130002"] is None
    assert answer["8613900130003"] is not None and answer["8613900130003"].app_version == "11.1.1.400"

    failing = HttpProvider(
        "http://vendor.test/lookup",
        client=httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503, text="busy"))),
    )
    with pytest.raises(ProviderError, match="503"):
        await failing.lookup(asked)
    garbled = HttpProvider(
        "http://vendor.test/lookup",
        client=httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"devices": []}))),
    )
    with pytest.raises(ProviderError, match="devices"):
        await garbled.lookup(asked)
    with pytest.raises(ValueError, match="http"):
        HttpProvider("ftp://vendor.test")


async def test_vendor_service_rejects_bad_requests(vendor: Vendor) -> None:
    async with httpx.AsyncClient() as http:
        for body in (b"{", b"[]", b'{"numbers": []}', b'{"numbers": [1]}', b'{"numbers": "8613800138000"}'):
            response = await http.post(vendor.url, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, body
            assert response.json()["error_code"] == "KM.00000400"
        too_many = await http.post(vendor.url, json={"numbers": [f"86138{n:08d}" for n in range(1001)]})
        assert too_many.status_code == 400 and "1000" in too_many.json()["error_msg"]
        fine = await http.post(vendor.url, json={"numbers": ["8613800138000"]})
        assert fine.status_code == 200 and set(fine.json()["devices"]) == {"8613800138000"}
