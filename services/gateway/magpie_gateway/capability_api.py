"""``check_mobile_capability`` (``POST /v1/aim/mobile-capabilities/check``): can these handsets render smart
messages?

The number-resolver answers (``POST /internal/capabilities/check`` at ``MAGPIE_RESOLVER_URL``): its device
registry and capability rules decide per number, for the vendors that approved the template ``tpl_id`` (the
template's active vendors, ``factory_info[].state`` 1) or, without ``tpl_id``, for every vendor.

Request checks (first failure answers): ``mobiles`` present and non-empty (KM.90016414), at most 100
(KM.90016301), each a non-blank string of at most 20 characters (plain) or a 40-digit hex SHA1 digest
(``encryption_alg`` SHA1) (KM.00000400); ``encryption_alg`` NONE (default) or SHA1 (KM.00000400); ``tpl_id`` an
AIM template of the caller (KM.00000426; another tenant's template is unknown too). A template no vendor has
approved yet supports no handset: every number is unsupported.

Plain numbers may be written as ``13100000000``, ``8613100000000``, ``008613100000000`` or ``+86...``; with SHA1
each entry is SHA1 of the country code and number without "+" or leading zeros (``86131...``), upper or lower
case. Numbers are echoed exactly as sent, each once (a repeated entry is answered once, at its first position);
malformed or unassigned numbers and unknown hashes are unsupported.

Magpie extension: ``magpie_details`` lists per number ``mobile``, ``supported``, ``reason`` (why not: e.g.
``UNKNOWN_DEVICE``, ``APP_TOO_OLD``, ``VENDOR_NOT_APPROVED``, ``INVALID_NUMBER``), ``vendor`` and ``carrier``.
The resolver unreachable answers 503 KM.00000460 (retry).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.errors import EMPTY_INPUT, TOO_MANY_MOBILES, ApiError
from magpie_gateway.upstream import UpstreamRefused, UpstreamUnavailable, post_json, unavailable
from magpie_gateway.validation import invalid

router = APIRouter(tags=["AIM capability check"])

MAX_MOBILES = 100
MAX_PLAIN_CHARS = 20
SHA1_HEX = re.compile(r"[0-9A-Fa-f]{40}")
ALGORITHMS = ("NONE", "SHA1")
CHECK_PATH = "/internal/capabilities/check"


class CheckMobileCapabilityRequestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mobiles: list[Any] | None = Field(None, description="at most 100 numbers, plain or SHA1 digests")
    tpl_id: str | None = Field(None, description="AIM template: only its approved vendors count")
    encryption_alg: str | None = Field(None, description="NONE (default) | SHA1")


class CheckMobileCapabilityResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    supported_mobiles: list[str]
    unsupported_mobiles: list[str]
    tpl_id: str | None = None


def checked_mobiles(body: CheckMobileCapabilityRequestBody) -> tuple[list[str], str]:
    """The numbers to check (de-duplicated, in order) and the algorithm, or the request's error."""
    algorithm = (body.encryption_alg or "NONE").strip().upper()
    if algorithm not in ALGORITHMS:
        raise invalid("encryption_alg must be NONE or SHA1")
    mobiles = body.mobiles
    if not mobiles:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: mobiles is empty")
    if len(mobiles) > MAX_MOBILES:
        raise ApiError.of(TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message} ({len(mobiles)} > {MAX_MOBILES} mobiles)")
    for position, mobile in enumerate(mobiles):
        if not isinstance(mobile, str) or not mobile.strip():
            raise invalid(f"mobiles[{position}] must be a non-empty string")
        if algorithm == "SHA1" and not SHA1_HEX.fullmatch(mobile.strip()):
            raise invalid(f"mobiles[{position}] must be a 40-character hex SHA1 digest (encryption_alg SHA1)")
        if algorithm == "NONE" and len(mobile.strip()) > MAX_PLAIN_CHARS:
            raise invalid(f"mobiles[{position}] must have at most {MAX_PLAIN_CHARS} characters")
    return list(dict.fromkeys(m.strip() for m in mobiles)), algorithm


async def template_vendors(context: GatewayContext, tenant_id: str, tpl_id: str) -> list[str]:
    """The vendors that approved the caller's template (active ones); KM.00000426 for an unknown template."""
    card = await context.collections.aim_templates.find_one(
        {"_id": tpl_id, "tenant_id": tenant_id}, {"factory_info": 1, "tpl_state": 1}
    )
    if card is None:
        raise codes.fail(codes.AIM_TEMPLATE_NOT_FOUND, f"tpl_id {tpl_id}")
    return [f["factory_type"] for f in card.get("factory_info", []) if f.get("state") == 1]


async def check_with_resolver(
    context: GatewayContext, mobiles: list[str], vendors: list[str] | None, algorithm: str
) -> list[dict[str, Any]]:
    """The resolver's result per number (same order as ``mobiles``)."""
    body: dict[str, Any] = {"mobiles": mobiles, "encryption_alg": algorithm}
    if vendors is not None:
        body["vendors"] = vendors
    try:
        answer = await post_json(
            context.config.resolver_url,
            CHECK_PATH,
            body,
            timeout_s=context.config.upstream_timeout_s,
            service="number-resolver",
        )
    except UpstreamUnavailable:
        raise unavailable("number-resolver") from None
    except UpstreamRefused as refused:
        raise refused.as_api_error() from None
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != len(mobiles):
        raise unavailable("number-resolver")
    return [r if isinstance(r, dict) else {} for r in results]


@router.post(
    "/v1/aim/mobile-capabilities/check",
    response_model=CheckMobileCapabilityResponse,
    summary="check_mobile_capability",
)
async def check_mobile_capability(
    body: CheckMobileCapabilityRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    mobiles, algorithm = checked_mobiles(body)
    tpl_id = (body.tpl_id or "").strip() or None
    vendors = await template_vendors(context, principal.tenant_id, tpl_id) if tpl_id else None
    results = await check_with_resolver(context, mobiles, vendors, algorithm)
    supported: list[str] = []
    unsupported: list[str] = []
    details: list[dict[str, Any]] = []
    for mobile, result in zip(mobiles, results, strict=True):
        ok = result.get("supported") is True
        (supported if ok else unsupported).append(mobile)
        details.append(
            {
                "mobile": mobile,
                "supported": ok,
                "reason": result.get("reason") or None,
                "vendor": result.get("vendor") or None,
                "carrier": result.get("carrier") or None,
            }
        )
    return {
        "supported_mobiles": supported,
        "unsupported_mobiles": unsupported,
        "tpl_id": tpl_id,
        "magpie_details": details,
    }
