"""Remove everything a deployment namespace left on shared infrastructure: topics, databases, Redis keys."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence

from magpie_common.config import Settings


async def drop_namespace(settings: Settings, mongodb_uris: Sequence[str] = ()) -> None:
    """Delete a namespace's topics, databases (on ``settings.mongodb_uri`` and every server of ``mongodb_uris``) and
    Redis keys, so the shared test infrastructure stays small and fast."""
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
    for uri in dict.fromkeys([settings.mongodb_uri, *mongodb_uris]):
        with contextlib.suppress(Exception):
            mongo = mongo_client(dataclasses.replace(settings, mongodb_uri=uri))
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
