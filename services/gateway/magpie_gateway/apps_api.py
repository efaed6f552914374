"""SMS apps: ``create_sms_app``, ``list_aim_msg_app``, ``list_aim_msg_app_detail``.

A tenant has at most 2 apps (they cannot be deleted); names are letters, digits and underscore, unique per
tenant regardless of case.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from pymongo.errors import DuplicateKeyError

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.pagination import page
from magpie_gateway.sms_models import CreateSmsAppResponse, ListAimMsgAppResponse, MsgAppRequest, SmsApp
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid, regex_filter, required_text

router = APIRouter(tags=["SMS apps"])

MAX_APPS_PER_TENANT = 2
APP_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
APP_STATUS = "NORMAL"


def app_view(doc: dict[str, Any], region: str) -> dict[str, Any]:
    return {
        "app_id": doc["_id"],
        "app_name": doc["app_name"],
        "status": doc.get("status", APP_STATUS),
        "region": region,
        "create_time": iso(doc["created_at"]),
        "up_link_addr": doc.get("up_link_addr"),
    }


@router.post("/v1/sms/apps", response_model=CreateSmsAppResponse, summary="create_sms_app")
async def create_sms_app(
    body: MsgAppRequest,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    name = required_text("app_name", body.app_name)
    if not APP_NAME.fullmatch(name):
        raise invalid("app_name must be 1-64 letters, digits or underscores")
    if body.up_link_addr:
        try:
            await check_public_url(body.up_link_addr, allow_loopback=context.config.allow_loopback_callbacks)
        except UrlRejected as exc:
            raise fail(codes.URL_REJECTED, f"up_link_addr: {exc}") from None
    c = context.collections
    tenant = principal.tenant_id
    if await c.sms_apps.find_one({"tenant_id": tenant, "name_key": name.lower()}, {"_id": 1}):
        raise fail(codes.NAME_TAKEN, f"app_name {name}")
    # Reserve one of the tenant's app slots atomically, so concurrent creations cannot exceed the limit.
    reserved = await c.tenants.update_one(
        {"_id": tenant, "app_count": {"$lt": MAX_APPS_PER_TENANT}}, {"$inc": {"app_count": 1}}
    )
    if reserved.matched_count != 1:
        raise fail(codes.SMS_APP_LIMIT, f"at most {MAX_APPS_PER_TENANT} SMS apps per tenant")
    app_id = new_id("APP")
    try:
        await c.sms_apps.insert_one(
            {
                "_id": app_id,
                "tenant_id": tenant,
                "app_name": name,
                "name_key": name.lower(),
                "up_link_addr": body.up_link_addr or None,
                "status": APP_STATUS,
                "created_at": utc_now(),
            }
        )
    except BaseException as exc:
        await c.tenants.update_one({"_id": tenant}, {"$inc": {"app_count": -1}})
        if isinstance(exc, DuplicateKeyError):
            raise fail(codes.NAME_TAKEN, f"app_name {name}") from None
        raise
    return {"app_name": name, "app_id": app_id}


@router.get("/v1/sms/apps", response_model=ListAimMsgAppResponse, summary="list_aim_msg_app")
async def list_aim_msg_app(
    offset: int | None = None,
    limit: int | None = None,
    app_name: str | None = None,
    status: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if app_name:
        query["app_name"] = regex_filter(app_name)
    if status:
        query["status"] = status
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if window:
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    c = context.collections.sms_apps
    total = await c.count_documents(query)
    docs = await c.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    return {"result": [app_view(d, context.config.region) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/sms/apps/{app_id}", response_model=SmsApp, summary="list_aim_msg_app_detail")
async def list_aim_msg_app_detail(
    app_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await context.collections.sms_apps.find_one({"_id": app_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"SMS app {app_id}")
    return app_view(doc, context.config.region)
