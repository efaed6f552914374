"""Emit final DeliveryEvents at most once per message: decide (first decision wins), produce, then mark done.

The decision is ``SET final:<msg_id> "P"+event NX``; whoever finds the key set gets the event recorded there
instead of its own candidate, and produces that (same event id, same content) unless the mark already says ``D``
(produced). The mark turns ``D`` only after Kafka acknowledged the event. So:

- a crash between the decision and the produce leaves ``P``: the next attempt (a redelivered receipt, the sweeper
  taking the deadline again after its lease, a redelivered batch) produces the recorded event;
- a failed produce leaves ``P`` the same way (the receipt is answered with an error, the SMSC sends it again);
- a late receipt, or a TIMEOUT racing a receipt, can never produce a second, different final state.

Keeping the mark on a failed produce (rather than deleting it) is deliberate: deleting cannot cover a crash, and
would let a TIMEOUT and a DELIVERED both be produced for one message if their produces interleave with a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from magpie.v1 import dispatch_pb2
from magpie_common.kafka import EventProducer
from magpie_dispatcher.events import grouped_records
from magpie_dispatcher.metrics import FINALS, TIMEOUTS
from magpie_dispatcher.records import MessageRecord
from magpie_dispatcher.store import DeliveryStore

log = logging.getLogger(__name__)

STATUS_NAMES = {value: name.removeprefix("DELIVERY_STATUS_") for name, value in dispatch_pb2.DeliveryStatus.items()}


class FinalEmitter:
    def __init__(self, store: DeliveryStore, producer: EventProducer) -> None:
        self.store = store
        self.producer = producer

    async def emit(
        self, candidates: Sequence[tuple[dispatch_pb2.DeliveryEvent, MessageRecord | None]], source: str
    ) -> int:
        """Decide, produce and mark the candidates' final events; returns how many events were produced.
        Raises (leaving the marks pending) if Redis or Kafka fail."""
        unique: dict[str, tuple[dispatch_pb2.DeliveryEvent, MessageRecord | None]] = {}
        for event, record in candidates:
            unique.setdefault(event.msg_id, (event, record))
        if not unique:
            return 0
        decisions = await self.store.decide_finals([event for event, _ in unique.values()])
        events = [d.event for d in decisions if d.event is not None]
        if events:
            await self.producer.send_many(grouped_records(events))
        await self.store.finals_produced(
            [d.msg_id for d in decisions], [record for _, record in unique.values() if record is not None]
        )
        for event in events:
            FINALS.labels(STATUS_NAMES.get(event.status, str(event.status)), source).inc()
            if event.status == dispatch_pb2.DELIVERY_STATUS_TIMEOUT:
                TIMEOUTS.inc()
        return len(events)
