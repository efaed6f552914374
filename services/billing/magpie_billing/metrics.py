"""Prometheus metrics of the billing service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UNITS_CHARGED = Counter(
    "magpie_billing_units_charged_total",
    "Quantity charged (SMS segments, resolutions, ...), by product and by what paid for it",
    ["product", "source"],  # source: package | on_demand
)
LEDGER_ENTRIES = Counter(
    "magpie_billing_ledger_entries_total", "Billable units newly written to the ledger", ["product"]
)
DUPLICATE_UNITS = Counter(
    "magpie_billing_duplicate_units_total",
    "Units skipped because they were already charged (redelivery, duplicate receipt, repeated in a batch)",
    ["product"],
)
TRANSACTION_RETRIES = Counter(
    "magpie_billing_transaction_retries_total", "Charge transactions retried, by reason", ["reason"]
)
UNBILLABLE_EVENTS = Counter(
    "magpie_billing_unbillable_events_total",
    "Events that should be billed but lack the identity to bill them (dead-lettered)",
    ["source"],
)
USAGE_EVENTS = Counter("magpie_billing_usage_events_total", "UsageEvents produced (re-emissions included)")
CHARGE_SECONDS = Histogram(
    "magpie_billing_charge_seconds",
    "Time to charge one batch of units (dedupe and transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SETTLED_THROUGH = Gauge(
    "magpie_billing_settled_through_timestamp_seconds", "End of the last final hourly settlement (Unix time)"
)
