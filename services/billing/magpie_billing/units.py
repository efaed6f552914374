"""Billable units derived from the consumed events (pure functions, no I/O).

A unit is what the ledger charges exactly once. Its id is stable across redeliveries of the same fact, whatever
the envelope: a delivered message is billed by (tenant, msg_id), so a duplicate delivery receipt from the carrier
(a new ``DeliveryEvent.event_id`` for the same message) maps to the same unit; a resolution is billed by
(tenant, link code), since only the first resolution of an individual link is billable. A group link (resolution
task) bills every counted resolution: the shortlink edge gives the n-th one the event id ``resolved.<code>.<n>``,
and the unit is (tenant, code, n) — the first keeps the plain (tenant, code) id. A service-number click is billed
by (tenant, pub id, click id): the handset names each click once, and the edge records a repeated post only once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2, sa_pb2
from magpie_billing.products import Product
from magpie_common.ids import stable_id
from magpie_common.sms_text import MAX_PARTS


class Source(StrEnum):
    DELIVERY = "delivery"
    LINK = "link"
    SA_CLICK = "sa_click"


@dataclass(frozen=True, slots=True)
class BillableUnit:
    """One unit to charge: ``quantity`` of ``product`` for ``tenant_id``, identified by ``unit_id``."""

    unit_id: str
    tenant_id: str
    product: Product
    quantity: int
    source: Source
    source_event_id: str
    task_id: str = ""
    ref: str = ""  # the message id (deliveries) or the link code (resolutions)
    occurred_at_ms: int = 0  # when the usage happened (0 = unknown: the charge time is used)
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class Unbillable:
    """An event that should be billed but cannot be (missing identity); it is reported, never dropped silently."""

    source: Source
    event_id: str
    reason: str


@dataclass(slots=True)
class Extracted:
    units: list[BillableUnit] = field(default_factory=list)
    problems: list[Unbillable] = field(default_factory=list)

    def extend(self, other: Extracted) -> None:
        self.units.extend(other.units)
        self.problems.extend(other.problems)


def sms_unit_id(tenant_id: str, msg_id: str) -> str:
    return stable_id("sms", tenant_id, msg_id)


def vms_unit_id(tenant_id: str, msg_id: str) -> str:
    return stable_id("vms", tenant_id, msg_id)


COUNTED_RESOLUTION = re.compile(r"resolved\.(?P<code>[^.]+)\.(?P<ordinal>[0-9]+)")


def resolution_unit_id(tenant_id: str, code: str, ordinal: int = 1) -> str:
    """The unit of the ``ordinal``-th billable resolution of a link (only group links have more than one)."""
    if ordinal <= 1:
        return stable_id("resolution", tenant_id, code)
    return stable_id("resolution", tenant_id, code, ordinal)


def resolution_ordinal(event: link_pb2.LinkEvent) -> int:
    """n of a group link's counted resolution (event id ``resolved.<code>.<n>``); 1 for any other event."""
    match = COUNTED_RESOLUTION.fullmatch(event.meta.event_id)
    if match is None or match["code"] != event.code:
        return 1
    return max(1, int(match["ordinal"]))


def units_from_delivery(batch: dispatch_pb2.DeliveryBatch) -> Extracted:
    """Units of the DELIVERED events of a batch: ``segments`` AIM_SMS per SMS (smart or degraded), one VMS per
    video SMS. Submitted, failed and timed-out messages are not billed. An event without ``segments`` counts as
    one segment (a delivered SMS is at least one)."""
    out = Extracted()
    for event in batch.events:
        if event.status != dispatch_pb2.DELIVERY_STATUS_DELIVERED:
            continue
        tenant_id = event.tenant_id or batch.meta.tenant_id
        event_id = event.event_id or batch.meta.event_id
        if not tenant_id or not event.msg_id:
            out.problems.append(Unbillable(Source.DELIVERY, event_id, "delivered event without tenant_id or msg_id"))
            continue
        if event.route == common_pb2.ROUTE_VMS:
            product, quantity, unit_id = Product.VMS, 1, vms_unit_id(tenant_id, event.msg_id)
        else:
            if event.segments > MAX_PARTS or event.segments < 0:
                out.problems.append(
                    Unbillable(Source.DELIVERY, event_id, f"implausible segment count {event.segments}")
                )
                continue
            product, quantity = Product.AIM_SMS, max(1, event.segments)
            unit_id = sms_unit_id(tenant_id, event.msg_id)
        out.units.append(
            BillableUnit(
                unit_id=unit_id,
                tenant_id=tenant_id,
                product=product,
                quantity=quantity,
                source=Source.DELIVERY,
                source_event_id=event_id,
                task_id=event.task_id,
                ref=event.msg_id,
                occurred_at_ms=event.done_at_ms or batch.meta.occurred_at_ms,
                trace_id=batch.meta.trace_id,
            )
        )
    return out


def units_from_link(event: link_pb2.LinkEvent) -> Extracted:
    """One AIM_RESOLUTION unit for a billable RESOLVED event (each counted resolution of a group link is one);
    nothing for clicks or repeat resolutions."""
    out = Extracted()
    if event.type != link_pb2.LINK_EVENT_TYPE_RESOLVED or not event.billable:
        return out
    tenant_id = event.meta.tenant_id
    if not tenant_id or not event.code:
        out.problems.append(Unbillable(Source.LINK, event.meta.event_id, "billable resolution without tenant or code"))
        return out
    out.units.append(
        BillableUnit(
            unit_id=resolution_unit_id(tenant_id, event.code, resolution_ordinal(event)),
            tenant_id=tenant_id,
            product=Product.AIM_RESOLUTION,
            quantity=1,
            source=Source.LINK,
            source_event_id=event.meta.event_id,
            task_id=event.task_id,
            ref=event.code,
            occurred_at_ms=event.at_ms or event.meta.occurred_at_ms,
            trace_id=event.meta.trace_id,
        )
    )
    return out


def sa_click_unit_id(tenant_id: str, pub_id: str, click_id: str) -> str:
    """The unit of one click on a service number: the handset's click id, unique per click (a repeated post of the
    same click maps to the same unit)."""
    return stable_id("sa-click", tenant_id, pub_id, click_id)


def units_from_sa_click(event: sa_pb2.SaClicked) -> Extracted:
    """One SA_CLICK unit per click (menu entry, homepage or shortcut: product spec §6, "SA: per click")."""
    out = Extracted()
    tenant_id = event.meta.tenant_id
    if not tenant_id or not event.pub_id or not event.click_id:
        out.problems.append(
            Unbillable(Source.SA_CLICK, event.meta.event_id, "service-number click without tenant, pub or click id")
        )
        return out
    out.units.append(
        BillableUnit(
            unit_id=sa_click_unit_id(tenant_id, event.pub_id, event.click_id),
            tenant_id=tenant_id,
            product=Product.SA_CLICK,
            quantity=1,
            source=Source.SA_CLICK,
            source_event_id=event.meta.event_id,
            ref=event.pub_id,
            occurred_at_ms=event.at_ms or event.meta.occurred_at_ms,
            trace_id=event.meta.trace_id,
        )
    )
    return out
