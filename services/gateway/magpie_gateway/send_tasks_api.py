"""Smart-message send tasks: ``create_aim_send_task`` and ``list_aim_send_tasks``.

Headers of ``POST /v1/aim/send-tasks`` beyond the SDK (all optional):

- ``X-Magpie-Fallback: skip | sms | vms``: what happens to numbers whose handset cannot render the card
  (the SDK has no field for it). ``sms`` (default, ``MAGPIE_DEFAULT_FALLBACK``) sends the plain SMS with the link,
  ``skip`` sends nothing, ``vms`` sends a VMS (video SMS) of the tenant's template named by
  ``X-Magpie-Fallback-Vms-Template``, its params filled per ``X-Magpie-Fallback-Vms-Params``: see
  ``magpie_gateway.vms_fallback`` (checks, codes KM.00000485/486/488, the way through the pipeline, billing as VMS).
- ``X-Magpie-Send-At``: a scheduled send (ISO 8601 with an offset, future, at most 30 days ahead; inside the
  marketing window for a promotion template), see ``magpie_gateway.send_schedules``. A promotion task sent now
  outside the marketing window waits for the window's next opening (the dispatcher holds it). The answer and the
  task views carry ``magpie_schedule`` (null for a task sent at once); ``POST /v1/magpie/send-tasks/{task_id}/cancel``
  cancels such a task.
- ``Idempotency-Key``: see ``magpie_gateway.idempotency``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, Request

from magpie_common.ids import new_id
from magpie_gateway import send_schedules, vms_fallback
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.config import FALLBACKS
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.filing_gate import require_filing
from magpie_gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from magpie_gateway.idempotency import IdempotencyStore
from magpie_gateway.pagination import page
from magpie_gateway.send_schedules import SEND_AT_HEADER
from magpie_gateway.send_task_body import openapi_body, read_send_task, source_of, spool_of
from magpie_gateway.send_task_builder import PreparedTask, build_settings, is_marketing, prepare
from magpie_gateway.task_models import (
    CreateAimSendTaskRequestBody,
    CreateAimSendTaskResponse,
    ListAimSendTasksResponse,
)
from magpie_gateway.tasks import (
    STATE_ACCEPTING,
    STATE_COMPLETED,
    STATE_FAILED,
    STATE_SUCCESS,
    accept,
    task_counts,
    task_view,
)
from magpie_gateway.timefmt import parse_window, to_ms, utc_now
from magpie_gateway.validation import invalid, regex_filter
from magpie_gateway.vms_fallback import VmsFallbackRequest

router = APIRouter(tags=["Send tasks"])
log = logging.getLogger(__name__)

FALLBACK_HEADER = "X-Magpie-Fallback"
DEFAULT_WINDOW = timedelta(days=7)  # KooMessage: without begin/end, the last 7 days
STATUS_FILTERS = {
    "success": [STATE_ACCEPTING, STATE_SUCCESS, STATE_COMPLETED],
    "fail": [STATE_FAILED],
    "failed": [STATE_FAILED],
    "completed": [STATE_COMPLETED],
}


def fallback_of(header: str | None, default: str) -> str:
    value = (header or default).strip().lower()
    if value not in FALLBACKS:
        raise invalid(f"{FALLBACK_HEADER} must be skip, sms or vms")
    return value


async def _with_vms(
    context: GatewayContext, principal: Principal, prepared: PreparedTask, vms: VmsFallbackRequest | None
) -> PreparedTask:
    """The prepared task with its checked VMS fallback (``magpie_gateway.vms_fallback``), if it has one."""
    if vms is not None:
        pre = prepared.prerequisites
        chunks = prepared.recipients.chunks(build_settings(prepared))
        prepared.vms_fallback = await vms_fallback.prepare(
            context,
            principal.tenant_id,
            vms,
            card_params={p["key"] for p in pre.aim_template.get("params", [])},
            sms_count=len(pre.other_variables),
            chunks=([batch for batch, _ in chunk] async for chunk in chunks),
        )
    return prepared


async def _require_filings(context: GatewayContext, tenant_id: str, vms: VmsFallbackRequest | None) -> None:
    """The approved AIM filing, and the VMS one when unresolvable numbers fall back to video SMS (``filing_gate``)."""
    await require_filing(context, tenant_id, "AIM")
    if vms is not None:
        await require_filing(context, tenant_id, "VMS")


@router.post(
    "/v1/aim/send-tasks",
    response_model=CreateAimSendTaskResponse,
    summary="create_aim_send_task",
    openapi_extra=openapi_body(CreateAimSendTaskRequestBody),
)
async def create_aim_send_task(
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
    idempotency_key: str | None = Header(
        None, alias=IDEMPOTENCY_HEADER, description="same key + same request = same answer, one task"
    ),
    fallback_header: str | None = Header(
        None, alias=FALLBACK_HEADER, description="skip | sms (default, MAGPIE_DEFAULT_FALLBACK) | vms"
    ),
    vms_template_header: str | None = Header(
        None, alias=vms_fallback.TEMPLATE_HEADER, description="vms fallback: tpl_id of the tenant's VMS template"
    ),
    vms_params_header: str | None = Header(
        None,
        alias=vms_fallback.PARAMS_HEADER,
        description="vms fallback: <param>=<source>,... with source dync:<card param> | sms:<n> | text:<value> "
        "(percent-encoded)",
    ),
    send_at_header: str | None = Header(
        None,
        alias=SEND_AT_HEADER,
        description="scheduled send: ISO 8601 with an offset, in the future, at most 30 days ahead "
        "(promotion templates: inside the marketing window)",
    ),
) -> dict[str, Any]:
    started = time.monotonic()
    spool = await spool_of(request)
    body, inline = await read_send_task(spool)
    recipients, check = await source_of(context, principal.tenant_id, body, inline)
    fallback_name = fallback_of(fallback_header, context.config.default_fallback)
    vms = vms_fallback.request_of(fallback_name, vms_template_header, vms_params_header)
    requested_send_at = send_schedules.parse_send_at(send_at_header)
    tenant = principal.tenant_id
    if idempotency_key is None:
        await _require_filings(context, tenant, vms)
        prepared = await _with_vms(
            context, principal, await prepare(context, principal, body, recipients, check=check), vms
        )
        task_id = new_id("T")
        schedule = await _schedule(context, tenant, task_id, prepared, requested_send_at)
        response = await accept(
            context,
            principal,
            prepared,
            task_id=task_id,
            fallback_name=fallback_name,
            fallback=FALLBACKS[fallback_name],
            trace_id=request_id(request),
        )
        response["magpie_schedule"] = schedule
        _log_accepted(response, tenant, started)
        return response
    store = IdempotencyStore(context.collections.idempotency)
    key = store.check_key(idempotency_key)
    extras = [fallback_name, send_at_header.strip()] if send_at_header and send_at_header.strip() else [fallback_name]
    if vms is not None:
        extras += [f"vms-template:{vms.tpl_id}", f"vms-params:{vms.params_header}"]
    request_hash = spool.fingerprint(*extras)
    found = await store.lookup(tenant, key, request_hash)
    if found is not None and found.response is not None:
        return found.response
    task_id = found.task_id if found is not None else None
    if task_id is None:  # a resumed task passed the filing gate on its first attempt
        await _require_filings(context, tenant, vms)
    try:
        prepared = await _with_vms(
            context, principal, await prepare(context, principal, body, recipients, task_id=task_id, check=check), vms
        )
        if task_id is None:
            claim = await store.claim(tenant, key, request_hash, new_id("T"))
            if claim.response is not None:
                return claim.response
            task_id = claim.task_id
        assert task_id is not None
        resumed = found is not None  # keeps the schedule its first attempt stored
        schedule = await _schedule(context, tenant, task_id, prepared, requested_send_at, resumed=resumed)
        response = await accept(
            context,
            principal,
            prepared,
            task_id=task_id,
            fallback_name=fallback_name,
            fallback=FALLBACKS[fallback_name],
            trace_id=request_id(request),
        )
        response["magpie_schedule"] = schedule
    except BaseException:
        if task_id is not None:  # the key is ours (claimed or resumed): let a retry resume it at once
            await store.failed(tenant, key)
        raise
    await store.finish(tenant, key, response)
    _log_accepted(response, tenant, started)
    return response


async def _schedule(
    context: GatewayContext,
    tenant_id: str,
    task_id: str,
    prepared: PreparedTask,
    requested: datetime | None,
    *,
    resumed: bool = False,
) -> dict[str, Any] | None:
    """Check the requested send time (or hold a marketing task sent outside the window), store the schedule before
    the task's events and set the task's ``send_at_ms``; the task's ``magpie_schedule``. A resumed task keeps the
    schedule stored by its first attempt."""
    settings = send_schedules.schedule_settings()
    now = utc_now()
    stored = await send_schedules.stored_plan(context.collections, tenant_id, task_id) if resumed else None
    if stored is None:
        wanted = send_schedules.plan(requested, marketing=is_marketing(prepared), now=now, settings=settings)
        if wanted is None:
            return None
        stored = await send_schedules.record(context.collections, tenant_id, task_id, wanted, now)
    if stored.reason == send_schedules.REASON_SCHEDULED:  # the window itself is the dispatcher's to apply
        prepared.send_at_ms = to_ms(stored.send_at)
    return send_schedules.plan_view(stored, now, settings)


def _log_accepted(response: dict[str, Any], tenant_id: str, started: float) -> None:
    log.info(
        "send task accepted",
        extra={
            "task_id": response["task_id"],
            "tenant_id": tenant_id,
            "recipients": response["unique_recipients"],
            "batches": response["batch_count"],
            "send_at": (response.get("magpie_schedule") or {}).get("send_time"),
            "duration_ms": int((time.monotonic() - started) * 1000),
        },
    )


@router.get("/v1/aim/send-tasks", response_model=ListAimSendTasksResponse, summary="list_aim_send_tasks")
async def list_aim_send_tasks(
    task_id: str | None = None,
    task_name: str | None = None,
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    task_status: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if task_id:
        query["_id"] = task_id
    if task_name:
        query["task_name"] = regex_filter(task_name)
    if tpl_id:
        query["tpl_id"] = tpl_id
    if tpl_name:
        query["tpl_name"] = regex_filter(tpl_name)
    if task_status:
        states = STATUS_FILTERS.get(task_status.strip().lower())
        if states is None:
            raise invalid("task_status must be Success or Fail")
        query["state"] = {"$in": states}
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if window:
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    elif not task_id:
        query["created_at"] = {"$gte": utc_now() - DEFAULT_WINDOW}
    tasks = context.collections.tasks
    total = await tasks.count_documents(query)
    if paging.beyond_window:
        return {"aim_send_tasks": [], "page_info": paging.info(total)}
    docs = await tasks.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    counts = await task_counts(context.collections, (d["_id"] for d in docs))
    schedules = await send_schedules.stored_for(context.collections, principal.tenant_id, (d["_id"] for d in docs))
    settings, now = send_schedules.schedule_settings(), utc_now()
    views = []
    for doc in docs:
        task = task_view(doc, counts[doc["_id"]])
        task["magpie_schedule"] = send_schedules.view(schedules.get(doc["_id"]), now, settings)
        views.append(task)
    return {"aim_send_tasks": views, "page_info": paging.info(total)}
