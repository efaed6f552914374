"""Smart-message send tasks: ``create_aim_send_task`` and ``list_aim_send_tasks``.

Headers of ``POST /v1/aim/send-tasks`` beyond the SDK (both optional):

- ``X-Magpie-Fallback: skip | sms | vms``: what happens to numbers whose handset cannot render the card
  (the SDK has no field for it). ``sms`` (default, ``MAGPIE_DEFAULT_FALLBACK``) sends the plain SMS with the link,
  ``skip`` sends nothing; ``vms`` is refused (KM.00000429, not supported yet).
- ``Idempotency-Key``: see ``magpie_gateway.idempotency``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, Request

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.config import FALLBACKS
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from magpie_gateway.idempotency import IdempotencyStore, fingerprint
from magpie_gateway.pagination import page
from magpie_gateway.send_task_builder import prepare
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
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.validation import invalid, regex_filter

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
    if value == "vms":
        raise fail(codes.NOT_SUPPORTED, "the vms fallback (video SMS) is not supported yet; use sms or skip")
    return value


@router.post("/v1/aim/send-tasks", response_model=CreateAimSendTaskResponse, summary="create_aim_send_task")
async def create_aim_send_task(
    body: CreateAimSendTaskRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
    idempotency_key: str | None = Header(
        None, alias=IDEMPOTENCY_HEADER, description="same key + same request = same answer, one task"
    ),
    fallback_header: str | None = Header(
        None, alias=FALLBACK_HEADER, description="skip | sms (default) | vms (not supported yet)"
    ),
) -> dict[str, Any]:
    started = time.monotonic()
    fallback_name = fallback_of(fallback_header, context.config.default_fallback)
    tenant = principal.tenant_id
    if idempotency_key is None:
        prepared = await prepare(context, principal, body)
        response = await accept(
            context,
            principal,
            prepared,
            task_id=new_id("T"),
            fallback_name=fallback_name,
            fallback=FALLBACKS[fallback_name],
            trace_id=request_id(request),
        )
        _log_accepted(response, tenant, started)
        return response
    store = IdempotencyStore(context.collections.idempotency)
    key = store.check_key(idempotency_key)
    request_hash = fingerprint(await request.body(), fallback_name)
    found = await store.lookup(tenant, key, request_hash)
    if found is not None and found.response is not None:
        return found.response
    task_id = found.task_id if found is not None else None
    try:
        prepared = await prepare(context, principal, body)
        if task_id is None:
            claim = await store.claim(tenant, key, request_hash, new_id("T"))
            if claim.response is not None:
                return claim.response
            task_id = claim.task_id
        assert task_id is not None
        response = await accept(
            context,
            principal,
            prepared,
            task_id=task_id,
            fallback_name=fallback_name,
            fallback=FALLBACKS[fallback_name],
            trace_id=request_id(request),
        )
    except BaseException:
        if task_id is not None:  # the key is ours (claimed or resumed): let a retry resume it at once
            await store.failed(tenant, key)
        raise
    await store.finish(tenant, key, response)
    _log_accepted(response, tenant, started)
    return response


def _log_accepted(response: dict[str, Any], tenant_id: str, started: float) -> None:
    log.info(
        "send task accepted",
        extra={
            "task_id": response["task_id"],
            "tenant_id": tenant_id,
            "recipients": response["unique_recipients"],
            "batches": response["batch_count"],
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
    return {"aim_send_tasks": [task_view(d, counts[d["_id"]]) for d in docs], "page_info": paging.info(total)}
