"""Build the service's components from the settings, so ``__main__`` and the tests wire them the same way."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from magpie.v1 import resolve_pb2, sa_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.service import ReadinessCheck
from magpie_common.storage import mongo_client, service_db
from magpie_common.topics import CLASSIFIED, SA_PUBLISHED
from magpie_shortlink.config import ROLE_EDGE, ROLE_MINT, SERVICE_NAME, ShortlinkConfig
from magpie_shortlink.custom_codes import custom_codes_router
from magpie_shortlink.edge import Edge, create_app
from magpie_shortlink.minting import Minter
from magpie_shortlink.resolution_api import internal_router
from magpie_shortlink.resolution_links import ResolutionMinter
from magpie_shortlink.sa_directory import SaDirectory
from magpie_shortlink.sa_edge import SaEdge, consume_during_lifespan, sa_router
from magpie_shortlink.secret import load_secret
from magpie_shortlink.store import LinkStore

SA_GROUP = SERVICE_NAME + "-sa"  # every edge process feeds the shared directory (MongoDB, Redis)


@dataclass
class Components:
    settings: Settings
    config: ShortlinkConfig
    mongo: AsyncMongoClient
    redis: aioredis.Redis
    producer: EventProducer
    store: LinkStore
    minter: Minter | None
    edge: Edge | None = None
    app: FastAPI | None = None
    resolution_minter: ResolutionMinter | None = None
    loop: ConsumerLoop[resolve_pb2.ClassifiedBatch] | None = None
    sa: SaEdge | None = None  # service numbers on handsets (edge role, sa_edge)

    def sa_consumer_loop(self) -> ConsumerLoop[sa_pb2.SaPublicationRecord]:
        """A loop feeding the edge's service-number directory from SA_PUBLISHED (run while the edge is served)."""
        if self.sa is None:
            raise RuntimeError("the edge role is not configured")
        return ConsumerLoop(
            self.settings,
            group_id=SA_GROUP,
            topic=SA_PUBLISHED,
            message_type=sa_pb2.SaPublicationRecord,
            handler=self.sa.directory.handle,
            producer=self.producer,
            max_records=self.config.consumer_max_records,
        )

    def consumer_loop(self) -> ConsumerLoop[resolve_pb2.ClassifiedBatch]:
        """The minting loop on CLASSIFIED (created on first use: an unused consumer is never left unclosed)."""
        if self.minter is None:
            raise RuntimeError("the mint role is not configured")
        if self.loop is None:
            self.loop = ConsumerLoop(
                self.settings,
                group_id=SERVICE_NAME,
                topic=CLASSIFIED,
                message_type=resolve_pb2.ClassifiedBatch,
                handler=self.minter.handle,
                producer=self.producer,
                max_records=self.config.consumer_max_records,
            )
        return self.loop

    async def redis_ready(self) -> bool:
        return bool(await self.redis.ping())

    async def mongodb_ready(self) -> bool:
        await self.mongo.admin.command("ping")
        return True

    def consumer_ready(self) -> bool:
        return self.loop is not None and self.loop.ready

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {"redis": self.redis_ready, "mongodb": self.mongodb_ready}
        if self.minter is not None:
            checks["consumer"] = self.consumer_ready
        return checks

    async def readiness(self) -> dict[str, bool]:
        """Each dependency's state (a check that raises counts as not ready)."""
        result: dict[str, bool] = {}
        for name, check in self.readiness_checks().items():
            try:
                value = check()
                result[name] = bool(await value) if inspect.isawaitable(value) else bool(value)
            except Exception:
                result[name] = False
        return result

    async def close(self) -> None:
        await self.producer.stop()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            await self.mongo.close()


def redis_pool_client(settings: Settings, max_connections: int, timeout_s: float = 5.0) -> aioredis.Redis:
    """A Redis client whose pool makes callers wait for a free connection instead of failing.

    ``storage.redis_client`` uses redis-py's default pool, which (redis-py 8) holds at most 100 connections and
    raises ``MaxConnectionsError`` beyond: a burst of more than 100 concurrent edge requests would then skip Redis.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections, timeout=timeout_s, health_check_interval=30
    )
    return aioredis.Redis.from_pool(pool)


async def build(settings: Settings, config: ShortlinkConfig | None = None) -> Components:
    """Clients, indexes, the code secret, the producer, and the roles' components (producer started)."""
    config = config or ShortlinkConfig.from_env()
    mongo = mongo_client(settings)
    redis = redis_pool_client(settings, config.redis_max_connections)
    db = service_db(mongo, settings, SERVICE_NAME)
    store = LinkStore(settings, db, redis, expired_retention_s=config.expired_retention_s)
    producer = EventProducer(settings, client_id=SERVICE_NAME)
    components = Components(settings, config, mongo, redis, producer, store, None)
    internal_api = ROLE_EDGE in config.roles and bool(config.internal_token)
    try:
        await store.ensure_indexes()
        await producer.start()
        secret = await load_secret(db, config.secret) if ROLE_MINT in config.roles or internal_api else b""
        if ROLE_MINT in config.roles:
            components.minter = Minter(
                store,
                producer,
                secret,
                code_length=config.code_length,
                max_attempts=config.max_code_attempts,
                default_validity_s=config.default_validity_s,
            )
        if internal_api:
            components.resolution_minter = ResolutionMinter(
                store, secret, code_length=config.code_length, max_attempts=config.max_code_attempts
            )
        if ROLE_EDGE in config.roles:
            components.sa = SaEdge(SaDirectory(settings, db, redis), producer)
            await components.sa.directory.ensure_indexes()
    except BaseException:
        await components.close()
        raise
    if ROLE_EDGE in config.roles:
        components.edge = Edge(store, producer)
        components.app = create_app(components.edge, components.readiness)
        # Before the edge's catch-all /{code} route (POST only, so it could not clash anyway).
        components.app.router.routes[:0] = internal_router(components.resolution_minter, config.internal_token).routes
        checker = custom_codes_router(store if internal_api else None, config.internal_token)
        components.app.router.routes[:0] = checker.routes
        if components.sa is not None:
            components.app.router.routes[:0] = sa_router(components.sa).routes
            consume_during_lifespan(components.app, components.sa_consumer_loop)
    return components
