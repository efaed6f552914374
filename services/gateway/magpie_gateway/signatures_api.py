"""SMS signatures: ``add_aim_msg_signature`` (sent to review), ``list_aim_msg_signature``,
``list_aim_msg_signature_detail``.

The SDK sends the signature as JSON (``SignatureRequest``); the licence files are uploaded by a separate
operation (``upload_aim_msg_signature_file``) and referenced by ``file_id``, which is stored as given.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from pymongo.errors import DuplicateKeyError

from magpie.v1 import template_pb2
from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.errors import EMPTY_SIGNATURE, SIGNATURE_LENGTH_INVALID, ApiError
from magpie_gateway.pagination import page
from magpie_gateway.reviews import PENDING_REVIEW, send_for_review
from magpie_gateway.sms_models import (
    AddAimMsgSignatureResponse,
    ListAimMsgSignatureResponse,
    SignatureRequest,
    SmsSignatureInfo,
)
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, one_of, optional_text, regex_filter

router = APIRouter(tags=["SMS signatures"])

SIGNATURE_TYPES = ("PROMOTION_TYPE", "NOTIFY_TYPE")
MIN_CHARS, MAX_CHARS = 2, 16
# Chinese characters, letters and digits [product-spec §2].
SIGNATURE_CHARS = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]+")


def check_signature_name(value: str | None) -> str:
    name = (value or "").strip()
    if not name:
        raise ApiError.of(EMPTY_SIGNATURE)
    if not MIN_CHARS <= len(name) <= MAX_CHARS:
        raise ApiError.of(
            SIGNATURE_LENGTH_INVALID, f"{SIGNATURE_LENGTH_INVALID.message}: {MIN_CHARS}-{MAX_CHARS} characters"
        )
    if not SIGNATURE_CHARS.fullmatch(name):
        raise invalid("signature_name may contain only Chinese characters, letters and digits (no 【】)")
    return name


def signature_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "signature_name": doc["signature_name"],
        "signature_id": doc["_id"],
        "signature_type": doc.get("signature_type"),
        "app_name": doc.get("app_name"),
        "app_id": doc.get("app_id"),
        "apply_desc": doc.get("apply_desc"),
        "channel_num": doc.get("channel_num"),
        "file_id": doc.get("file_id"),
        "status": doc["status"],
        "signature_source": doc.get("signature_source"),
        "is_involved_third": doc.get("is_involved_third"),
        "power_attorney_file_id": doc.get("power_attorney_file_id"),
        "urge_status": None,
        "urge_time": None,
        "urge_desc": None,
        "review_desc": doc.get("review_desc"),
        "source_title_content": doc.get("source_title_content"),
        "create_time": iso(doc["created_at"]),
    }


def review_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    texts = [doc["signature_name"]]
    if doc.get("source_title_content"):
        texts.append(doc["source_title_content"])
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["signature_name"],
        use_template_type=doc["signature_type"],
        texts=texts,
    )


@router.post("/v1/sms/signatures", response_model=AddAimMsgSignatureResponse, summary="add_aim_msg_signature")
async def add_aim_msg_signature(
    body: SignatureRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    name = check_signature_name(body.signature_name)
    signature_type = one_of("signature_type", body.signature_type, SIGNATURE_TYPES)
    involved = one_of("is_involved_third", body.is_involved_third, ("yes", "no"), default="no")
    if not body.app_id:
        raise invalid("app_id is required")
    c = context.collections
    tenant = principal.tenant_id
    app = await c.sms_apps.find_one({"_id": body.app_id, "tenant_id": tenant})
    if app is None:
        raise fail(codes.SMS_APP_NOT_FOUND, body.app_id)
    doc = {
        "_id": new_id("SIG"),
        "tenant_id": tenant,
        "app_id": app["_id"],
        "app_name": app["app_name"],
        "signature_name": name,
        "signature_type": signature_type,
        "apply_desc": optional_text("apply_desc", body.apply_desc, max_chars=1000),
        "file_id": body.file_id,
        "signature_source": body.signature_source,
        "is_involved_third": involved,
        "power_attorney_file_id": body.power_attorney_file_id,
        "source_title_content": optional_text("source_title_content", body.source_title_content, max_chars=1000),
        "channel_num": None,
        "status": PENDING_REVIEW,
        "review_desc": None,
        "revision": 1,
        "created_at": utc_now(),
        "operator": principal.user_name or principal.user_id,
    }
    try:
        await c.signatures.insert_one(doc)
    except DuplicateKeyError:
        raise fail(codes.NAME_TAKEN, f"signature {name} already exists in app {app['app_name']}") from None
    await send_for_review(
        context, review_message(doc), tenant_id=tenant, trace_id=request_id(request), collection=c.signatures
    )
    return {"signature_id": doc["_id"], "signature_name": name}


@router.get("/v1/sms/signatures", response_model=ListAimMsgSignatureResponse, summary="list_aim_msg_signature")
async def list_aim_msg_signature(
    app_name: str | None = None,
    signature_id: str | None = None,
    signature_name: str | None = None,
    signature_type: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    offset: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if app_name:
        query["app_name"] = app_name
    if signature_id:
        query["_id"] = signature_id
    if signature_name:
        query["signature_name"] = regex_filter(signature_name)
    if signature_type:
        query["signature_type"] = signature_type
    if status:
        query["status"] = status
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if window:
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    c = context.collections.signatures
    total = await c.count_documents(query)
    docs = await c.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    return {"result": [signature_view(d) for d in docs], "page_info": paging.info(total)}


@router.get(
    "/v1/sms/signatures/{signature_id}",
    response_model=SmsSignatureInfo,
    summary="list_aim_msg_signature_detail",
)
async def list_aim_msg_signature_detail(
    signature_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await context.collections.signatures.find_one({"_id": signature_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"SMS signature {signature_id}")
    return signature_view(doc)
