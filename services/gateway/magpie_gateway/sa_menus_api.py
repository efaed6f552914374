"""Service number menus and homepages (portals): ``list_menus``, ``update_menu``, ``push_menu_info``,
``list_portal_infos``, ``update_portal_info``, ``push_portal_info``.

Each service number has one menu and one homepage, created by ``create_pub_info`` and changed in place. Decided for
Magpie (the review flow is described in ``sa_reviews``):

- ``update_menu`` / ``update_portal_info`` store the change as the new draft (``approve_state`` 1, a new
  ``log_id``); the draft is reviewed at once when the service number is approved and not frozen, otherwise when
  the service number's approval arrives. The previous approved version stays live until the draft is approved.
  A frozen service number's menu and homepage cannot be changed (KM.00000491).
- ``push_menu_info`` / ``push_portal_info`` ("催审") send the current draft to the reviewer again; they need an
  approved, not frozen service number (KM.00000492; frozen: KM.00000491) and a draft that awaits its decision
  (KM.00000493). The answer's ``log_id`` is the draft's application record id.
- Lists show the latest version (draft) with its review state; ``menu_state`` / ``state`` is 4 while the service
  number is frozen, else 1 (never approved) or 2 (a version is live). ``online_begin_time``/``online_end_time``
  (menus) and ``begin_time``/``end_time`` (homepages) filter the first online time (both needed); ``pub_name`` and
  ``menu_name`` (a top-level menu name) are case-insensitive "contains" filters.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pymongo.asynchronous.collection import AsyncCollection

from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.sa_media import check_portal_media
from magpie_gateway.sa_models import (
    ListMenusResponse,
    ListPortalInfosResponse,
    PushResponse,
    UpdateMenuRequestBody,
    UpdateMenuResponse,
    UpdatePortalInfoRequestBody,
    UpdatePortalInfoResponse,
)
from magpie_gateway.sa_reviews import (
    FROZEN,
    MENU,
    PORTAL,
    UNDER_REVIEW,
    pub_is_live,
    submit_draft,
)
from magpie_gateway.sa_store import (
    combine,
    company_name,
    frozen_pub_ids,
    get_pub,
    menu_view,
    new_log_id,
    operator,
    portal_view,
    pub_ids_named,
    pubs_by_id,
)
from magpie_gateway.sa_validation import change_reason, int_param, menu_items, menu_names, portal_info
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.validation import regex_filter

router = APIRouter(tags=["Service number menus and portals"])

STATES = (1, 2, 3, 4)
LABELS = {MENU: "menu", PORTAL: "homepage"}


def _collection(context: GatewayContext, subject: int) -> AsyncCollection:
    return context.collections.sa_menus if subject == MENU else context.collections.sa_portals


async def _get(context: GatewayContext, subject: int, tenant_id: str, doc_id: str) -> dict[str, Any]:
    doc = await _collection(context, subject).find_one({"_id": doc_id, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"{LABELS[subject]} {doc_id[:64]}")
    return doc


async def _change(
    context: GatewayContext,
    subject: int,
    doc: dict[str, Any],
    pub: dict[str, Any],
    fields: dict[str, Any],
    reason: str,
    principal: Principal,
    trace_id: str,
) -> dict[str, Any]:
    """Store a new draft of a menu/homepage and, when its service number is live, send it to review."""
    collection = _collection(context, subject)
    update = {
        **fields,
        "revision": doc["revision"] + 1,
        "approve_state": UNDER_REVIEW,
        "review_desc": None,
        "change_reason": reason,
        "log_id": new_log_id(),
        "updated_at": utc_now(),
        "operator": operator(principal),
    }
    result = await collection.update_one(
        {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "revision": doc["revision"]}, {"$set": update}
    )
    if result.matched_count != 1:
        raise fail(codes.SA_STATE_CONFLICT, f"the {LABELS[subject]} was changed meanwhile; retry")
    new = {**doc, **update}
    if pub_is_live(pub):
        await submit_draft(context, collection, subject, new, pub["pub_name"], trace_id)
    return new


def _check_changeable(pub: dict[str, Any], subject: int) -> None:
    if pub["state"] == FROZEN:
        raise fail(codes.SA_STATE_CONFLICT, f"the service number is frozen; its {LABELS[subject]} cannot be changed")


async def _push(
    context: GatewayContext, subject: int, doc_id: str, principal: Principal, trace_id: str
) -> dict[str, Any]:
    doc = await _get(context, subject, principal.tenant_id, doc_id)
    pub = await get_pub(context.collections, principal.tenant_id, doc["pub_id"])
    label = LABELS[subject]
    if pub["state"] == FROZEN:
        raise fail(codes.SA_STATE_CONFLICT, f"the service number is frozen; its {label} cannot be pushed")
    if not pub_is_live(pub):
        raise fail(codes.SA_PUB_NOT_APPROVED, f"the {label} can be pushed once its service number is approved")
    if doc["approve_state"] != UNDER_REVIEW:
        state = "approved" if doc["approve_state"] == 2 else "rejected"
        raise fail(codes.SA_NOTHING_TO_PUSH, f"the current {label} is already {state}; change it to submit again")
    await submit_draft(context, _collection(context, subject), subject, doc, pub["pub_name"], trace_id)
    return {"data": {"data": {"log_id": doc["log_id"], "message": f"The {label} was submitted for review"}}}


async def _list_query(
    context: GatewayContext,
    tenant_id: str,
    *,
    doc_id: str | None,
    pub_id: str | None,
    pub_name: str | None,
    state: str | None,
    window: tuple[Any, Any] | None,
) -> dict[str, Any] | None:
    """The filter of a menu/homepage list; None when it can match nothing."""
    c = context.collections
    conditions: list[dict[str, Any]] = [{"tenant_id": tenant_id}]
    if doc_id:
        conditions.append({"_id": doc_id})
    if pub_id:
        conditions.append({"pub_id": pub_id})
    if pub_name:
        conditions.append({"pub_id": {"$in": await pub_ids_named(c, tenant_id, pub_name)}})
    wanted = int_param("state", state, STATES)
    if wanted == 3:
        return None  # "expired" is never produced: menus and homepages are changed in place
    if wanted is not None:
        frozen = await frozen_pub_ids(c, tenant_id)
        if wanted == FROZEN:
            conditions.append({"pub_id": {"$in": frozen}})
        else:
            conditions.append({"state": wanted})
            conditions.append({"pub_id": {"$nin": frozen}})
    if window:
        conditions.append({"online_at": {"$gte": window[0], "$lte": window[1]}})
    return combine(conditions)


# --- menus ----------------------------------------------------------------------------------------------------------
@router.get("/v1/aim-sa/menus", response_model=ListMenusResponse, summary="list_menus")
async def list_menus(
    menu_id: str | None = None,
    pub_id: str | None = None,
    pub_name: str | None = None,
    online_begin_time: str | None = None,
    online_end_time: str | None = None,
    state: str | None = None,
    menu_name: str | None = None,
    offset: str | None = None,
    limit: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    window = parse_window("online_begin_time", online_begin_time, "online_end_time", online_end_time)
    tenant = principal.tenant_id
    query = await _list_query(
        context, tenant, doc_id=menu_id, pub_id=pub_id, pub_name=pub_name, state=state, window=window
    )
    if query is not None and menu_name:
        query = combine([query, {"menu_names": regex_filter(menu_name)}])
    docs, total = ([], 0) if query is None else await fetch_page(context.collections.sa_menus, query, paging)
    pubs = await pubs_by_id(context.collections, tenant, (d["pub_id"] for d in docs))
    company = await company_name(context, tenant)
    return {
        "data": {
            "data": [menu_view(d, pubs.get(d["pub_id"]), company) for d in docs],
            "page_info": paging.info(total),
        }
    }


@router.put("/v1/aim-sa/menus/{menu_id}", response_model=UpdateMenuResponse, summary="update_menu")
async def update_menu(
    menu_id: str,
    body: UpdateMenuRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    reason = change_reason(body.change_reason)
    items = menu_items(body.menu)
    doc = await _get(context, MENU, principal.tenant_id, menu_id)
    pub = await get_pub(context.collections, principal.tenant_id, doc["pub_id"])
    _check_changeable(pub, MENU)
    fields = {"draft": {"menu_items": items}, "menu_names": menu_names(items)}
    new = await _change(context, MENU, doc, pub, fields, reason, principal, request_id(request))
    return {"data": {"menu_id": new["_id"], "log_id": new["log_id"]}}


@router.post("/v1/aim-sa/menus/{menu_id}/push", response_model=PushResponse, summary="push_menu_info")
async def push_menu_info(
    menu_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    return await _push(context, MENU, menu_id, principal, request_id(request))


# --- homepages (portals) ------------------------------------------------------------------------------------------
@router.get("/v1/aim-sa/portals", response_model=ListPortalInfosResponse, summary="list_portal_infos")
async def list_portal_infos(
    pub_name: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    state: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    tenant = principal.tenant_id
    query = await _list_query(context, tenant, doc_id=None, pub_id=None, pub_name=pub_name, state=state, window=window)
    docs, total = ([], 0) if query is None else await fetch_page(context.collections.sa_portals, query, paging)
    pubs = await pubs_by_id(context.collections, tenant, (d["pub_id"] for d in docs))
    company = await company_name(context, tenant)
    return {
        "data": {
            "portals": [portal_view(d, pubs.get(d["pub_id"]), company) for d in docs],
            "page_info": paging.info(total),
        }
    }


@router.put("/v1/aim-sa/portals/{portal_id}", response_model=UpdatePortalInfoResponse, summary="update_portal_info")
async def update_portal_info(
    portal_id: str,
    body: UpdatePortalInfoRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    reason = change_reason(body.change_reason)
    portal = portal_info(body)
    tenant = principal.tenant_id
    doc = await _get(context, PORTAL, tenant, portal_id)
    pub = await get_pub(context.collections, tenant, doc["pub_id"])
    _check_changeable(pub, PORTAL)
    await check_portal_media(context.collections, tenant, portal)
    new = await _change(context, PORTAL, doc, pub, {"draft": portal}, reason, principal, request_id(request))
    return {"data": {"portal": portal_view(new, pub, await company_name(context, tenant))}}


@router.post("/v1/aim-sa/portals/{portal_id}/push", response_model=PushResponse, summary="push_portal_info")
async def push_portal_info(
    portal_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    return await _push(context, PORTAL, portal_id, principal, request_id(request))
