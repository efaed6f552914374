"""AIM (card) templates: checking a creation request and describing it for the review; enabling, disabling and
deleting a template.

Structural rules are checked here (layout, vendors, parameter names, pages, the materials named by resource id);
content policy (sensitive words, per-vendor button and layout constraints, parameter limits) is the reviewer's job.

Enable / disable (``update_personal_template_state``), decided for Magpie:

- ``tpl_state`` 1 (enabled) needs a template approved by at least one vendor (``audit_state`` 2); enabling one under
  review or rejected is refused with KM.80040005. Enabling or disabling does not change the template's content, so
  its ``revision`` stays (a review in flight stays valid).
- Disabling is always allowed and is the tenant's choice: it is remembered (``disabled``, ``disable_time``,
  ``disable_desc``), so a review decision arriving later keeps the template disabled until it is enabled again.
- A disabled template cannot be used by new send tasks (the send task checks ``tpl_state`` = 1); tasks already
  accepted go on and their links keep resolving: their messages are already on their way or delivered, and a
  recipient opening one should still see the card.

Every review decision and every enable / disable produces the template's status for the tenant's template-status
callback (``magpie_gateway.aim_template_status``: when, what, event ids); deleting produces none.

Deleting (``delete_aim_personal_template``) is refused with KM.80040006 while a send task of the template is in
progress, or while the short links of one of its send or resolve tasks are still valid (task creation + link
validity): the cards of messages already delivered would no longer render. Disable the template to stop new
sends at once, delete it once its links have expired. Reports of a deleted template stay available
(``list_aim_template_reports``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from magpie.v1 import template_pb2
from magpie_gateway.aim_models import (
    AimPersonalTemplateContent,
    CreateAimPersonalTemplateRequestBody,
)
from magpie_gateway.aim_template_status import after_review
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.db import Collections
from magpie_gateway.errors import TEMPLATE_CREATE_FAILED, TEMPLATE_UPDATE_FAILED
from magpie_gateway.reviews import AUDIT_APPROVED, REVIEW_TARGETS, ReviewTarget, register_review_target
from magpie_gateway.timefmt import iso, utc_now
from magpie_gateway.validation import invalid, required_text

# card_id values of CreateAimPersonalTemplateRequestBody (SDK docstring).
CARD_IDS = frozenset(
    {
        "MultipleImageAndText",
        "StandardImageAndText",
        "PureText",
        "VideoImageAndText",
        "Video",
        "ECImageAndText",
        "RedPacket",
        "RedPacketPersonal",
        "ImageTextAndVideo",
        "Notification1",
        "Notification2",
        "Carousel",
        "CarouselTitle",
        "CarouselSquareImage",
        "CarouselImageSixteenToNine",
        "CarouselVerticalImage",
        "CardVoucher",
        "CardVouchers",
        "Ecommerce",
        "Trip1",
        "Trip2",
        "Trip3",
        "PlaneTrip",
        "SimplePoster",
        "NativePureText",
        "NativeImageAndText",
        "ShortVideo",
        "ShortVideoImage",
        "EcommerceCouponVertical",
        "EcommerceCouponHorizontal",
    }
)
# The SDK's factory_type values plus HONOR (a separate vendor in Magpie's capability rules).
VENDORS = ("HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO", "MEIZU", "SAMSUNG")
MAX_PAGES = 10
MAX_NAME_CHARS = 50
PARAM_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_PARAM_WRAPPED = re.compile(r"\$\{([^}]*)\}")
# Human-readable fields of an action: the reviewer reads them.
_ACTION_TEXTS = ("content", "text_button", "subject", "body", "description", "address")
_DYNAMIC_BUTTON_CARDS = frozenset({"RedPacket", "RedPacketPersonal"})


def param_key(name: str) -> str:
    """``${param1}`` and ``param1`` both name the parameter ``param1``."""
    text = name.strip()
    match = _PARAM_WRAPPED.fullmatch(text)
    return match.group(1).strip() if match else text


def vendors_of(body: CreateAimPersonalTemplateRequestBody) -> list[str]:
    """The vendors asked for (``state`` 0 means "do not submit to this vendor"), normalised and de-duplicated."""
    chosen: list[str] = []
    for factory in body.factorys or []:
        vendor = factory.factory_type.strip().upper()
        if vendor not in VENDORS:
            raise invalid(f"factory_type must be one of {' | '.join(VENDORS)}")
        if factory.state == 0 or vendor in chosen:
            continue
        chosen.append(vendor)
    if not chosen:
        raise invalid("factorys must name at least one vendor to submit the template to")
    return chosen


# Product spec §7: at most 20 card params, 40 for the e-commerce coupon layouts (电商领券).
MAX_PARAMS = 20
ECOMMERCE_COUPON_MAX_PARAMS = 40
ECOMMERCE_COUPON_CARDS = frozenset({"EcommerceCouponVertical", "EcommerceCouponHorizontal"})


def max_params(card_id: str | None) -> int:
    return ECOMMERCE_COUPON_MAX_PARAMS if card_id in ECOMMERCE_COUPON_CARDS else MAX_PARAMS


def params_of(body: CreateAimPersonalTemplateRequestBody) -> list[dict[str, Any]]:
    limit = max_params(body.card_id)
    if len(body.params or []) > limit:
        raise fail(
            TEMPLATE_CREATE_FAILED,
            f"a {body.card_id} template has at most {limit} params, got {len(body.params or [])}",
        )
    params: list[dict[str, Any]] = []
    keys: set[str] = set()
    for param in body.params or []:
        key = param_key(param.name)
        if not PARAM_NAME.fullmatch(key):
            raise invalid(f"params: {param.name!r} is not a valid parameter name (letters, digits, underscore)")
        if key in keys:
            raise invalid(f"params: {key} is declared twice")
        keys.add(key)
        params.append({"type": param.type, "name": param.name, "key": key, "example": param.example})
    return params


def check_request(body: CreateAimPersonalTemplateRequestBody) -> None:
    required_text("tpl_name", body.tpl_name, max_chars=MAX_NAME_CHARS)
    card_id = required_text("card_id", body.card_id)
    if card_id not in CARD_IDS:
        raise invalid(f"card_id {card_id!r} is not a known layout")
    if not body.pages:
        raise invalid("pages is required")
    if len(body.pages) > MAX_PAGES:
        raise invalid(f"at most {MAX_PAGES} pages")
    for page in body.pages:
        if not page.contents:
            raise invalid("every page needs contents")
        for item in page.contents:
            kind = item.type.strip().lower()
            if kind in ("text", "button") and not (item.content or "").strip():
                raise invalid(f"a {kind} content needs its content")
            if kind == "button" and not item.action_type:
                raise invalid("a button needs its action_type")


def _is_dynamic(item: AimPersonalTemplateContent, card_id: str, sub_type: int | None) -> bool:
    if (item.button_type or "").lower() == "dynamic":
        return True
    return card_id in _DYNAMIC_BUTTON_CARDS and sub_type == 2


def texts_and_buttons(
    body: CreateAimPersonalTemplateRequestBody,
) -> tuple[list[str], list[template_pb2.TemplateButton]]:
    """Every text a reader sees (card texts, button labels, popup/SMS/e-mail texts, the SMS example and
    template), and the clickable things with their KooMessage event types (``action_type``).

    Dynamic buttons (Huawei only) are reported as ``DYNAMIC:<event type>``.
    """
    texts: list[str] = []
    buttons: list[template_pb2.TemplateButton] = []
    card_id = body.card_id or ""
    for page in body.pages or []:
        for item in page.contents:
            kind = item.type.strip().lower()
            for text in (item.content, item.content_child):
                if text and kind in ("text", "button"):
                    texts.append(text)
            if item.action is not None:
                texts.extend(t for t in (getattr(item.action, name) for name in _ACTION_TEXTS) if t)
            if item.action_type and kind in ("button", "image"):
                action = item.action_type.strip().upper()
                if kind == "button" and _is_dynamic(item, card_id, body.sub_type):
                    action = f"DYNAMIC:{action}"
                buttons.append(
                    template_pb2.TemplateButton(
                        text=(item.content or "") if kind == "button" else "",
                        action=action,
                        target=(item.action.target or "") if item.action else "",
                    )
                )
    for text in (body.sms_example, body.sms_template):
        if text:
            texts.append(text)
    return texts, buttons


def review_message(doc: dict[str, Any], body: CreateAimPersonalTemplateRequestBody) -> template_pb2.TemplateSubmitted:
    texts, buttons = texts_and_buttons(body)
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["tpl_name"],
        use_template_type=doc["card_id"],
        texts=texts,
        vendors=doc["vendors"],
        param_count=len(doc["params"]),
        buttons=buttons,
        param_names=[p["key"] for p in doc["params"]],
    )


# --- enable / disable / delete ---------------------------------------------------------------------------------
TPL_DISABLED = 0
TPL_ENABLED = 1
TPL_STATES = (TPL_DISABLED, TPL_ENABLED)
DISABLED_BY_TENANT = "disabled by the tenant"
DEFAULT_LINK_DAYS = 7  # a send task without expiration_time mints links valid for 7 days
TASK_HORIZON_DAYS = 31  # longer than any send task's link validity (7 days) plus the receipt window (72 h)


def state_change(doc: dict[str, Any], tpl_state: int | None, now: datetime) -> dict[str, Any]:
    """The ``$set`` that puts the template in ``tpl_state``; 400 for a value other than 0/1, KM.80040005 when
    enabling a template no vendor approved."""
    if tpl_state is None or isinstance(tpl_state, bool) or tpl_state not in TPL_STATES:
        raise invalid("tpl_state must be 0 (disable) or 1 (enable)")
    if tpl_state == TPL_ENABLED:
        if doc.get("audit_state") != AUDIT_APPROVED or not any(f.get("state") == 1 for f in doc["factory_info"]):
            raise fail(
                TEMPLATE_UPDATE_FAILED,
                f"template {doc['_id']} is not approved by any vendor; only an approved template can be enabled",
            )
        return {
            "tpl_state": TPL_ENABLED,
            "disabled": False,
            "disabled_at": None,
            "disable_desc": None,
            "updated_at": now,
        }
    update: dict[str, Any] = {"tpl_state": TPL_DISABLED, "disabled": True, "updated_at": now}
    if not doc.get("disabled"):
        update |= {"disabled_at": now, "disable_desc": DISABLED_BY_TENANT}
    return update


def link_expiry(task: dict[str, Any]) -> datetime:
    days = (task.get("resolve_task") or {}).get("expiration_time") or DEFAULT_LINK_DAYS
    created: datetime = task["created_at"]
    return created + timedelta(days=int(days))


async def deletion_blocker(collections: Collections, tenant_id: str, tpl_id: str) -> str | None:
    """Why the template cannot be deleted now (a send task in progress, or one whose links are still valid).

    Only tasks of the last ``TASK_HORIZON_DAYS`` count: older tasks' links have expired and their receipts window
    (72 h) is long over, so a task that somehow never completed does not block the template forever."""
    from magpie_gateway.tasks import STATE_ACCEPTING, STATE_SUCCESS  # tasks imports this module

    now = utc_now()
    query = {"tenant_id": tenant_id, "tpl_id": tpl_id, "created_at": {"$gte": now - timedelta(days=TASK_HORIZON_DAYS)}}
    tasks = await collections.tasks.find(query, {"state": 1, "created_at": 1, "resolve_task": 1}).to_list(None)
    for task in tasks:
        if task.get("state") in (STATE_ACCEPTING, STATE_SUCCESS):
            return f"send task {task['_id']} of the template is in progress"
    valid = [task for task in tasks if link_expiry(task) > now]
    if valid:
        last = max(valid, key=link_expiry)
        return (
            f"the short links of send task {last['_id']} are valid until {iso(link_expiry(last))}; "
            "disable the template to stop new sends and delete it once the links have expired"
        )
    resolve_task = await collections.resolve_tasks.find_one(
        {"tenant_id": tenant_id, "tpl_id": tpl_id, "expires_at": {"$gt": now}},
        {"expires_at": 1},
        sort=[("expires_at", -1)],
    )
    if resolve_task is not None:
        return (
            f"the short links of resolve task {resolve_task['_id']} are valid until {iso(resolve_task['expires_at'])}; "
            "disable the template to stop new links and delete it once they have expired"
        )
    return None


# --- review decisions respect the tenant's "disabled" -----------------------------------------------------------
_REVIEW_BASE = REVIEW_TARGETS[template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE]


def review_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    """The review projector's update, keeping a template the tenant disabled disabled."""
    update = _REVIEW_BASE.update(doc, review)
    if doc.get("disabled"):
        update["tpl_state"] = TPL_DISABLED
    return update


async def review_after(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    """After a decision was applied: the base target's hook (if any), then the template-status event."""
    if _REVIEW_BASE.after is not None:
        await _REVIEW_BASE.after(context, doc, review)
    await after_review(context, doc, review)


register_review_target(
    template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE,
    ReviewTarget(_REVIEW_BASE.collection, _REVIEW_BASE.label, review_update, after=review_after),
)
