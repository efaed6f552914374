"""Saving a reviewable console resource (filing, domain, jump-link batch) together with its review request.

A new document is inserted, then its ``TemplateSubmitted`` is produced (``reviews.send_for_review`` removes the
document again if producing fails, so nothing stays half-created). A changed document replaces the stored one
only if nobody changed it in between (same ``revision``), then the review request of the new revision is
produced; if producing fails, the previous document is put back, so a resource never waits for a review that
was never requested.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from magpie.v1 import template_pb2
from magpie_common.topics import TEMPLATE_SUBMITTED
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.errors import ApiError
from magpie_gateway.reviews import send_for_review, submitted_event_id


async def insert(
    context: GatewayContext,
    collection: AsyncCollection,
    doc: dict[str, Any],
    message: template_pb2.TemplateSubmitted | None,
    *,
    trace_id: str,
) -> None:
    await collection.insert_one(doc)
    if message is not None:
        await send_for_review(context, message, tenant_id=doc["tenant_id"], trace_id=trace_id, collection=collection)


async def replace(
    context: GatewayContext,
    collection: AsyncCollection,
    before: dict[str, Any],
    after: dict[str, Any],
    message: template_pb2.TemplateSubmitted | None,
    *,
    trace_id: str,
    conflict: ApiError,
) -> None:
    """Store ``after`` in place of ``before`` (``conflict`` if it changed meanwhile), then request its review."""
    result = await collection.replace_one(
        {"_id": before["_id"], "tenant_id": before["tenant_id"], "revision": before["revision"]}, after
    )
    if result.matched_count != 1:
        raise conflict
    if message is None:
        return
    message.meta.CopyFrom(event_meta(submitted_event_id(message), after["tenant_id"], trace_id))
    try:
        await context.producer.send(TEMPLATE_SUBMITTED, message.subject_id, message)
    except BaseException:
        await collection.replace_one(
            {"_id": after["_id"], "tenant_id": after["tenant_id"], "revision": after["revision"]}, before
        )
        raise
