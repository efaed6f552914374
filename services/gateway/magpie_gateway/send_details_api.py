"""``list_aim_send_details``: one row per recipient of the tenant's accepted send tasks.

Rows are ordered by task (newest first), then by the recipient's position in the task, and paginated with
``offset`` / ``limit`` across the per-batch read-model documents (``offset + limit`` beyond 10,000 answers an
empty page, as KooMessage documents). Filters: ``task_id``, ``tpl_id``, ``sms_sign``, ``cust_flag`` (the mobile
as submitted) and the time window ``begin_time`` .. ``end_time`` (both or neither, at most 24 hours apart). The
window selects tasks by their creation time (when the send was requested); without a window and without
``task_id`` the last 24 hours are shown.

``send_status``: SENDING (accepted, not final yet), DELIVERED, FAILED, TIMEOUT (no receipt in time), SKIPPED
(unresolvable number with the ``skip`` fallback), INVALID (malformed or unassignable number). Magpie extensions
per row: ``index``, ``stage`` (ACCEPTED, CLASSIFIED, SUBMITTED, FINAL), ``route``, ``reason``, ``segments``,
``resolved``, ``resolve_time``, ``sms_sign``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends

from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.pagination import page
from magpie_gateway.read_model import BATCH_SIZE, batch_id, recipient_view
from magpie_gateway.task_models import ListAimSendDetailsResponse
from magpie_gateway.tasks import STATE_COMPLETED, STATE_SUCCESS
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter

router = APIRouter(tags=["Send tasks"])

MAX_WINDOW = timedelta(hours=24)


@router.get("/v1/aim/send-details", response_model=ListAimSendDetailsResponse, summary="list_aim_send_details")
async def list_aim_send_details(
    task_id: str | None = None,
    tpl_id: str | None = None,
    sms_sign: str | None = None,
    cust_flag: str | None = None,
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
        equal={"state": {"$in": [STATE_SUCCESS, STATE_COMPLETED]}, "_id": task_id, "tpl_id": tpl_id},
    )
    if sms_sign:  # only brackets: matches nothing
        query["sms_sign"] = sms_sign.strip().strip("【】")
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    if window:
        if window[1] - window[0] > MAX_WINDOW:
            raise invalid("begin_time and end_time must be at most 24 hours apart")
        query["created_at"] = {"$gte": window[0], "$lte": window[1]}
    elif not task_id:
        query["created_at"] = {"$gte": utc_now() - MAX_WINDOW}
    c = context.collections
    tasks = (
        await c.tasks.find(query, {"unique_recipients": 1, "batch_size": 1})
        .sort([("created_at", -1), ("_id", 1)])
        .to_list(None)
    )
    if cust_flag:
        rows = await _rows_of_mobile(context, principal.tenant_id, [t["_id"] for t in tasks], cust_flag.strip())
        window_rows = [] if paging.beyond_window else rows[paging.offset : paging.offset + paging.limit]
        return {"send_details": window_rows, "page_info": paging.info(len(rows))}
    total = sum(int(t["unique_recipients"]) for t in tasks)
    if paging.beyond_window or paging.offset >= total:
        return {"send_details": [], "page_info": paging.info(total)}
    # Which (task, batch, positions) cover [offset, offset + limit).
    wanted: list[tuple[str, range]] = []
    start, end, before = paging.offset, paging.offset + paging.limit, 0
    for task in tasks:
        count = int(task["unique_recipients"])
        size = int(task.get("batch_size") or BATCH_SIZE)
        lo, hi = max(start - before, 0), min(end - before, count)
        if lo < hi:
            for batch_no in range(lo // size, (hi - 1) // size + 1):
                first = batch_no * size
                wanted.append(
                    (batch_id(task["_id"], batch_no), range(max(lo, first) - first, min(hi, first + size) - first))
                )
        before += count
        if before >= end:
            break
    docs = await c.recipient_batches.find({"_id": {"$in": [doc_id for doc_id, _ in wanted]}}).to_list(None)
    by_id = {doc["_id"]: doc for doc in docs}
    rows = [
        recipient_view(by_id[doc_id], position)
        for doc_id, positions in wanted
        if doc_id in by_id
        for position in positions
        if position < by_id[doc_id]["n"]
    ]
    return {"send_details": rows, "page_info": paging.info(total)}


async def _rows_of_mobile(
    context: GatewayContext, tenant_id: str, task_ids: list[str], mobile: str
) -> list[dict[str, Any]]:
    """Every row of ``mobile`` in the given tasks (recipients are unique per task: at most one row per task),
    in the order of ``task_ids``."""
    if not task_ids:
        return []
    docs = await context.collections.recipient_batches.find(
        {"tenant_id": tenant_id, "task_id": {"$in": task_ids}, "mobiles": mobile}
    ).to_list(None)
    order = {task_id: i for i, task_id in enumerate(task_ids)}
    docs.sort(key=lambda d: (order.get(d["task_id"], len(order)), d["batch_no"]))
    return [
        recipient_view(doc, position)
        for doc in docs
        for position, value in enumerate(doc["mobiles"])
        if value == mobile
    ]
