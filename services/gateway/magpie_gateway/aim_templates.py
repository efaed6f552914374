"""AIM (card) templates: checking a creation request and describing it for the review.

Structural rules are checked here (layout, vendors, parameter names, pages); content policy (sensitive words,
per-vendor button and layout constraints, parameter limits) is the reviewer's job.
"""

from __future__ import annotations

import re
from typing import Any

from magpie.v1 import template_pb2
from magpie_gateway.aim_models import (
    AimPersonalTemplateContent,
    CreateAimPersonalTemplateRequestBody,
)
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


def params_of(body: CreateAimPersonalTemplateRequestBody) -> list[dict[str, Any]]:
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
