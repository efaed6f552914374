"""Prometheus metrics of the template review (served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

REVIEWS = Counter(
    "magpie_template_reviews_total",
    "Automatic reviews stored, by subject and outcome (approved, rejected, pending = waiting for a human)",
    ["subject", "outcome"],
)
RULE_HITS = Counter("magpie_template_review_rule_hits_total", "Rules that fired, by rule id", ["rule_id"])
MANUAL_DECISIONS = Counter(
    "magpie_template_review_manual_decisions_total",
    "Manual decisions that changed a vendor's result, by vendor and outcome",
    ["vendor", "outcome"],
)
SKIPPED = Counter(
    "magpie_template_review_submissions_skipped_total",
    "Submissions not reviewed: duplicate (already reviewed revision) or stale (older than the latest revision)",
    ["subject", "reason"],
)
EVENTS = Counter(
    "magpie_template_review_events_total",
    "TemplateReviewed events produced, by origin (review, decision, republish)",
    ["origin"],
)
