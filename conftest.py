"""Fixtures shared by every test: the embedded infrastructure and an isolated namespace per test.

The session starts the ``test`` profile of the embedded infrastructure (Tansu Kafka, SecantusDB, redis-server on
their own ports, fresh data) unless ``MAGPIE_EXTERNAL_INFRA=1``, in which case ``KAFKA_BOOTSTRAP``, ``MONGODB_URI``
and ``REDIS_URL`` name the clusters to test against. Each test that asks for ``settings`` gets its own topic prefix,
database prefix and Redis key prefix, with all topics created, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from magpie_common.config import Settings
from magpie_devstack.namespace import drop_namespace


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
