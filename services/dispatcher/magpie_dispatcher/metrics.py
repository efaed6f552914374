"""Prometheus metrics of the dispatcher's sending side (served on the ops port's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SUBMITS = Counter(
    "magpie_dispatcher_submits_total",
    "submit_sm answered by the SMSC, by carrier and command status",
    ["carrier", "status"],
)
THROTTLED = Counter(
    "magpie_dispatcher_throttled_total", "submit_sm answered ESME_RTHROTTLED / ESME_RMSGQFUL (retried)", ["carrier"]
)
SUBMIT_SECONDS = Histogram(
    "magpie_dispatcher_submit_seconds",
    "Time from handing a submit_sm to a session (window wait included) to its submit_sm_resp",
    ["carrier"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge(
    "magpie_dispatcher_submits_in_flight", "submit_sm handed to a session (waiting for a window slot or an answer)"
)
RECIPIENTS = Counter(
    "magpie_dispatcher_recipients_total",
    "Recipients handled by outcome: submitted, failed, in_doubt, unsent (retried), already_submitted (redelivery), "
    "already_failed, already_pending (in doubt on redelivery), skipped_route",
    ["outcome"],
)
IN_DOUBT = Counter(
    "magpie_dispatcher_in_doubt_total", "Recipients whose submit_sm was written but never answered (not re-sent)"
)
RECEIPTS = Counter("magpie_dispatcher_receipts_total", "Delivery receipts received, by stat", ["stat"])
ORPHAN_RECEIPTS = Counter(
    "magpie_dispatcher_orphan_receipts_total",
    "Receipts acknowledged without an event: unknown message id, malformed, not final, ambiguous (retried)",
    ["reason"],
)
CORRELATED_RECEIPTS = Counter(
    "magpie_dispatcher_receipts_by_destination_total",
    "Receipts matched to a pending (in-doubt or not yet recorded) message through its destination",
)
FINALS = Counter(
    "magpie_dispatcher_final_events_total", "Final DeliveryEvents produced, by status and source", ["status", "source"]
)
TIMEOUTS = Counter("magpie_dispatcher_timeouts_total", "Messages finalised TIMEOUT (no receipt in the window)")
DLR_FLUSH_SECONDS = Histogram(
    "magpie_dispatcher_receipt_flush_seconds",
    "Time to turn a batch of receipts into acknowledged DeliveryBatch records",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DLR_FLUSH_SIZE = Histogram(
    "magpie_dispatcher_receipt_flush_size", "Receipts per flush", buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
)
SMPP_BOUND = Gauge("magpie_dispatcher_smpp_sessions_bound", "Bound SMPP sessions per SMSC", ["smsc"])
SMPP_CONNECTS = Counter(
    "magpie_dispatcher_smpp_binds_total",
    "Bind attempts per SMSC and result (ok, refused, unreachable)",
    ["smsc", "result"],
)
