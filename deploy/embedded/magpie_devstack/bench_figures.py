"""The bench's arithmetic (pure): rate series, percentiles, the checks and the summary."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

SUMMARY_KEYS = (
    "recipients",
    "accept_seconds",
    "gateway_accept_rss_growth_mb",
    "end_to_end_seconds",
    "end_to_end_recipients_per_s",
    "billed_seconds",
    "receipts_seconds",
    "receipts_single_per_s",
    "idle_stack_cpu_percent",
    "broker_baseline_records_per_s",
    "smpp_baseline_submits_per_s",
    "ratio_to_smpp_baseline",
)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean of durations in seconds, in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.mean(ordered) * 1000, 2),
    }


def cumulative_series(
    buckets: Mapping[str, Mapping[int, int]], *, bucket_s: float, start_s: float, end_s: float
) -> dict[str, Any]:
    """Cumulative counts per stage at the end of every bucket from ``start_s`` to ``end_s`` (epoch seconds),
    with the rate of each bucket. ``buckets[stage][n]`` counts what happened in ``[n, n + 1) * bucket_s``; what
    happened before ``start_s`` is in the first row."""
    first = int(start_s // bucket_s)
    last = max(first, int(end_s // bucket_s))
    stages = list(buckets)
    totals = {stage: sum(n for b, n in buckets[stage].items() if b < first) for stage in stages}
    rows: list[list[float]] = []
    rates: list[list[float]] = []
    for b in range(first, last + 1):
        added = [buckets[stage].get(b, 0) for stage in stages]
        for stage, n in zip(stages, added, strict=True):
            totals[stage] += n
        t = round((b + 1) * bucket_s - start_s, 1)
        rows.append([t, *(totals[s] for s in stages)])
        rates.append([t, *(round(n / bucket_s, 1) for n in added)])
    return {"interval_s": bucket_s, "columns": ["t_s", *stages], "cumulative": rows, "per_s": rates}


def peak_rates(series: Mapping[str, Any]) -> dict[str, float]:
    """The highest per-bucket rate of every stage."""
    columns = series["columns"][1:]
    rates = series["per_s"]
    return {stage: max((row[i + 1] for row in rates), default=0.0) for i, stage in enumerate(columns)}


def rate(count: int, seconds: float | None) -> float | None:
    if not seconds or seconds <= 0:
        return None
    return round(count / seconds, 1)


def seconds_between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(end - start, 2)


def expected_units(stages: Mapping[str, Any]) -> int:
    """What the ledger must hold for a task: delivered SMS segments plus billable resolutions."""
    return int(stages.get("delivered_segments", 0)) + int(stages.get("counts", {}).get("resolved", 0))


def expected_receipts(stages: Mapping[str, Any]) -> int:
    """Receipts the customer must get: one sms receipt per carrier final, one shortchain per resolution."""
    counts = stages.get("counts", {})
    return int(counts.get("receipts", 0)) + int(counts.get("resolved", 0))


def two_segment_share(segments: Mapping[str, int]) -> float:
    total = sum(segments.values())
    return round(segments.get("2", 0) / total, 4) if total else 0.0


def campaign_checks(
    *,
    recipients: int,
    stages: Mapping[str, Any],
    carrier: Mapping[str, Any],
    ledger_units: int | None,
    receipts_distinct: int,
    handsets_resolved: int,
) -> dict[str, bool]:
    """What the bench verifies of one campaign, each true or false."""
    counts = stages.get("counts", {})
    finals = sum(int(v) for v in stages.get("finals", {}).values())
    share = two_segment_share(stages.get("segments", {}))
    return {
        "every_recipient_final": counts.get("final") == recipients and finals == recipients,
        "no_recipient_with_two_finals": stages.get("duplicate_finals") == 0 and stages.get("conflicts") == 0,
        "no_duplicate_submit_at_carrier": carrier.get("duplicate_parts") == 0 and carrier.get("duplicates") == 0,
        "carrier_got_every_part_of_every_message": carrier.get("incomplete_messages") == 0,
        "ledger_units_equal_delivered_segments_plus_resolutions": ledger_units == expected_units(stages),
        "every_receipt_delivered": receipts_distinct == expected_receipts(stages),
        "every_handset_resolution_seen": counts.get("resolved") == handsets_resolved,
        "about_a_tenth_two_segment": 0.07 <= share <= 0.13,
    }


def summary(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The summary object: exactly ``SUMMARY_KEYS``, None where a figure could not be measured."""
    result = {key: figures.get(key) for key in SUMMARY_KEYS}
    e2e, smpp = result["end_to_end_recipients_per_s"], result["smpp_baseline_submits_per_s"]
    result["ratio_to_smpp_baseline"] = round(e2e / smpp, 4) if e2e and smpp else None
    return result
