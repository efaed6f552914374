"""AIM template status events: what the tenant's template-status callback (``POST /v1/aim/callbacks`` url_type 1)
is told, produced as ``AimTemplateStatus`` on AIM_TEMPLATE_STATUS (keyed by ``tpl_id``) for the dispatcher's
receipts role, which POSTs KooMessage's body ``{tpl_id, tpl_state, audit_state, audit_desc, factory_info:
[{factory_type, state}]}`` to the URL (nothing when the tenant registered none).

When, decided for Magpie:

- a review decision applied to the template (``change`` = ``review``): always, approved (``audit_state`` 2) or
  rejected (3), with ``tpl_state`` as the decision left it (a template the tenant disabled stays 0);
- ``update_personal_template_state`` (``enable`` / ``disable``) once the template has a review outcome. A disable
  while the template is still under review (``audit_state`` 1, a value the callback does not have) sends nothing:
  the review decision's callback then carries ``tpl_state`` 0;
- deleting a template sends nothing: the body cannot express "deleted", and the tenant deleted it through the API
  and was answered synchronously. Callbacks already queued for it are still delivered.

Per vendor (``factory_info[].state``, KooMessage: 0 disabled, 1 enabled, 2 not enabled): 1 = the vendor approved the
template (it is active there), 2 = under review or rejected by that vendor. Magpie never disables a template per
vendor, so 0 does not occur; the tenant's disabling is ``tpl_state`` 0.

Event ids (``meta.event_id``, the receipts outbox deduplicates on them): a review change is
``stable_id(.., tpl_id, "review", <TemplateReviewed event id>)``, so a redelivered decision is posted once and a new
decision again; an enable/disable is ``stable_id(.., tpl_id, "state", status_seq)`` where ``status_seq`` (a field of
the template document) increases with every request that changes ``tpl_state``. The API produces the event of the
current state on every successful enable/disable request, also one that changes nothing: a request whose event
could not be produced (the client sees an error) is simply repeated, and a request that changes nothing re-produces
the event already produced, which the outbox drops. Delivery is at-least-once and, across retries of failing POSTs,
not ordered: the callback reports the state at the time of the change.
"""

from __future__ import annotations

import logging
from typing import Any

from magpie.v1 import template_pb2, template_status_pb2
from magpie_common.ids import stable_id
from magpie_common.topics import AIM_TEMPLATE_STATUS
from magpie_gateway.context import GatewayContext, event_meta

log = logging.getLogger(__name__)

CHANGE_REVIEW = "review"
CHANGE_ENABLE = "enable"
CHANGE_DISABLE = "disable"

# audit_state values the callback knows (reviews.AUDIT_APPROVED / AUDIT_REJECTED); 1 (under review) is not one.
REPORTED_AUDIT_STATES = (2, 3)

VENDOR_ENABLED = 1
VENDOR_NOT_ENABLED = 2

STATUS_SEQ = "status_seq"  # field of the template document: number of tpl_state changes by the tenant


def vendor_state(entry: dict[str, Any]) -> int:
    return VENDOR_ENABLED if entry.get("state") == 1 else VENDOR_NOT_ENABLED


def status_event(
    doc: dict[str, Any], *, change: str, event_id: str, trace_id: str = ""
) -> template_status_pb2.AimTemplateStatus:
    """The status event of template ``doc`` (its stored fields, after the change)."""
    event = template_status_pb2.AimTemplateStatus(
        meta=event_meta(event_id, doc["tenant_id"], trace_id),
        tpl_id=doc["_id"],
        revision=int(doc.get("revision", 0)),
        tpl_state=int(doc.get("tpl_state", 0)),
        audit_state=int(doc.get("audit_state", 0)),
        audit_desc=doc.get("audit_desc") or "",
        change=change,
    )
    for entry in doc.get("factory_info", []):
        event.factory_info.add(
            factory_type=entry["factory_type"], state=vendor_state(entry), reason=entry.get("reason") or ""
        )
    return event


def review_event_id(tpl_id: str, review: template_pb2.TemplateReviewed) -> str:
    source = review.meta.event_id or f"{review.revision}:{review.approved}"
    return stable_id("aim-template-status", tpl_id, CHANGE_REVIEW, source)


def state_event_id(doc: dict[str, Any]) -> str:
    return stable_id("aim-template-status", doc["_id"], "state", int(doc.get(STATUS_SEQ, 0)))


async def after_review(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    """``ReviewTarget.after`` of AIM templates: the decision was applied to ``doc``; produce its status (durable
    when this returns; an error makes the review consumer retry the decision, which is idempotent)."""
    if context is None:
        log.warning("no gateway context: AIM template status not produced", extra={"tpl_id": doc["_id"]})
        return
    if doc.get("audit_state") not in REPORTED_AUDIT_STATES:
        return
    event = status_event(
        doc, change=CHANGE_REVIEW, event_id=review_event_id(doc["_id"], review), trace_id=review.meta.trace_id
    )
    await context.producer.send(AIM_TEMPLATE_STATUS, doc["_id"], event)


async def after_state_change(context: GatewayContext, doc: dict[str, Any], trace_id: str = "") -> bool:
    """After ``update_personal_template_state`` stored ``doc`` (read back after the update): produce its status.
    False when nothing is produced (the template has no review outcome yet)."""
    if doc.get("audit_state") not in REPORTED_AUDIT_STATES:
        return False
    change = CHANGE_ENABLE if doc.get("tpl_state") == 1 else CHANGE_DISABLE
    event = status_event(doc, change=change, event_id=state_event_id(doc), trace_id=trace_id)
    await context.producer.send(AIM_TEMPLATE_STATUS, doc["_id"], event)
    return True
