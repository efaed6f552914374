"""Sends the ``TemplateReviewed`` stored in a review's outbox, and re-sends what a crash or a broker outage left
unsent (a background sweep over ``unpublished`` reviews)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from magpie_common.ids import now_ms
from magpie_common.kafka import EventProducer
from magpie_common.topics import TEMPLATE_REVIEWED
from magpie_template_review.metrics import EVENTS
from magpie_template_review.review_doc import Doc
from magpie_template_review.store import ReviewStore

log = logging.getLogger(__name__)


class OutboxPublisher:
    def __init__(self, store: ReviewStore, producer: EventProducer, *, interval_s: float = 5.0) -> None:
        self.store = store
        self.producer = producer
        self.interval_s = interval_s
        self._stopping = asyncio.Event()

    async def publish(self, docs: Sequence[Doc], origin: str) -> None:
        """Send each document's outbox event (keyed by subject id) and mark it published once acknowledged."""
        pending = [d for d in docs if d.get("outbox")]
        if not pending:
            return
        await self.producer.send_many(
            [(TEMPLATE_REVIEWED, d["subject_id"], bytes(d["outbox"]["payload"])) for d in pending]
        )
        await self.store.mark_published([(d["_id"], d["outbox"]["version"]) for d in pending])
        EVENTS.labels(origin).inc(len(pending))

    async def sweep(self) -> int:
        """Re-send outbox events left unpublished for longer than one interval; returns how many were sent."""
        docs = await self.store.unpublished(updated_before_ms=now_ms() - int(self.interval_s * 1000))
        await self.publish(docs, "republish")
        return len(docs)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
            if self._stopping.is_set():
                break
            try:
                sent = await self.sweep()
                if sent:
                    log.info("re-sent unpublished review events", extra={"count": sent})
            except Exception:
                log.exception("outbox sweep failed; will retry")
