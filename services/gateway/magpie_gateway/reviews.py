"""Reviews: signatures, SMS templates and AIM templates go to template-review as ``TemplateSubmitted``; its
``TemplateReviewed`` decisions come back on TEMPLATE_REVIEWED (the first route of the gateway's consumer,
``wiring.routes``).

Review states shown by the API:

- SMS signature ``status`` and SMS template ``flow_status`` / ``status``: ``PENDING_REVIEW`` -> ``APPROVED`` |
  ``REJECTED`` (``review_desc`` carries the reviewer's reason).
- AIM template: ``audit_state`` 1 under review -> 2 approved (at least one vendor) | 3 rejected (no vendor);
  ``factory_info[].state`` 1 = approved (active) for that vendor, 0 = not; ``tpl_state`` 1 (enabled) once at
  least one vendor approved, 0 before.

Every change of a reviewable thing increases its ``revision``; a decision applies only to the revision it was
made for (decisions of older revisions are stale and ignored). Applying the same decision twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection

from magpie.v1 import template_pb2
from magpie_common.ids import stable_id
from magpie_common.kafka import Decoded
from magpie_common.topics import TEMPLATE_SUBMITTED
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.db import Collections
from magpie_gateway.timefmt import utc_now

log = logging.getLogger(__name__)

PENDING_REVIEW = "PENDING_REVIEW"
APPROVED = "APPROVED"
REJECTED = "REJECTED"

AUDIT_UNDER_REVIEW = 1
AUDIT_APPROVED = 2
AUDIT_REJECTED = 3

REVIEWS_APPLIED = Counter("magpie_gateway_reviews_applied_total", "Review decisions applied", ["subject", "outcome"])


def submitted_event_id(message: template_pb2.TemplateSubmitted) -> str:
    return stable_id("template-submitted", message.subject, message.subject_id, message.revision)


async def send_for_review(
    context: GatewayContext,
    message: template_pb2.TemplateSubmitted,
    *,
    tenant_id: str,
    trace_id: str,
    collection: AsyncCollection,
) -> None:
    """Produce ``message`` (durably). If that fails the just-created document is removed, so the client sees an
    error and nothing stays half-created (a document that is never reviewed)."""
    message.meta.CopyFrom(event_meta(submitted_event_id(message), tenant_id, trace_id))
    try:
        await context.producer.send(TEMPLATE_SUBMITTED, message.subject_id, message)
    except BaseException:
        await collection.delete_one({"_id": message.subject_id, "tenant_id": tenant_id, "revision": message.revision})
        raise


def _aim_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    decisions = {v.vendor.strip().upper(): v for v in review.vendors}
    factory_info = []
    for entry in doc.get("factory_info", []):
        vendor = entry["factory_type"]
        decision = decisions.get(vendor)
        if decision is not None:
            approved, reason = decision.approved, decision.reason
        elif not decisions:
            approved, reason = review.approved, review.reason
        else:
            approved, reason = False, "not reviewed"
        factory_info.append({**entry, "state": 1 if approved else 0, "reason": reason})
    any_approved = any(entry["state"] == 1 for entry in factory_info)
    return {
        "factory_info": factory_info,
        "audit_state": AUDIT_APPROVED if any_approved else AUDIT_REJECTED,
        "audit_desc": review.reason,
        "tpl_state": 1 if any_approved else 0,
    }


@dataclass(frozen=True)
class ReviewTarget:
    """Where the decisions of one review subject go: the collection holding the subjects (``_id`` = subject_id,
    with ``tenant_id`` and ``revision``) and the ``$set`` a decision makes (besides the common review fields)."""

    collection: str
    label: str
    update: Callable[[dict[str, Any], template_pb2.TemplateReviewed], dict[str, Any]]
    # Called after the update was applied (e.g. to push a template-status callback); optional.
    after: Callable[[GatewayContext | None, dict[str, Any], template_pb2.TemplateReviewed], Awaitable[None]] | None = (
        None
    )


def _sms_template_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    state = APPROVED if review.approved else REJECTED
    return {"review_desc": review.reason, "flow_status": state, "status": state}


def _signature_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    return {"review_desc": review.reason, "status": APPROVED if review.approved else REJECTED}


REVIEW_TARGETS: dict[int, ReviewTarget] = {
    template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE: ReviewTarget("aim_templates", "aim_template", _aim_update),
    template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE: ReviewTarget("sms_templates", "sms_template", _sms_template_update),
    template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE: ReviewTarget("signatures", "sms_signature", _signature_update),
}


def register_review_target(subject: int, target: ReviewTarget) -> None:
    """Route the decisions of ``subject`` to ``target`` (modules owning a reviewable resource call this at import)."""
    REVIEW_TARGETS[subject] = target


class ReviewProjector:
    """Handler of TEMPLATE_REVIEWED: applies decisions to every reviewable resource (``REVIEW_TARGETS``)."""

    def __init__(self, collections: Collections, context: GatewayContext | None = None) -> None:
        self._c = collections
        self._context = context

    def _target(self, subject: int) -> tuple[ReviewTarget, AsyncCollection] | None:
        target = REVIEW_TARGETS.get(subject)
        if target is None:
            return None
        return target, getattr(self._c, target.collection)

    async def handle(self, batch: Sequence[Decoded[template_pb2.TemplateReviewed]]) -> None:
        for item in batch:
            await self.apply(item.message)

    async def apply(self, review: template_pb2.TemplateReviewed) -> bool:
        """Apply one decision; False when it is stale or names nothing we know."""
        found = self._target(review.subject)
        if found is None or not review.subject_id:
            REVIEWS_APPLIED.labels("unknown", "ignored").inc()
            log.warning("review of an unknown subject ignored", extra={"subject": review.subject})
            return False
        target, collection = found
        label = target.label
        query: dict[str, Any] = {"_id": review.subject_id, "revision": review.revision}
        if review.meta.tenant_id:
            query["tenant_id"] = review.meta.tenant_id
        doc = await collection.find_one(query)
        if doc is None:
            REVIEWS_APPLIED.labels(label, "stale").inc()
            log.info(
                "stale or unknown review ignored",
                extra={"subject": label, "subject_id": review.subject_id, "revision": review.revision},
            )
            return False
        now = utc_now()
        common = {
            "reviewed_at": now,
            "updated_at": now,
            "review_rule_ids": list(review.rule_ids),
            "reviewer": review.reviewer,
        }
        update = {**target.update(doc, review), **common}
        result = await collection.update_one({"_id": review.subject_id, "revision": review.revision}, {"$set": update})
        applied = result.matched_count == 1
        REVIEWS_APPLIED.labels(label, "approved" if review.approved else "rejected").inc()
        if applied and target.after is not None:
            await target.after(self._context, {**doc, **update}, review)
        return applied
