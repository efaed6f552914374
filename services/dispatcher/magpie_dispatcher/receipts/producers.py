"""Receipt producers: turn delivery and link events into outbox items (Kafka handlers of the receipts group).

- DELIVERY (``DeliveryBatch``): every event with a final status (DELIVERED, FAILED, TIMEOUT) gives one sms receipt;
  SUBMITTED gives none. Source event id = ``DeliveryEvent.event_id``.
- LINK (``LinkEvent``): a RESOLVED event with ``billable = true`` (the first, successful resolution of the link)
  gives one shortchain receipt; later resolutions of the same link (not billable) and CLICKED events give none,
  as KooMessage sends a shortchain receipt per successful (charged) resolution. Source event id =
  ``meta.event_id``.

A tenant without a receipt URL (url_type 0 or 2, routed by ``aim_url``) gets nothing. A handler batch's receipts
are written before the handler returns (so before the offsets are committed) as one outbox document per callback
URL (``outbox.documents``); receipt ids are stable and deduplicated by ``Outbox.insert``, so a redelivered record or
a duplicate event inserts nothing and is never POSTed twice. Documents the local sender has room for are inserted
already leased to it and handed over in memory (``ReceiptSender.admit`` / ``take``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from magpie.v1 import dispatch_pb2, link_pb2
from magpie_common.ids import stable_id
from magpie_common.kafka import Decoded
from magpie_dispatcher.receipts import metrics
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.outbox import Outbox, documents, new_item, utcnow
from magpie_dispatcher.receipts.payloads import (
    FINAL_STATUSES,
    SHORTCHAIN,
    SMS,
    URL_TYPE_BATCH,
    shortchain_receipt,
    sms_receipt,
)
from magpie_dispatcher.receipts.registry import CallbackRegistry, route
from magpie_dispatcher.receipts.sender import ReceiptSender

log = logging.getLogger(__name__)

# (tenant, aim_url, callback_type, source event id, receipt object)
Pending = tuple[str, str, str, str, dict[str, Any]]


def receipt_item_id(callback_type: str, source_event_id: str, url_type: int) -> str:
    return stable_id("receipt", callback_type, source_event_id, url_type)


class ReceiptProducer:
    def __init__(
        self, registry: CallbackRegistry, outbox: Outbox, config: ReceiptsConfig, sender: ReceiptSender
    ) -> None:
        self.registry = registry
        self.outbox = outbox
        self.config = config
        self.sender = sender

    async def handle_delivery(self, batch: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        pending: list[Pending] = []
        for item in batch:
            message = item.message
            for event in message.events:
                if event.status not in FINAL_STATUSES:
                    continue
                tenant = event.tenant_id or message.meta.tenant_id
                if not tenant:
                    log.warning("delivery event without a tenant ignored", extra={"event_id": event.event_id})
                    continue
                source = event.event_id or stable_id("delivery", event.task_id, event.msg_id, event.status)
                pending.append((tenant, event.aim_url, SMS, source, sms_receipt(event)))
        await self._enqueue(pending)

    async def handle_link(self, batch: Sequence[Decoded[link_pb2.LinkEvent]]) -> None:
        pending: list[Pending] = []
        for item in batch:
            event = item.message
            if event.type != link_pb2.LINK_EVENT_TYPE_RESOLVED or not event.billable:
                continue
            tenant = event.meta.tenant_id
            if not tenant:
                log.warning("link event without a tenant ignored", extra={"event_id": event.meta.event_id})
                continue
            source = event.meta.event_id or stable_id("link", event.code, event.at_ms, event.type)
            pending.append((tenant, event.aim_url, SHORTCHAIN, source, shortchain_receipt(event)))
        await self._enqueue(pending)

    async def _enqueue(self, pending: list[Pending]) -> None:
        if not pending:
            return
        callbacks = await self.registry.lookup(p[0] for p in pending)
        now = utcnow()
        items: list[dict[str, Any]] = []
        for tenant, aim_url, callback_type, source, receipt in pending:
            for callback in route(callbacks.get(tenant, []), aim_url):
                items.append(
                    new_item(
                        item_id=receipt_item_id(callback_type, source, callback.url_type),
                        tenant_id=tenant,
                        callback_type=callback_type,
                        url=callback.url,
                        url_type=callback.url_type,
                        aim_url=aim_url,
                        source_event_id=source,
                        receipt=receipt,
                        now=now,
                        due_at=batch_window_end(now, callback.url, self.config.batch_window_ms)
                        if callback.url_type == URL_TYPE_BATCH
                        else now,
                    )
                )
        await self.store(items)

    async def store(self, items: list[dict[str, Any]]) -> None:
        """Write receipts (``new_item``) durably, one outbox document per URL, and hand those the local sender has
        room for over to it; receipts already in the outbox (same id) are not written again."""
        await store(self.outbox, self.sender, items)


async def store(outbox: Outbox, sender: ReceiptSender, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group ``items`` into outbox documents, insert them (deduplicated by receipt id) and hand the documents the
    sender admitted over to it; returns the documents written."""
    if not items:
        return []
    docs = documents(items)
    admitted = sender.admit(docs)
    try:
        written = await outbox.insert(docs)
    except BaseException:
        sender.cancel(docs, admitted)
        raise
    sender.take(docs, admitted, written)
    counts: dict[str, int] = {}
    for doc in written:
        counts[doc["callback_type"]] = counts.get(doc["callback_type"], 0) + len(doc["receipts"])
    for callback_type, count in counts.items():
        metrics.QUEUED.labels(callback_type).inc(count)
    return written


def batch_window_end(now: datetime, url: str, window_ms: int) -> datetime:
    """End of the batch window ``now`` falls in: tumbling windows of ``window_ms`` per URL, each URL with its own
    phase (so the batches of different customers do not all fall due at the same instant)."""
    if window_ms <= 0:
        return now
    phase = int(stable_id("batch-window", url)[:8], 16) % window_ms
    now_ms = int(now.timestamp() * 1000)
    end_ms = ((now_ms - phase) // window_ms + 1) * window_ms + phase
    return datetime.fromtimestamp(end_ms / 1000, UTC)
