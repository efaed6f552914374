"""VMS (video SMS, 智能信息基础版): templates, send tasks and callback URLs (``/v1/aim-basic/...``).

- ``create_vms_template`` checks the resources (``vms_templates``), stores the media, and sends the template to the
  three carriers' review (unless ``is_draft=1``); ``list_vms_template_status`` shows the tenant's templates with
  their per-carrier ``status_detail``. Magpie has no public VMS templates: ``tpl_type=public`` lists nothing.
- ``create_vms_send_task`` checks the request (``vms_tasks``) and hands the recipients to the dispatcher's vms
  role; ``list_vms_send_tasks`` shows the tasks with counters kept by ``vms_projector``.
- ``add_vms_call_back`` registers the tenant's URL of one type (0 send status reports, 1 replies); registering a
  type again replaces its URL. Every change goes to the dispatcher as ``CallbackConfigured`` on the compacted
  VMS_CALLBACKS topic (key ``<tenant_id>:<url_type>``). ``list_vms_callbacks`` lists them.

Responses carry the SDK's envelope ``{"status": "200", "message": "success", "data": ...}`` where the SDK has one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pymongo import ReturnDocument

from magpie.v1 import billing_pb2
from magpie_common.ids import new_id, stable_id
from magpie_common.topics import VMS_CALLBACKS
from magpie_gateway import codes, vms_tasks, vms_templates
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta, get_context, request_id
from magpie_gateway.filing_gate import require_filing
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.reviews import send_for_review
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid, list_filter, optional_one_of, optional_text, required_text
from magpie_gateway.vms_models import (
    AddVmsCallBackRequestBody,
    AddVmsCallBackResponse,
    CreateVmsSendTaskRequestBody,
    CreateVmsSendTaskResponse,
    CreateVmsTemplateRequestBody,
    CreateVmsTemplateResponse,
    ListVmsCallbacksResponse,
    ListVmsSendTasksResponse,
    ListVmsTemplateStatusResponse,
)

router = APIRouter(tags=["VMS"])

OK_STATUS = "200"
OK_MESSAGE = "success"
URL_TYPES = (0, 1)  # 0 send status reports, 1 replies (MO)
MAX_REMARK_CHARS = 200


def ok(data: Any) -> dict[str, Any]:
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": data}


async def _checked_url(context: GatewayContext, name: str, value: str | None) -> str:
    url = (value or "").strip()
    try:
        await check_public_url(url, allow_loopback=context.config.allow_loopback_callbacks)
    except UrlRejected as exc:
        raise fail(codes.URL_REJECTED, f"{name}: {exc}") from None
    return url


# --- templates -----------------------------------------------------------------------------------------------
@router.post("/v1/aim-basic/templates", response_model=CreateVmsTemplateResponse, summary="create_vms_template")
async def create_vms_template(
    body: CreateVmsTemplateRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tpl_name = required_text("tpl_name", body.tpl_name, max_chars=vms_templates.MAX_NAME_CHARS)
    title = vms_templates.check_title(body.title)
    days = vms_templates.parse_days(body.expiration_time)
    remarks = optional_text("remarks", body.remarks, max_chars=vms_templates.MAX_REMARKS_CHARS)
    if body.is_draft not in (None, 0, 1):
        raise invalid("is_draft must be 0 or 1")
    callback_url = await _checked_url(context, "callbackurl", body.callbackurl) if body.callbackurl else None
    parsed = await vms_templates.parse_reslist(body.reslist, allow_loopback=context.config.allow_loopback_callbacks)
    tenant = principal.tenant_id
    draft = body.is_draft == 1
    state = vms_templates.STATE_DRAFT if draft else vms_templates.STATE_REVIEWING
    now = utc_now()
    await vms_templates.store_media(context, tenant, parsed)
    doc = {
        "_id": new_id("VMS"),
        "tenant_id": tenant,
        "tpl_name": tpl_name,
        "title": title,
        "sign": parsed.sign,
        "remarks": remarks,
        "callbackurl": callback_url,
        "expiration_days": days,
        "valid_until": vms_templates.valid_until(now, days),
        "elements": vms_templates.element_docs(parsed),
        "params": parsed.params,
        "has_param": bool(parsed.params),
        "size": parsed.size,
        "state": state,
        "status_detail": vms_templates.initial_status_detail(state),
        "audit_desc": None,
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "operator": principal.user_name or principal.user_id,
    }
    c = context.collections.vms_templates
    try:
        await c.insert_one(doc)
        if not draft:
            await send_for_review(
                context,
                vms_templates.review_message(doc),
                tenant_id=tenant,
                trace_id=request_id(request),
                collection=c,
            )
    except BaseException:
        await vms_templates.drop_media(context, tenant, parsed)
        raise
    return {"tplid": doc["_id"]}


@router.get("/v1/aim-basic/templates", response_model=ListVmsTemplateStatusResponse, summary="list_vms_template_status")
async def list_vms_template_status(
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    tpl_type: str | None = None,
    has_param: bool | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    if tpl_type not in (None, "", "public", "private"):
        raise invalid("tpl_type must be public or private")
    if (begin_time in (None, "")) != (end_time in (None, "")):
        raise invalid("begin_time and end_time must both be given or both be empty")
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if tpl_type == "public":  # Magpie has no public VMS templates
        return ok({"templates": [], "page_info": paging.info(0)})
    query = list_filter(
        principal.tenant_id,
        equal={"_id": tpl_id, "has_param": has_param},
        contains={"tpl_name": tpl_name},
        created=window,
    )
    docs, total = await fetch_page(context.collections.vms_templates, query, paging)
    return ok({"templates": [vms_templates.template_view(d) for d in docs], "page_info": paging.info(total)})


# --- send tasks ----------------------------------------------------------------------------------------------
@router.post("/v1/aim-basic/send-tasks", response_model=CreateVmsSendTaskResponse, summary="create_vms_send_task")
async def create_vms_send_task(
    body: CreateVmsSendTaskRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await require_filing(context, principal.tenant_id, "VMS")
    name = required_text("task_name", body.task_name, max_chars=vms_tasks.MAX_TASK_NAME_CHARS)
    tpl_id = required_text("tpl_id", body.tpl_id)
    hours = vms_tasks.expiration_hours(body.expiration_time)
    exdata = optional_text("exdata", body.exdata, max_chars=vms_tasks.MAX_EXDATA_CHARS)
    tenant = principal.tenant_id
    template = vms_tasks.check_template(
        await context.collections.vms_templates.find_one({"_id": tpl_id, "tenant_id": tenant}), tpl_id
    )
    recipients = vms_tasks.recipients_of(body, template["params"])
    doc = vms_tasks.new_task(
        tenant_id=tenant,
        operator=principal.user_name or principal.user_id,
        name=name,
        template=template,
        recipients=recipients,
        hours=hours,
        exdata=exdata,
        now=utc_now(),
    )
    await context.collections.vms_tasks.insert_one(doc)
    await vms_tasks.dispatch(context, doc, recipients, request_id(request))
    return ok({"ret_code": "0", "task_id": doc["_id"], "desc": OK_MESSAGE})


@router.get("/v1/aim-basic/send-tasks", response_model=ListVmsSendTasksResponse, summary="list_vms_send_tasks")
async def list_vms_send_tasks(
    task_name: str | None = None,
    task_id: str | None = None,
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    send_begin_time: str | None = None,
    send_end_time: str | None = None,
    operator: str | None = None,
    task_status: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query = list_filter(
        principal.tenant_id,
        equal={
            "task_state": optional_one_of("task_status", task_status, vms_tasks.TASK_STATES),
            "_id": task_id,
            "tpl_id": tpl_id,
            "operator": operator,
        },
        contains={"task_name": task_name, "tpl_name": tpl_name},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
        within={"send_time": parse_window("send_begin_time", send_begin_time, "send_end_time", send_end_time)},
    )
    c = context.collections.vms_tasks
    total = await c.count_documents(query)
    docs: list[dict[str, Any]] = []
    if paging.offset < total:
        cursor = c.find(query, vms_tasks.VIEW_PROJECTION).sort([("created_at", -1), ("_id", -1)])
        docs = await cursor.skip(paging.offset).limit(paging.limit).to_list(None)
    return ok({"aim_basic_send_tasks": [vms_tasks.task_view(d) for d in docs], "page_info": paging.info(total)})


# --- callbacks -----------------------------------------------------------------------------------------------
def callback_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"url_type": doc["url_type"], "callback_url": doc["callback_url"], "remark": doc.get("remark")}


@router.post("/v1/aim-basic/callbacks", response_model=AddVmsCallBackResponse, summary="add_vms_call_back")
async def add_vms_call_back(
    body: AddVmsCallBackRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    if body.url_type is None or body.url_type not in URL_TYPES:
        raise invalid("url_type must be 0 (send status reports) or 1 (replies)")
    remark = optional_text("remark", body.remark, max_chars=MAX_REMARK_CHARS)
    url = await _checked_url(context, "callback_url", body.callback_url)
    tenant = principal.tenant_id
    now = utc_now()
    doc = await context.collections.vms_callbacks.find_one_and_update(
        {"tenant_id": tenant, "url_type": body.url_type},
        {
            "$set": {"callback_url": url, "remark": remark, "updated_at": now},
            "$inc": {"revision": 1},
            "$setOnInsert": {"_id": new_id("VCB"), "created_at": now},
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    event = billing_pb2.CallbackConfigured(
        meta=event_meta(stable_id("vms-callback-configured", doc["_id"], doc["revision"]), tenant, request_id(request)),
        callback_id=doc["_id"],
        url_type=body.url_type,
        url=url,
        aim_url="",
        deleted=False,
    )
    await context.producer.send(VMS_CALLBACKS, f"{tenant}:{body.url_type}", event)
    return {"status": OK_STATUS, "message": OK_MESSAGE}


@router.get("/v1/aim-basic/callbacks", response_model=ListVmsCallbacksResponse, summary="list_vms_callbacks")
async def list_vms_callbacks(
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    docs = (
        await context.collections.vms_callbacks.find({"tenant_id": principal.tenant_id})
        .sort("url_type", 1)
        .to_list(None)
    )
    return ok({"callbacks": [callback_view(d) for d in docs]})
