"""The consumer handlers: DELIVERY, VMS_DELIVERY and LINK events in, ledger entries and USAGE events out.

VMS_DELIVERY carries the results of VMS send tasks (the dispatcher's vms role): every DELIVERED message there is
one unit of product VMS (``units_from_delivery`` with route ``ROUTE_VMS``; events on that topic are VMS whatever
their route says), charged against the tenant's VMS packages first.

Each handler call gets the records of one partition, charges all their units in one ``Charger.charge`` call, then
produces one ``UsageEvent`` per unit (already-charged units included, with the same content: consumers dedupe on
``event_id`` = unit id) and returns only when the broker has them, so the offsets are committed after both.

An event that must be billed but lacks its identity (no tenant or message id) cannot be charged: the rest of its
record is charged first, then ``PoisonMessage`` sends the record to the dead-letter topic (replaying the good units
of it is harmless), so nothing billable vanishes unnoticed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, sa_pb2
from magpie_billing import metrics
from magpie_billing.charging import Charger, ChargeResult, usage_event
from magpie_billing.units import Extracted, units_from_delivery, units_from_link, units_from_sa_click
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.topics import USAGE

log = logging.getLogger(__name__)


class BillingHandlers:
    def __init__(self, charger: Charger, producer: EventProducer) -> None:
        self.charger = charger
        self.producer = producer

    async def on_delivery(self, items: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        extracted = Extracted()
        for item in items:
            extracted.extend(units_from_delivery(item.message))
        await self._bill(extracted)

    async def on_vms_delivery(self, items: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        extracted = Extracted()
        for item in items:
            batch = dispatch_pb2.DeliveryBatch()
            batch.CopyFrom(item.message)
            for event in batch.events:
                event.route = common_pb2.ROUTE_VMS
            extracted.extend(units_from_delivery(batch))
        await self._bill(extracted)

    async def on_sa_click(self, items: Sequence[Decoded[sa_pb2.SaClicked]]) -> None:
        """SA_CLICKS (the shortlink edge): one SA_CLICK per service-number click, packages first."""
        extracted = Extracted()
        for item in items:
            extracted.extend(units_from_sa_click(item.message))
        await self._bill(extracted)

    async def on_link(self, items: Sequence[Decoded[link_pb2.LinkEvent]]) -> None:
        extracted = Extracted()
        for item in items:
            extracted.extend(units_from_link(item.message))
        await self._bill(extracted)

    async def _bill(self, extracted: Extracted) -> ChargeResult:
        result = await self.charger.charge(extracted.units)
        await self.emit_usage(result)
        if extracted.problems:
            for problem in extracted.problems:
                metrics.UNBILLABLE_EVENTS.labels(problem.source.value).inc()
                log.error(
                    "unbillable event",
                    extra={"source": problem.source.value, "event_id": problem.event_id, "reason": problem.reason},
                )
            raise PoisonMessage("; ".join(f"{p.event_id}: {p.reason}" for p in extracted.problems)[:2000])
        return result

    async def emit_usage(self, result: ChargeResult) -> None:
        if not result.entries:
            return
        await self.producer.send_many((USAGE, entry["tenant_id"], usage_event(entry)) for entry in result.entries)
        metrics.USAGE_EVENTS.inc(len(result.entries))
