"""Adaptive concurrency limit of one callback URL (pure logic, the caller passes the clock).

AIMD steered by latency, in the manner of TCP Vegas / Netflix's concurrency-limits "gradient" limiters:

- **Slow start**: from ``initial`` the limit grows by one per successful POST (it doubles every round trip) while
  the POSTs' latency stays near the URL's minimum (``rtt <= min_rtt x tolerance + slack``) and nothing fails.
- **Additive increase** after slow start ended: +1 per round trip (``1 / limit`` per success).
- **Latency rising** above the tolerance (the receiver is queueing): the limit shrinks by ``LATENCY_BACKOFF``
  (x0.9) and slow start ends.
- **Congestion** (5xx, 429, timeout, connection error): the limit halves. Either decrease happens at most once per
  round trip, so a burst of failures of POSTs that were in flight together counts once.
- The limit grows only while it is used (at least half of it in flight): a URL receiving a trickle does not
  accumulate a limit it never proved it can take.
- ``min_rtt`` is the minimum of the current and the previous ``RTT_WINDOW_S`` window, so a receiver that became
  permanently slower gets a new baseline instead of being throttled forever.

The limit stays within ``[min_limit, max_limit]`` (1 and ``MAGPIE_RECEIPT_URL_MAX_CONCURRENCY``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LATENCY_TOLERANCE = 2.0  # a POST up to 2x the minimum latency is "near the minimum"
LATENCY_SLACK_S = 0.010  # plus 10 ms: loopback-fast receivers are not throttled by jitter or event-loop lag
LATENCY_BACKOFF = 0.9
FAILURE_BACKOFF = 0.5
RTT_WINDOW_S = 30.0
EWMA_WEIGHT = 0.2


@dataclass
class AdaptiveLimit:
    initial: int = 4
    min_limit: int = 1
    max_limit: int = 64
    limit: float = 0.0
    slow_start: bool = True
    min_rtt: float = math.inf  # minimum of the current window
    previous_min_rtt: float = math.inf  # minimum of the previous window
    window_start: float | None = None
    smoothed_rtt: float = 0.0
    hold_until: float = 0.0  # no further decrease before this time (one per round trip)

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError("adaptive limit needs 1 <= min_limit <= max_limit")
        if self.limit <= 0:
            self.limit = float(self.initial)
        self.limit = self._clamp(self.limit)

    @property
    def current(self) -> int:
        """How many POSTs may run at once now."""
        return int(self.limit)

    def baseline(self) -> float:
        return min(self.min_rtt, self.previous_min_rtt)

    def on_success(self, rtt_s: float, in_flight: int, now: float) -> None:
        """A 2xx after ``rtt_s``; ``in_flight`` POSTs of the URL were running when it completed (itself included)."""
        self._observe(rtt_s, now)
        if rtt_s > self.baseline() * LATENCY_TOLERANCE + LATENCY_SLACK_S:
            self.slow_start = False
            self._decrease(LATENCY_BACKOFF, now)
            return
        if in_flight * 2 < self.current:
            return  # the limit is not being used: no evidence it could be higher
        self.limit = self._clamp(self.limit + (1.0 if self.slow_start else 1.0 / self.limit))

    def on_congestion(self, now: float, rtt_s: float | None = None) -> None:
        """A 5xx / 429, a timeout or a connection error: halve (once per round trip)."""
        if rtt_s is not None:
            self.smoothed_rtt = self._ewma(rtt_s)
        self.slow_start = False
        self._decrease(FAILURE_BACKOFF, now)

    def _observe(self, rtt_s: float, now: float) -> None:
        if self.window_start is None:
            self.window_start = now
        elif now - self.window_start >= RTT_WINDOW_S:
            self.previous_min_rtt, self.min_rtt, self.window_start = self.min_rtt, math.inf, now
        self.min_rtt = min(self.min_rtt, rtt_s)
        self.smoothed_rtt = self._ewma(rtt_s)

    def _ewma(self, rtt_s: float) -> float:
        if self.smoothed_rtt <= 0:
            return rtt_s
        return self.smoothed_rtt + EWMA_WEIGHT * (rtt_s - self.smoothed_rtt)

    def _decrease(self, factor: float, now: float) -> None:
        if now < self.hold_until:
            return
        self.limit = self._clamp(self.limit * factor)
        self.hold_until = now + max(self.smoothed_rtt, 0.001)

    def _clamp(self, value: float) -> float:
        return min(max(value, float(self.min_limit)), float(self.max_limit))
