"""SMS templates: ``create_aim_msg_template`` (sent to review), ``list_aim_msg_template``,
``show_aim_msg_template_detail``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from magpie.v1 import template_pb2
from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.pagination import page
from magpie_gateway.reviews import PENDING_REVIEW, send_for_review
from magpie_gateway.signatures_api import SIGNATURE_TYPES
from magpie_gateway.sms_models import (
    CreateAimMsgTemplateResponse,
    ListAimMsgTemplateResponse,
    MsgTemplateRequest,
    SmsTemplateInfo,
)
from magpie_gateway.sms_variables import VARIABLE_TYPES, link_variable, variable_types, variables
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, one_of, optional_text, regex_filter, required_text

router = APIRouter(tags=["SMS templates"])

MAX_CONTENT_CHARS = 20_000
MAX_NAME_CHARS = 64


def template_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "template_id": doc["_id"],
        "template_name": doc.get("template_name"),
        "create_time": iso(doc["created_at"]),
        "template_type": doc.get("template_type"),
        "app_id": doc.get("app_id"),
        "app_name": doc.get("app_name"),
        "signature_id": doc.get("signature_id"),
        "template_content": doc.get("template_content"),
        "template_desc": doc.get("template_desc"),
        "has_variable": "true" if doc.get("variables") else "false",
        "flow_status": doc["flow_status"],
        "status": doc["status"],
        "universal_template": 0,
        "urge_status": None,
        "urge_time": None,
        "urge_desc": None,
        "review_desc": doc.get("review_desc"),
    }


def review_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["template_name"],
        use_template_type=doc["template_type"],
        texts=[doc["template_content"]],
        param_count=len(doc["variables"]),
        param_names=[str(n) for n in doc["variables"]],
    )


@router.post("/v1/sms/templates", response_model=CreateAimMsgTemplateResponse, summary="create_aim_msg_template")
async def create_aim_msg_template(
    body: MsgTemplateRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    content = required_text("template_content", body.template_content)
    if len(content) > MAX_CONTENT_CHARS:
        raise invalid(f"template_content must have at most {MAX_CONTENT_CHARS} characters")
    name = required_text("template_name", body.template_name, max_chars=MAX_NAME_CHARS)
    if body.universal_template not in (None, "", "0"):
        raise fail(codes.NOT_SUPPORTED, "universal templates")
    if not body.signature_id:
        raise invalid("signature_id is required")
    attributes = body.variable_attributes or []
    for attribute in attributes:
        if attribute.variable_type is not None and attribute.variable_type.upper() not in VARIABLE_TYPES:
            raise invalid(f"variable_type must be one of {' | '.join(sorted(VARIABLE_TYPES))}")
    c = context.collections
    tenant = principal.tenant_id
    signature = await c.signatures.find_one({"_id": body.signature_id, "tenant_id": tenant})
    if signature is None:
        raise fail(codes.SIGNATURE_UNUSABLE, f"signature {body.signature_id} does not exist")
    app_id = body.app_id or signature["app_id"]
    if app_id != signature["app_id"]:
        raise invalid("app_id is not the app of the signature")
    template_type = one_of(
        "template_type", body.template_type, SIGNATURE_TYPES, default=signature.get("signature_type") or "NOTIFY_TYPE"
    )
    types = variable_types((a.variable_index, a.variable_type) for a in attributes)
    doc = {
        "_id": new_id("TPL"),
        "tenant_id": tenant,
        "app_id": app_id,
        "app_name": signature.get("app_name"),
        "signature_id": signature["_id"],
        "signature_name": signature["signature_name"],
        "template_name": name,
        "template_type": template_type,
        "template_content": content,
        "template_desc": optional_text("template_desc", body.template_desc, max_chars=1000),
        "variable_attributes": [a.model_dump() for a in attributes],
        "variables": variables(content),
        "link_variable": link_variable(content, types),
        "flow_status": PENDING_REVIEW,
        "status": PENDING_REVIEW,
        "review_desc": None,
        "revision": 1,
        "created_at": utc_now(),
        "operator": principal.user_name or principal.user_id,
    }
    await c.sms_templates.insert_one(doc)
    await send_for_review(
        context, review_message(doc), tenant_id=tenant, trace_id=request_id(request), collection=c.sms_templates
    )
    return {"template_id": doc["_id"], "template_name": name}


@router.get("/v1/sms/templates", response_model=ListAimMsgTemplateResponse, summary="list_aim_msg_template")
async def list_aim_msg_template(
    offset: int | None = None,
    limit: int | None = None,
    app_name: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    flow_status: str | None = None,
    template_id: str | None = None,
    template_name: str | None = None,
    template_type: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if app_name:
        query["app_name"] = app_name
    if flow_status:
        query["flow_status"] = flow_status
    if template_id:
        query["_id"] = template_id
    if template_name:
        query["template_name"] = regex_filter(template_name)
    if template_type:
        query["template_type"] = template_type
    window = parse_window("start_time", start_time, "end_time", end_time)
    if window:
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    c = context.collections.sms_templates
    total = await c.count_documents(query)
    docs = await c.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    return {"result": [template_view(d) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/sms/templates/{template_id}", response_model=SmsTemplateInfo, summary="show_aim_msg_template_detail")
async def show_aim_msg_template_detail(
    template_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await context.collections.sms_templates.find_one({"_id": template_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"SMS template {template_id}")
    return template_view(doc)
