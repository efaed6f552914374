"""Prometheus metrics of the number resolver (served on the service's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CLASSIFIED = Counter(
    "magpie_number_resolver_recipients_classified_total",
    "Recipients classified by the worker, by route and reason (reason empty for SMART)",
    ["route", "reason"],
)
BATCHES = Counter("magpie_number_resolver_batches_total", "RecipientBatch records classified")
BATCH_SECONDS = Histogram(
    "magpie_number_resolver_batch_seconds",
    "Time to classify one RecipientBatch (validation, Redis look-up, verdicts, message building)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LOOKUP_SECONDS = Histogram(
    "magpie_number_resolver_redis_lookup_seconds",
    "The one Redis MGET of a batch",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
VERDICT_CACHE = Counter("magpie_number_resolver_verdict_cache_total", "Verdict cache look-ups per number", ["result"])
PROFILE_MISSING = Counter(
    "magpie_number_resolver_profile_missing_total", "Profile ids found in Redis without a profile (data fault)"
)
IMPORTED = Counter("magpie_number_resolver_import_rows_total", "Rows of CSV imports", ["kind", "result"])
CAPABILITY_CHECKS = Counter(
    "magpie_number_resolver_capability_checks_total", "Numbers checked through the synchronous capability check"
)
