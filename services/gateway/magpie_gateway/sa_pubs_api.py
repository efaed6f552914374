"""Service numbers (智能信息服务号, SA): ``create_pub_info`` (one-stop: the service number with its menu and
homepage), ``update_pub_info``, ``freeze_pub``, ``unfreeze_pub``, ``list_pub_infos``.

Decided for Magpie (the lifecycle and the reviews are described in ``sa_reviews``; field rules in
``sa_validation``, image rules in ``sa_media``):

- ``create_pub_info`` checks all three parts before storing anything; the service number goes to review at once,
  its menu and homepage when the service number is approved. The answer's ``log_id`` is the id of this application
  record (each change gets a new one: ``pub_update_log_id``, the menu's and homepage's ``log_id``).
- Names: ``pub_name`` may repeat within the tenant only with different ``pub_remark`` (KooMessage's rule); a name
  used by another tenant's service number (current or live) cannot be taken (KM.00000423 in both cases).
- ``industry`` defaults to 11 (other). ``auto_get_port`` (签名授权, signature authorisation) is stored with its
  signatures (1-10, 2-18 characters each) and regions (default 全国, no overlaps); when it is 0 both lists are empty.
- ``update_pub_info`` replaces the given fields; the change is reviewed while the previous approved info stays live.
  A frozen service number cannot be changed (KM.00000491).
- ``freeze_pub`` applies at once to an effective service number (``state`` 2); freezing a frozen one, or one that
  is not effective yet, is KM.00000491. Handsets stop showing it: its snapshot is published before the answer
  (``sa_publish``; if the broker fails the freeze still stands and the snapshot is published by the worker).
  ``unfreeze_pub`` asks for review; the service number stays frozen until it is approved (asking again while it
  is under review, or for one that is not frozen, is KM.00000491).
- Change reasons (update, freeze, unfreeze) are 1-10 characters (the console's limit, product-spec §2).
- ``list_pub_infos``: ``start_time``/``end_time`` filter the (first) online time, both needed; ``pub_name`` is a
  case-insensitive "contains"; results newest first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pymongo.errors import DuplicateKeyError

from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.db import Collections
from magpie_gateway.filing_gate import require_filing
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.reviews import send_for_review
from magpie_gateway.sa_media import check_portal_media, check_pub_media, new_resource_id
from magpie_gateway.sa_models import (
    ChangeReasonBody,
    CreatePubInfoRequestBody,
    CreatePubInfoResponse,
    FreezePubResponse,
    ListPubInfosResponse,
    UpdatePubInfoRequestBody,
    UpdatePubInfoResponse,
)
from magpie_gateway.sa_publish import pending_update, publish_pending_change
from magpie_gateway.sa_reviews import (
    ACTION_CREATE,
    ACTION_UNFREEZE,
    ACTION_UPDATE,
    EFFECTIVE,
    FROZEN,
    NOT_EFFECTIVE,
    UNDER_REVIEW,
    pub_message,
    submit,
)
from magpie_gateway.sa_store import (
    company_name,
    get_pub,
    name_key,
    new_log_id,
    operator,
    pub_view,
    remark_key,
)
from magpie_gateway.sa_validation import (
    INDUSTRIES,
    PUB_FIELDS,
    change_reason,
    int_param,
    menu_items,
    menu_names,
    portal_info,
    pub_info,
)
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.validation import invalid, regex_filter

router = APIRouter(tags=["Service numbers"])

STATES = (1, 2, 3, 4)
APPROVE_STATES = (1, 2, 3)


async def check_name_free(c: Collections, tenant_id: str, info: dict[str, Any], pub_id: str | None = None) -> None:
    key = name_key(info["pub_name"])
    taken = await c.sa_pubs.find_one({"name_keys": key, "tenant_id": {"$ne": tenant_id}}, projection={"_id": 1})
    if taken is not None:
        raise fail(codes.NAME_TAKEN, f"the service number name {info['pub_name']} is used by another enterprise")
    same: dict[str, Any] = {"tenant_id": tenant_id, "name_key": key, "remark_key": remark_key(info["pub_remark"])}
    if pub_id is not None:
        same["_id"] = {"$ne": pub_id}
    if await c.sa_pubs.find_one(same, projection={"_id": 1}) is not None:
        raise fail(
            codes.NAME_TAKEN, f"a service number {info['pub_name']} with this pub_remark exists; change the remark"
        )


def _name_fields(info: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    key = name_key(info["pub_name"])
    keys = {key}
    if live:
        keys.add(name_key(live["pub_name"]))
    return {"name_key": key, "remark_key": remark_key(info["pub_remark"]), "name_keys": sorted(keys)}


@router.post("/v1/aim-sa/unify/pubs", response_model=CreatePubInfoResponse, summary="create_pub_info")
async def create_pub_info(
    body: CreatePubInfoRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await require_filing(context, principal.tenant_id, "SA")
    for part in ("pub_request_body", "portal_request_body", "menu_request_body"):
        if part not in body.model_fields_set:
            raise invalid(f"{part} is required")
    info = pub_info(body.pub_request_body)
    portal = portal_info(body.portal_request_body, prefix="portal_request_body.")
    items = menu_items(body.menu_request_body.menu, field="menu_request_body.menu")
    c = context.collections
    tenant = principal.tenant_id
    await check_pub_media(c, tenant, info)
    await check_portal_media(c, tenant, portal, prefix="portal_request_body.")
    await check_name_free(c, tenant, info)

    now = utc_now()
    who = operator(principal)
    pub_id, menu_id, portal_id, log_id = new_resource_id(), new_resource_id(), new_resource_id(), new_log_id()
    pub = {
        "_id": pub_id,
        "tenant_id": tenant,
        **info,
        **_name_fields(info, None),
        "menu_id": menu_id,
        "portal_id": portal_id,
        "revision": 1,
        "submitted_revision": 1,
        "approve_state": UNDER_REVIEW,
        "state": NOT_EFFECTIVE,
        "pending_action": ACTION_CREATE,
        "live": None,
        "online_at": None,
        "review_desc": None,
        "change_reason": None,
        "log_id": log_id,
        "created_at": now,
        "updated_at": now,
        "operator": who,
    }
    common = {
        "tenant_id": tenant,
        "pub_id": pub_id,
        "revision": 1,
        "submitted_revision": 0,  # submitted when the service number is approved
        "approve_state": UNDER_REVIEW,
        "state": NOT_EFFECTIVE,
        "live": None,
        "online_at": None,
        "review_desc": None,
        "change_reason": None,
        "log_id": log_id,
        "created_at": now,
        "updated_at": now,
        "creator": who,
        "operator": who,
    }
    try:
        await c.sa_pubs.insert_one(pub)
    except DuplicateKeyError:
        raise fail(codes.NAME_TAKEN, f"a service number {info['pub_name']} with this pub_remark exists") from None
    try:
        await c.sa_menus.insert_one(
            {"_id": menu_id, **common, "draft": {"menu_items": items}, "menu_names": menu_names(items)}
        )
        await c.sa_portals.insert_one({"_id": portal_id, **common, "draft": portal})
        await send_for_review(
            context, pub_message(pub), tenant_id=tenant, trace_id=request_id(request), collection=c.sa_pubs
        )
    except BaseException:
        await c.sa_menus.delete_one({"_id": menu_id, "tenant_id": tenant})
        await c.sa_portals.delete_one({"_id": portal_id, "tenant_id": tenant})
        await c.sa_pubs.delete_one({"_id": pub_id, "tenant_id": tenant})
        raise
    return {
        "data": {
            "data": {
                "log_id": log_id,
                "pub_id": pub_id,
                "menu_id": menu_id,
                "portal_id": portal_id,
                "pub_name": info["pub_name"],
            }
        }
    }


async def _resubmit(
    context: GatewayContext, doc: dict[str, Any], changes: dict[str, Any], principal: Principal, trace_id: str
) -> dict[str, Any]:
    """Store ``changes`` as the pub's next revision (only if nobody changed it meanwhile) and send it to review."""
    c = context.collections
    revision = doc["revision"] + 1
    now = utc_now()
    update = {
        **changes,
        "revision": revision,
        "approve_state": UNDER_REVIEW,
        "review_desc": None,
        "log_id": new_log_id(),
        "updated_at": now,
        "operator": operator(principal),
    }
    try:
        result = await c.sa_pubs.update_one(
            {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "revision": doc["revision"]}, {"$set": update}
        )
    except DuplicateKeyError:
        raise fail(codes.NAME_TAKEN, "a service number with this pub_name and pub_remark exists") from None
    if result.matched_count != 1:
        raise fail(codes.SA_STATE_CONFLICT, "the service number was changed meanwhile; retry")
    new = {**doc, **update}
    await submit(context, pub_message(new), tenant_id=doc["tenant_id"], trace_id=trace_id)
    await c.sa_pubs.update_one(
        {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "revision": revision},
        {"$set": {"submitted_revision": revision}},
    )
    return new


@router.post("/v1/aim-sa/pubs/{pub_id}", response_model=UpdatePubInfoResponse, summary="update_pub_info")
async def update_pub_info(
    pub_id: str,
    body: UpdatePubInfoRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    reason = change_reason(body.change_reason)
    c = context.collections
    tenant = principal.tenant_id
    doc = await get_pub(c, tenant, pub_id)
    if doc["state"] == FROZEN:
        raise fail(codes.SA_STATE_CONFLICT, "the service number is frozen; unfreeze it before changing it")
    info = pub_info(body, current={k: doc.get(k) for k in PUB_FIELDS})
    await check_pub_media(c, tenant, info)
    await check_name_free(c, tenant, info, pub_id=doc["_id"])
    changes = {
        **info,
        **_name_fields(info, doc.get("live")),
        "pending_action": ACTION_UPDATE,
        "change_reason": reason,
    }
    new = await _resubmit(context, doc, changes, principal, request_id(request))
    return {"data": {"data": {"pub_update_log_id": new["log_id"]}}}


@router.post("/v1/aim-sa/pubs/{pub_id}/freeze", response_model=FreezePubResponse, summary="freeze_pub")
async def freeze_pub(
    pub_id: str,
    request: Request,
    body: ChangeReasonBody | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    reason = change_reason(body.change_reason if body else None)
    c = context.collections
    doc = await get_pub(c, principal.tenant_id, pub_id)
    if doc["state"] == FROZEN:
        raise fail(codes.SA_STATE_CONFLICT, "the service number is already frozen")
    if doc["state"] != EFFECTIVE:
        raise fail(codes.SA_STATE_CONFLICT, "only an effective (approved) service number can be frozen")
    now = utc_now()
    update = pending_update()  # handsets stop showing it: publish the snapshot (sa_publish)
    update["$set"].update(
        {
            "state": FROZEN,
            "frozen_at": now,
            "freeze_reason": reason,
            "change_reason": reason,
            "updated_at": now,
            "operator": operator(principal),
        }
    )
    result = await c.sa_pubs.update_one(
        {"_id": doc["_id"], "tenant_id": principal.tenant_id, "state": EFFECTIVE}, update
    )
    if result.matched_count != 1:
        raise fail(codes.SA_STATE_CONFLICT, "the service number was changed meanwhile; retry")
    await publish_pending_change(context, doc["_id"], trace_id=request_id(request), trigger="freeze")
    return {"data": {"pub_id": doc["_id"]}}


@router.post("/v1/aim-sa/pubs/{pub_id}/unfreeze", response_model=FreezePubResponse, summary="unfreeze_pub")
async def unfreeze_pub(
    pub_id: str,
    request: Request,
    body: ChangeReasonBody | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    reason = change_reason(body.change_reason if body else None)
    c = context.collections
    doc = await get_pub(c, principal.tenant_id, pub_id)
    if doc["state"] != FROZEN:
        raise fail(codes.SA_STATE_CONFLICT, "the service number is not frozen")
    if doc.get("pending_action") == ACTION_UNFREEZE and doc["approve_state"] == UNDER_REVIEW:
        raise fail(codes.SA_STATE_CONFLICT, "an unfreeze request of this service number is already under review")
    changes = {"pending_action": ACTION_UNFREEZE, "change_reason": reason, "unfreeze_reason": reason}
    await _resubmit(context, doc, changes, principal, request_id(request))
    return {"data": {"pub_id": doc["_id"]}}


@router.get("/v1/aim-sa/pubs", response_model=ListPubInfosResponse, summary="list_pub_infos")
async def list_pub_infos(
    pub_name: str | None = None,
    state: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    industry: str | None = None,
    approve_state: str | None = None,
    offset: str | None = None,
    limit: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if pub_name:
        query["pub_name"] = regex_filter(pub_name)
    for field, raw, allowed in (
        ("state", state, STATES),
        ("industry", industry, tuple(INDUSTRIES)),
        ("approve_state", approve_state, APPROVE_STATES),
    ):
        value = int_param(field, raw, allowed)
        if value is not None:
            query[field] = value
    window = parse_window("start_time", start_time, "end_time", end_time)
    if window:
        query["online_at"] = {"$gte": window[0], "$lte": window[1]}
    docs, total = await fetch_page(context.collections.sa_pubs, query, paging)
    company = await company_name(context, principal.tenant_id)
    return {"data": {"page_info": paging.info(total), "data": [pub_view(d, company) for d in docs]}}
