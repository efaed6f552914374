"""Wiring: build every component of the service from the settings (used by ``__main__`` and by the tests)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from magpie.v1 import dispatch_pb2, link_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer, Route
from magpie_common.storage import mongo_client, redis_client, service_db
from magpie_common.topics import DELIVERY, LINK, RECIPIENTS
from magpie_number_resolver.api import create_app
from magpie_number_resolver.capability import CapabilityEngine, default_engine
from magpie_number_resolver.carriers import SegmentTable, default_table, load_table
from magpie_number_resolver.classifier import Classifier
from magpie_number_resolver.config import SERVICE_NAME, ResolverConfig
from magpie_number_resolver.hotcache import HotCache
from magpie_number_resolver.learning import Downgrades, Learner
from magpie_number_resolver.learning_api import downgrade_routes
from magpie_number_resolver.portability import PortabilityStore
from magpie_number_resolver.profiles import ProfileStore
from magpie_number_resolver.providers import ProviderCache, build_provider, provider_settings
from magpie_number_resolver.registry import DeviceRegistry
from magpie_number_resolver.worker import ClassifyWorker

log = logging.getLogger(__name__)

# LINK: resolutions -> observed profiles; DELIVERY: delivered smart messages -> downgrades (one consumer)
LEARNING_GROUP = SERVICE_NAME + "-learning"


@dataclass
class Components:
    settings: Settings
    config: ResolverConfig
    mongo: AsyncMongoClient
    redis: aioredis.Redis
    producer: EventProducer
    segments: SegmentTable
    engine: CapabilityEngine
    profiles: ProfileStore
    registry: DeviceRegistry
    portability: PortabilityStore
    hot: HotCache
    classifier: Classifier
    worker: ClassifyWorker
    loop: ConsumerLoop[task_pb2.RecipientBatch] | None
    app: FastAPI
    downgrades: Downgrades
    learner: Learner
    provider: ProviderCache | None = None
    link_loop: ConsumerLoop[Any] | None = None  # LINK and (with downgrades on) DELIVERY

    @property
    def loops(self) -> list[ConsumerLoop]:  # type: ignore[type-arg]
        """Every consumer loop this process runs (RECIPIENTS; LINK and DELIVERY when learning)."""
        return [loop for loop in (self.loop, self.link_loop) if loop is not None]

    async def start(self) -> None:
        """Start the producer, create indexes, load the profile cache and make sure Redis holds the registry."""
        await self.producer.start()
        await self.registry.ensure_indexes()
        await self.downgrades.ensure_indexes()
        if await self.hot.is_warm():
            await self.profiles.load_all()
        else:
            self.hot.start_fill()

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        try:
            checks["redis"] = bool(await self.redis.ping())
            checks["registry_loaded"] = await self.hot.is_warm()
        except Exception:
            checks["redis"] = False
            checks["registry_loaded"] = False
        try:
            await self.mongo.admin.command("ping")
            checks["mongodb"] = True
        except Exception:
            checks["mongodb"] = False
        if self.loop is not None:
            checks["consumer"] = self.loop.ready
        if self.link_loop is not None:
            checks["link_consumer"] = self.link_loop.ready
            if len(self.link_loop.routes) > 1:
                checks["delivery_consumer"] = self.link_loop.ready
        return checks

    async def close(self) -> None:
        await self.hot.close()
        if self.provider is not None:
            with contextlib.suppress(Exception):
                await self.provider.close()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            await self.mongo.close()


async def build(settings: Settings, config: ResolverConfig | None = None) -> Components:
    """Every component, not started (call ``start()``, then run ``loop.run()`` and serve ``app``)."""
    config = config or ResolverConfig.from_env()
    mongo = mongo_client(settings)
    db = service_db(mongo, settings, SERVICE_NAME)
    redis = redis_client(settings)
    segments = load_table(config.carriers_path) if config.carriers_path else default_table()
    engine = default_engine(config.handsets_path or None)
    profiles = ProfileStore(settings, db, redis)
    registry = DeviceRegistry(settings, db, redis, profiles)
    portability = PortabilityStore(settings, db, redis)
    downgrades = Downgrades(
        settings,
        db,
        redis,
        segments,
        after=config.downgrade_after,
        window_s=config.downgrade_window_s,
        ttl_s=config.downgrade_ttl_s,
    )
    hot = HotCache(settings, redis, profiles, registry, portability, downgrades)
    vendor = build_provider(config)
    provider = ProviderCache(settings, redis, profiles, vendor, provider_settings(config)) if vendor else None
    classifier = Classifier(
        redis,
        registry,
        portability,
        profiles,
        hot,
        engine,
        segments,
        verdict_cache_size=config.verdict_cache_size,
        provider=provider,
        downgrade_prefix=downgrades.flag_prefix,
    )
    producer = EventProducer(settings, client_id=SERVICE_NAME)
    worker = ClassifyWorker(classifier, producer)
    learner = Learner(registry, downgrades, engine, segments)
    loop: ConsumerLoop[task_pb2.RecipientBatch] | None = None
    if config.worker:
        loop = ConsumerLoop(
            settings,
            group_id=SERVICE_NAME,
            topic=RECIPIENTS,
            message_type=task_pb2.RecipientBatch,
            handler=worker.handle,
            producer=producer,
            max_records=config.consumer_max_records,
        )
    components = Components(
        settings=settings,
        config=config,
        mongo=mongo,
        redis=redis,
        producer=producer,
        segments=segments,
        engine=engine,
        profiles=profiles,
        registry=registry,
        portability=portability,
        hot=hot,
        classifier=classifier,
        worker=worker,
        loop=loop,
        app=FastAPI(),
        downgrades=downgrades,
        learner=learner,
        provider=provider,
    )
    if config.worker and config.learning:
        # Feedback from the handsets and the carriers, routed by ONE consumer (an idle consumer costs its broker a
        # fetch every 500 ms): resolutions teach capabilities, delivered smart messages never resolved downgrade.
        routes: list[Route[Any]] = [Route(LINK, link_pb2.LinkEvent, learner.handle, 500)]
        if downgrades.enabled:
            routes.append(Route(DELIVERY, dispatch_pb2.DeliveryBatch, downgrades.handle_deliveries, 200))
        components.link_loop = ConsumerLoop(settings, group_id=LEARNING_GROUP, producer=producer, routes=routes)
    components.app = create_app(
        config=config,
        registry=registry,
        portability=portability,
        classifier=classifier,
        hot=hot,
        segments=segments,
        readiness=components.readiness,
    )
    downgrade_routes(components.app, downgrades, segments)
    return components
