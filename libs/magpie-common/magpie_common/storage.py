"""MongoDB and Redis clients built from the settings."""

from __future__ import annotations

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from magpie_common.config import Settings


def mongo_client(settings: Settings) -> AsyncMongoClient:
    return AsyncMongoClient(settings.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=15000)


def service_db(client: AsyncMongoClient, settings: Settings, service: str) -> AsyncDatabase:
    return client[settings.db_name(service)]


def redis_client(settings: Settings, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection under bursts instead of failing (redis-py's default pool
    raises MaxConnectionsError past its cap)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections, timeout=10, health_check_interval=30
    )
    return aioredis.Redis(connection_pool=pool, decode_responses=False)
