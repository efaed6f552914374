"""Fixtures shared by every test: the embedded infrastructure and an isolated namespace per test.

The session starts the ``test`` profile of the embedded infrastructure (noida-db Kafka, SecantusDB, redis-server on
their own ports, fresh data) unless ``MAGPIE_EXTERNAL_INFRA=1``, in which case ``KAFKA_BOOTSTRAP``, ``MONGODB_URI``
and ``REDIS_URL`` name the clusters to test against. Each test that asks for ``settings`` gets its own topic prefix,
database prefix and Redis key prefix, with all topics created, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from magpie_common.config import Settings


@pytest.fixture(scope="session")
def infra_env() -> Iterator[dict[str, str]]:
    if os.environ.get("MAGPIE_EXTERNAL_INFRA"):
        yield {k: os.environ[k] for k in ("KAFKA_BOOTSTRAP", "MONGODB_URI", "REDIS_URL")}
        return
    from magpie_devstack.infra import Infra, env_for

    infra = Infra("test")
    started_here = not all(infra.running().values())
    if started_here:
        infra.reset()
    infra.up()
    yield env_for(infra.profile)
    if started_here:
        infra.down()


@pytest.fixture
async def settings(infra_env: dict[str, str]) -> AsyncIterator[Settings]:
    from magpie_common.topics import ensure_topics

    ns = "t" + uuid.uuid4().hex[:10]
    result = Settings(
        kafka_bootstrap=infra_env["KAFKA_BOOTSTRAP"],
        mongodb_uri=infra_env["MONGODB_URI"],
        redis_url=infra_env["REDIS_URL"],
        mongodb_db=ns,
        topic_prefix=ns + ".",
    )
    await ensure_topics(result)
    yield result
    await drop_namespace(result)


async def drop_namespace(settings: Settings) -> None:
    """Delete a test's topics, databases and Redis keys, so the shared test infrastructure stays small and fast."""
    from aiokafka.admin import AIOKafkaAdminClient

    from magpie_common.storage import mongo_client, redis_client
    from magpie_common.topics import ALL_TOPICS, topic_name

    with contextlib.suppress(Exception):
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())  # type: ignore[arg-type]
        await admin.start()
        try:
            await admin.delete_topics([topic_name(settings, t) for t in ALL_TOPICS])
        finally:
            await admin.close()
    with contextlib.suppress(Exception):
        mongo = mongo_client(settings)
        try:
            for name in await mongo.list_database_names():
                if name.startswith(settings.mongodb_db + "_"):
                    await mongo.drop_database(name)
        finally:
            await mongo.close()
    with contextlib.suppress(Exception):
        redis = redis_client(settings)
        try:
            batch: list[bytes] = []
            async for key in redis.scan_iter(match=settings.topic_prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await redis.unlink(*batch)
                    batch.clear()
            if batch:
                await redis.unlink(*batch)
        finally:
            await redis.aclose()
