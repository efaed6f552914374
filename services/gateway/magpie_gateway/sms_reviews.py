"""Sending a changed SMS signature or SMS template back to review.

``reviews.send_for_review`` is made for creations: when the event cannot be produced it deletes the document it
was about. A modification must not lose the resource, so here a failed produce puts the previous version back
(guarded by the new revision, so a later change is never overwritten) and the client gets the error.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from magpie.v1 import template_pb2
from magpie_common.topics import TEMPLATE_SUBMITTED
from magpie_gateway import codes
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.reviews import REJECTED, submitted_event_id


async def rejected_for_edit(
    collection: AsyncCollection, subject_id: str, tenant_id: str, *, what: str, state_field: str
) -> dict[str, Any]:
    """The tenant's document to modify: 404 when unknown (or another tenant's), KM.00000470 unless REJECTED (only
    a rejected signature or template may be modified, as in KooMessage)."""
    previous = await collection.find_one({"_id": subject_id, "tenant_id": tenant_id})
    if previous is None:
        raise not_found(f"SMS {what} {subject_id}")
    if previous[state_field] != REJECTED:
        raise fail(codes.NOT_MODIFIABLE, f"{what} {subject_id} is {previous[state_field]}")
    return previous


async def resubmit_for_review(
    context: GatewayContext,
    message: template_pb2.TemplateSubmitted,
    *,
    tenant_id: str,
    trace_id: str,
    collection: AsyncCollection,
    previous: dict[str, Any],
) -> None:
    """Produce ``message`` (the new revision) durably; on failure restore ``previous`` and re-raise."""
    message.meta.CopyFrom(event_meta(submitted_event_id(message), tenant_id, trace_id))
    try:
        await context.producer.send(TEMPLATE_SUBMITTED, message.subject_id, message)
    except BaseException:
        await collection.replace_one(
            {"_id": message.subject_id, "tenant_id": tenant_id, "revision": message.revision}, previous
        )
        raise
