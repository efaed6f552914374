"""Scheduled smart-message sends (a Magpie extension of ``create_aim_send_task``) and the marketing send window.

Scheduling
==========

``POST /v1/aim/send-tasks`` takes an optional header ``X-Magpie-Send-At``: an ISO 8601 time WITH an offset
(``2030-01-02T09:30:00+08:00`` or ``...Z``; a time without one would be ambiguous). Rules (KooMessage: "send now or
scheduled (marketing only 08:00-21:00)"):

- malformed, without an offset, not in the future, or more than ``MAGPIE_SCHEDULE_MAX_DAYS`` (30) days ahead:
  KM.00000465;
- a task whose SMS template is a promotion (``PROMOTION_TYPE``, ``TaskContext.marketing``) must be scheduled inside
  the marketing send window (``MAGPIE_MARKETING_WINDOW`` in ``MAGPIE_MARKETING_TZ``, 08:00-21:00 Asia/Shanghai,
  :mod:`magpie_common.send_window`): KM.00000466 otherwise;
- a promotion task sent NOW outside the window is not refused: the dispatcher holds its batches until the window
  opens (``magpie_dispatcher.deferral`` applies the window to every marketing batch, plain SMS sends included).
  The gateway records that expected opening as the task's schedule (``reason`` ``MARKETING_WINDOW``), so the task
  shows, and can be cancelled, like a scheduled one; its ``TaskContext.send_at_ms`` stays 0 (the window is the
  dispatcher's to apply, with its own clock). Notifications are never held.

The task is accepted at once: its numbers are classified and its links minted right away (so the number check is
visible before the send); the batches of a task scheduled with the header carry ``TaskContext.send_at_ms`` and the
dispatcher holds them until then. The link validity (``expiration_time`` days) of such a task counts from its send
time; a task held only by the window (at most 13 hours with the default window) counts it from its creation.

The schedule is stored in ``send_schedules`` (``_id`` = task id, ``tenant_id``, ``send_at``, ``reason``,
``marketing``, ``window``, ``state`` SCHEDULED | CANCELLED, ``created_at``, ``cancelled_at``, ``cancelled_by``)
BEFORE the task's events are produced; a resumed task (``Idempotency-Key``) keeps its first schedule.

``magpie_schedule`` (task views and the create answer; null for a task sent at once)::

    {"send_time": "2030-01-02T01:30:00Z", "reason": "SCHEDULED" | "MARKETING_WINDOW",
     "state": "SCHEDULED" | "RELEASED" | "CANCELLED", "cancelable": true, "cancel_time": null,
     "cancelled_by": null, "marketing_window": "08:00-21:00 Asia/Shanghai" | null}

``RELEASED``: the send time is reached; the dispatcher sends the messages (the per-recipient states are in
``list_aim_send_details``). ``cancelable``: SCHEDULED and more than ``MAGPIE_SCHEDULE_CANCEL_MARGIN_S`` (60 s)
before the send time (see ``send_task_control_api``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from magpie_common.config import env_float, env_int
from magpie_common.send_window import SendWindow
from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.db import Collections
from magpie_gateway.timefmt import from_ms, iso, to_ms

SEND_AT_HEADER = "X-Magpie-Send-At"
SCHEDULED = "SCHEDULED"
RELEASED = "RELEASED"
CANCELLED = "CANCELLED"
REASON_SCHEDULED = "SCHEDULED"
REASON_WINDOW = "MARKETING_WINDOW"


@dataclass(frozen=True)
class ScheduleSettings:
    window: SendWindow
    max_days: int
    cancel_margin: timedelta

    @classmethod
    def from_env(cls) -> ScheduleSettings:
        return cls(
            window=SendWindow.from_env(),
            max_days=env_int("MAGPIE_SCHEDULE_MAX_DAYS", 30),
            cancel_margin=timedelta(seconds=env_float("MAGPIE_SCHEDULE_CANCEL_MARGIN_S", 60.0)),
        )


def schedule_settings() -> ScheduleSettings:
    """The settings from the environment (read per request: cheap, and changes apply without a restart)."""
    return ScheduleSettings.from_env()


@dataclass(frozen=True)
class Plan:
    """When a task's messages go out, and why they wait."""

    send_at: datetime
    reason: str
    marketing: bool
    window: str


def parse_send_at(value: str | None) -> datetime | None:
    """The ``X-Magpie-Send-At`` header as an aware UTC time, None when absent; KM.00000465 when malformed."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            codes.SEND_AT_INVALID, f"{SEND_AT_HEADER} must be an ISO 8601 time like 2030-01-02T09:30:00+08:00"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise fail(codes.SEND_AT_INVALID, f"{SEND_AT_HEADER} needs an offset (+08:00) or Z")
    return parsed.astimezone(UTC)


def plan(requested: datetime | None, *, marketing: bool, now: datetime, settings: ScheduleSettings) -> Plan | None:
    """The schedule of a new task: the requested time checked, or the next window opening for a marketing task
    sent outside the window; None when the messages go out now."""
    window = settings.window
    described = window.describe() if marketing else ""
    if requested is None:
        if marketing and not window.contains(to_ms(now)):
            return Plan(from_ms(window.next_open_ms(to_ms(now))), REASON_WINDOW, marketing, described)
        return None
    if requested <= now:
        raise fail(codes.SEND_AT_INVALID, f"{SEND_AT_HEADER} {iso(requested)} is not in the future")
    if requested > now + timedelta(days=settings.max_days):
        raise fail(codes.SEND_AT_INVALID, f"{SEND_AT_HEADER} is more than {settings.max_days} days ahead")
    if marketing and not window.contains(to_ms(requested)):
        local = requested.astimezone(window.tz)
        raise fail(
            codes.SEND_AT_OUTSIDE_WINDOW,
            f"{local.isoformat()} is outside {window.describe()}: promotion messages may only be sent in that window",
        )
    return Plan(requested, REASON_SCHEDULED, marketing, described)


async def record(collections: Collections, tenant_id: str, task_id: str, wanted: Plan, now: datetime) -> Plan:
    """Store the schedule of a task before its events; a resumed task keeps the schedule stored first."""
    doc = {
        "_id": task_id,
        "tenant_id": tenant_id,
        "send_at": wanted.send_at,
        "reason": wanted.reason,
        "marketing": wanted.marketing,
        "window": wanted.window,
        "state": SCHEDULED,
        "created_at": now,
        "cancelled_at": None,
        "cancelled_by": None,
    }
    try:
        await collections.send_schedules.insert_one(doc)
        return wanted
    except DuplicateKeyError:
        stored = await stored_plan(collections, tenant_id, task_id)
        if stored is None:
            raise
        return stored


async def stored_plan(collections: Collections, tenant_id: str, task_id: str) -> Plan | None:
    """The schedule stored for a task, None when it has none."""
    doc = await stored_of(collections, tenant_id, task_id)
    if doc is None:
        return None
    return Plan(_aware(doc["send_at"]), doc["reason"], doc["marketing"], doc.get("window") or "")


async def stored_of(collections: Collections, tenant_id: str, task_id: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await collections.send_schedules.find_one({"_id": task_id, "tenant_id": tenant_id})
    return doc


async def stored_for(collections: Collections, tenant_id: str, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(task_ids)
    if not ids:
        return {}
    docs = await collections.send_schedules.find({"_id": {"$in": ids}, "tenant_id": tenant_id}).to_list(None)
    return {doc["_id"]: doc for doc in docs}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def cancelable(doc: dict[str, Any], now: datetime, settings: ScheduleSettings) -> bool:
    return doc["state"] == SCHEDULED and now < _aware(doc["send_at"]) - settings.cancel_margin


def view(doc: dict[str, Any] | None, now: datetime, settings: ScheduleSettings) -> dict[str, Any] | None:
    """``magpie_schedule`` of a task (None when it was sent at once)."""
    if doc is None:
        return None
    send_at = _aware(doc["send_at"])
    state = doc["state"] if doc["state"] == CANCELLED else (SCHEDULED if now < send_at else RELEASED)
    return {
        "send_time": iso(send_at),
        "reason": doc["reason"],
        "state": state,
        "cancelable": cancelable(doc, now, settings),
        "cancel_time": iso(doc.get("cancelled_at")),
        "cancelled_by": doc.get("cancelled_by"),
        "marketing_window": doc.get("window") or None,
    }


def plan_view(wanted: Plan | None, now: datetime, settings: ScheduleSettings) -> dict[str, Any] | None:
    """``magpie_schedule`` of a task just created."""
    if wanted is None:
        return None
    doc = {"send_at": wanted.send_at, "reason": wanted.reason, "state": SCHEDULED, "window": wanted.window}
    return view(doc, now, settings)
