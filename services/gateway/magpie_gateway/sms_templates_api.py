"""SMS templates: ``create_aim_msg_template`` (sent to review), ``list_aim_msg_template``,
``show_aim_msg_template_detail``, ``update_aim_msg_template``, ``delete_aim_msg_template``,
``show_aim_msg_template_variable``.

- ``update_aim_msg_template`` (PUT): as in KooMessage, only a REJECTED template can be modified (KM.00000470
  otherwise). Fields the body gives replace the stored ones, omitted (null) fields are kept; a new
  ``signature_id`` must be a signature of the tenant in the template's app. The template goes back to review:
  ``flow_status`` / ``status`` PENDING_REVIEW, ``revision`` + 1 (a late decision about the previous revision is
  ignored); variables and the link variable are recomputed from the content.
- ``delete_aim_msg_template``: any state. Smart send tasks already accepted keep their copy of the content.
- ``show_aim_msg_template_variable``: the template's ``${N}`` variables in fill order (ascending N: ``id`` 1 is
  filled by ``template_params[0]`` / ``sms_params[0]``), with the declared type and description and the maximum
  length of a value of that type (see ``sms_variables``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from magpie.v1 import template_pb2
from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.reviews import PENDING_REVIEW, REJECTED, send_for_review
from magpie_gateway.signatures_api import SIGNATURE_TYPES
from magpie_gateway.sms_models import (
    CreateAimMsgTemplateResponse,
    EmptyResponse,
    ListAimMsgTemplateResponse,
    MsgTemplateRequest,
    ShowAimMsgTemplateVariableResponse,
    SmsTemplateInfo,
    UpdateAimMsgTemplateResponse,
    VariableAttributes,
)
from magpie_gateway.sms_reviews import rejected_for_edit, resubmit_for_review
from magpie_gateway.sms_variables import VARIABLE_TYPES, link_variable, variable_list, variable_types, variables
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter, one_of, optional_text, required_text

router = APIRouter(tags=["SMS templates"])

MAX_CONTENT_CHARS = 20_000
MAX_NAME_CHARS = 64
MAX_DESC_CHARS = 1000


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


def check_content(value: str | None) -> str:
    content = required_text("template_content", value)
    if len(content) > MAX_CONTENT_CHARS:
        raise invalid(f"template_content must have at most {MAX_CONTENT_CHARS} characters")
    return content


def check_attributes(attributes: list[VariableAttributes]) -> list[VariableAttributes]:
    for attribute in attributes:
        if attribute.variable_type is not None and attribute.variable_type.upper() not in VARIABLE_TYPES:
            raise invalid(f"variable_type must be one of {' | '.join(sorted(VARIABLE_TYPES))}")
    return attributes


def derived_fields(content: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """What the template's content and declared variables decide: its variables and the link variable."""
    types = variable_types((a.get("variable_index"), a.get("variable_type")) for a in attributes)
    return {"variables": variables(content), "link_variable": link_variable(content, types)}


@router.post("/v1/sms/templates", response_model=CreateAimMsgTemplateResponse, summary="create_aim_msg_template")
async def create_aim_msg_template(
    body: MsgTemplateRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    content = check_content(body.template_content)
    name = required_text("template_name", body.template_name, max_chars=MAX_NAME_CHARS)
    if body.universal_template not in (None, "", "0"):
        raise fail(codes.NOT_SUPPORTED, "universal templates")
    if not body.signature_id:
        raise invalid("signature_id is required")
    attributes = [a.model_dump() for a in check_attributes(body.variable_attributes or [])]
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
        "template_desc": optional_text("template_desc", body.template_desc, max_chars=MAX_DESC_CHARS),
        "variable_attributes": attributes,
        **derived_fields(content, attributes),
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
    query = list_filter(
        principal.tenant_id,
        equal={"app_name": app_name, "flow_status": flow_status, "_id": template_id, "template_type": template_type},
        contains={"template_name": template_name},
        created=parse_window("start_time", start_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.sms_templates, query, paging)
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


@router.put(
    "/v1/sms/templates/{template_id}", response_model=UpdateAimMsgTemplateResponse, summary="update_aim_msg_template"
)
async def update_aim_msg_template(
    template_id: str,
    body: MsgTemplateRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    c = context.collections
    tenant = principal.tenant_id
    previous = await rejected_for_edit(c.sms_templates, template_id, tenant, what="template", state_field="flow_status")
    if body.universal_template not in (None, "", "0"):
        raise fail(codes.NOT_SUPPORTED, "universal templates")
    changes: dict[str, Any] = {}
    if body.template_content is not None:
        changes["template_content"] = check_content(body.template_content)
    if body.template_name is not None:
        changes["template_name"] = required_text("template_name", body.template_name, max_chars=MAX_NAME_CHARS)
    if body.template_desc is not None:
        changes["template_desc"] = optional_text("template_desc", body.template_desc, max_chars=MAX_DESC_CHARS)
    if body.template_type is not None:
        changes["template_type"] = one_of("template_type", body.template_type, SIGNATURE_TYPES)
    if body.variable_attributes is not None:
        changes["variable_attributes"] = [a.model_dump() for a in check_attributes(body.variable_attributes)]
    if body.signature_id is not None and body.signature_id != previous["signature_id"]:
        signature = await c.signatures.find_one({"_id": body.signature_id, "tenant_id": tenant})
        if signature is None:
            raise fail(codes.SIGNATURE_UNUSABLE, f"signature {body.signature_id} does not exist")
        if signature["app_id"] != previous["app_id"]:
            raise invalid("the signature belongs to another app than the template")
        changes.update(signature_id=signature["_id"], signature_name=signature["signature_name"])
    if body.app_id is not None and body.app_id != previous["app_id"]:
        raise invalid("app_id cannot be changed (it is the app of the signature)")
    updated = {**previous, **changes}
    updated.update(derived_fields(updated["template_content"], updated.get("variable_attributes") or []))
    updated.update(
        flow_status=PENDING_REVIEW,
        status=PENDING_REVIEW,
        review_desc=None,
        revision=previous["revision"] + 1,
        updated_at=utc_now(),
        operator=principal.user_name or principal.user_id,
    )
    result = await c.sms_templates.replace_one(
        {"_id": template_id, "tenant_id": tenant, "revision": previous["revision"], "flow_status": REJECTED}, updated
    )
    if result.matched_count != 1:
        raise fail(codes.NOT_MODIFIABLE, f"template {template_id} changed meanwhile; read it again")
    await resubmit_for_review(
        context,
        review_message(updated),
        tenant_id=tenant,
        trace_id=request_id(request),
        collection=c.sms_templates,
        previous=previous,
    )
    return {"template_id": template_id, "template_name": updated["template_name"]}


@router.delete("/v1/sms/templates/{template_id}", response_model=EmptyResponse, summary="delete_aim_msg_template")
async def delete_aim_msg_template(
    template_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    result = await context.collections.sms_templates.delete_one({"_id": template_id, "tenant_id": principal.tenant_id})
    if result.deleted_count != 1:
        raise not_found(f"SMS template {template_id}")
    return {}


@router.get(
    "/v1/sms/templates/{template_id}/variable",
    response_model=ShowAimMsgTemplateVariableResponse,
    summary="show_aim_msg_template_variable",
)
async def show_aim_msg_template_variable(
    template_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await context.collections.sms_templates.find_one({"_id": template_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"SMS template {template_id}")
    results = variable_list(doc)
    return {"results": results, "total": len(results)}
