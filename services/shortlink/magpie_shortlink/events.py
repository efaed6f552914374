"""LinkEvents emitted by the edge (topic LINK, key ``task_id:batch_no`` like every recipient-level topic).

Every event carries the link's route (SMART / DEGRADED, as minted) and whether it is a group link of a resolution
task (shared by many handsets: its resolutions say nothing about one recipient's number). A RESOLVED event also
carries the handset that resolved it (``handsets.describe``), which the number-resolver learns from.
"""

from __future__ import annotations

from magpie.v1 import common_pb2, link_pb2
from magpie_common.ids import new_id, now_ms, stable_id
from magpie_shortlink.config import SERVICE_NAME
from magpie_shortlink.links import LinkRecord

MAX_USER_AGENT = 512


def first_resolution_event_id(code: str) -> str:
    """The id of a link's billable resolution: the same for every retry, so consumers count it once."""
    return stable_id("resolved", code)


def link_event(
    record: LinkRecord,
    kind: link_pb2.LinkEventType.ValueType,
    *,
    event_id: str,
    user_agent: str,
    billable: bool,
    trace_id: str,
    handset: link_pb2.Handset | None = None,
) -> link_pb2.LinkEvent:
    at = now_ms()
    return link_pb2.LinkEvent(
        meta=common_pb2.EventMeta(
            event_id=event_id,
            tenant_id=record.tenant_id,
            occurred_at_ms=at,
            producer=SERVICE_NAME,
            trace_id=trace_id,
        ),
        type=kind,
        code=record.code,
        task_id=record.task_id,
        batch_no=record.batch_no,
        index=record.index,
        mobile=record.mobile,
        msisdn=record.msisdn,
        tpl_id=record.tpl_id,
        at_ms=at,
        user_agent=user_agent[:MAX_USER_AGENT],
        billable=billable,
        aim_url=record.aim_url,
        handset=handset,
        route=record.route,  # type: ignore[arg-type]
        group=record.group,
    )


def resolved_event(
    record: LinkRecord, *, first: bool, user_agent: str, trace_id: str, handset: link_pb2.Handset | None = None
) -> link_pb2.LinkEvent:
    event_id = first_resolution_event_id(record.code) if first else new_id("res")
    return link_event(
        record,
        link_pb2.LINK_EVENT_TYPE_RESOLVED,
        event_id=event_id,
        user_agent=user_agent,
        billable=first,
        trace_id=trace_id,
        handset=handset,
    )


def clicked_event(record: LinkRecord, *, user_agent: str, trace_id: str) -> link_pb2.LinkEvent:
    return link_event(
        record,
        link_pb2.LINK_EVENT_TYPE_CLICKED,
        event_id=new_id("clk"),
        user_agent=user_agent,
        billable=False,
        trace_id=trace_id,
    )


def event_key(record: LinkRecord) -> str:
    return f"{record.task_id}:{record.batch_no}"
