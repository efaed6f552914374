"""Assembly of the vms role: ``await build_vms(settings, redis)`` -> :class:`VmsRole` (producer started, indexes
made, workers not running). ``workers()`` are the coroutines to run, ``stop()`` asks them to finish the batch in
hand, ``close()`` releases the clients once they returned.

Consumer groups: ``dispatcher-vms`` (VMS_SEND), ``dispatcher-vms-templates`` (VMS_TEMPLATES) and the four
``vms-receipts-*`` groups of ``receipts``. Readiness (``vms``): every consumer joined, the poller and the receipt
sender running, MongoDB answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from magpie.v1 import vms_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer, Route
from magpie_common.storage import mongo_client
from magpie_common.topics import VMS_SEND, VMS_TEMPLATES
from magpie_dispatcher.vms.carrier import VmsCarrierClient
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.receipts import VmsReceipts, build_vms_receipts
from magpie_dispatcher.vms.reports import ReportPoller, VmsSweeper
from magpie_dispatcher.vms.sender import VmsSender
from magpie_dispatcher.vms.store import VmsStore
from magpie_dispatcher.vms.templates import TemplateStore

log = logging.getLogger(__name__)

SERVICE_DB = "dispatcher"
SEND_GROUP = "dispatcher-vms"  # VMS_SEND and VMS_TEMPLATES, one consumer


class VmsRole:
    def __init__(
        self,
        settings: Settings,
        config: VmsConfig,
        mongo: AsyncMongoClient,
        db: AsyncDatabase,
        store: VmsStore,
        templates: TemplateStore,
        carrier: VmsCarrierClient,
        producer: EventProducer,
        receipts: VmsReceipts,
    ) -> None:
        self.settings = settings
        self.config = config
        self.mongo = mongo
        self.db = db
        self.store = store
        self.templates = templates
        self.carrier = carrier
        self.producer = producer
        self.receipts = receipts
        self._stopping = asyncio.Event()
        self.sender = VmsSender(config, store, templates, carrier, producer, self._stopping.is_set)
        self.poller = ReportPoller(config, store, carrier, producer)
        self.sweeper = VmsSweeper(config, store, producer)
        # Approved templates (compacted) and the send batches, routed by ONE consumer of the group.
        self.loop: ConsumerLoop[Any] = ConsumerLoop(
            settings,
            group_id=SEND_GROUP,
            producer=producer,
            routes=[
                Route(VMS_TEMPLATES, vms_pb2.VmsTemplateRecord, templates.handle, 20),
                Route(VMS_SEND, vms_pb2.VmsSendBatch, self.sender.handle, config.max_records),
            ],
        )

    def workers(self) -> list[Coroutine[Any, Any, None]]:
        return [
            self.loop.run(),
            self.poller.run(),
            self.sweeper.run(),
            *self.receipts.workers(),
        ]

    def stop(self) -> None:
        self._stopping.set()
        self.loop.stop()
        self.poller.stop()
        self.sweeper.stop()
        self.receipts.stop()

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.db.command("ping"), 2.0)
        except Exception:
            return False
        return self.loop.ready and self.poller.running and self.receipts.ready()

    async def close(self) -> None:
        await self.receipts.close()
        await self.carrier.close()
        await self.producer.stop()
        await self.mongo.close()


async def build_vms(settings: Settings, redis: aioredis.Redis, config: VmsConfig | None = None) -> VmsRole:
    config = config or VmsConfig()
    mongo = mongo_client(settings)
    db = mongo[settings.db_name(SERVICE_DB)]
    templates = TemplateStore(db)
    await templates.ensure_indexes()
    producer = EventProducer(settings, client_id="dispatcher-vms")
    await producer.start()
    try:
        receipts = await build_vms_receipts(settings, db, producer)
    except BaseException:
        await producer.stop()
        await mongo.close()
        raise
    carrier = VmsCarrierClient(config.carrier_url, config.account, config.password, config.http_timeout_s)
    log.info("vms role built", extra={"carrier_url": config.carrier_url, "account": config.account})
    return VmsRole(settings, config, mongo, db, VmsStore(settings, redis), templates, carrier, producer, receipts)
