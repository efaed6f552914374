"""``list_aim_send_reports`` (``POST /v1/aim/send-reports``): the smart-message send report, per day or per month and
AIM template, from the send tasks' read model (``tasks`` and the per-batch counters of ``batch_counts``).

One row per (period, template) with at least one accepted send task created in the period:

=========================  =========================================================================================
``submission_count``       numbers submitted (as sent in the tasks, duplicates included)
``support_resolve_count``  numbers whose handset can render the card (the number check's resolvable numbers)
``send_count``             messages handed to the carriers (smart and plain-SMS fallback)
``send_success_count``     messages delivered (final receipt DELIVRD)
``resolve_success_count``  links resolved by the handsets (first resolution of each recipient's link)
=========================  =========================================================================================

Decisions beyond the SDK:

- A task counts in the period of its creation (when the send was requested), with everything that happened to it
  since: the counts of recent periods grow while receipts and resolutions arrive.
- Periods are calendar days / months at the UTC offset ``MAGPIE_REPORT_UTC_OFFSET_MINUTES`` (default 480, China
  Standard Time, the same days as ``list_aim_template_reports``). ``report_time`` is ``2022-05-10`` (daily) or
  ``2022-05`` (monthly).
- KooMessage leaves API-sent tasks out of ``support_resolve_count``; Magpie checks every task's numbers, so it
  reports them for every task.
- Resolution tasks (links minted without sending) are not send tasks and are not in this report; their
  resolutions are in ``list_resolve_tasks`` / ``list_aim_resolve_details``.

Request: ``report_type`` 1 daily (default) | 2 monthly (KM.00000400 otherwise); ``tpl_id``; ``tpl_name``
(contains, any case); ``begin_time`` .. ``end_time`` (both or neither; without them the last 30 days / 12 months
up to now; at most 93 days apart for daily reports, 366 for monthly ones, KM.00000400); ``offset`` / ``limit``
(default 20). Newest period first, then by ``tpl_id``. The answer is ``{"status": "200", "message": "success",
"data": {"data_list": [...], "page_info": {...}}}``; Magpie extension per row: ``task_count``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from magpie_common.config import env_int
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.pagination import page
from magpie_gateway.sms_models import PageInfo
from magpie_gateway.tasks import STATE_COMPLETED, STATE_SUCCESS, task_counts
from magpie_gateway.timefmt import parse_window, utc_now
from magpie_gateway.validation import invalid, regex_filter

router = APIRouter(tags=["AIM send reports"])

DAILY = "1"
MONTHLY = "2"
DEFAULT_LIMIT = 20
DEFAULT_DAYS = {DAILY: 30, MONTHLY: 365}
MAX_SPAN = {DAILY: timedelta(days=93), MONTHLY: timedelta(days=366)}


class ListAimSendReportsRequestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    report_type: Any = Field(None, description="1 daily (default) | 2 monthly")
    tpl_id: Any = None
    tpl_name: Any = Field(None, description="contains, any case")
    begin_time: Any = Field(None, description="2022-05-01T00:00:00Z")
    end_time: Any = Field(None, description="2022-05-31T00:00:00Z")
    offset: Any = None
    limit: Any = None


class AimSendReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    report_time: str
    tpl_id: str
    tpl_name: str | None = None
    submission_count: int
    support_resolve_count: int
    send_count: int
    send_success_count: int
    resolve_success_count: int


class ListAimSendReportsMode(BaseModel):
    model_config = ConfigDict(extra="allow")

    data_list: list[AimSendReport]
    page_info: PageInfo


class ListAimSendReportsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    message: str
    data: ListAimSendReportsMode


def report_zone() -> timezone:
    return timezone(timedelta(minutes=env_int("MAGPIE_REPORT_UTC_OFFSET_MINUTES", 480)))


def period_of(created_at: datetime, report_type: str, zone: timezone) -> str:
    local = created_at.astimezone(zone)
    return local.strftime("%Y-%m-%d") if report_type == DAILY else local.strftime("%Y-%m")


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise invalid(f"{name} must be a string")
    return str(value).strip() or None


def window_of(report_type: str, begin: str | None, end: str | None, zone: timezone) -> tuple[datetime, datetime]:
    window = parse_window("begin_time", begin, "end_time", end)
    if window is not None:
        if window[1] - window[0] > MAX_SPAN[report_type]:
            days = MAX_SPAN[report_type].days
            raise invalid(f"begin_time and end_time must be at most {days} days apart for this report_type")
        return window
    now = utc_now()
    start = (now.astimezone(zone) - timedelta(days=DEFAULT_DAYS[report_type])).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if report_type == MONTHLY:
        start = start.replace(day=1)
    return start.astimezone(UTC), now


@router.post("/v1/aim/send-reports", response_model=ListAimSendReportsResponse, summary="list_aim_send_reports")
async def list_aim_send_reports(
    body: ListAimSendReportsRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    report_type = _text("report_type", body.report_type) or DAILY
    if report_type not in (DAILY, MONTHLY):
        raise invalid("report_type must be 1 (daily) or 2 (monthly)")
    for name in ("offset", "limit"):
        value = getattr(body, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
            raise invalid(f"{name} must be an integer")
    paging = page(body.offset, body.limit, default_limit=DEFAULT_LIMIT)
    zone = report_zone()
    begin, end = window_of(report_type, _text("begin_time", body.begin_time), _text("end_time", body.end_time), zone)
    query: dict[str, Any] = {
        "tenant_id": principal.tenant_id,
        "state": {"$in": [STATE_SUCCESS, STATE_COMPLETED]},
        "created_at": {"$gte": begin, "$lte": end},
    }
    tpl_id = _text("tpl_id", body.tpl_id)
    if tpl_id:
        query["tpl_id"] = tpl_id
    tpl_name = _text("tpl_name", body.tpl_name)
    if tpl_name:
        query["tpl_name"] = regex_filter(tpl_name)
    c = context.collections
    tasks = await c.tasks.find(query, {"tpl_id": 1, "tpl_name": 1, "created_at": 1, "submitted": 1}).to_list(None)
    counts = await task_counts(c, (t["_id"] for t in tasks))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for task in sorted(tasks, key=lambda t: t["created_at"]):
        key = (period_of(task["created_at"], report_type, zone), task["tpl_id"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "report_time": key[0],
                "tpl_id": key[1],
                "tpl_name": None,
                "submission_count": 0,
                "support_resolve_count": 0,
                "send_count": 0,
                "send_success_count": 0,
                "resolve_success_count": 0,
                "task_count": 0,
            }
        n = counts[task["_id"]]
        row["tpl_name"] = task.get("tpl_name") or row["tpl_name"]  # the latest task's name of the template
        row["submission_count"] += int(task.get("submitted") or 0)
        row["support_resolve_count"] += n["smart"]
        row["send_count"] += n["submitted"]
        row["send_success_count"] += n["delivered"]
        row["resolve_success_count"] += n["resolved"]
        row["task_count"] += 1
    ordered = sorted(rows.values(), key=lambda r: (_descending(r["report_time"]), r["tpl_id"]))
    window_rows = [] if paging.beyond_window else ordered[paging.offset : paging.offset + paging.limit]
    return {
        "status": "200",
        "message": "success",
        "data": {"data_list": window_rows, "page_info": paging.info(len(ordered))},
    }


def _descending(label: str) -> tuple[int, ...]:
    """Sort key putting later periods first (labels are ``YYYY-MM-DD`` or ``YYYY-MM``)."""
    return tuple(-int(part) for part in label.split("-"))
