"""Stable identifiers and the DeliveryBatch records the dispatcher produces on DELIVERY."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.topics import DELIVERY, Topic
from magpie_dispatcher.config import SERVICE_NAME

RESULT_OK = "ESME_ROK"
RESULT_DELIVERED = "DELIVRD"
RESULT_TIMEOUT = "TIMEOUT"
RESULT_IN_DOUBT = "IN_DOUBT"

FINAL_STATUSES = frozenset(
    {
        dispatch_pb2.DELIVERY_STATUS_DELIVERED,
        dispatch_pb2.DELIVERY_STATUS_FAILED,
        dispatch_pb2.DELIVERY_STATUS_TIMEOUT,
    }
)


def message_id(task_id: str, batch_no: int, index: int) -> str:
    """Magpie's id of the message to one recipient: the same for every redelivery of its batch."""
    return stable_id("msg", task_id, batch_no, index)


def submitted_event_id(msg_id: str) -> str:
    return stable_id("submitted", msg_id)


def final_event_id(msg_id: str) -> str:
    """One id for the final event of a message, whatever decided it: duplicates dedupe downstream."""
    return stable_id("final", msg_id)


def delivery_batch(events: Sequence[dispatch_pb2.DeliveryEvent], trace_id: str = "") -> dispatch_pb2.DeliveryBatch:
    """A DeliveryBatch whose ``meta.event_id`` is a function of the events it carries."""
    first = events[0]
    return dispatch_pb2.DeliveryBatch(
        meta=common_pb2.EventMeta(
            event_id=stable_id("dispatcher.delivery", *sorted(e.event_id for e in events)),
            tenant_id=first.tenant_id if all(e.tenant_id == first.tenant_id for e in events) else "",
            occurred_at_ms=now_ms(),
            producer=SERVICE_NAME,
            trace_id=trace_id,
        ),
        events=list(events),
    )


def batch_key(task_id: str, batch_no: int) -> str:
    return f"{task_id}:{batch_no}"


def grouped_records(
    events: Iterable[dispatch_pb2.DeliveryEvent],
) -> list[tuple[Topic, str, dispatch_pb2.DeliveryBatch]]:
    """Events grouped by (task, batch): one DeliveryBatch per group, keyed like the sender's output so every event
    of a recipient batch lands on one partition."""
    groups: dict[tuple[str, int], list[dispatch_pb2.DeliveryEvent]] = {}
    for event in events:
        groups.setdefault((event.task_id, event.batch_no), []).append(event)
    return [(DELIVERY, batch_key(task, batch), delivery_batch(group)) for (task, batch), group in groups.items()]
