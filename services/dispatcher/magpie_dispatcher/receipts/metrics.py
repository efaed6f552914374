"""Prometheus metrics of the receipt sender (label ``callback_type`` = sms | shortchain | template_status)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUEUED = Counter(
    "magpie_receipts_queued_total", "Receipts written to the outbox (duplicates excluded)", ["callback_type"]
)
POSTED = Counter("magpie_receipts_posted_total", "Receipts the customer acknowledged (2xx)", ["callback_type"])
FAILED_ATTEMPTS = Counter(
    "magpie_receipts_failed_attempts_total", "Receipts whose POST attempt failed (to be retried)", ["callback_type"]
)
DEAD = Counter(
    "magpie_receipts_dead_total", "Receipts given up (attempts exhausted or destination refused)", ["callback_type"]
)
POST_SECONDS = Histogram(
    "magpie_receipts_post_seconds",
    "Duration of one receipt POST (single or batch), failures included",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_DEPTH = Gauge(
    "magpie_receipts_outbox_depth", "Receipts pending in the outbox (all instances), refreshed every minute"
)
