"""Cancelling a scheduled smart-message send task (Magpie operation ``cancel_aim_send_task``; KooMessage's console
offers "cancel while scheduled", its API has no operation for it).

``POST /v1/magpie/send-tasks/{task_id}/cancel`` (no body):

- another tenant's task, or an unknown id: 404 KM.00000404;
- a task sent at once (no schedule), or whose send time is reached or less than ``MAGPIE_SCHEDULE_CANCEL_MARGIN_S``
  (60 s) away: 400 KM.00000467 (its messages are on their way: cancelling could only stop part of them);
- a task already cancelled: the same answer again (idempotent);
- otherwise: ``TaskControl`` ``TASK_COMMAND_CANCEL`` is produced on ``task.control`` (awaiting the broker's
  acknowledgement: a failure answers 5xx and changes nothing, retry), then the schedule is marked CANCELLED.

The dispatcher (``magpie_dispatcher.deferral``) cancels every batch of the task it holds, and every batch of the task
that reaches it later: each such recipient ends with a final FAILED event whose result code is ``CANCELLED``, shown
as ``send_status`` ``CANCELLED`` by ``list_aim_send_details``; the task becomes COMPLETED once all recipients are
final, like any task. Nothing is billed for them.

Answer: ``{"task_id", "task_name", "magpie_schedule": {...}}`` (``magpie_schedule`` as in the task views, state
``CANCELLED``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from pymongo import ReturnDocument

from magpie.v1 import task_pb2
from magpie_common.ids import stable_id
from magpie_common.topics import TASK_CONTROL
from magpie_gateway import codes, send_schedules
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta, get_context, request_id
from magpie_gateway.timefmt import to_ms, utc_now

router = APIRouter(tags=["Send tasks"])
log = logging.getLogger(__name__)


class MagpieSchedule(BaseModel):
    model_config = ConfigDict(extra="allow")

    send_time: str | None = None
    reason: str | None = None
    state: str | None = None
    cancelable: bool | None = None
    cancel_time: str | None = None
    cancelled_by: str | None = None
    marketing_window: str | None = None


class CancelAimSendTaskResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: str
    task_name: str | None = None
    magpie_schedule: MagpieSchedule


@router.post(
    "/v1/magpie/send-tasks/{task_id}/cancel",
    response_model=CancelAimSendTaskResponse,
    summary="cancel_aim_send_task",
)
async def cancel_aim_send_task(
    task_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    collections = context.collections
    task = await collections.tasks.find_one({"_id": task_id, "tenant_id": tenant}, {"task_name": 1})
    if task is None:
        raise codes.not_found(f"send task {task_id}")
    schedule = await send_schedules.stored_of(collections, tenant, task_id)
    if schedule is None:
        raise fail(codes.NOT_CANCELABLE, f"send task {task_id} is not scheduled: its messages were sent at once")
    settings = send_schedules.schedule_settings()
    now = utc_now()
    if schedule["state"] != send_schedules.CANCELLED:
        if not send_schedules.cancelable(schedule, now, settings):
            margin = int(settings.cancel_margin.total_seconds())
            state = send_schedules.view(schedule, now, settings) or {}
            raise fail(
                codes.NOT_CANCELABLE,
                f"send task {task_id} is {state.get('state')} for {state.get('send_time')}: a scheduled task can be "
                f"cancelled until {margin} s before its send time",
            )
        operator = principal.user_name or principal.user_id
        command = task_pb2.TaskControl(
            meta=event_meta(stable_id("task-cancel", tenant, task_id), tenant, request_id(request)),
            tenant_id=tenant,
            task_id=task_id,
            command=task_pb2.TASK_COMMAND_CANCEL,
            operator=operator,
            requested_at_ms=to_ms(now),
        )
        await context.producer.send(TASK_CONTROL, task_id, command)
        updated = await collections.send_schedules.find_one_and_update(
            {"_id": task_id, "tenant_id": tenant, "state": send_schedules.SCHEDULED},
            {"$set": {"state": send_schedules.CANCELLED, "cancelled_at": now, "cancelled_by": operator}},
            return_document=ReturnDocument.AFTER,
        )
        schedule = updated or await send_schedules.stored_of(collections, tenant, task_id) or schedule
        log.info("send task cancelled", extra={"task_id": task_id, "tenant_id": tenant, "operator": operator})
    return {
        "task_id": task_id,
        "task_name": task.get("task_name"),
        "magpie_schedule": send_schedules.view(schedule, now, settings),
    }
