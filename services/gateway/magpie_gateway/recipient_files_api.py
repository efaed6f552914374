"""Recipient files (Magpie extension): ``POST /v1/magpie/recipient-files`` (multipart field ``file``: CSV, TXT or
XLSX, at most 64 MiB and 1,000,000 numbers), ``GET /v1/magpie/recipient-files`` and ``.../{file_id}``,
``DELETE .../{file_id}``. A send task uses one with ``resolve_task.recipient_file_id`` (``recipient_files``).

The upload honours ``Idempotency-Key`` itself (the generic middleware would hold the body in memory, and the
multipart boundary differs between retries): the same key with the same file (bytes and name) answers the stored
file again, a retry after a failure or crash parses it again under the same
``file_id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from fastapi import APIRouter, Depends, File, Header, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from magpie_common.ids import new_id
from magpie_gateway import recipient_files
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.errors import REQUEST_TOO_LARGE, ApiError
from magpie_gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from magpie_gateway.idempotency import IdempotencyStore, fingerprint
from magpie_gateway.pagination import page
from magpie_gateway.recipient_file_parser import RecipientFileError
from magpie_gateway.send_task_body import spool_of
from magpie_gateway.sms_models import PageInfo

router = APIRouter(tags=["Send tasks"])
UPLOAD_PATH = "/v1/magpie/recipient-files"
MULTIPART_SLACK = 64 * 1024  # the multipart envelope around the file
MAX_UPLOAD_BYTES = recipient_files.MAX_FILE_BYTES + MULTIPART_SLACK  # enforced while the body streams in (app.py)


class RecipientFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    file_id: str
    file_name: str | None = None
    rows: int = Field(description="rows of numbers in the file (blank rows and the header not counted)")
    valid: int = Field(description="distinct valid numbers: the recipients a send task gets")
    duplicates: int = Field(description="valid numbers repeated (the first row wins)")
    invalid: int = Field(description="rows whose number is not a mobile number (left out)")
    columns: list[str] = Field(description="variable columns: card params, custom_url, sms_params_1..N")
    size: int | None = None
    created_at: str | None = None


class RecipientFileList(BaseModel):
    recipient_files: list[RecipientFile]
    page_info: PageInfo


def _too_large() -> ApiError:
    limit = recipient_files.MAX_FILE_BYTES
    return ApiError.of(REQUEST_TOO_LARGE, f"{REQUEST_TOO_LARGE.message}: a recipient file has at most {limit} bytes")


def _content_hash(upload: UploadFile) -> str:
    """The request's fingerprint: the file's bytes and name (the multipart boundary changes with every request)."""
    digest = hashlib.sha256()
    upload.file.seek(0)
    while chunk := upload.file.read(1024 * 1024):
        digest.update(chunk)
    upload.file.seek(0)
    return fingerprint(b"", "POST", UPLOAD_PATH, digest.hexdigest(), upload.filename or "")


async def _store(context: GatewayContext, tenant_id: str, file_id: str, upload: UploadFile) -> dict[str, Any]:
    handle = upload.file
    size = handle.seek(0, os.SEEK_END)
    if size > recipient_files.MAX_FILE_BYTES:
        raise _too_large()
    handle.seek(0)
    try:
        doc = await recipient_files.store(
            context.collections,
            tenant_id=tenant_id,
            file_id=file_id,
            file_name=upload.filename or None,
            file=handle,
            size=size,
        )
    except RecipientFileError as exc:
        raise recipient_files.refused(exc) from None
    return recipient_files.view(doc)


@router.post(UPLOAD_PATH, response_model=RecipientFile, summary="upload_recipient_file")
async def upload_recipient_file(
    request: Request,
    file: UploadFile = File(
        description="CSV, TXT or XLSX (decided by the content), <= 64 MiB, <= 1,000,000 numbers; a header row "
        "naming mobile, the card template's params, sms_params_1..N and custom_url, or one column of numbers"
    ),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
    idempotency_key: str | None = Header(
        None, alias=IDEMPOTENCY_HEADER, description="same key + same bytes = same answer, one file"
    ),
) -> dict[str, Any]:
    spool = await spool_of(request)
    if spool.size > MAX_UPLOAD_BYTES:
        raise _too_large()
    tenant = principal.tenant_id
    if idempotency_key is None:
        return await _store(context, tenant, new_id("RF"), file)
    store = IdempotencyStore(context.collections.idempotency)
    key = store.check_key(idempotency_key)
    request_hash = await asyncio.to_thread(_content_hash, file)
    found = await store.lookup(tenant, key, request_hash)
    if found is not None and found.response is not None:
        return found.response
    claim = found if found is not None else await store.claim(tenant, key, request_hash, new_id("RF"))
    if claim.response is not None:
        return claim.response
    assert claim.task_id is not None
    try:
        response = await _store(context, tenant, claim.task_id, file)
    except BaseException:
        await store.failed(tenant, key)
        raise
    await store.finish(tenant, key, response)
    return response


@router.get(UPLOAD_PATH, response_model=RecipientFileList, summary="list_recipient_files")
async def list_recipient_files(
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query = {"tenant_id": principal.tenant_id, "state": recipient_files.READY}
    files = context.collections.recipient_files
    total = await files.count_documents(query)
    if paging.beyond_window:
        return {"recipient_files": [], "page_info": paging.info(total)}
    docs = await files.find(query).sort("created_at", -1).skip(paging.offset).limit(paging.limit).to_list(None)
    return {"recipient_files": [recipient_files.view(d) for d in docs], "page_info": paging.info(total)}


@router.get(UPLOAD_PATH + "/{file_id}", response_model=RecipientFile, summary="show_recipient_file")
async def show_recipient_file(
    file_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    return recipient_files.view(await recipient_files.find(context.collections, principal.tenant_id, file_id))


@router.delete(UPLOAD_PATH + "/{file_id}", summary="delete_recipient_file")
async def delete_recipient_file(
    file_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await recipient_files.delete(context.collections, principal.tenant_id, file_id)
    return {"file_id": file_id}
