"""SMS apps: ``create_sms_app``, ``list_aim_msg_app``, ``list_aim_msg_app_detail``, ``update_aim_msg_app``.

A tenant has at most 2 apps (they cannot be deleted); names are letters, digits and underscore, unique per
tenant regardless of case.

``update_aim_msg_app`` (PUT) changes what the body gives and keeps what it omits: ``app_name`` renames the app
(same rules; the new name is also shown by the app's signatures and SMS templates, which carry it), and
``up_link_addr`` replaces the uplink URL, an empty string removes it. Smart send tasks already accepted keep the
app name they were created with.
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
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.sms_models import (
    CreateSmsAppResponse,
    ListAimMsgAppResponse,
    MsgAppRequest,
    SmsApp,
    UpdateAimMsgAppResponse,
)
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid, list_filter, required_text

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


def check_app_name(value: str | None) -> str:
    name = required_text("app_name", value)
    if not APP_NAME.fullmatch(name):
        raise invalid("app_name must be 1-64 letters, digits or underscores")
    return name


async def check_up_link(context: GatewayContext, url: str) -> None:
    try:
        await check_public_url(url, allow_loopback=context.config.allow_loopback_callbacks)
    except UrlRejected as exc:
        raise fail(codes.URL_REJECTED, f"up_link_addr: {exc}") from None


@router.post("/v1/sms/apps", response_model=CreateSmsAppResponse, summary="create_sms_app")
async def create_sms_app(
    body: MsgAppRequest,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    name = check_app_name(body.app_name)
    if body.up_link_addr:
        await check_up_link(context, body.up_link_addr)
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
    query = list_filter(
        principal.tenant_id,
        equal={"status": status},
        contains={"app_name": app_name},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.sms_apps, query, paging)
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


@router.put("/v1/sms/apps/{app_id}", response_model=UpdateAimMsgAppResponse, summary="update_aim_msg_app")
async def update_aim_msg_app(
    app_id: str,
    body: MsgAppRequest,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    c = context.collections
    tenant = principal.tenant_id
    doc = await c.sms_apps.find_one({"_id": app_id, "tenant_id": tenant})
    if doc is None:
        raise not_found(f"SMS app {app_id}")
    changes: dict[str, Any] = {}
    if body.app_name is not None:
        name = check_app_name(body.app_name)
        if name != doc["app_name"]:
            taken = await c.sms_apps.find_one(
                {"tenant_id": tenant, "name_key": name.lower(), "_id": {"$ne": app_id}}, {"_id": 1}
            )
            if taken:
                raise fail(codes.NAME_TAKEN, f"app_name {name}")
            changes.update(app_name=name, name_key=name.lower())
    if body.up_link_addr is not None:
        if body.up_link_addr:
            await check_up_link(context, body.up_link_addr)
        changes["up_link_addr"] = body.up_link_addr or None
    if changes:
        changes["updated_at"] = utc_now()
        try:
            result = await c.sms_apps.update_one({"_id": app_id, "tenant_id": tenant}, {"$set": changes})
        except DuplicateKeyError:
            raise fail(codes.NAME_TAKEN, f"app_name {changes['app_name']}") from None
        if result.matched_count != 1:
            raise not_found(f"SMS app {app_id}")
        if "app_name" in changes:
            renamed = {"$set": {"app_name": changes["app_name"]}}
            await c.signatures.update_many({"tenant_id": tenant, "app_id": app_id}, renamed)
            await c.sms_templates.update_many({"tenant_id": tenant, "app_id": app_id}, renamed)
    return {"app_name": changes.get("app_name", doc["app_name"]), "app_id": app_id}
