"""The stored review document and the events derived from it. Pure functions; the store does the I/O.

A review is keyed by (subject, subject_id, revision): its ``_id`` is a stable id of those three, so a redelivered
submission finds the review it already produced. Each vendor has a state ``approved``, ``rejected`` or ``pending``
(automatic approval held for a human, see MAGPIE_REVIEW_MANUAL_VENDORS). Automatic rejections are final; only held
vendors accept manual decisions.

Every change of outcome bumps ``version`` and stores the resulting ``TemplateReviewed`` in ``outbox`` (serialized,
with its stable event id ``stable_id("template-reviewed", review_id, version)``) together with
``unpublished: True``; the event is sent from there and the flag cleared once the broker acknowledged it. So a
crash between the write and the send re-sends the identical event (same id, same bytes), never a different one.
Version 0 means nothing is decided yet (every vendor held): no event until a human decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from magpie.v1 import common_pb2, template_pb2
from magpie_common.ids import stable_id
from magpie_template_review.catalog import SUBJECT_NAMES, Rule
from magpie_template_review.config import SERVICE_NAME
from magpie_template_review.rules import AutoReview
from magpie_template_review.submission import Submission

APPROVED = "approved"
REJECTED = "rejected"
PENDING = "pending"

STATE_PENDING = "pending"  # at least one vendor waits for a human
STATE_DECIDED = "decided"  # every vendor has a result
STATE_SUPERSEDED = "superseded"  # a newer revision of the subject was reviewed
REVIEW_STATES = (STATE_PENDING, STATE_DECIDED, STATE_SUPERSEDED)

AUTO_REVIEWER = "auto"
HELD_REASON = "waiting for manual review"

Doc = dict[str, Any]


def review_id(subject: int, subject_id: str, revision: int) -> str:
    return stable_id("template-review", subject, subject_id, revision)


def event_id(rid: str, version: int) -> str:
    return stable_id("template-reviewed", rid, version)


def new_review_doc(
    sub: Submission,
    meta: common_pb2.EventMeta,
    auto: AutoReview,
    manual_vendors: frozenset[str],
    now_ms: int,
) -> Doc:
    vendors = []
    for verdict in auto.verdicts:
        held = verdict.approved and verdict.vendor in manual_vendors
        vendors.append(
            {
                "vendor": verdict.vendor,
                "state": PENDING if held else (APPROVED if verdict.approved else REJECTED),
                "reason": HELD_REASON if held else verdict.reason,
                "reviewer": "" if held else AUTO_REVIEWER,
                "manual": held,
                "decided_at_ms": None if held else now_ms,
            }
        )
    rid = review_id(sub.subject, sub.subject_id, sub.revision)
    doc: Doc = {
        "_id": rid,
        "subject": sub.subject,
        "subject_name": SUBJECT_NAMES.get(sub.subject, str(sub.subject)),
        "subject_id": sub.subject_id,
        "revision": sub.revision,
        "tenant_id": meta.tenant_id,
        "trace_id": meta.trace_id,
        "submitted_event_id": meta.event_id,
        "submission": {
            "name": sub.name,
            "use_template_type": sub.use_template_type,
            "texts": list(sub.texts),
            "vendors": list(sub.vendors),
            "param_count": sub.param_count,
            "param_names": list(sub.param_names),
            "buttons": [{"text": b.text, "action": b.action, "target": b.target} for b in sub.buttons],
        },
        "rule_ids": auto.rule_ids,
        "reason": auto.reason,
        "vendors": vendors,
        "state": STATE_PENDING if any(v["state"] == PENDING for v in vendors) else STATE_DECIDED,
        "approved": any(v["state"] == APPROVED for v in vendors),
        "reviewer": AUTO_REVIEWER,
        "decisions": [],
        "version": 0,
        "outbox": None,
        "unpublished": False,
        "created_at_ms": now_ms,
        "updated_at_ms": now_ms,
    }
    decided = [v for v in vendors if v["state"] != PENDING]
    if decided or not vendors:
        doc["version"] = 1
        doc["outbox"] = outbox_entry(doc, 1, now_ms)
        doc["unpublished"] = True
    return doc


def build_event(doc: Doc, version: int, now_ms: int) -> template_pb2.TemplateReviewed:
    """The TemplateReviewed for the document as it stands: decided vendors only (pending ones are named in the
    reason); approved when at least one vendor approved."""
    decided = [v for v in doc["vendors"] if v["state"] != PENDING]
    pending = [v["vendor"] for v in doc["vendors"] if v["state"] == PENDING]
    reasons = [doc["reason"]] if doc["reason"] else []
    reasons += [
        f"{v['vendor']} rejected by {v['reviewer']}" + (f": {v['reason']}" if v["reason"] else "")
        for v in decided
        if v["manual"] and v["state"] == REJECTED
    ]
    if pending:
        reasons.append(f"{HELD_REASON}: {', '.join(pending)}")
    rule_ids = list(doc["rule_ids"])
    if doc["decisions"]:
        rule_ids.append(Rule.MANUAL_REVIEW)
    return template_pb2.TemplateReviewed(
        meta=common_pb2.EventMeta(
            event_id=event_id(doc["_id"], version),
            tenant_id=doc["tenant_id"],
            occurred_at_ms=now_ms,
            producer=SERVICE_NAME,
            trace_id=doc["trace_id"],
        ),
        subject=doc["subject"],
        subject_id=doc["subject_id"],
        revision=doc["revision"],
        approved=any(v["state"] == APPROVED for v in decided),
        vendors=[
            template_pb2.VendorReview(vendor=v["vendor"], approved=v["state"] == APPROVED, reason=v["reason"])
            for v in decided
        ],
        reason="; ".join(reasons),
        rule_ids=rule_ids,
        reviewer=doc["reviewer"],
    )


def outbox_entry(doc: Doc, version: int, now_ms: int) -> Doc:
    event = build_event(doc, version, now_ms)
    return {"version": version, "event_id": event.meta.event_id, "payload": event.SerializeToString()}


# --- manual decisions -----------------------------------------------------------------------------------------
class DecisionError(Exception):
    """A decision that cannot apply to the review; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Decision:
    vendor: str
    approved: bool
    reason: str
    reviewer: str


def apply_decision(doc: Doc, decision: Decision, now_ms: int) -> Doc | None:
    """The fields to ``$set`` on ``doc`` for ``decision``, or None when it does not change the vendor's result.

    Raises DecisionError when the review is superseded or the vendor is not held for manual review.
    """
    if doc["state"] == STATE_SUPERSEDED:
        raise DecisionError(409, "a newer revision of this subject has been reviewed; this review is closed")
    vendor = decision.vendor.strip().upper()
    entry = next((v for v in doc["vendors"] if v["vendor"] == vendor), None)
    if entry is None:
        raise DecisionError(404, f"vendor {vendor} is not part of this review")
    if not entry["manual"]:
        raise DecisionError(409, f"vendor {vendor} was decided automatically ({entry['state']}); not reviewable")
    new_state = APPROVED if decision.approved else REJECTED
    if entry["state"] == new_state:
        return None
    vendors = [
        {
            **v,
            "state": new_state,
            "reason": decision.reason,
            "reviewer": decision.reviewer,
            "decided_at_ms": now_ms,
        }
        if v["vendor"] == vendor
        else v
        for v in doc["vendors"]
    ]
    version = doc["version"] + 1
    record = {
        "vendor": vendor,
        "approved": decision.approved,
        "reason": decision.reason,
        "reviewer": decision.reviewer,
        "at_ms": now_ms,
        "version": version,
    }
    updated: Doc = {
        **doc,
        "vendors": vendors,
        "state": STATE_PENDING if any(v["state"] == PENDING for v in vendors) else STATE_DECIDED,
        "approved": any(v["state"] == APPROVED for v in vendors),
        "reviewer": decision.reviewer,
        "decisions": [*doc["decisions"], record],
        "version": version,
        "updated_at_ms": now_ms,
    }
    updated["outbox"] = outbox_entry(updated, version, now_ms)
    updated["unpublished"] = True
    return {k: updated[k] for k in SET_ON_DECISION}


SET_ON_DECISION = (
    "vendors",
    "state",
    "approved",
    "reviewer",
    "decisions",
    "version",
    "outbox",
    "unpublished",
    "updated_at_ms",
)


def summary(doc: Doc) -> Doc:
    """The JSON view of a review for the internal API."""
    return {
        "review_id": doc["_id"],
        "subject": doc["subject_name"],
        "subject_id": doc["subject_id"],
        "revision": doc["revision"],
        "tenant_id": doc["tenant_id"],
        "state": doc["state"],
        "approved": doc["approved"],
        "rule_ids": doc["rule_ids"],
        "reason": doc["reason"],
        "reviewer": doc["reviewer"],
        "vendors": [
            {k: v[k] for k in ("vendor", "state", "reason", "reviewer", "manual", "decided_at_ms")}
            for v in doc["vendors"]
        ],
        "submission": doc["submission"],
        "decisions": doc["decisions"],
        "version": doc["version"],
        "published": not doc["unpublished"],
        "created_at_ms": doc["created_at_ms"],
        "updated_at_ms": doc["updated_at_ms"],
    }
