"""Replay stores: Redis (against a real redis-server) and in-memory."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from magpie_gateway.auth.replay import MemoryReplayStore, RedisReplayStore, ReplayStore, replay_ttl

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SIG_A = "a" * 64
SIG_B = "b" * 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


def test_ttl_is_twice_the_skew_window() -> None:
    assert replay_ttl(timedelta(minutes=15)) == timedelta(minutes=30)


@pytest.mark.asyncio
async def test_redis_store_accepts_a_signature_once(redis: Redis) -> None:
    store: ReplayStore = RedisReplayStore(redis)
    assert await store.claim("AK1", SIG_A) is True
    assert await store.claim("AK1", SIG_A) is False
    assert await store.claim("AK1", SIG_A) is False
    assert await store.claim("AK1", SIG_B) is True
    assert await store.claim("AK2", SIG_A) is True


@pytest.mark.asyncio
async def test_redis_store_sets_expiry_of_twice_the_window(redis: Redis) -> None:
    store = RedisReplayStore(redis, skew_window=timedelta(minutes=15), key_prefix="t:replay:")
    assert await store.claim("AK1", SIG_A)
    assert store.key("AK1", SIG_A) == f"t:replay:AK1:{SIG_A}"
    ttl_ms = await redis.pttl(store.key("AK1", SIG_A))
    assert 30 * 60 * 1000 - 5000 < ttl_ms <= 30 * 60 * 1000


@pytest.mark.asyncio
async def test_redis_store_forgets_after_expiry(redis: Redis) -> None:
    store = RedisReplayStore(redis, skew_window=timedelta(milliseconds=150))
    assert await store.claim("AK1", SIG_A)
    assert not await store.claim("AK1", SIG_A)
    await asyncio.sleep(0.5)
    assert await store.claim("AK1", SIG_A)


@pytest.mark.asyncio
async def test_redis_store_concurrent_claims_have_one_winner(redis: Redis) -> None:
    stores = [RedisReplayStore(redis) for _ in range(3)]  # e.g. three gateway instances
    results = await asyncio.gather(*(stores[i % 3].claim("AK1", SIG_A) for i in range(30)))
    assert sorted(results) == [False] * 29 + [True]


def test_stores_reject_non_positive_windows() -> None:
    with pytest.raises(ValueError):
        MemoryReplayStore(skew_window=timedelta(0))


@pytest.mark.asyncio
async def test_memory_store_accepts_once_and_expires() -> None:
    now = [1000.0]
    store = MemoryReplayStore(skew_window=timedelta(seconds=10), clock=lambda: now[0])
    assert await store.claim("AK1", SIG_A)
    assert not await store.claim("AK1", SIG_A)
    assert await store.claim("AK2", SIG_A)
    now[0] += 19.9
    assert not await store.claim("AK1", SIG_A)
    assert await store.claim("AK1", SIG_B)
    now[0] += 0.2  # 20.1 s after the first claim: forgotten; SIG_B (claimed at 19.9 s) still remembered
    assert await store.claim("AK1", SIG_A)
    assert not await store.claim("AK1", SIG_B)
    assert len(store) == 2  # expired (AK2, SIG_A) was purged
