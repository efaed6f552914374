"""Wiring: build every component from the settings, run them under ``Service``.

Tests call ``build(settings, config)`` and run ``components.loop.run()`` / ``components.publisher.run()`` as tasks,
talking to ``components.app`` through an ASGI transport; ``python -m magpie_template_review`` calls ``main()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from magpie.v1 import template_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.service import Service, http_server
from magpie_common.storage import mongo_client, service_db
from magpie_common.topics import TEMPLATE_SUBMITTED
from magpie_template_review.api import create_app
from magpie_template_review.config import SERVICE_NAME, ReviewConfig
from magpie_template_review.processor import SubmissionProcessor
from magpie_template_review.publisher import OutboxPublisher
from magpie_template_review.rules import Reviewer
from magpie_template_review.store import ReviewStore
from magpie_template_review.words import SensitiveWords

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    config: ReviewConfig
    mongo: AsyncMongoClient
    store: ReviewStore
    producer: EventProducer
    publisher: OutboxPublisher
    processor: SubmissionProcessor
    loop: ConsumerLoop[template_pb2.TemplateSubmitted]
    service: Service
    app: FastAPI

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT: consumer loop, outbox sweep, HTTP (internal API + ops routes)."""
        server = http_server(self.app, self.config.http_host, self.config.http_port)

        def stop_server() -> None:
            server.should_exit = True

        self.service.stop_callbacks.append(stop_server)
        try:
            await self.service.run([self.loop.run(), self.publisher.run(), server.serve()], ops_server=False)
        finally:
            await self.close()

    async def close(self) -> None:
        await self.producer.stop()
        await self.mongo.close()


async def build(settings: Settings, config: ReviewConfig | None = None) -> Components:
    config = config or ReviewConfig.from_env()
    words = SensitiveWords.load(config.extra_word_files)  # compiled once, here
    mongo = mongo_client(settings)
    store = ReviewStore(service_db(mongo, settings, SERVICE_NAME))
    await store.ensure_indexes()
    producer = EventProducer(settings, SERVICE_NAME)
    await producer.start()
    publisher = OutboxPublisher(store, producer, interval_s=config.republish_interval_s)
    processor = SubmissionProcessor(store, Reviewer(words), publisher, config.manual_vendors)
    loop: ConsumerLoop[template_pb2.TemplateSubmitted] = ConsumerLoop(
        settings,
        group_id=SERVICE_NAME,
        topic=TEMPLATE_SUBMITTED,
        message_type=template_pb2.TemplateSubmitted,
        handler=processor.handle,
        producer=producer,
    )
    service = Service(
        SERVICE_NAME,
        host=config.http_host,
        port=config.http_port,
        readiness_checks={"kafka_consumer": lambda: loop.ready, "mongodb": store.ping},
    )
    service.stop_callbacks.extend([loop.stop, publisher.stop])
    app = create_app(store, publisher, config, readiness=service.readiness)
    log.info(
        "template review built",
        extra={"sensitive_words": len(words), "manual_vendors": sorted(config.manual_vendors)},
    )
    return Components(settings, config, mongo, store, producer, publisher, processor, loop, service, app)
