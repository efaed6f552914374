"""The download center (下载中心): asynchronous export files. Magpie-only operations (the KooMessage SDK has none),
AK/SK signed like the rest:

=========================  ========================================  ==============================================
operation (route summary)  route                                     what it does
=========================  ========================================  ==============================================
``create_export``          POST   /v1/magpie/exports                 queue an export (state PENDING)
``list_exports``           GET    /v1/magpie/exports                 filters ``state``, ``export_type``,
                                                                     ``file_name`` (contains), ``downloaded``
                                                                     (false = the "not downloaded" tab),
                                                                     ``begin_time``/``end_time`` (creation)
``show_export``            GET    /v1/magpie/exports/{id}
``download_export``        GET    /v1/magpie/exports/{id}/file       the file (streamed); marks it downloaded
``retry_export``           POST   /v1/magpie/exports/{id}/retry      a FAILED export runs again (PENDING)
``delete_export``          DELETE /v1/magpie/exports/{id}            the export and its file (any state: a running
                                                                     one is dropped by its worker)
=========================  ========================================  ==============================================

The jobs are run by ``exports_worker.ExportWorker`` (PENDING -> RUNNING -> SUCCEEDED | FAILED; see there for the
claiming across replicas, the file formats and the retention). What is exported (``export_type``):

- ``SEND_TASKS``: the send tasks created in ``begin_time`` .. ``end_time`` (default: the last 30 days).
- ``SEND_DETAILS``: the recipients of the task ``task_id``, or of the tasks created in the window.
- ``RESOLUTION_DETAILS``: the same selection, only recipients that received a smart-message link, with whether
  and when it was resolved.

The window of an export may span up to 31 days (the query API's 24-hour window is what exports are for); the
details exports need ``task_id`` or a window, not both. ``file_format``: ``csv`` (default) or ``xlsx``.
``file_name`` (optional, at most 100 characters, no path) gets the format's extension; by default it names the
type, the selection and the creation time. Downloading an export that has not succeeded (or whose file expired)
is KM.00000510; retrying one that has not failed is KM.00000511. Another tenant's export is 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from magpie_common.ids import new_id
from magpie_gateway import codes, console_files
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.errors import ApiError
from magpie_gateway.exports_worker import (
    EXPORT_TYPES,
    FAILED,
    FILE_KIND,
    PENDING,
    SEND_TASKS,
    STATES,
    SUCCEEDED,
    ExportWorker,
)
from magpie_gateway.pagination import PageInfo, fetch_page, page
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter, optional_one_of

router = APIRouter(tags=["Download center"])

MAX_WINDOW = timedelta(days=31)
DEFAULT_TASKS_WINDOW = timedelta(days=30)
MAX_FILE_NAME = 100
WORKER_STATE_KEY = "export_worker"


class CreateExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export_type: Literal["SEND_TASKS", "SEND_DETAILS", "RESOLUTION_DETAILS"] = Field(examples=["SEND_DETAILS"])
    file_format: Literal["csv", "xlsx"] = Field("csv", examples=["xlsx"])
    task_id: str | None = Field(None, description="details of one send task", examples=["TASK01JD3Q8W5R2K7M9N4P6T8V0"])
    begin_time: str | None = Field(
        None, description="window start (UTC), with end_time", examples=["2026-11-21T00:00:00Z"]
    )
    end_time: str | None = Field(None, description="window end (UTC), at most 31 days after begin_time")
    file_name: str | None = Field(
        None, description="at most 100 characters; the extension is added", examples=["双十一明细"]
    )


class Export(BaseModel):
    export_id: str = Field(examples=["EXP01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    export_type: Literal["SEND_TASKS", "SEND_DETAILS", "RESOLUTION_DETAILS"]
    file_format: Literal["csv", "xlsx"]
    file_name: str = Field(examples=["send_details_TASK01JD3Q8W5R2K7M9N4P6T8V0_20261122080000.xlsx"])
    state: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
    task_id: str | None = None
    begin_time: str | None = None
    end_time: str | None = None
    row_count: int | None = Field(None, description="rows in the file (SUCCEEDED)", examples=[12000])
    file_size: int | None = Field(None, description="bytes (SUCCEEDED)", examples=[734003])
    error_msg: str | None = Field(None, description="why it failed (FAILED)")
    attempts: int = Field(0, description="times a worker started it", examples=[1])
    downloaded: bool = False
    download_count: int = 0
    create_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    start_time: str | None = Field(None, examples=["2026-11-22T08:00:01Z"])
    finish_time: str | None = Field(None, examples=["2026-11-22T08:00:09Z"])
    expire_time: str | None = Field(
        None, description="the file is removed after this time", examples=["2026-11-29T08:00:09Z"]
    )


class ExportList(BaseModel):
    exports: list[Export]
    page_info: PageInfo


def export_view(doc: dict[str, Any]) -> dict[str, Any]:
    params = doc.get("params", {})
    return {
        "export_id": doc["_id"],
        "export_type": doc["export_type"],
        "file_format": doc["file_format"],
        "file_name": doc["file_name"],
        "state": doc["state"],
        "task_id": params.get("task_id"),
        "begin_time": iso(params.get("begin")),
        "end_time": iso(params.get("end")),
        "row_count": doc.get("row_count"),
        "file_size": doc.get("file_size"),
        "error_msg": doc.get("error_msg"),
        "attempts": doc.get("attempts", 0),
        "downloaded": bool(doc.get("downloaded")),
        "download_count": doc.get("download_count", 0),
        "create_time": iso(doc.get("created_at")),
        "start_time": iso(doc.get("started_at")),
        "finish_time": iso(doc.get("finished_at")),
        "expire_time": iso(doc.get("expires_at")),
    }


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, WORKER_STATE_KEY, None)
    if isinstance(worker, ExportWorker):
        worker.wake()


def _file_name(given: str | None, default: str, extension: str) -> str:
    if given is None or not given.strip():
        return f"{default}.{extension}"
    name = given.strip()
    if len(name) > MAX_FILE_NAME:
        raise invalid(f"file_name must have at most {MAX_FILE_NAME} characters")
    if any(ch in name for ch in "/\\\x00") or any(not ch.isprintable() for ch in name):
        raise invalid("file_name must not contain a path separator or control characters")
    return name if name.lower().endswith(f".{extension}") else f"{name}.{extension}"


async def _own(context: GatewayContext, tenant_id: str, export_id: str) -> dict[str, Any]:
    doc = await context.collections.exports.find_one({"_id": export_id, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"export {export_id}")
    return doc


@router.post("/v1/magpie/exports", response_model=Export, summary="create_export")
async def create_export(
    body: CreateExportRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    now = utc_now()
    window = parse_window("begin_time", body.begin_time, "end_time", body.end_time)
    if (body.begin_time or body.end_time) and window is None:
        raise invalid("begin_time and end_time go together")
    if window and window[1] - window[0] > MAX_WINDOW:
        raise invalid(f"begin_time and end_time must be at most {MAX_WINDOW.days} days apart")
    task_id = (body.task_id or "").strip() or None
    params: dict[str, Any] = {}
    if body.export_type == SEND_TASKS:
        if task_id:
            raise invalid("task_id does not apply to SEND_TASKS (export SEND_DETAILS of the task)")
        begin, end = window or (now - DEFAULT_TASKS_WINDOW, now)
        params = {"begin": begin, "end": end}
        scope = f"{begin:%Y%m%d}-{end:%Y%m%d}"
    else:
        if bool(task_id) == bool(window):
            raise invalid(f"{body.export_type} needs task_id or begin_time/end_time (one of them)")
        if task_id:
            task = await context.collections.tasks.find_one({"_id": task_id, "tenant_id": tenant}, {"_id": 1})
            if task is None:
                raise not_found(f"send task {task_id}")
            params = {"task_id": task_id}
            scope = task_id
        else:
            assert window is not None
            params = {"begin": window[0], "end": window[1]}
            scope = f"{window[0]:%Y%m%d}-{window[1]:%Y%m%d}"
    default_name = f"{body.export_type.lower()}_{scope}_{now:%Y%m%d%H%M%S}"
    doc: dict[str, Any] = {
        "_id": new_id("EXP"),
        "tenant_id": tenant,
        "export_type": body.export_type,
        "file_format": body.file_format,
        "file_name": _file_name(body.file_name, default_name, body.file_format),
        "params": params,
        "state": PENDING,
        "attempts": 0,
        "claim": None,
        "lease_until": None,
        "file_id": None,
        "row_count": None,
        "file_size": None,
        "error_msg": None,
        "downloaded": False,
        "download_count": 0,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "expires_at": None,
        "operator": principal.user_name or principal.user_id,
    }
    await context.collections.exports.insert_one(doc)
    _wake(request)
    return export_view(doc)


@router.get("/v1/magpie/exports", response_model=ExportList, summary="list_exports")
async def list_exports(
    state: str | None = None,
    export_type: str | None = None,
    file_name: str | None = None,
    downloaded: bool | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query = list_filter(
        principal.tenant_id,
        equal={
            "state": optional_one_of("state", state, STATES),
            "export_type": optional_one_of("export_type", export_type, EXPORT_TYPES),
            "downloaded": downloaded,
        },
        contains={"file_name": file_name and file_name.strip()},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.exports, query, paging)
    return {"exports": [export_view(d) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/magpie/exports/{export_id}", response_model=Export, summary="show_export")
async def show_export(
    export_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    return export_view(await _own(context, principal.tenant_id, export_id))


@router.get(
    "/v1/magpie/exports/{export_id}/file",
    summary="download_export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the export file",
            "content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}},
        }
    },
)
async def download_export(
    export_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> StreamingResponse:
    tenant = principal.tenant_id
    doc = await _own(context, tenant, export_id)
    if doc["state"] != SUCCEEDED or not doc.get("file_id"):
        raise fail(codes.EXPORT_NOT_READY, f"export {export_id} is {doc['state']}")
    if doc.get("expires_at") is not None and doc["expires_at"] <= utc_now():
        raise fail(codes.EXPORT_NOT_READY, f"export {export_id} expired at {iso(doc['expires_at'])}")
    try:
        stored = await context.files.info(tenant, doc["file_id"], kind=FILE_KIND)
    except ApiError:
        raise fail(codes.EXPORT_NOT_READY, f"the file of export {export_id} is gone") from None
    await context.collections.exports.update_one(
        {"_id": export_id, "tenant_id": tenant}, {"$set": {"downloaded": True}, "$inc": {"download_count": 1}}
    )
    return console_files.download_response(context, stored)


@router.post("/v1/magpie/exports/{export_id}/retry", response_model=Export, summary="retry_export")
async def retry_export(
    export_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    doc = await _own(context, tenant, export_id)
    if doc["state"] != FAILED:
        raise fail(codes.EXPORT_NOT_RETRYABLE, f"export {export_id} is {doc['state']}")
    now = utc_now()
    update = {
        "state": PENDING,
        "attempts": 0,
        "error_msg": None,
        "started_at": None,
        "finished_at": None,
        "claim": None,
        "lease_until": None,
        "updated_at": now,
    }
    result = await context.collections.exports.update_one(
        {"_id": export_id, "tenant_id": tenant, "state": FAILED}, {"$set": update}
    )
    if result.matched_count != 1:
        raise fail(codes.EXPORT_NOT_RETRYABLE, f"export {export_id} changed meanwhile")
    _wake(request)
    return export_view({**doc, **update})


@router.delete("/v1/magpie/exports/{export_id}", response_model=Export, summary="delete_export")
async def delete_export(
    export_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    doc = await context.collections.exports.find_one_and_delete({"_id": export_id, "tenant_id": tenant})
    if doc is None:
        raise not_found(f"export {export_id}")
    if doc.get("file_id"):
        await console_files.GeneratedFiles(context.collections.database).delete(doc["file_id"])
    return export_view(doc)
