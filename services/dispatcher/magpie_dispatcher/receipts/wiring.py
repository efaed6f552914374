"""Assembly of the receipt sender: four consumer loops (groups receipts-callbacks, receipts-delivery,
receipts-link, receipts-template-status) and the outbox sender."""

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
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.storage import mongo_client
from magpie_common.topics import AIM_TEMPLATE_STATUS, CALLBACKS, DELIVERY, LINK
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.destination import guarded_client
from magpie_dispatcher.receipts.outbox import Outbox
from magpie_dispatcher.receipts.producers import ReceiptProducer
from magpie_dispatcher.receipts.registry import CallbackRegistry
from magpie_dispatcher.receipts.sender import ReceiptSender
from magpie_dispatcher.receipts.signing import ReceiptSigner
from magpie_dispatcher.receipts.template_status import TemplateStatusProducer

log = logging.getLogger(__name__)

# One consumer group per topic ("receipts-<topic>"): a single group over three topics would rebalance all three
# loops of every instance whenever any of them joins or leaves.
GROUP_PREFIX = "receipts"
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
    callbacks_loop: ConsumerLoop[billing_pb2.CallbackConfigured]
    delivery_loop: ConsumerLoop[dispatch_pb2.DeliveryBatch]
    link_loop: ConsumerLoop[link_pb2.LinkEvent]
    template_status_loop: ConsumerLoop[template_status_pb2.AimTemplateStatus]

    def workers(self) -> list[Coroutine[Any, Any, None]]:
        """The long-running coroutines: four consumer loops and the sender (last)."""
        return [
            self.callbacks_loop.run(),
            self.delivery_loop.run(),
            self.link_loop.run(),
            self.template_status_loop.run(),
            self.sender.run(),
        ]

    def stop(self) -> None:
        """Ask every worker to finish its batch in hand and return (POSTs in progress complete)."""
        self.callbacks_loop.stop()
        self.delivery_loop.stop()
        self.link_loop.stop()
        self.template_status_loop.stop()
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
            "receipts_callbacks_consumer": self.callbacks_loop.ready,
            "receipts_delivery_consumer": self.delivery_loop.ready,
            "receipts_link_consumer": self.link_loop.ready,
            "receipts_template_status_consumer": self.template_status_loop.ready,
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
    producer = EventProducer(settings, client_id="dispatcher-receipts")
    await producer.start()
    http = guarded_client(
        allow_loopback=config.allow_loopback, timeout_s=config.http_timeout_s, max_connections=config.max_in_flight
    )
    sender = ReceiptSender(outbox, config, http, signer)
    receipt_producer = ReceiptProducer(registry, outbox, config, sender)
    common: dict[str, Any] = {"producer": producer}
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
        callbacks_loop=ConsumerLoop(
            settings,
            group_id=f"{GROUP_PREFIX}-callbacks",
            topic=CALLBACKS,
            message_type=billing_pb2.CallbackConfigured,
            handler=registry.handle,
            **common,
        ),
        delivery_loop=ConsumerLoop(
            settings,
            group_id=f"{GROUP_PREFIX}-delivery",
            topic=DELIVERY,
            message_type=dispatch_pb2.DeliveryBatch,
            handler=receipt_producer.handle_delivery,
            **common,
        ),
        link_loop=ConsumerLoop(
            settings,
            group_id=f"{GROUP_PREFIX}-link",
            topic=LINK,
            message_type=link_pb2.LinkEvent,
            handler=receipt_producer.handle_link,
            max_records=500,
            **common,
        ),
        template_status_loop=ConsumerLoop(
            settings,
            group_id=f"{GROUP_PREFIX}-template-status",
            topic=AIM_TEMPLATE_STATUS,
            message_type=template_status_pb2.AimTemplateStatus,
            handler=TemplateStatusProducer(receipt_producer).handle,
            **common,
        ),
    )
    log.info(
        "receipt sender built",
        extra={"signed": signer is not None, "allow_loopback": config.allow_loopback},
    )
    return components
