"""Per-URL state of the sender: a queue of POST units, an adaptive concurrency limit and a circuit breaker.

Every callback URL is a lane of its own: its POST units (one single receipt, or one batch) wait in the URL's FIFO
queue and at most ``limiter.current`` of them run at once (``limiter.AdaptiveLimit``: starts at
``MAGPIE_RECEIPT_URL_CONCURRENCY``, grows while the URL's latency stays near its minimum, halves on 5xx / 429 /
timeouts / connection errors, between 1 and ``MAGPIE_RECEIPT_URL_MAX_CONCURRENCY``). A slow URL therefore only
ever delays its own queue; the only thing lanes share is the process-wide cap of running POSTs
(``MAGPIE_RECEIPT_MAX_IN_FLIGHT``), handed out round-robin to the lanes waiting for it, and a failing URL's limit
shrinks to 1 within a few round trips.

The process holds a bounded number of units per URL (queued or running): as many as the URL completes in a quarter
of the lease (``MAGPIE_RECEIPT_LEASE_S`` / 4) at its current limit and latency, at least 2 per slot, at most
``MAGPIE_RECEIPT_MAX_QUEUED``; before its latency is known 32 x the limit for a single-mode URL and 2 x the limit
for a batch URL (each unit carries up to ``MAGPIE_RECEIPT_MAX_BATCH`` receipts) or for a failing one. A fast URL
thus takes a whole campaign's receipts straight from the Kafka handlers (no claim write), a slow one cannot hoard
claimed receipts past their lease.

Circuit breaker: after ``BREAKER_THRESHOLD`` consecutive failed POSTs the URL is "open" for
``retry_base x 2^(failures - threshold)`` (at most ``BREAKER_MAX_OPEN_S``); while open its receipts are not POSTed
but failed at once as an attempt ("not attempted: endpoint failing: <last error>"), following their own retry
schedule to ``dead``. So a dead endpoint costs no connections or time, its receipts reach ``dead`` on schedule, and
the first POSTs after the open period probe whether it recovered (a success closes the breaker).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from magpie_dispatcher.receipts.limiter import AdaptiveLimit

BREAKER_THRESHOLD = 5
BREAKER_MAX_OPEN_S = 60.0
SLOW_POST_S = 1.0
MAX_TRACKED_URLS = 10_000
SINGLE_UNITS_PER_SLOT = 32
BATCH_UNITS_PER_SLOT = 2


@dataclass
class Endpoint:
    url: str
    limiter: AdaptiveLimit
    queue: deque[Any] = field(default_factory=deque)  # POST units waiting for a slot of this URL, FIFO
    units: int = 0  # POST units launched (queued or posting)
    active: int = 0  # POSTs running
    held: int = 0  # receipts admitted in memory, not yet in a launched unit (batch window)
    failures: int = 0  # consecutive failed POSTs
    open_until: float = 0.0  # event-loop time until which the breaker is open
    last_error: str = ""
    slow: bool = False  # the last POST failed or took longer than SLOW_POST_S
    batch: bool = False  # the URL takes batch POSTs (url_type 2)

    def circuit_open(self, now: float) -> bool:
        return now < self.open_until

    def has_slot(self) -> bool:
        return self.active < self.limiter.current

    def idle(self) -> bool:
        return self.units == 0 and self.held == 0 and self.failures == 0


class Endpoints:
    def __init__(
        self,
        *,
        concurrency: int,
        breaker_base_s: float,
        max_concurrency: int | None = None,
        drain_s: float = 30.0,
        max_units: int = 20_000,
    ) -> None:
        self.concurrency = concurrency
        self.drain_s = drain_s
        self.max_units = max_units
        self.max_concurrency = max(max_concurrency or concurrency, concurrency)
        self.breaker_base_s = breaker_base_s
        self._by_url: dict[str, Endpoint] = {}

    def get(self, url: str) -> Endpoint:
        endpoint = self._by_url.get(url)
        if endpoint is None:
            if len(self._by_url) >= MAX_TRACKED_URLS:
                self._forget_idle()
            limiter = AdaptiveLimit(initial=self.concurrency, max_limit=self.max_concurrency)
            endpoint = self._by_url[url] = Endpoint(url, limiter)
        return endpoint

    def all(self) -> list[Endpoint]:
        return list(self._by_url.values())

    def unit_cap(self, endpoint: Endpoint, *, batch: bool) -> int:
        """Most POST units the process holds for the URL (queued or running): what the URL drains in
        ``drain_s`` at its current limit and latency (at least 2 per slot), or before any latency is known
        32 per slot (2 for a batch URL or one that failed or was slow)."""
        limit = endpoint.limiter.current
        floor = limit * BATCH_UNITS_PER_SLOT
        rtt = endpoint.limiter.smoothed_rtt
        if rtt <= 0 or endpoint.failures:
            return floor if batch or endpoint.slow else limit * SINGLE_UNITS_PER_SLOT
        return max(floor, min(int(limit / rtt * self.drain_s), self.max_units))

    def succeeded(self, endpoint: Endpoint, elapsed_s: float, now: float) -> None:
        endpoint.limiter.on_success(elapsed_s, endpoint.active, now)
        endpoint.failures = 0
        endpoint.open_until = 0.0
        endpoint.slow = elapsed_s > SLOW_POST_S

    def failed(
        self, endpoint: Endpoint, error: str, now: float, *, congestion: bool = True, elapsed_s: float | None = None
    ) -> None:
        """A failed POST; ``congestion`` (5xx, 429, timeout, connection error) also halves the URL's limit."""
        if congestion:
            endpoint.limiter.on_congestion(now, elapsed_s)
        endpoint.failures += 1
        endpoint.last_error = error
        endpoint.slow = True
        if endpoint.failures >= BREAKER_THRESHOLD:
            exponent = min(endpoint.failures - BREAKER_THRESHOLD, 30)
            endpoint.open_until = now + min(self.breaker_base_s * 2**exponent, BREAKER_MAX_OPEN_S)

    def release(self, endpoint: Endpoint) -> None:
        """Forget a URL that has nothing in flight and no failure history once many URLs are tracked (its learnt
        limit goes with it; below that, a URL keeps its limit between bursts)."""
        if len(self._by_url) > MAX_TRACKED_URLS // 2 and endpoint.idle() and self._by_url.get(endpoint.url) is endpoint:
            del self._by_url[endpoint.url]

    def _forget_idle(self) -> None:
        for url in [u for u, e in self._by_url.items() if e.units == 0 and e.held == 0]:
            del self._by_url[url]
