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
PROVIDER_CALLS = Counter(
    "magpie_number_resolver_provider_calls_total",
    "Calls to the vendor capability provider, by provider and result (ok, error, invalid_entry)",
    ["provider", "result"],
)
PROVIDER_SECONDS = Histogram(
    "magpie_number_resolver_provider_seconds",
    "Duration of one call to the vendor capability provider",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PROVIDER_CACHE = Counter(
    "magpie_number_resolver_provider_cache_total",
    "Registry misses looked up in the provider cache: hit (a device), negative (vendor does not know), miss (asked)",
    ["result"],
)
LEARNED = Counter(
    "magpie_number_resolver_learned_total",
    "Resolutions seen on LINK, by what the registry learned: observed (record written), unchanged (already known "
    "as observed), no_brand (handset vendor unknown and no record: nothing written), skipped (group link or no "
    "recipient number)",
    ["result"],
)
SMART_SENDS = Counter(
    "magpie_number_resolver_smart_sends_total",
    "Delivered smart messages counted towards a downgrade (counted) or not (before the last resolution, already "
    "downgraded, duplicate)",
    ["result"],
)
DOWNGRADES = Counter(
    "magpie_number_resolver_downgrades_total", "Numbers downgraded (N smart messages delivered, none resolved)"
)
DOWNGRADE_RESETS = Counter(
    "magpie_number_resolver_downgrade_resets_total", "Downgrades lifted because the number resolved a link"
)
