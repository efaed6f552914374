"""The adaptive per-URL concurrency limit (pure logic: explicit clock, no I/O)."""

from __future__ import annotations

import pytest

from magpie_dispatcher.receipts.endpoints import Endpoints
from magpie_dispatcher.receipts.limiter import RTT_WINDOW_S, AdaptiveLimit

FAST = 0.002  # seconds


def saturate(limit: AdaptiveLimit, successes: int, rtt: float = FAST, start: float = 0.0) -> float:
    """``successes`` POSTs completing with the limit fully used; returns the clock after them."""
    now = start
    for _ in range(successes):
        now += rtt
        limit.on_success(rtt, in_flight=limit.current, now=now)
    return now


def test_slow_start_doubles_per_round_trip_while_latency_stays_at_its_minimum() -> None:
    limit = AdaptiveLimit(initial=4, max_limit=64)
    saturate(limit, 4)
    assert limit.current == 8
    saturate(limit, 8, start=1.0)
    assert (limit.current, limit.slow_start) == (16, True)


def test_limit_never_exceeds_its_maximum_nor_falls_below_one() -> None:
    limit = AdaptiveLimit(initial=4, max_limit=10)
    saturate(limit, 100)
    assert limit.current == 10
    now = 10.0
    for _ in range(20):
        now += 1.0  # past each hold: every failure is a new round trip
        limit.on_congestion(now)
    assert limit.current == 1
    with pytest.raises(ValueError):
        AdaptiveLimit(min_limit=5, max_limit=4)


def test_congestion_halves_once_per_round_trip() -> None:
    limit = AdaptiveLimit(initial=4, max_limit=64)
    now = saturate(limit, 12)  # 4 -> 16
    assert limit.current == 16
    for _ in range(10):  # the failures of POSTs that were in flight together
        limit.on_congestion(now, rtt_s=FAST)
    assert (limit.current, limit.slow_start) == (8, False)
    limit.on_congestion(now + 1.0)
    assert limit.current == 4


def test_rising_latency_backs_off_gently_then_growth_is_additive() -> None:
    limit = AdaptiveLimit(initial=4, max_limit=64)
    now = saturate(limit, 12)  # 16, min RTT 2 ms
    limit.on_success(0.5, in_flight=16, now=now + 0.5)  # the receiver is queueing
    assert (limit.current, limit.slow_start) == (14, False)  # x 0.9
    before = limit.limit
    saturate(limit, 14, start=now + 1.0)  # one round trip's worth of successes: about +1
    assert limit.limit == pytest.approx(before + 1.0, abs=0.1)


def test_an_unused_limit_does_not_grow() -> None:
    limit = AdaptiveLimit(initial=8, max_limit=64)
    for n in range(100):
        limit.on_success(FAST, in_flight=1, now=n * 0.01)
    assert limit.current == 8


def test_minimum_latency_is_forgotten_after_two_windows() -> None:
    limit = AdaptiveLimit(initial=4, max_limit=64)
    limit.on_success(0.001, in_flight=4, now=0.0)
    limit.on_success(0.100, in_flight=4, now=RTT_WINDOW_S + 1)  # new window: the previous one still counts
    assert limit.baseline() == 0.001
    limit.on_success(0.100, in_flight=4, now=2 * RTT_WINDOW_S + 2)
    assert limit.baseline() == pytest.approx(0.100)  # the receiver became slower for good: new baseline


def test_quota_of_units_follows_what_the_url_drains_in_a_quarter_lease() -> None:
    endpoints = Endpoints(concurrency=4, breaker_base_s=1.0, max_concurrency=64, drain_s=30.0, max_units=20_000)
    endpoint = endpoints.get("https://c.example/cb")
    assert endpoints.unit_cap(endpoint, batch=False) == 128  # no latency known yet: 32 per slot
    assert endpoints.unit_cap(endpoint, batch=True) == 8
    endpoints.succeeded(endpoint, elapsed_s=1.0, now=1.0)  # 4 slots, 1 s per POST: 120 POSTs in 30 s
    assert endpoints.unit_cap(endpoint, batch=False) == 120
    fast = endpoints.get("https://fast.example/cb")
    endpoints.succeeded(fast, elapsed_s=0.001, now=1.0)
    assert endpoints.unit_cap(fast, batch=False) == 20_000  # capped by MAGPIE_RECEIPT_MAX_QUEUED
    endpoints.failed(fast, "HTTP 503", now=2.0, elapsed_s=0.001)
    assert endpoints.unit_cap(fast, batch=False) == fast.limiter.current * 2  # failing: short quota
    endpoints.failed(fast, "HTTP 404", now=2.0005, congestion=False)
    assert fast.failures == 2 and fast.limiter.current == 2  # a 4xx is no congestion: the limit stays
