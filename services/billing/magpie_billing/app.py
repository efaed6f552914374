"""Wiring: build the billing components from the settings, and run them as one service process.

``build(settings)`` gives everything in-process (used by ``__main__`` and by the integration tests): the store,
the charger, the consumer loops (DELIVERY, VMS_DELIVERY, LINK and SA_CLICKS, consumer group ``billing``), the
settlement loop and the FastAPI app (internal API plus /metrics, /healthz, /readyz).

Environment: ``MAGPIE_HTTP_HOST`` (default 127.0.0.1), ``MAGPIE_HTTP_PORT`` (default 18095),
``BILLING_MAX_RECORDS_DELIVERY`` (records per handler call, default 100: a receipt flush spreads its finals over many
small DeliveryBatch records, and larger charge transactions cost less per unit;
also for VMS_DELIVERY, the VMS send tasks' deliveries, billed as product VMS),
``BILLING_MAX_RECORDS_LINK`` (default 500), ``BILLING_MAX_RECORDS_SA_CLICKS`` (SA_CLICKS, the shortlink edge's
service-number clicks, one SA_CLICK each; default 500), ``BILLING_TXN_UNITS`` (units per charge transaction,
default 1000),
``BILLING_SETTLE_INTERVAL_S`` (default 60), ``BILLING_SETTLE_GRACE_S`` (default 300).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from magpie.v1 import dispatch_pb2, link_pb2, sa_pb2
from magpie_billing.api import create_app
from magpie_billing.charging import Charger
from magpie_billing.clock import Clock, utcnow
from magpie_billing.consumers import BillingHandlers
from magpie_billing.settlement import Settler
from magpie_billing.store import BillingStore
from magpie_common.config import Settings, env_float, env_int, env_str
from magpie_common.kafka import ConsumerLoop, EventProducer, Route
from magpie_common.service import QuietServer, Service, http_server
from magpie_common.storage import mongo_client, service_db
from magpie_common.topics import DELIVERY, LINK, SA_CLICKS, VMS_DELIVERY

SERVICE_NAME = "billing"
GROUP_ID = "billing"
DEFAULT_PORT = 18095


@dataclass
class BillingComponents:
    settings: Settings
    mongo: AsyncMongoClient
    store: BillingStore
    charger: Charger
    producer: EventProducer
    handlers: BillingHandlers
    settler: Settler
    app: FastAPI = field(init=False)
    # The consumer loops are created by ``workers()`` (a Kafka consumer is only made when it will be run): the
    # SMS deliveries (the hot path) in one, and the other billable events (resolutions, VMS deliveries,
    # service-number clicks) routed by ONE consumer in another, so an idle billing costs two fetch sessions.
    delivery_loop: ConsumerLoop[dispatch_pb2.DeliveryBatch] | None = field(init=False, default=None)
    events_loop: ConsumerLoop[Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.app = create_app(self.store, readiness=self.readiness, clock=self.charger.clock)

    def _create_loops(self) -> tuple[ConsumerLoop[dispatch_pb2.DeliveryBatch], ConsumerLoop[Any]]:
        delivery_loop = ConsumerLoop(
            self.settings,
            group_id=GROUP_ID,
            topic=DELIVERY,
            message_type=dispatch_pb2.DeliveryBatch,
            handler=self.handlers.on_delivery,
            producer=self.producer,
            max_records=env_int("BILLING_MAX_RECORDS_DELIVERY", 100),
        )
        clicks_per_call = env_int("BILLING_MAX_RECORDS_SA_CLICKS", 500)
        events_loop: ConsumerLoop[Any] = ConsumerLoop(
            self.settings,
            group_id=GROUP_ID,
            producer=self.producer,
            routes=[
                Route(LINK, link_pb2.LinkEvent, self.handlers.on_link, env_int("BILLING_MAX_RECORDS_LINK", 500)),
                Route(
                    VMS_DELIVERY,
                    dispatch_pb2.DeliveryBatch,
                    self.handlers.on_vms_delivery,
                    env_int("BILLING_MAX_RECORDS_DELIVERY", 100),
                ),
                Route(SA_CLICKS, sa_pb2.SaClicked, self.handlers.on_sa_click, clicks_per_call),
            ],
        )
        return delivery_loop, events_loop

    async def readiness(self) -> dict[str, bool]:
        try:
            await asyncio.wait_for(self.mongo.admin.command("ping"), timeout=2)
            mongodb = True
        except Exception:
            mongodb = False
        events = self.events_loop is not None and self.events_loop.ready
        return {
            "mongodb": mongodb,
            "delivery_consumer": self.delivery_loop is not None and self.delivery_loop.ready,
            # one consumer routes the link, VMS-delivery and service-number-click topics
            "link_consumer": events,
            "vms_consumer": events,
            "sa_click_consumer": events,
        }

    def workers(self) -> list[Coroutine[Any, Any, None]]:
        """The long-running components besides the HTTP server: the consumer loops and the settler."""
        if self.delivery_loop is None or self.events_loop is None:
            self.delivery_loop, self.events_loop = self._create_loops()
        return [self.delivery_loop.run(), self.events_loop.run(), self.settler.run()]

    def stop(self) -> None:
        """Ask the workers to finish the batch in hand and return."""
        for loop in (self.delivery_loop, self.events_loop):
            if loop is not None:
                loop.stop()
        self.settler.stop()

    async def close(self) -> None:
        await self.producer.stop()
        await self.mongo.close()


async def build(settings: Settings, *, clock: Clock = utcnow) -> BillingComponents:
    """Connect to MongoDB (indexes ensured) and Kafka (producer started) and assemble the components."""
    mongo = mongo_client(settings)
    store = BillingStore(service_db(mongo, settings, SERVICE_NAME))
    await store.ensure_indexes()
    producer = EventProducer(settings, client_id=SERVICE_NAME)
    await producer.start()
    charger = Charger(store, clock=clock, txn_units=env_int("BILLING_TXN_UNITS", 1000))
    handlers = BillingHandlers(charger, producer)
    settler = Settler(
        store,
        clock=clock,
        interval_s=env_float("BILLING_SETTLE_INTERVAL_S", 60.0),
        grace=timedelta(seconds=env_float("BILLING_SETTLE_GRACE_S", 300.0)),
    )
    return BillingComponents(settings, mongo, store, charger, producer, handlers, settler)


async def run(settings: Settings) -> None:
    """Run the billing service until SIGTERM/SIGINT; drain the consumer loops, then close the clients."""
    host = env_str("MAGPIE_HTTP_HOST", "127.0.0.1")
    port = env_int("MAGPIE_HTTP_PORT", DEFAULT_PORT)
    components = await build(settings)
    server: QuietServer = http_server(components.app, host, port)
    service = Service(SERVICE_NAME, host=host, port=port)

    def stop_server() -> None:
        server.should_exit = True

    service.stop_callbacks.extend([components.stop, stop_server])
    try:
        await service.run([*components.workers(), server.serve()], ops_server=False)
    finally:
        await components.close()
