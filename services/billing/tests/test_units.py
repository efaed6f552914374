"""Which events are billable, as what, and under which stable unit id."""

from __future__ import annotations

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2
from magpie_billing.products import Product
from magpie_billing.units import Source, resolution_unit_id, sms_unit_id, units_from_delivery, units_from_link
from magpie_common.ids import stable_id


def delivery(
    msg_id: str, status: int = dispatch_pb2.DELIVERY_STATUS_DELIVERED, **fields: object
) -> dispatch_pb2.DeliveryEvent:
    values: dict[str, object] = {
        "event_id": f"ev-{msg_id}-{status}",
        "tenant_id": "tenant-a",
        "task_id": "task-1",
        "msg_id": msg_id,
        "status": status,
        "segments": 1,
        "route": common_pb2.ROUTE_SMART,
        "done_at_ms": 1_700_000_000_000,
    }
    values.update(fields)
    return dispatch_pb2.DeliveryEvent(**values)  # type: ignore[arg-type]


def test_only_delivered_messages_are_billed_per_segment() -> None:
    batch = dispatch_pb2.DeliveryBatch(
        meta=common_pb2.EventMeta(event_id="b1", trace_id="trace-1"),
        events=[
            delivery("m1", segments=3),
            delivery("m2", dispatch_pb2.DELIVERY_STATUS_SUBMITTED),
            delivery("m3", dispatch_pb2.DELIVERY_STATUS_FAILED),
            delivery("m4", dispatch_pb2.DELIVERY_STATUS_TIMEOUT),
            delivery("m5", route=common_pb2.ROUTE_DEGRADED, segments=2),
        ],
    )
    extracted = units_from_delivery(batch)
    assert extracted.problems == []
    assert [(u.ref, u.product, u.quantity) for u in extracted.units] == [
        ("m1", Product.AIM_SMS, 3),
        ("m5", Product.AIM_SMS, 2),
    ]
    first = extracted.units[0]
    assert first.unit_id == stable_id("sms", "tenant-a", "m1") == sms_unit_id("tenant-a", "m1")
    assert first.source is Source.DELIVERY
    assert first.source_event_id == "ev-m1-2"
    assert first.task_id == "task-1"
    assert first.trace_id == "trace-1"
    assert first.occurred_at_ms == 1_700_000_000_000


def test_duplicate_receipt_maps_to_the_same_unit() -> None:
    one = units_from_delivery(dispatch_pb2.DeliveryBatch(events=[delivery("m1", event_id="dlr-1")]))
    two = units_from_delivery(dispatch_pb2.DeliveryBatch(events=[delivery("m1", event_id="dlr-2")]))
    assert one.units[0].unit_id == two.units[0].unit_id
    assert one.units[0].source_event_id != two.units[0].source_event_id


def test_vms_is_one_unit_per_message_and_unsegmented_sms_is_one() -> None:
    batch = dispatch_pb2.DeliveryBatch(
        events=[delivery("v1", route=common_pb2.ROUTE_VMS, segments=4), delivery("s1", segments=0)]
    )
    units = units_from_delivery(batch).units
    assert [(u.product, u.quantity) for u in units] == [(Product.VMS, 1), (Product.AIM_SMS, 1)]
    assert units[0].unit_id == stable_id("vms", "tenant-a", "v1")


def test_tenant_falls_back_to_the_batch_envelope_and_missing_identity_is_a_problem() -> None:
    batch = dispatch_pb2.DeliveryBatch(
        meta=common_pb2.EventMeta(event_id="b1", tenant_id="tenant-b"),
        events=[delivery("m1", tenant_id=""), delivery("", event_id="no-msg-id"), delivery("m3", segments=999)],
    )
    extracted = units_from_delivery(batch)
    assert [u.tenant_id for u in extracted.units] == ["tenant-b"]
    assert [p.event_id for p in extracted.problems] == ["no-msg-id", "ev-m3-2"]


def test_only_billable_resolutions_are_billed() -> None:
    def link(kind: int, billable: bool, code: str = "abc123") -> link_pb2.LinkEvent:
        return link_pb2.LinkEvent(
            meta=common_pb2.EventMeta(event_id=f"l-{kind}-{billable}", tenant_id="tenant-a"),
            type=kind,  # type: ignore[arg-type]
            code=code,
            task_id="task-1",
            billable=billable,
            at_ms=1_700_000_000_500,
        )

    resolved = units_from_link(link(link_pb2.LINK_EVENT_TYPE_RESOLVED, True)).units
    assert len(resolved) == 1
    assert (
        resolved[0].unit_id == resolution_unit_id("tenant-a", "abc123") == stable_id("resolution", "tenant-a", "abc123")
    )
    assert (resolved[0].product, resolved[0].quantity, resolved[0].source) == (Product.AIM_RESOLUTION, 1, Source.LINK)
    assert units_from_link(link(link_pb2.LINK_EVENT_TYPE_RESOLVED, False)).units == []
    assert units_from_link(link(link_pb2.LINK_EVENT_TYPE_CLICKED, True)).units == []
    assert units_from_link(link(link_pb2.LINK_EVENT_TYPE_RESOLVED, True, code="")).problems


def test_each_counted_resolution_of_a_group_link_is_its_own_unit() -> None:
    def counted(event_id: str, code: str = "grp001") -> link_pb2.LinkEvent:
        return link_pb2.LinkEvent(
            meta=common_pb2.EventMeta(event_id=event_id, tenant_id="tenant-a"),
            type=link_pb2.LINK_EVENT_TYPE_RESOLVED,
            code=code,
            task_id="RT1",
            billable=True,
        )

    ids = [units_from_link(counted(f"resolved.grp001.{n}")).units[0].unit_id for n in (1, 2, 3)]
    assert len(set(ids)) == 3
    assert ids[0] == resolution_unit_id("tenant-a", "grp001")  # the first keeps the individual-link id
    # A redelivery of the same counted resolution is the same unit; an id naming another code is not an ordinal.
    assert units_from_link(counted("resolved.grp001.2")).units[0].unit_id == ids[1]
    assert units_from_link(counted("resolved.other.2")).units[0].unit_id == ids[0]
