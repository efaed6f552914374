"""SMS signatures: ``add_aim_msg_signature`` (sent to review), ``list_aim_msg_signature``,
``list_aim_msg_signature_detail``, ``update_aim_msg_signature``, ``delete_aim_msg_signature``, and the licence /
power-of-attorney files: ``upload_aim_msg_signature_file``, ``show_aim_msg_signature_file_info``.

- Files: an image (jpg/jpeg, png or gif, decided by the content, not the name) of at most 2 MB, uploaded as the
  multipart field ``file`` (``file_desc`` as a query parameter, kept with the file). ``file_id`` and
  ``power_attorney_file_id`` of a signature must name such a file of the tenant (404 otherwise);
  ``is_involved_third=yes`` requires ``power_attorney_file_id`` (KooMessage's rule).
- ``show_aim_msg_signature_file_info`` answers one file, named by ``file_id`` (required; ``offset`` / ``limit``
  are accepted as the SDK sends them, and only validated: the answer is a single object).
- ``update_aim_msg_signature`` (PUT): as in KooMessage, only a REJECTED signature can be modified (KM.00000470
  otherwise). Fields the body gives replace the stored ones, omitted (null) fields are kept; ``app_id`` cannot
  change. The signature goes back to review: ``status`` PENDING_REVIEW, ``revision`` + 1 (a late decision about
  the previous revision is ignored). Its SMS templates show the new name.
- ``delete_aim_msg_signature``: any state; as in KooMessage, the signature's SMS templates are deleted with it.
  Smart send tasks already accepted are not affected (they carry their own copy of the signature and template).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pymongo.errors import DuplicateKeyError

from magpie.v1 import template_pb2
from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.errors import EMPTY_SIGNATURE, SIGNATURE_LENGTH_INVALID, ApiError
from magpie_gateway.files import FileRule, read_upload
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.reviews import PENDING_REVIEW, REJECTED, send_for_review
from magpie_gateway.sms_models import (
    AddAimMsgSignatureResponse,
    EmptyResponse,
    ListAimMsgSignatureResponse,
    ShowAimMsgSignatureFileInfoResponse,
    SignatureRequest,
    SmsSignatureInfo,
    UpdateAimMsgSignatureResponse,
    UploadAimMsgSignatureFileResponse,
)
from magpie_gateway.sms_reviews import rejected_for_edit, resubmit_for_review
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter, one_of, optional_text

router = APIRouter(tags=["SMS signatures"])

SIGNATURE_TYPES = ("PROMOTION_TYPE", "NOTIFY_TYPE")
MIN_CHARS, MAX_CHARS = 2, 16
# Chinese characters, letters and digits [product-spec §2].
SIGNATURE_CHARS = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]+")
SIGNATURE_FILE = FileRule("sms_signature", frozenset({"jpg", "jpeg", "png", "gif"}), 2 * 1024 * 1024)
MAX_FILE_DESC_CHARS = 1000
MAX_TEXT_CHARS = 1000


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


async def check_files(context: GatewayContext, tenant_id: str, doc: dict[str, Any]) -> None:
    """The files a signature names exist (as signature files of the tenant); a third party's rights need the
    power of attorney."""
    for field in ("file_id", "power_attorney_file_id"):
        if doc.get(field):
            await context.files.info(tenant_id, doc[field], kind=SIGNATURE_FILE.kind)
    if doc.get("is_involved_third") == "yes" and not doc.get("power_attorney_file_id"):
        raise invalid("power_attorney_file_id is required when is_involved_third is yes")


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
        "apply_desc": optional_text("apply_desc", body.apply_desc, max_chars=MAX_TEXT_CHARS),
        "file_id": body.file_id,
        "signature_source": body.signature_source,
        "is_involved_third": involved,
        "power_attorney_file_id": body.power_attorney_file_id,
        "source_title_content": optional_text(
            "source_title_content", body.source_title_content, max_chars=MAX_TEXT_CHARS
        ),
        "channel_num": None,
        "status": PENDING_REVIEW,
        "review_desc": None,
        "revision": 1,
        "created_at": utc_now(),
        "operator": principal.user_name or principal.user_id,
    }
    await check_files(context, tenant, doc)
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
    query = list_filter(
        principal.tenant_id,
        equal={"app_name": app_name, "_id": signature_id, "signature_type": signature_type, "status": status},
        contains={"signature_name": signature_name},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.signatures, query, paging)
    return {"result": [signature_view(d) for d in docs], "page_info": paging.info(total)}


@router.post(
    "/v1/sms/signatures/files",
    response_model=UploadAimMsgSignatureFileResponse,
    summary="upload_aim_msg_signature_file",
)
async def upload_aim_msg_signature_file(
    file: UploadFile | None = File(None, description="business licence / power of attorney: jpg, png or gif, <= 2 MB"),
    file_desc: str | None = Query(None, description="what the file is"),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    if file is None:
        raise invalid("file is required (multipart/form-data field 'file')")
    description = optional_text("file_desc", file_desc, max_chars=MAX_FILE_DESC_CHARS)
    data = await read_upload(file, SIGNATURE_FILE.max_bytes)
    tenant = principal.tenant_id
    stored = await context.files.put(tenant, SIGNATURE_FILE, file.filename or "", data, prefix="SF")
    await context.collections.signature_files.insert_one(
        {
            "_id": stored.file_id,
            "tenant_id": tenant,
            "file_name": stored.name,
            "file_desc": description,
            "created_at": utc_now(),
            "operator": principal.user_name or principal.user_id,
        }
    )
    return {"file_id": stored.file_id}


@router.get(
    "/v1/sms/signatures/files",
    response_model=ShowAimMsgSignatureFileInfoResponse,
    summary="show_aim_msg_signature_file_info",
)
async def show_aim_msg_signature_file_info(
    file_id: str | None = None,
    offset: str | None = None,
    limit: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    page(offset, limit)
    if not file_id:
        raise invalid("file_id is required")
    stored = await context.files.info(principal.tenant_id, file_id, kind=SIGNATURE_FILE.kind)
    return {"file_id": stored.file_id, "file_name": stored.name}


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


@router.put(
    "/v1/sms/signatures/{signature_id}",
    response_model=UpdateAimMsgSignatureResponse,
    summary="update_aim_msg_signature",
)
async def update_aim_msg_signature(
    signature_id: str,
    body: SignatureRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    c = context.collections
    tenant = principal.tenant_id
    previous = await rejected_for_edit(c.signatures, signature_id, tenant, what="signature", state_field="status")
    if body.app_id is not None and body.app_id != previous["app_id"]:
        raise invalid("app_id cannot be changed (create a signature in the other app)")
    changes: dict[str, Any] = {}
    if body.signature_name is not None:
        changes["signature_name"] = check_signature_name(body.signature_name)
    if body.signature_type is not None:
        changes["signature_type"] = one_of("signature_type", body.signature_type, SIGNATURE_TYPES)
    if body.is_involved_third is not None:
        changes["is_involved_third"] = one_of("is_involved_third", body.is_involved_third, ("yes", "no"))
    if body.apply_desc is not None:
        changes["apply_desc"] = optional_text("apply_desc", body.apply_desc, max_chars=MAX_TEXT_CHARS)
    if body.source_title_content is not None:
        changes["source_title_content"] = optional_text(
            "source_title_content", body.source_title_content, max_chars=MAX_TEXT_CHARS
        )
    for field in ("file_id", "power_attorney_file_id", "signature_source"):
        value = getattr(body, field)
        if value is not None:
            changes[field] = value
    updated = {**previous, **changes}
    await check_files(context, tenant, updated)
    now = utc_now()
    updated.update(
        status=PENDING_REVIEW,
        review_desc=None,
        revision=previous["revision"] + 1,
        updated_at=now,
        operator=principal.user_name or principal.user_id,
    )
    try:
        result = await c.signatures.replace_one(
            {"_id": signature_id, "tenant_id": tenant, "revision": previous["revision"], "status": REJECTED}, updated
        )
    except DuplicateKeyError:
        raise fail(
            codes.NAME_TAKEN, f"signature {updated['signature_name']} already exists in app {previous['app_name']}"
        ) from None
    if result.matched_count != 1:
        raise fail(codes.NOT_MODIFIABLE, f"signature {signature_id} changed meanwhile; read it again")
    await resubmit_for_review(
        context,
        review_message(updated),
        tenant_id=tenant,
        trace_id=request_id(request),
        collection=c.signatures,
        previous=previous,
    )
    if updated["signature_name"] != previous["signature_name"]:
        await c.sms_templates.update_many(
            {"tenant_id": tenant, "signature_id": signature_id}, {"$set": {"signature_name": updated["signature_name"]}}
        )
    return {"signature_id": signature_id, "signature_name": updated["signature_name"]}


@router.delete("/v1/sms/signatures/{signature_id}", response_model=EmptyResponse, summary="delete_aim_msg_signature")
async def delete_aim_msg_signature(
    signature_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    c = context.collections
    tenant = principal.tenant_id
    doc = await c.signatures.find_one({"_id": signature_id, "tenant_id": tenant}, {"_id": 1})
    if doc is None:
        raise not_found(f"SMS signature {signature_id}")
    # Templates first: a crash in between leaves the signature, and deleting it again finishes the job.
    await c.sms_templates.delete_many({"tenant_id": tenant, "signature_id": signature_id})
    await c.signatures.delete_one({"_id": signature_id, "tenant_id": tenant})
    return {}
