"""Building the gateway from the settings: database, producer, the consumer loop, the workers and the application.

``build`` is what ``python -m magpie_gateway`` runs and what the tests use to run the gateway in-process
against the real infrastructure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from magpie.v1 import dispatch_pb2, link_pb2, resolve_pb2, template_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer, Route
from magpie_common.offset_migration import adopt_legacy_offsets
from magpie_common.storage import mongo_client, redis_client, service_db
from magpie_common.topics import CLASSIFIED, DELIVERY, LINK, TEMPLATE_REVIEWED, VMS_DELIVERY, Topic
from magpie_gateway.app import create_app
from magpie_gateway.auth import RedisReplayStore, ReplayStore
from magpie_gateway.config import GatewayConfig
from magpie_gateway.context import GatewayContext
from magpie_gateway.db import Collections, ensure_indexes
from magpie_gateway.exports_worker import ExportWorker
from magpie_gateway.projector import Projector
from magpie_gateway.replay_scope import UnsafeMethodsReplayStore
from magpie_gateway.reviews import ReviewProjector
from magpie_gateway.sa_publish import SaPublicationWorker
from magpie_gateway.tenants import CredentialCache, TenantStore
from magpie_gateway.vms_projector import VmsProjector

# The gateway's one consumer group (ConsumerLoop puts it in the deployment's namespace): every topic the gateway
# reads goes through ONE Kafka consumer (an idle consumer costs the broker and the client a fetch session and a
# group membership each; the gateway used to run five). See ``routes``.
GROUP = "gateway"
# The groups of earlier versions, one per topic; their committed offsets seed GROUP's (``offset_migration``).
LEGACY_GROUPS: dict[str, Topic] = {
    "gateway-reviews": TEMPLATE_REVIEWED,
    "gateway-projector-classified": CLASSIFIED,
    "gateway-projector-delivery": DELIVERY,
    "gateway-projector-link": LINK,
    "gateway-projector-vms": VMS_DELIVERY,
}


def routes(reviews: ReviewProjector, projector: Projector, vms: VmsProjector) -> list[Route[Any]]:
    """The topics of the gateway's consumer, in the order the records of one fetch are handled, each with the
    batch size its own consumer had before.

    Review decisions first: they are few, and a customer waits for them; the projections after them. The
    projections need no order among themselves (``read_model``: each array is written by one event kind, the
    counters are recomputed from the arrays, final delivery states outrank SUBMITTED, a VMS status only moves
    forward), so CLASSIFIED before DELIVERY before LINK is only the pipeline's natural order, not a requirement.
    """
    return [
        Route(TEMPLATE_REVIEWED, template_pb2.TemplateReviewed, reviews.handle, max_records=50),
        Route(CLASSIFIED, resolve_pb2.ClassifiedBatch, projector.on_classified, max_records=20),
        Route(DELIVERY, dispatch_pb2.DeliveryBatch, projector.on_delivery, max_records=50),
        Route(LINK, link_pb2.LinkEvent, projector.on_link, max_records=500),
        Route(VMS_DELIVERY, dispatch_pb2.DeliveryBatch, vms.on_delivery, max_records=50),
    ]


@dataclass
class Gateway:
    settings: Settings
    config: GatewayConfig
    context: GatewayContext
    app: FastAPI
    loops: list[ConsumerLoop[Any] | ExportWorker | SaPublicationWorker]  # consumer loops and workers
    projector: Projector
    reviews: ReviewProjector
    mongo: AsyncMongoClient
    redis: aioredis.Redis | None
    _closed: bool = field(default=False, repr=False)

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        try:
            await self.mongo.admin.command("ping")
            checks["mongodb"] = True
        except Exception:
            checks["mongodb"] = False
        if self.redis is not None:
            try:
                checks["redis"] = bool(await self.redis.ping())
            except Exception:
                checks["redis"] = False
        checks["consumers"] = all(loop.ready for loop in self.loops)
        return checks

    def stop_loops(self) -> None:
        for loop in self.loops:
            loop.stop()

    async def close(self) -> None:
        """Release the clients (after the HTTP server and the loops have stopped)."""
        if self._closed:
            return
        self._closed = True
        await self.context.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.mongo.close()


async def build(settings: Settings, config: GatewayConfig | None = None) -> Gateway:
    config = config or GatewayConfig()
    mongo = mongo_client(settings)
    collections = Collections.of(service_db(mongo, settings, "gateway"))
    await ensure_indexes(collections, idempotency_ttl_s=config.idempotency_ttl_s)
    producer = EventProducer(settings, "gateway")
    await producer.start()
    tenants = TenantStore(collections)
    context = GatewayContext(
        settings=settings,
        config=config,
        collections=collections,
        producer=producer,
        tenants=tenants,
        credentials=CredentialCache(tenants, ttl_s=config.credential_cache_ttl_s),
    )
    redis: aioredis.Redis | None = None
    replay_store: ReplayStore | None = None
    if config.replay_check:
        redis = redis_client(settings)
        replay_store = RedisReplayStore(redis, key_prefix=settings.rkey("gateway", "replay", ""))
        if not config.replay_check_reads:
            replay_store = UnsafeMethodsReplayStore(replay_store)
    reviews = ReviewProjector(collections, context)
    projector = Projector(collections)
    # Before the consumer joins: an upgraded deployment continues where the per-topic groups stopped.
    await adopt_legacy_offsets(settings, GROUP, LEGACY_GROUPS)
    loops: list[ConsumerLoop[Any] | ExportWorker | SaPublicationWorker] = [
        ConsumerLoop(
            settings, group_id=GROUP, routes=routes(reviews, projector, VmsProjector(collections)), producer=producer
        )
    ]
    export_worker = ExportWorker(context)
    loops.append(export_worker)
    loops.append(SaPublicationWorker(context))  # service-number snapshots for handsets (sa_publish)
    gateway_ref: list[Gateway] = []

    async def readiness() -> dict[str, bool]:
        return await gateway_ref[0].readiness()

    app = create_app(context, readiness, replay_store=replay_store)
    app.state.export_worker = export_worker  # exports_api wakes it when a job is created or retried
    gateway = Gateway(settings, config, context, app, loops, projector, reviews, mongo, redis)
    gateway_ref.append(gateway)
    return gateway
