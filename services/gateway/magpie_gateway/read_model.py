"""The per-recipient read model behind ``list_aim_send_details`` and the task counts.

One document per recipient batch (collection ``recipient_batches``, ``_id`` = ``<task_id>:<batch_no>``), created
with the task from the RecipientBatch data: ``mobiles`` (position ``p`` is the task's recipient
``first_index + p``) and the task fields the detail query filters on. The projector adds parallel arrays, each
written by one kind of event only:

=====================  ==========  ================================================================
array                  written by  value per recipient
=====================  ==========  ================================================================
``route``              CLASSIFIED  ``Route`` enum number (0 = not classified yet)
``reason``             CLASSIFIED  why not smart (UNKNOWN_DEVICE, INVALID_NUMBER, ...), "" otherwise
``dstat``              DELIVERY    ``DeliveryStatus`` enum number (0 = not submitted yet)
``msg_id``             DELIVERY    Magpie's message id
``send_time``          DELIVERY    submission time, epoch ms (0 = unknown)
``receive_time``       DELIVERY    final receipt time, epoch ms (0 = none)
``result_code``        DELIVERY    DELIVRD, UNDELIV, EXPIRED, REJECTD, ...
``segments``           DELIVERY    billable SMS segments
``resolved_at``        LINK        first resolution of the link, epoch ms (0 = not resolved)
=====================  ==========  ================================================================

Delivery states only move up a rank (SUBMITTED 1 < TIMEOUT 2 < DELIVERED = FAILED 3), so a late or replayed
SUBMITTED never overwrites a final state, and a real receipt arriving after the timeout still wins.

The batch counters live in a small companion document (collection ``batch_counts``) so task totals are a sum
over tiny documents. They are recomputed from the arrays on every change (never incremented), so replayed
events cannot double count; a version number makes the latest computation win. Beside the counters ``c`` the
document keeps ``r``: the unresolvable recipients (routes DEGRADED, VMS, SKIPPED) by the number check's reason
(``UNKNOWN_DEVICE``, ``APP_TOO_OLD``, ``VENDOR_NOT_APPROVED``, ...), the source of the task's number-check
summary (``number_check`` in ``magpie_summary``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_gateway.timefmt import iso_from_ms

BATCH_SIZE = 500

# Route enum numbers (common.proto).
SMART = common_pb2.ROUTE_SMART
DEGRADED = common_pb2.ROUTE_DEGRADED
VMS = common_pb2.ROUTE_VMS
SKIPPED = common_pb2.ROUTE_SKIPPED
INVALID = common_pb2.ROUTE_INVALID
ROUTE_NAMES = {SMART: "SMART", DEGRADED: "DEGRADED", VMS: "VMS", SKIPPED: "SKIPPED", INVALID: "INVALID"}

# DeliveryStatus enum numbers (dispatch.proto) and their ranks.
SUBMITTED = dispatch_pb2.DELIVERY_STATUS_SUBMITTED
DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED
FAILED = dispatch_pb2.DELIVERY_STATUS_FAILED
TIMEOUT = dispatch_pb2.DELIVERY_STATUS_TIMEOUT
RANK = {0: 0, SUBMITTED: 1, TIMEOUT: 2, DELIVERED: 3, FAILED: 3}
FINAL_DELIVERY = frozenset({DELIVERED, FAILED, TIMEOUT})
FINAL_ROUTES = frozenset({SKIPPED, INVALID})

# send_status values of list_aim_send_details (see README).
SENDING = "SENDING"
STATUS_DELIVERED = "DELIVERED"
STATUS_FAILED = "FAILED"
STATUS_TIMEOUT = "TIMEOUT"
STATUS_SKIPPED = "SKIPPED"
STATUS_INVALID = "INVALID"
STATUS_CANCELLED = "CANCELLED"  # scheduled task cancelled: the dispatcher's FAILED final with result_code CANCELLED

CLASSIFICATION_ARRAYS = ("route", "reason")
DELIVERY_ARRAYS = ("dstat", "msg_id", "send_time", "receive_time", "result_code", "segments")
LINK_ARRAYS = ("resolved_at",)
_DEFAULTS: dict[str, Any] = {
    "route": 0,
    "reason": "",
    "dstat": 0,
    "msg_id": "",
    "send_time": 0,
    "receive_time": 0,
    "result_code": "",
    "segments": 0,
    "resolved_at": 0,
}
COUNTER_NAMES = (
    "classified",
    "smart",
    "degraded",
    "vms",
    "skipped",
    "invalid",
    "submitted",
    "delivered",
    "failed",
    "timeout",
    "resolved",
    "final",
)


def batch_id(task_id: str, batch_no: int) -> str:
    return f"{task_id}:{batch_no}"


def new_batch_documents(
    task: dict[str, Any], batch_no: int, first_index: int, mobiles: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The read-model document and its counters document for one recipient batch."""
    doc_id = batch_id(task["_id"], batch_no)
    batch = {
        "_id": doc_id,
        "tenant_id": task["tenant_id"],
        "task_id": task["_id"],
        "task_name": task["task_name"],
        "tpl_id": task["tpl_id"],
        "tpl_name": task["tpl_name"],
        "sms_sign": task["sms_sign"],
        "created_at": task["created_at"],
        "batch_no": batch_no,
        "first_index": first_index,
        "n": len(mobiles),
        "mobiles": mobiles,
        "v": 0,
    }
    counts = {
        "_id": doc_id,
        "tenant_id": task["tenant_id"],
        "task_id": task["_id"],
        "batch_no": batch_no,
        "n": len(mobiles),
        "v": 0,
        "c": dict.fromkeys(COUNTER_NAMES, 0),
    }
    return batch, counts


def array(doc: dict[str, Any], name: str) -> list[Any]:
    """The array ``name`` of a batch document (default-filled when no event of its kind arrived yet)."""
    values = doc.get(name)
    if isinstance(values, list) and len(values) == doc["n"]:
        return values
    return [_DEFAULTS[name]] * doc["n"]


def counters(doc: dict[str, Any]) -> dict[str, int]:
    route = array(doc, "route")
    dstat = array(doc, "dstat")
    resolved = array(doc, "resolved_at")
    return {
        "classified": sum(1 for r in route if r),
        "smart": route.count(SMART),
        "degraded": route.count(DEGRADED),
        "vms": route.count(VMS),
        "skipped": route.count(SKIPPED),
        "invalid": route.count(INVALID),
        "submitted": sum(1 for d in dstat if d),
        "delivered": dstat.count(DELIVERED),
        "failed": dstat.count(FAILED),
        "timeout": dstat.count(TIMEOUT),
        "resolved": sum(1 for r in resolved if r),
        "final": sum(1 for r, d in zip(route, dstat, strict=True) if r in FINAL_ROUTES or d in FINAL_DELIVERY),
    }


UNRESOLVABLE_ROUTES = frozenset({DEGRADED, VMS, SKIPPED})
UNKNOWN_REASON = "UNKNOWN"
REASON_PREFIX = "reason:"  # reason counters in the summed counters of a task (``sum_counters``)


def reason_key(reason: str) -> str:
    """A reason as a MongoDB field name (reasons are upper-case identifiers; anything else is made safe)."""
    key = reason.strip().replace(".", "_").lstrip("$") or UNKNOWN_REASON
    return key


def reasons(doc: dict[str, Any]) -> dict[str, int]:
    """The batch's unresolvable recipients by reason (a recipient without a reason counts as ``UNKNOWN``)."""
    counts: dict[str, int] = {}
    for route, reason in zip(array(doc, "route"), array(doc, "reason"), strict=True):
        if route in UNRESOLVABLE_ROUTES:
            key = reason_key(reason or "")
            counts[key] = counts.get(key, 0) + 1
    return counts


def sum_counters(docs: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The counters of many batches added up, with their reasons as ``reason:<REASON>`` entries."""
    total = dict.fromkeys(COUNTER_NAMES, 0)
    for doc in docs:
        for name, value in (doc.get("c") or {}).items():
            if name in total:
                total[name] += int(value)
        for reason, value in (doc.get("r") or {}).items():
            key = REASON_PREFIX + reason
            total[key] = total.get(key, 0) + int(value)
    return total


def number_check(unique_recipients: int, counts: dict[str, int]) -> dict[str, Any]:
    """The number check of a task: de-duplicated total, invalid, resolvable, unresolvable (by reason), pending."""
    by_reason = {
        name.removeprefix(REASON_PREFIX): value
        for name, value in sorted(counts.items())
        if name.startswith(REASON_PREFIX) and value
    }
    return {
        "total": unique_recipients,
        "checked": counts["classified"],
        "pending": max(0, unique_recipients - counts["classified"]),
        "invalid": counts["invalid"],
        "resolvable": counts["smart"],
        "unresolvable": counts["degraded"] + counts["vms"] + counts["skipped"],
        "unresolvable_by_reason": by_reason,
    }


def send_status(route: int, dstat: int) -> str:
    if dstat == DELIVERED:
        return STATUS_DELIVERED
    if dstat == FAILED:
        return STATUS_FAILED
    if dstat == TIMEOUT:
        return STATUS_TIMEOUT
    if route == SKIPPED:
        return STATUS_SKIPPED
    if route == INVALID:
        return STATUS_INVALID
    return SENDING


def stage(route: int, dstat: int) -> str:
    """Magpie extension: where a recipient is in the pipeline."""
    if dstat in FINAL_DELIVERY or route in FINAL_ROUTES:
        return "FINAL"
    if dstat:
        return "SUBMITTED"
    if route:
        return "CLASSIFIED"
    return "ACCEPTED"


def recipient_view(doc: dict[str, Any], position: int) -> dict[str, Any]:
    """One ``AIMSendDetail`` (plus Magpie extensions) of the recipient at ``position`` of a batch document."""
    route = array(doc, "route")[position]
    dstat = array(doc, "dstat")[position]
    reason = array(doc, "reason")[position]
    status = send_status(route, dstat)
    result_code = array(doc, "result_code")[position]
    if status == STATUS_FAILED and result_code == STATUS_CANCELLED:
        status = STATUS_CANCELLED
    if not result_code:
        if status == STATUS_TIMEOUT:
            result_code = "TIMEOUT"
        elif status in (STATUS_SKIPPED, STATUS_INVALID):
            result_code = reason or status
    mobile = doc["mobiles"][position]
    resolved_at = array(doc, "resolved_at")[position]
    return {
        "msg_id": array(doc, "msg_id")[position] or None,
        "task_id": doc["task_id"],
        "task_name": doc.get("task_name"),
        "tpl_id": doc.get("tpl_id"),
        "tpl_name": doc.get("tpl_name"),
        "cust_flag": mobile,
        "send_account": mobile,
        "send_status": status,
        "send_time": iso_from_ms(array(doc, "send_time")[position]),
        "receive_time": iso_from_ms(array(doc, "receive_time")[position]),
        "result_code": result_code or None,
        # Magpie extensions
        "index": doc["first_index"] + position,
        "stage": stage(route, dstat),
        "route": ROUTE_NAMES.get(route),
        "reason": reason or None,
        "segments": array(doc, "segments")[position] or None,
        "resolved": bool(resolved_at),
        "resolve_time": iso_from_ms(resolved_at),
        "sms_sign": doc.get("sms_sign"),
    }
