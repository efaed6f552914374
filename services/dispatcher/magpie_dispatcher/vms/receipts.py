"""VMS customer callbacks, on the receipt machinery of ``magpie_dispatcher.receipts`` (outbox, sender, registry).

One consumer (group ``vms-receipts``, four topics) feeds a separate outbox collection, ``vms_outbox`` (so a VMS
backlog never slows the AIM receipts), drained by its own ``ReceiptSender``:

- VMS_CALLBACKS (``CallbackConfigured``): the tenants' VMS URLs, collection ``vms_callbacks`` (``CallbackRegistry``;
  url_type 0 send status, 1 replies);
- VMS_DELIVERY: every final event (DELIVERED, FAILED, TIMEOUT) -> one report for the tenant's url_type 0 URL;
- VMS_MO: every reply -> one result for the tenant's url_type 1 URL;
- VMS_TEMPLATE_STATUS: -> one status POST to the template's own ``callbackurl``.

Reports and replies are posted in the receipt sender's batch mode (their bodies are lists: ``reports`` /
``result``; a POST gathers what arrives within ``MAGPIE_RECEIPT_BATCH_WINDOW_MS``, at most
``MAGPIE_RECEIPT_MAX_BATCH``); template statuses one per POST. Receipt ids are stable (``stable_id("receipt",
callback type, source event id, url_type)``, deduplicated by ``Outbox.insert``), so a redelivered event is never
posted twice; retries, dead items, leases and the SSRF guard are the receipt sender's (see ``receipts.sender``). A
tenant without a URL of the type gets nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from magpie.v1 import billing_pb2, dispatch_pb2, vms_pb2
from magpie_common import topics
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, Decoded, EventProducer, Route
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.destination import guarded_client
from magpie_dispatcher.receipts.outbox import Outbox, new_item, utcnow
from magpie_dispatcher.receipts.payloads import FINAL_STATUSES, URL_TYPE_BATCH, URL_TYPE_SINGLE
from magpie_dispatcher.receipts.producers import batch_window_end, receipt_item_id, store
from magpie_dispatcher.receipts.registry import CallbackRegistry
from magpie_dispatcher.receipts.sender import ReceiptSender
from magpie_dispatcher.receipts.signing import ReceiptSigner
from magpie_dispatcher.vms.payloads import (
    URL_TYPE_MO,
    URL_TYPE_STATUS,
    VMS_MO,
    VMS_STATUS,
    VMS_TEMPLATE,
    mo_result,
    status_report,
    template_status,
)

log = logging.getLogger(__name__)

GROUP_PREFIX = "vms-receipts"

# (tenant, callback type, url, delivery mode, source event id, receipt object)
Pending = tuple[str, str, str, int, str, dict[str, Any]]


class VmsReceiptProducer:
    def __init__(
        self, registry: CallbackRegistry, outbox: Outbox, config: ReceiptsConfig, sender: ReceiptSender
    ) -> None:
        self.registry = registry
        self.outbox = outbox
        self.config = config
        self.sender = sender

    async def _registered(
        self, wanted: list[tuple[str, int, str, dict[str, Any]]], callback_type: str
    ) -> list[Pending]:
        """(tenant, url_type, source id, receipt) -> the pending items of the tenants that registered a URL."""
        callbacks = await self.registry.lookup(w[0] for w in wanted)
        pending: list[Pending] = []
        for tenant, url_type, source, receipt in wanted:
            for callback in callbacks.get(tenant, []):
                if callback.url_type == url_type:
                    pending.append((tenant, callback_type, callback.url, URL_TYPE_BATCH, source, receipt))
        return pending

    async def handle_delivery(self, batch: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        wanted = []
        for item in batch:
            for event in item.message.events:
                tenant = event.tenant_id or item.message.meta.tenant_id
                if event.status in FINAL_STATUSES and tenant and event.event_id:
                    wanted.append((tenant, URL_TYPE_STATUS, event.event_id, status_report(event)))
        if wanted:
            await self._enqueue(await self._registered(wanted, VMS_STATUS))

    async def handle_mo(self, batch: Sequence[Decoded[vms_pb2.VmsMoEvent]]) -> None:
        wanted = [
            (item.message.meta.tenant_id, URL_TYPE_MO, item.message.meta.event_id, mo_result(item.message))
            for item in batch
            if item.message.meta.tenant_id and item.message.meta.event_id
        ]
        if wanted:
            await self._enqueue(await self._registered(wanted, VMS_MO))

    async def handle_template_status(self, batch: Sequence[Decoded[vms_pb2.VmsTemplateStatus]]) -> None:
        pending: list[Pending] = [
            (
                item.message.meta.tenant_id,
                VMS_TEMPLATE,
                item.message.callback_url,
                URL_TYPE_SINGLE,
                item.message.meta.event_id,
                template_status(item.message),
            )
            for item in batch
            if item.message.callback_url and item.message.meta.tenant_id and item.message.meta.event_id
        ]
        await self._enqueue(pending)

    async def _enqueue(self, pending: list[Pending]) -> None:
        if not pending:
            return
        now = utcnow()
        items: dict[str, dict[str, Any]] = {}
        for tenant, callback_type, url, mode, source, receipt in pending:
            item_id = receipt_item_id(callback_type, source, mode)
            items.setdefault(
                item_id,
                new_item(
                    item_id=item_id,
                    tenant_id=tenant,
                    callback_type=callback_type,
                    url=url,
                    url_type=mode,
                    aim_url="",
                    source_event_id=source,
                    receipt=receipt,
                    now=now,
                    due_at=batch_window_end(now, url, self.config.batch_window_ms) if mode == URL_TYPE_BATCH else now,
                ),
            )
        await store(self.outbox, self.sender, list(items.values()))


@dataclass
class VmsReceipts:
    registry: CallbackRegistry
    outbox: Outbox
    http: httpx.AsyncClient
    sender: ReceiptSender
    loops: list[ConsumerLoop[Any]]

    def workers(self) -> list[Coroutine[Any, Any, None]]:
        return [*(loop.run() for loop in self.loops), self.sender.run()]

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.sender.stop()

    async def close(self) -> None:
        await self.http.aclose()

    def ready(self) -> bool:
        return all(loop.ready for loop in self.loops) and self.sender.running


async def build_vms_receipts(
    settings: Settings, db: AsyncDatabase, producer: EventProducer, config: ReceiptsConfig | None = None
) -> VmsReceipts:
    config = config or ReceiptsConfig()
    registry = CallbackRegistry(db["vms_callbacks"], cache_ttl_s=config.callback_cache_ms / 1000.0)
    outbox = Outbox(
        db["vms_outbox"], done_retention_s=config.done_retention_s, dead_retention_s=config.dead_retention_s
    )
    await asyncio.gather(registry.ensure_indexes(), outbox.ensure_indexes())
    http = guarded_client(
        allow_loopback=config.allow_loopback, timeout_s=config.http_timeout_s, max_connections=config.max_in_flight
    )
    signer = ReceiptSigner(config.signing_secret) if config.signing_secret else None
    sender = ReceiptSender(outbox, config, http, signer)
    handlers = VmsReceiptProducer(registry, outbox, config, sender)

    # The four topics through ONE consumer of the group (an idle consumer costs its broker a fetch every 500 ms).
    loops: list[ConsumerLoop[Any]] = [
        ConsumerLoop(
            settings,
            group_id=GROUP_PREFIX,
            producer=producer,
            routes=[
                Route(topics.VMS_CALLBACKS, billing_pb2.CallbackConfigured, registry.handle),
                Route(topics.VMS_DELIVERY, dispatch_pb2.DeliveryBatch, handlers.handle_delivery),
                Route(topics.VMS_MO, vms_pb2.VmsMoEvent, handlers.handle_mo, 500),
                Route(topics.VMS_TEMPLATE_STATUS, vms_pb2.VmsTemplateStatus, handlers.handle_template_status),
            ],
        )
    ]
    return VmsReceipts(registry, outbox, http, sender, loops)
