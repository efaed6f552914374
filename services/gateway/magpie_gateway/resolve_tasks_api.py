"""AIM resolution tasks: ``create_resolve_task``, ``list_resolve_tasks`` and ``list_aim_resolve_details``, and the
Magpie operations ``regenerate_resolve_task_links``, ``add_resolve_task_resolving_times`` and
``extend_resolve_task_validity`` (``/v1/magpie/resolve-tasks/{task_id}/...``, described in
:mod:`magpie_gateway.resolve_task_actions`).

Creation, states and the link rules are described in :mod:`magpie_gateway.resolve_tasks`.

``list_resolve_tasks`` filters on ``task_id``, ``task_name`` / ``tpl_name`` (contains, any case), ``tpl_id``,
``cust_flag`` and ``aim_url`` (tasks with such a link; ``aim_url`` may be the full link or ``host/code``), and the
creation window ``begin_time`` .. ``end_time`` (both or neither; without them and without ``task_id`` the last 24
hours; never older than one year). Newest first. ``params`` holds the task's first link (as KooMessage documents;
all links are in the details). Magpie extensions per task: ``task_state``, ``generation_type``, ``creation_time``,
``link_count``, ``minted_count``.

``list_aim_resolve_details`` lists links with their resolution state: the links of resolution tasks, then the
linked recipients (smart or plain-SMS fallback) of send tasks (``task_id`` may name either kind). Filters:
``task_id``, ``task_name`` / ``tpl_name`` (contains), ``tpl_id``, ``cust_flag``, ``sms_sign`` (a resolution task
signed with it / the send task's signature), ``aim_url`` (resolution-task links only: the gateway does not learn
the codes of send-task links), ``resolved_status`` and the creation window ``begin_time`` .. ``end_time`` (both or
neither, at most 24 hours apart; without them and without ``task_id`` the last 24 hours). ``resolved_status``:
``success`` resolved at least once; ``unresolved`` not yet; ``fail`` can no longer be resolved (the link was not
minted, or expired unresolved). Send-task rows have ``aim_url`` null and ``result_code`` "0". Magpie extensions per
row: ``aim_code``, ``aim_code_type``, ``resolved_times``, ``last_resolved_time``, ``sms_signs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends

from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.filing_gate import require_filing
from magpie_gateway.pagination import page
from magpie_gateway.read_model import DEGRADED, SMART, array
from magpie_gateway.resolve_task_actions import add_resolving_times, extend_validity, regenerate
from magpie_gateway.resolve_task_models import (
    AddResolvingTimesRequest,
    CreateResolveTaskRequestBody,
    CreateResolveTaskResponse,
    ExtendValidityRequest,
    ListAimResolveDetailsResponse,
    ListResolveTasksResponse,
    RegenerateResolveTaskResponse,
    ResolveTaskState,
)
from magpie_gateway.resolve_tasks import OK, TASK_PREFIX, create, detail_view, list_view
from magpie_gateway.tasks import STATE_COMPLETED, STATE_SUCCESS
from magpie_gateway.timefmt import iso, iso_from_ms, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter

router = APIRouter(tags=["AIM resolution tasks"])

DEFAULT_WINDOW = timedelta(hours=24)
MAX_DETAIL_WINDOW = timedelta(hours=24)
MAX_AGE = timedelta(days=366)
STATUSES = ("success", "fail", "unresolved")
LINKED_ROUTES = frozenset({SMART, DEGRADED})
DAY = timedelta(days=1)
DEFAULT_LIMIT = 20  # KooMessage's default page size of these two operations


@router.post("/v1/aim/resolve-tasks", response_model=CreateResolveTaskResponse, summary="create_resolve_task")
async def create_resolve_task(
    body: CreateResolveTaskRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await require_filing(context, principal.tenant_id, "AIM")
    return await create(context, principal, body)


@router.post(
    "/v1/magpie/resolve-tasks/{task_id}/regenerate",
    response_model=RegenerateResolveTaskResponse,
    summary="regenerate_resolve_task_links",
)
async def regenerate_resolve_task_links(
    task_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    """Mint again the links of the task that failed (same cust_flags, parameters and custom codes); the task state
    is recomputed. Idempotent: a task without failed links answers its state."""
    return await regenerate(context, principal, task_id)


@router.post(
    "/v1/magpie/resolve-tasks/{task_id}/resolving-times",
    response_model=ResolveTaskState,
    summary="add_resolve_task_resolving_times",
)
async def add_resolve_task_resolving_times(
    task_id: str,
    body: AddResolvingTimesRequest,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    """Raise the resolution budget of a group task's link (also after it was spent); individual tasks: 400."""
    return await add_resolving_times(context, principal, task_id, body)


@router.post(
    "/v1/magpie/resolve-tasks/{task_id}/validity",
    response_model=ResolveTaskState,
    summary="extend_resolve_task_validity",
)
async def extend_resolve_task_validity(
    task_id: str,
    body: ExtendValidityRequest,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    """Extend the validity of the task's links (days from creation: individual <= 7, group <= 180; never
    shortened); expired links resolve again."""
    return await extend_validity(context, principal, task_id, body)


def _window(begin_time: str | None, end_time: str | None, *, max_span: timedelta | None) -> tuple[datetime, datetime]:
    window = parse_window("begin_time", begin_time, "end_time", end_time)
    now = utc_now()
    if window is None:
        return now - DEFAULT_WINDOW, now
    if max_span is not None and window[1] - window[0] > max_span:
        raise invalid("begin_time and end_time must be at most 24 hours apart")
    return max(window[0], now - MAX_AGE), window[1]


def _code_of(aim_url: str) -> str:
    """The code of a link given as ``https://host/code``, ``host/code`` or the bare code."""
    return aim_url.strip().rstrip("/").rsplit("/", 1)[-1]


@router.get("/v1/aim/resolve-tasks", response_model=ListResolveTasksResponse, summary="list_resolve_tasks")
async def list_resolve_tasks(
    task_id: str | None = None,
    task_name: str | None = None,
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    cust_flag: str | None = None,
    aim_url: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit, default_limit=DEFAULT_LIMIT)
    tenant = principal.tenant_id
    c = context.collections
    query = list_filter(tenant, contains={"task_name": task_name, "tpl_name": tpl_name})
    if task_id:  # given but blank: matches nothing
        query["_id"] = task_id.strip()
    if tpl_id:
        query["tpl_id"] = tpl_id.strip()
    link_query: dict[str, Any] = {}
    if cust_flag:
        link_query["cust_flag"] = cust_flag.strip()
    if aim_url:
        link_query["code"] = _code_of(aim_url)
    if link_query:
        ids = await c.resolve_links.distinct("task_id", {"tenant_id": tenant, **link_query})
        query["_id"] = {"$in": [i for i in ids if not task_id or i == task_id.strip()]}
    if task_id and not (begin_time and end_time):
        pass  # a task by id, whenever it was created
    else:
        begin, end = _window(begin_time, end_time, max_span=None)
        query["created_at"] = {"$gte": begin, "$lte": end}
    total = await c.resolve_tasks.count_documents(query)
    if paging.beyond_window or paging.offset >= total:
        return {"resolve_tasks": [], "page_info": paging.info(total)}
    tasks = (
        await c.resolve_tasks.find(query)
        .sort([("created_at", -1), ("_id", -1)])
        .skip(paging.offset)
        .limit(paging.limit)
        .to_list(None)
    )
    firsts = await c.resolve_links.find(
        {"tenant_id": tenant, "_id": {"$in": [f"{t['_id']}:0" for t in tasks]}}
    ).to_list(None)
    first_of = {doc["task_id"]: doc for doc in firsts}
    return {
        "resolve_tasks": [list_view(task, first_of.get(task["_id"])) for task in tasks],
        "page_info": paging.info(total),
    }


@dataclass(frozen=True)
class DetailFilter:
    tenant_id: str
    task_id: str | None
    task_name: str | None
    tpl_id: str | None
    tpl_name: str | None
    cust_flag: str | None
    sms_sign: str | None
    aim_url: str | None
    status: str | None
    window: tuple[datetime, datetime] | None
    now: datetime

    def query(self, *, task_id: str, sms_sign: str, cust_flag: str | None = None) -> dict[str, Any]:
        """The filter both sources share, the fields named as in the source's documents (values are already
        normalized: None or non-blank)."""
        equal = {task_id: self.task_id, "tpl_id": self.tpl_id, sms_sign: self.sms_sign}
        if cust_flag is not None:
            equal[cust_flag] = self.cust_flag
        return list_filter(
            self.tenant_id,
            equal=equal,
            contains={"task_name": self.task_name, "tpl_name": self.tpl_name},
            created=self.window,
        )


@router.get("/v1/aim/resolve-details", response_model=ListAimResolveDetailsResponse, summary="list_aim_resolve_details")
async def list_aim_resolve_details(
    task_id: str | None = None,
    task_name: str | None = None,
    tpl_id: str | None = None,
    tpl_name: str | None = None,
    cust_flag: str | None = None,
    sms_sign: str | None = None,
    aim_url: str | None = None,
    resolved_status: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit, default_limit=DEFAULT_LIMIT)
    status = (resolved_status or "").strip().lower() or None
    if status is not None and status not in STATUSES:
        raise invalid("resolved_status must be success, fail or unresolved")
    window = None
    if not task_id or (begin_time and end_time):
        window = _window(begin_time, end_time, max_span=MAX_DETAIL_WINDOW)
    f = DetailFilter(
        tenant_id=principal.tenant_id,
        task_id=(task_id or "").strip() or None,
        task_name=task_name or None,
        tpl_id=(tpl_id or "").strip() or None,
        tpl_name=tpl_name or None,
        cust_flag=(cust_flag or "").strip() or None,
        sms_sign=(sms_sign or "").strip().strip("【】") or None,
        aim_url=(aim_url or "").strip() or None,
        status=status,
        window=window,
        now=utc_now(),
    )
    links = ResolveLinkRows(context, f)
    sends = SendTaskRows(context, f)
    link_total = await links.count()
    send_total = await sends.count()
    total = link_total + send_total
    if paging.beyond_window or paging.offset >= total:
        return {"resolve_details": [], "page_info": paging.info(total)}
    rows: list[dict[str, Any]] = []
    if paging.offset < link_total:
        rows = await links.rows(paging.offset, paging.limit)
    wanted = paging.limit - len(rows)
    if wanted > 0 and send_total:
        rows.extend(await sends.rows(max(0, paging.offset - link_total), wanted))
    return {"resolve_details": rows, "page_info": paging.info(total)}


class ResolveLinkRows:
    """The rows of resolution-task links (``resolve_links``), newest task first, then by link index."""

    def __init__(self, context: GatewayContext, f: DetailFilter) -> None:
        self.c = context.collections
        self.f = f
        self.query = self._query()

    def _query(self) -> dict[str, Any] | None:
        f = self.f
        if f.task_id is not None and not f.task_id.startswith(TASK_PREFIX):
            return None  # a send task's id
        query = f.query(task_id="task_id", sms_sign="sms_signs", cust_flag="cust_flag")
        if f.aim_url:  # a link address without a code: matches nothing
            query["code"] = _code_of(f.aim_url)
        if f.status == "success":
            query["resolved_times"] = {"$gt": 0}
        elif f.status == "unresolved":
            query.update({"resolved_times": 0, "result_code": OK, "expires_at": {"$gt": f.now}})
        elif f.status == "fail":
            query["resolved_times"] = 0
            query["$or"] = [{"result_code": {"$ne": OK}}, {"expires_at": {"$lte": f.now}}]
        return query

    async def count(self) -> int:
        return 0 if self.query is None else await self.c.resolve_links.count_documents(self.query)

    async def rows(self, offset: int, limit: int) -> list[dict[str, Any]]:
        if self.query is None:
            return []
        cursor = (
            self.c.resolve_links.find(self.query)
            .sort([("created_at", -1), ("task_id", 1), ("index", 1)])
            .skip(offset)
            .limit(limit)
        )
        return [detail_view(doc, self.f.now) for doc in await cursor.to_list(None)]


class SendTaskRows:
    """The rows of send-task recipients that got a link (routes SMART and DEGRADED), from the send read model:
    newest task first, then by recipient index. Counting and skipping use the per-batch counters, so only the
    batches of the requested page are read."""

    def __init__(self, context: GatewayContext, f: DetailFilter) -> None:
        self.c = context.collections
        self.f = f
        self.tasks: list[dict[str, Any]] | None = None
        self.counts: dict[str, dict[int, dict[str, int]]] = {}
        self.mobile_rows: list[dict[str, Any]] | None = None

    def _query(self) -> dict[str, Any] | None:
        f = self.f
        if f.aim_url or (f.task_id is not None and f.task_id.startswith(TASK_PREFIX)):
            return None
        query = f.query(task_id="_id", sms_sign="sms_sign")
        query["state"] = {"$in": [STATE_SUCCESS, STATE_COMPLETED]}
        return query

    async def _load(self) -> list[dict[str, Any]]:
        if self.tasks is not None:
            return self.tasks
        query = self._query()
        if query is None:
            self.tasks = []
            return self.tasks
        projection = {
            "task_name": 1,
            "tpl_id": 1,
            "tpl_name": 1,
            "operator": 1,
            "created_at": 1,
            "resolve_task": 1,
            "unique_recipients": 1,
            "batch_size": 1,
        }
        self.tasks = await self.c.tasks.find(query, projection).sort([("created_at", -1), ("_id", 1)]).to_list(None)
        return self.tasks

    def _expires(self, task: dict[str, Any]) -> datetime:
        days = int((task.get("resolve_task") or {}).get("expiration_time") or 7)
        created: datetime = task["created_at"]
        return created + days * DAY

    def _status(self, task: dict[str, Any], resolved_at: int) -> str:
        if resolved_at:
            return "success"
        return "fail" if self._expires(task) <= self.f.now else "unresolved"

    def _matching(self, task: dict[str, Any], c: dict[str, Any]) -> int:
        linked = int(c.get("smart", 0)) + int(c.get("degraded", 0))
        resolved = min(int(c.get("resolved", 0)), linked)
        status = self.f.status
        if status is None:
            return linked
        if status == "success":
            return resolved
        expired = self._expires(task) <= self.f.now
        if status == "fail":
            return linked - resolved if expired else 0
        return 0 if expired else linked - resolved

    async def count(self) -> int:
        tasks = await self._load()
        if not tasks:
            return 0
        if self.f.cust_flag:
            self.mobile_rows = await self._rows_of_mobile(tasks, self.f.cust_flag)
            return len(self.mobile_rows)
        ids = [t["_id"] for t in tasks]
        query = {"tenant_id": self.f.tenant_id, "task_id": {"$in": ids}}
        async for doc in self.c.batch_counts.find(query, {"task_id": 1, "batch_no": 1, "c": 1}):
            self.counts.setdefault(doc["task_id"], {})[int(doc["batch_no"])] = doc.get("c") or {}
        return sum(self._matching(t, c) for t in tasks for c in self.counts.get(t["_id"], {}).values())

    def _row(self, task: dict[str, Any], doc: dict[str, Any], position: int, resolved_at: int) -> dict[str, Any]:
        return {
            "resolve_id": f"{task['_id']}:{doc['first_index'] + position}",
            "task_id": task["_id"],
            "task_name": task.get("task_name"),
            "send_account": task.get("operator"),
            "tpl_id": task.get("tpl_id"),
            "tpl_name": task.get("tpl_name"),
            "cust_flag": doc["mobiles"][position],
            "aim_url": None,
            "result_code": OK,
            "generate_date": iso(task["created_at"]),
            "expire_date": iso(self._expires(task)),
            "resolved_time": iso_from_ms(resolved_at),
            "resolved_status": self._status(task, resolved_at),
            # Magpie extensions
            "aim_code": None,
            "aim_code_type": "individual",
            "resolved_times": 1 if resolved_at else 0,
            "last_resolved_time": iso_from_ms(resolved_at),
            "sms_signs": None,
        }

    def _rows_of_batch(self, task: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
        routes = array(doc, "route")
        resolved = array(doc, "resolved_at")
        rows: list[dict[str, Any]] = []
        for position, route in enumerate(routes):
            if route not in LINKED_ROUTES:
                continue
            if self.f.cust_flag and doc["mobiles"][position] != self.f.cust_flag:
                continue
            if self.f.status is not None and self._status(task, resolved[position]) != self.f.status:
                continue
            rows.append(self._row(task, doc, position, resolved[position]))
        return rows

    async def _rows_of_mobile(self, tasks: list[dict[str, Any]], mobile: str) -> list[dict[str, Any]]:
        by_id = {t["_id"]: t for t in tasks}
        order = {t["_id"]: i for i, t in enumerate(tasks)}
        docs = await self.c.recipient_batches.find(
            {"tenant_id": self.f.tenant_id, "task_id": {"$in": list(by_id)}, "mobiles": mobile}
        ).to_list(None)
        docs.sort(key=lambda d: (order[d["task_id"]], d["batch_no"]))
        return [row for doc in docs for row in self._rows_of_batch(by_id[doc["task_id"]], doc)]

    async def rows(self, offset: int, limit: int) -> list[dict[str, Any]]:
        if self.mobile_rows is not None:
            return self.mobile_rows[offset : offset + limit]
        tasks = await self._load()
        wanted: list[tuple[dict[str, Any], str, int]] = []  # (task, batch document id, matching rows to skip)
        before, end = 0, offset + limit
        for task in tasks:
            for batch_no, c in sorted(self.counts.get(task["_id"], {}).items()):
                n = self._matching(task, c)
                if n and before + n > offset:
                    wanted.append((task, f"{task['_id']}:{batch_no}", max(0, offset - before)))
                before += n
                if before >= end:
                    break
            if before >= end:
                break
        if not wanted:
            return []
        docs = await self.c.recipient_batches.find(
            {"tenant_id": self.f.tenant_id, "_id": {"$in": [doc_id for _, doc_id, _ in wanted]}}
        ).to_list(None)
        by_id = {doc["_id"]: doc for doc in docs}
        rows: list[dict[str, Any]] = []
        for task, doc_id, skip in wanted:
            doc = by_id.get(doc_id)
            if doc is not None:
                rows.extend(self._rows_of_batch(task, doc)[skip:])
            if len(rows) >= limit:
                break
        return rows[:limit]
