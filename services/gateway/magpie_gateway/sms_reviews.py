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
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.reviews import submitted_event_id


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
