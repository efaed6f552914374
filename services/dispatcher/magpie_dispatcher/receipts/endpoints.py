"""Per-URL state of the sender: concurrency limit, queue quota and a circuit breaker.

A URL's POSTs run at most ``MAGPIE_RECEIPT_URL_CONCURRENCY`` at a time. The process holds a bounded number of
POST units per URL (queued or running): 32 x concurrency for a healthy single-mode URL, 2 x concurrency for a
batch URL (each unit carries up to ``MAGPIE_RECEIPT_MAX_BATCH`` receipts) or for a URL whose last POST failed or
took over a second, so slow endpoints cannot hoard claimed receipts.

Circuit breaker: after ``BREAKER_THRESHOLD`` consecutive failed POSTs the URL is "open" for
``retry_base x 2^(failures - threshold)`` (at most ``BREAKER_MAX_OPEN_S``); while open its receipts are not POSTed
but failed at once as an attempt ("not attempted: endpoint failing: <last error>"), following their own retry
schedule to ``dead``. So a dead endpoint costs no connections or time, its receipts reach ``dead`` on schedule, and
the first POSTs after the open period probe whether it recovered (a success closes the breaker).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

BREAKER_THRESHOLD = 5
BREAKER_MAX_OPEN_S = 60.0
SLOW_POST_S = 1.0
MAX_TRACKED_URLS = 10_000


@dataclass
class Endpoint:
    url: str
    semaphore: asyncio.Semaphore
    units: int = 0  # POST units launched (waiting for the semaphore or posting)
    held: int = 0  # receipts admitted in memory, not yet in a launched unit (batch window)
    failures: int = 0  # consecutive failed POSTs
    open_until: float = 0.0  # event-loop time until which the breaker is open
    last_error: str = ""
    slow: bool = False  # the last POST failed or took longer than SLOW_POST_S
    batch: bool = False  # the URL takes batch POSTs (url_type 2)

    def circuit_open(self, now: float) -> bool:
        return now < self.open_until

    def idle(self) -> bool:
        return self.units == 0 and self.held == 0 and self.failures == 0


class Endpoints:
    def __init__(self, *, concurrency: int, breaker_base_s: float) -> None:
        self.concurrency = concurrency
        self.breaker_base_s = breaker_base_s
        self._by_url: dict[str, Endpoint] = {}

    def get(self, url: str) -> Endpoint:
        endpoint = self._by_url.get(url)
        if endpoint is None:
            if len(self._by_url) >= MAX_TRACKED_URLS:
                self._forget_idle()
            endpoint = self._by_url[url] = Endpoint(url, asyncio.Semaphore(self.concurrency))
        return endpoint

    def unit_cap(self, endpoint: Endpoint, *, batch: bool) -> int:
        if batch or endpoint.slow:
            return self.concurrency * 2
        return self.concurrency * 32

    def succeeded(self, endpoint: Endpoint, elapsed_s: float) -> None:
        endpoint.failures = 0
        endpoint.open_until = 0.0
        endpoint.slow = elapsed_s > SLOW_POST_S

    def failed(self, endpoint: Endpoint, error: str, now: float) -> None:
        endpoint.failures += 1
        endpoint.last_error = error
        endpoint.slow = True
        if endpoint.failures >= BREAKER_THRESHOLD:
            exponent = min(endpoint.failures - BREAKER_THRESHOLD, 30)
            endpoint.open_until = now + min(self.breaker_base_s * 2**exponent, BREAKER_MAX_OPEN_S)

    def release(self, endpoint: Endpoint) -> None:
        """Forget a URL that has nothing in flight and no failure history."""
        if endpoint.idle() and self._by_url.get(endpoint.url) is endpoint:
            del self._by_url[endpoint.url]

    def _forget_idle(self) -> None:
        for url in [u for u, e in self._by_url.items() if e.units == 0 and e.held == 0]:
            del self._by_url[url]
