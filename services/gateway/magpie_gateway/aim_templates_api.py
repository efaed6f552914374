"""AIM card templates: ``create_aim_personal_template`` (9-digit ``tpl_id``, sent to review per vendor),
``list_aim_templates`` (the review state per vendor in ``factory_info``), ``update_personal_template_state``
(enable / disable) and ``delete_aim_personal_template``. The rules of enabling, disabling and deleting are in
``magpie_gateway.aim_templates``; another tenant's ``tpl_id`` is answered 404 like an unknown one. Enable / disable
produce the template-status callback's event (``magpie_gateway.aim_template_status``)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pymongo.errors import DuplicateKeyError

from magpie_gateway.aim_materials import check_material_references
from magpie_gateway.aim_models import (
    CreateAimPersonalTemplateRequestBody,
    CreateAimPersonalTemplateResponse,
    ListAimTemplatesResponse,
    NullDataResponse,
    UpdatePersonalTemplateStateDataRequest,
)
from magpie_gateway.aim_template_status import STATUS_SEQ, after_state_change
from magpie_gateway.aim_templates import (
    check_request,
    deletion_blocker,
    params_of,
    review_message,
    state_change,
    vendors_of,
)
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.errors import TEMPLATE_DELETE_FAILED
from magpie_gateway.pagination import page
from magpie_gateway.reviews import AUDIT_UNDER_REVIEW, send_for_review
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import regex_filter

router = APIRouter(tags=["AIM templates"])

OK_STATUS = "200"
OK_MESSAGE = "success"
MATCH_TYPE_SHORT_LINK = 1  # "短链解析模板": resolved through the short link


def new_tpl_id() -> str:
    return str(100_000_000 + secrets.randbelow(900_000_000))


def template_view(doc: dict[str, Any], *, only_status: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tpl_id": doc["_id"],
        "tpl_name": doc["tpl_name"],
        "scene": doc.get("scene"),
        "tpl_state": doc["tpl_state"],
        "disable_desc": doc.get("disable_desc") if doc.get("disabled") else None,
        "disable_time": iso(doc.get("disabled_at")) if doc.get("disabled") else None,
        "audit_state": doc["audit_state"],
        "audit_desc": doc.get("audit_desc"),
        "description": doc.get("sms_example"),
        "creation_time": iso(doc["created_at"]),
        "update_time": iso(doc.get("updated_at") or doc["created_at"]),
        "factory_info": [
            {"factory_type": f["factory_type"], "state": f["state"], "version": "1", "tpl_id": doc["_id"]}
            for f in doc["factory_info"]
        ],
        "match_type": MATCH_TYPE_SHORT_LINK,
        "card_id": doc.get("card_id"),
        "sub_type": doc.get("sub_type"),
        "preview_url": None,
    }
    if not only_status:
        view["pages"] = json.dumps(doc.get("pages", []), ensure_ascii=False)
        view["params"] = [
            {"type": "string", "name": p["name"], "has_length": False, "length_restrict": False}
            for p in doc.get("params", [])
        ]
    return view


@router.post(
    "/v1/aim/templates", response_model=CreateAimPersonalTemplateResponse, summary="create_aim_personal_template"
)
async def create_aim_personal_template(
    body: CreateAimPersonalTemplateRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    check_request(body)
    vendors = vendors_of(body)
    await check_material_references(context.collections, principal.tenant_id, body)
    params = params_of(body)
    now = utc_now()
    doc: dict[str, Any] = {
        "tenant_id": principal.tenant_id,
        "tpl_name": (body.tpl_name or "").strip(),
        "card_id": body.card_id,
        "scene": body.scene,
        "use_id": body.use_id,
        "sub_type": body.sub_type,
        "sms_example": body.sms_example,
        "sms_signs": body.sms_signs or [],
        "sms_template": body.sms_template,
        "pages": [p.model_dump(exclude_none=True) for p in body.pages or []],
        "params": params,
        "has_param": bool(params),
        "vendors": vendors,
        "factory_info": [{"factory_type": v, "state": 0, "reason": None} for v in vendors],
        "audit_state": AUDIT_UNDER_REVIEW,
        "audit_desc": None,
        "tpl_state": 0,
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "operator": principal.user_name or principal.user_id,
    }
    collection = context.collections.aim_templates
    while True:  # tpl_id is 9 random digits, unique across tenants
        doc["_id"] = new_tpl_id()
        try:
            await collection.insert_one(doc)
            break
        except DuplicateKeyError:
            continue
    await send_for_review(
        context,
        review_message(doc, body),
        tenant_id=principal.tenant_id,
        trace_id=request_id(request),
        collection=collection,
    )
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": {"tpl_id": doc["_id"]}}


@router.get("/v1/aim/templates", response_model=ListAimTemplatesResponse, summary="list_aim_templates")
async def list_aim_templates(
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    tpl_type: str | None = None,
    factory_type: list[str] = Query(default=[]),
    has_param: bool | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    is_only_status: bool = False,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    if tpl_type == "public":  # Magpie has no public templates yet
        return {"templates": [], "page_info": paging.info(0)}
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if tpl_id:
        query["_id"] = tpl_id
    if tpl_name:
        query["tpl_name"] = regex_filter(tpl_name)
    vendors = [v.strip().upper() for item in factory_type for v in item.split(",") if v.strip()]
    if vendors:
        query["vendors"] = {"$in": vendors}
    if has_param is not None:
        query["has_param"] = has_param
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if window:
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    collection = context.collections.aim_templates
    total = await collection.count_documents(query)
    docs = await collection.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    return {
        "templates": [template_view(d, only_status=is_only_status) for d in docs],
        "page_info": paging.info(total),
    }


async def _template(context: GatewayContext, tenant_id: str, tpl_id: str) -> dict[str, Any]:
    doc = await context.collections.aim_templates.find_one({"_id": tpl_id, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"AIM template {tpl_id}")
    return doc


@router.put(
    "/v1/aim/template-state/{tpl_id}", response_model=NullDataResponse, summary="update_personal_template_state"
)
async def update_personal_template_state(
    tpl_id: str,
    body: UpdatePersonalTemplateStateDataRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await _template(context, principal.tenant_id, tpl_id)
    update = state_change(doc, body.tpl_state, utc_now())
    collection = context.collections.aim_templates
    query = {"_id": tpl_id, "tenant_id": principal.tenant_id}
    # A change of tpl_state counts in status_seq (the id of its template-status event); a repeat changes nothing.
    result = await collection.update_one(
        {**query, "tpl_state": {"$ne": update["tpl_state"]}}, {"$set": update, "$inc": {STATUS_SEQ: 1}}
    )
    if result.matched_count == 0:
        result = await collection.update_one(query, {"$set": update})
    stored = await collection.find_one(query) if result.matched_count else None
    if stored is None:  # deleted meanwhile
        raise not_found(f"AIM template {tpl_id}")
    await after_state_change(context, stored, request_id(request))
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": None}


@router.delete("/v1/aim/template/{tpl_id}", response_model=NullDataResponse, summary="delete_aim_personal_template")
async def delete_aim_personal_template(
    tpl_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await _template(context, principal.tenant_id, tpl_id)
    blocker = await deletion_blocker(context.collections, principal.tenant_id, tpl_id)
    if blocker is not None:
        raise fail(TEMPLATE_DELETE_FAILED, blocker)
    result = await context.collections.aim_templates.delete_one({"_id": tpl_id, "tenant_id": principal.tenant_id})
    if result.deleted_count == 0:  # deleted by a concurrent request
        raise not_found(f"AIM template {tpl_id}")
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": None}
