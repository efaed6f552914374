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


def redis_client(settings: Settings) -> aioredis.Redis:
    return aioredis.from_url(settings.redis_url, decode_responses=False, health_check_interval=30)
