"""Assembly of the receipt sender: one consumer loop (group ``receipts``) over CALLBACKS, AIM_TEMPLATE_STATUS,
DELIVERY and LINK, and the outbox sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from magpie.v1 import billing_pb2, dispatch_pb2, link_pb2, template_status_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer, Route
from magpie_common.offset_migration import adopt_legacy_offsets
from magpie_common.storage import mongo_client
from magpie_common.topics import AIM_TEMPLATE_STATUS, CALLBACKS, DELIVERY, LINK, Topic
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.destination import guarded_client
from magpie_dispatcher.receipts.outbox import Outbox
from magpie_dispatcher.receipts.producers import ReceiptProducer
from magpie_dispatcher.receipts.registry import CallbackRegistry
from magpie_dispatcher.receipts.sender import ReceiptSender
from magpie_dispatcher.receipts.signing import ReceiptSigner
from magpie_dispatcher.receipts.template_status import TemplateStatusProducer

log = logging.getLogger(__name__)

# One consumer group over the four topics: an idle consumer costs its broker a fetch session and a group membership,
# so one instead of four. Each fetch is handled route by route: callback registrations first (the reference data
# the receipts of the same fetch are routed by), then template statuses, deliveries and link events, each route at
# most its own max_records per handler call.
GROUP_ID = "receipts"
# The groups of earlier versions, one per topic: their committed offsets seed GROUP_ID's (``offset_migration``), so
# an upgraded deployment continues where they stopped instead of replaying the topics.
LEGACY_GROUPS: dict[str, Topic] = {
    "receipts-callbacks": CALLBACKS,
    "receipts-delivery": DELIVERY,
    "receipts-link": LINK,
    "receipts-template-status": AIM_TEMPLATE_STATUS,
}
SERVICE_DB = "dispatcher"


@dataclass
class ReceiptsComponents:
    settings: Settings
    config: ReceiptsConfig
    mongo: AsyncMongoClient
    db: AsyncDatabase
    registry: CallbackRegistry
    outbox: Outbox
    producer: EventProducer
    receipt_producer: ReceiptProducer
    http: httpx.AsyncClient
    sender: ReceiptSender
    loop: ConsumerLoop[Any]

    def workers(self) -> list[Coroutine[Any, Any, None]]:
        """The long-running coroutines: the consumer loop and the sender (last)."""
        return [self.loop.run(), self.sender.run()]

    def stop(self) -> None:
        """Ask every worker to finish its batch in hand and return (POSTs in progress complete)."""
        self.loop.stop()
        self.sender.stop()

    async def close(self) -> None:
        """Release the clients (after the workers returned)."""
        await self.http.aclose()
        await self.producer.stop()
        await self.mongo.close()

    async def readiness(self) -> dict[str, bool]:
        try:
            await asyncio.wait_for(self.db.command("ping"), 2.0)
            mongo_ok = True
        except Exception:
            mongo_ok = False
        return {
            "receipts_mongodb": mongo_ok,
            "receipts_consumer": self.loop.ready,
            "receipts_sender": self.sender.running,
        }


async def build_receipts(settings: Settings, config: ReceiptsConfig | None = None) -> ReceiptsComponents:
    """Build the receipt sender on ``settings`` (indexes created, Kafka producer started; workers not running)."""
    config = config or ReceiptsConfig()
    signer = ReceiptSigner(config.signing_secret) if config.signing_secret else None
    mongo = mongo_client(settings)
    db = mongo[settings.db_name(SERVICE_DB)]
    registry = CallbackRegistry(db["callbacks"], cache_ttl_s=config.callback_cache_ms / 1000.0)
    outbox = Outbox(db["outbox"], done_retention_s=config.done_retention_s, dead_retention_s=config.dead_retention_s)
    await registry.ensure_indexes()
    await outbox.ensure_indexes()
    await adopt_legacy_offsets(settings, GROUP_ID, LEGACY_GROUPS)  # before the consumer joins
    producer = EventProducer(settings, client_id="dispatcher-receipts")
    await producer.start()
    http = guarded_client(
        allow_loopback=config.allow_loopback, timeout_s=config.http_timeout_s, max_connections=config.max_in_flight
    )
    sender = ReceiptSender(outbox, config, http, signer)
    receipt_producer = ReceiptProducer(registry, outbox, config, sender)
    components = ReceiptsComponents(
        settings=settings,
        config=config,
        mongo=mongo,
        db=db,
        registry=registry,
        outbox=outbox,
        producer=producer,
        receipt_producer=receipt_producer,
        http=http,
        sender=sender,
        loop=ConsumerLoop(
            settings,
            group_id=GROUP_ID,
            producer=producer,
            routes=[
                Route(CALLBACKS, billing_pb2.CallbackConfigured, registry.handle),
                Route(
                    AIM_TEMPLATE_STATUS,
                    template_status_pb2.AimTemplateStatus,
                    TemplateStatusProducer(receipt_producer).handle,
                ),
                Route(DELIVERY, dispatch_pb2.DeliveryBatch, receipt_producer.handle_delivery),
                Route(LINK, link_pb2.LinkEvent, receipt_producer.handle_link, max_records=500),
            ],
        ),
    )
    log.info(
        "receipt sender built",
        extra={"signed": signer is not None, "allow_loopback": config.allow_loopback},
    )
    return components
