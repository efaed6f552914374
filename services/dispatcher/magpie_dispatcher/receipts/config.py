"""Settings of the receipt sender, from the environment (every variable has a default).

| variable | default | meaning |
|---|---|---|
| ``MAGPIE_RECEIPT_BATCH_WINDOW_MS`` | 200 | batch mode: one POST per window of arrivals, or sooner when full |
| ``MAGPIE_RECEIPT_MAX_BATCH`` | 500 | batch mode: most receipts in one POST |
| ``MAGPIE_RECEIPT_MAX_ATTEMPTS`` | 12 | attempts before a receipt is dead |
| ``MAGPIE_RECEIPT_RETRY_BASE_MS`` | 1000 | first retry delay; doubles per attempt (1 s, 2 s, 4 s ...) |
| ``MAGPIE_RECEIPT_RETRY_MAX_MS`` | 600000 | cap of the retry delay (10 min) |
| ``MAGPIE_RECEIPT_HTTP_TIMEOUT_S`` | 5 | connect / read / write / pool timeout of a POST |
| ``MAGPIE_RECEIPT_URL_CONCURRENCY`` | 4 | concurrent POSTs to one callback URL at first (the adaptive limit's start) |
| ``MAGPIE_RECEIPT_URL_MAX_CONCURRENCY`` | 64 | most concurrent POSTs to one callback URL (the adaptive limit's top) |
| ``MAGPIE_RECEIPT_MAX_IN_FLIGHT`` | 512 | POSTs running in this process, all URLs together (= HTTP connections) |
| ``MAGPIE_RECEIPT_MAX_QUEUED`` | 20000 | POST units held in memory (queued or running), all URLs together |
| ``MAGPIE_RECEIPT_LEASE_S`` | 120 | how long a claimed outbox item stays reserved for this instance |
| ``MAGPIE_RECEIPT_POLL_MS`` | 200 | outbox poll interval (the sender is also woken by new receipts) |
| ``MAGPIE_RECEIPT_CALLBACK_CACHE_MS`` | 5000 | in-memory cache of a tenant's callback registrations |
| ``MAGPIE_RECEIPT_DONE_RETENTION_S`` | 604800 | delivered receipts are kept (deduplication) for 7 days |
| ``MAGPIE_RECEIPT_DEAD_RETENTION_S`` | 2592000 | dead receipts are kept (queryable) for 30 days |
| ``MAGPIE_RECEIPT_SIGNING_SECRET`` | (unset) | ``whsec_<base64>`` master secret; unset = POSTs are not signed |
| ``MAGPIE_ALLOW_LOOPBACK_CALLBACKS`` | 0 | 1 = loopback callback URLs are allowed (dev stack, tests) |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magpie_common.config import env_bool, env_float, env_int, env_str


@dataclass(frozen=True)
class ReceiptsConfig:
    batch_window_ms: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_BATCH_WINDOW_MS", 200))
    max_batch: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_MAX_BATCH", 500))
    max_attempts: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_MAX_ATTEMPTS", 12))
    retry_base_ms: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_RETRY_BASE_MS", 1000))
    retry_max_ms: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_RETRY_MAX_MS", 600_000))
    http_timeout_s: float = field(default_factory=lambda: env_float("MAGPIE_RECEIPT_HTTP_TIMEOUT_S", 5.0))
    url_concurrency: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_URL_CONCURRENCY", 4))
    url_max_concurrency: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_URL_MAX_CONCURRENCY", 64))
    max_in_flight: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_MAX_IN_FLIGHT", 512))
    max_queued: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_MAX_QUEUED", 20_000))
    lease_s: float = field(default_factory=lambda: env_float("MAGPIE_RECEIPT_LEASE_S", 120.0))
    poll_ms: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_POLL_MS", 200))
    callback_cache_ms: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_CALLBACK_CACHE_MS", 5000))
    done_retention_s: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_DONE_RETENTION_S", 7 * 86400))
    dead_retention_s: int = field(default_factory=lambda: env_int("MAGPIE_RECEIPT_DEAD_RETENTION_S", 30 * 86400))
    signing_secret: str = field(default_factory=lambda: env_str("MAGPIE_RECEIPT_SIGNING_SECRET", ""))
    allow_loopback: bool = field(default_factory=lambda: env_bool("MAGPIE_ALLOW_LOOPBACK_CALLBACKS", False))

    def __post_init__(self) -> None:
        positive = {
            "MAGPIE_RECEIPT_MAX_BATCH": self.max_batch,
            "MAGPIE_RECEIPT_MAX_ATTEMPTS": self.max_attempts,
            "MAGPIE_RECEIPT_URL_CONCURRENCY": self.url_concurrency,
            "MAGPIE_RECEIPT_URL_MAX_CONCURRENCY": self.url_max_concurrency,
            "MAGPIE_RECEIPT_MAX_IN_FLIGHT": self.max_in_flight,
            "MAGPIE_RECEIPT_MAX_QUEUED": self.max_queued,
            "MAGPIE_RECEIPT_POLL_MS": self.poll_ms,
            "MAGPIE_RECEIPT_RETRY_BASE_MS": self.retry_base_ms,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.batch_window_ms < 0 or self.http_timeout_s <= 0 or self.lease_s <= 0:
            raise ValueError("receipt batch window, HTTP timeout and lease must be positive")

    def retry_delay_s(self, failed_attempts: int) -> float:
        """Delay before the next attempt after ``failed_attempts`` failures: base, 2x base, 4x base ... capped."""
        exponent = min(max(failed_attempts - 1, 0), 40)
        return min(self.retry_base_ms * (2**exponent), self.retry_max_ms) / 1000.0
