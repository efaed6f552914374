"""Lookups and views shared by the service-number endpoints (``sa_pubs_api``, ``sa_menus_api``, ``sa_ports_api``).
Every query is scoped to the calling tenant; another tenant's id is 404 (KM.00000404)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from typing import Any

from magpie_gateway.auth import Principal
from magpie_gateway.codes import not_found
from magpie_gateway.context import GatewayContext
from magpie_gateway.db import Collections
from magpie_gateway.sa_media import media_url, url_map
from magpie_gateway.sa_reviews import FROZEN
from magpie_gateway.timefmt import iso
from magpie_gateway.validation import regex_filter


def new_log_id() -> str:
    """The id of one change request (application record) of a pub, menu or homepage."""
    return secrets.token_hex(16)


def name_key(name: str) -> str:
    return name.strip().casefold()


def remark_key(remark: str | None) -> str:
    return (remark or "").strip().casefold()


def operator(principal: Principal) -> str:
    return principal.user_name or principal.user_id


async def company_name(context: GatewayContext, tenant_id: str) -> str | None:
    tenant = await context.tenants.get_tenant(tenant_id)
    return tenant.get("name") if tenant else None


async def get_pub(c: Collections, tenant_id: str, pub_id: str) -> dict[str, Any]:
    doc = await c.sa_pubs.find_one({"_id": pub_id, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"service number {pub_id[:64]}")
    return doc


async def pubs_by_id(c: Collections, tenant_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    docs = await c.sa_pubs.find({"tenant_id": tenant_id, "_id": {"$in": wanted}}).to_list(None)
    return {d["_id"]: d for d in docs}


async def pub_ids_named(c: Collections, tenant_id: str, name: str) -> list[str]:
    """The tenant's pubs whose name contains ``name`` (any case)."""
    docs = await c.sa_pubs.find(
        {"tenant_id": tenant_id, "pub_name": regex_filter(name)}, projection={"_id": 1}
    ).to_list(None)
    return [d["_id"] for d in docs]


async def frozen_pub_ids(c: Collections, tenant_id: str) -> list[str]:
    docs = await c.sa_pubs.find({"tenant_id": tenant_id, "state": FROZEN}, projection={"_id": 1}).to_list(None)
    return [d["_id"] for d in docs]


def combine(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """One MongoDB filter of several conditions (the first is always the tenant's)."""
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


# --- views ----------------------------------------------------------------------------------------------------------
def pub_view(doc: dict[str, Any], company: str | None) -> dict[str, Any]:
    """SDK ``PubDetail``: the latest submitted info, its review state and the service number's state."""
    return {
        "pub_id": doc["_id"],
        "oper_time": iso(doc.get("updated_at")),
        "state": doc["state"],
        "online_time": iso(doc.get("online_at")),
        "company_name": company,
        "pub_name": doc["pub_name"],
        "logo_img": doc["logo_img"],
        "logo_url": media_url(doc["logo_img"]),
        "authorization_files": url_map(doc.get("authorization_files", [])),
        "auto_get_port": doc["auto_get_port"],
        "industry": doc["industry"],
        "pub_abstract": doc["pub_abstract"],
        "signs_for_auto_get_port": doc.get("signs_for_auto_get_port", []),
        "company_id": doc["tenant_id"],
        "pub_remark": doc.get("pub_remark"),
        "approve_state": doc["approve_state"],
        "areas_for_auto_get_port": doc.get("areas_for_auto_get_port", []),
        # Magpie extras (the SDK ignores them)
        "review_desc": doc.get("review_desc"),
        "menu_id": doc.get("menu_id"),
        "portal_id": doc.get("portal_id"),
        "change_reason": doc.get("change_reason"),
    }


def shown_state(doc: dict[str, Any], pub: dict[str, Any] | None) -> int:
    """A menu's or homepage's state: 4 while its service number is frozen, else its own (1 or 2)."""
    if pub is not None and pub.get("state") == FROZEN:
        return FROZEN
    return int(doc["state"])


def menu_view(doc: dict[str, Any], pub: dict[str, Any] | None, company: str | None) -> dict[str, Any]:
    """SDK ``MenusRsp``: the latest menu (draft), its review state and the menu's state."""
    return {
        "menu_id": doc["_id"],
        "pub_id": doc["pub_id"],
        "pub_name": pub["pub_name"] if pub else None,
        "logo_img": pub["logo_img"] if pub else None,
        "logo_url": media_url(pub["logo_img"]) if pub else None,
        "menu": {"menu_items": doc["draft"]["menu_items"]},
        "menu_state": shown_state(doc, pub),
        "approve_state": doc["approve_state"],
        "online_time": iso(doc.get("online_at")),
        "oper_time": iso(doc.get("updated_at")),
        "company_id": doc["tenant_id"],
        "company_name": company,
        # Magpie extras
        "review_desc": doc.get("review_desc"),
        "change_reason": doc.get("change_reason"),
        "log_id": doc.get("log_id"),
    }


def portal_view(doc: dict[str, Any], pub: dict[str, Any] | None, company: str | None) -> dict[str, Any]:
    """SDK ``PortalModel``; ``tels`` and ``fastapps`` are JSON lists in strings, as the SDK documents."""
    draft = doc["draft"]
    fastapps = [{**app, "logo_img_url": media_url(app["logo_img"])} for app in draft["fastapps"]]
    return {
        "portal_id": doc["_id"],
        "company_id": doc["tenant_id"],
        "company_name": company,
        "pub_id": doc["pub_id"],
        "pub_name": pub["pub_name"] if pub else None,
        "background_img": draft["background_img"],
        "background_img_url": media_url(draft["background_img"]),
        "summary": draft["summary"],
        "tels": json.dumps(draft["tels"], ensure_ascii=False),
        "fastapps": json.dumps(fastapps, ensure_ascii=False),
        "state": shown_state(doc, pub),
        "approve_state": doc["approve_state"],
        "online_time": iso(doc.get("online_at")),
        "creator": doc.get("creator"),
        "create_time": iso(doc.get("created_at")),
        "change_reason": doc.get("change_reason"),
        # Magpie extras
        "hw_pubs": draft.get("hw_pubs", []),
        "review_desc": doc.get("review_desc"),
        "log_id": doc.get("log_id"),
    }
