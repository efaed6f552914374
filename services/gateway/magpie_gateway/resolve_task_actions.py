"""Changing a resolution task after its creation (product spec §2: "regenerate failed; add resolution count;
extend validity"). Magpie operations, no KooMessage SDK counterpart:

``POST /v1/magpie/resolve-tasks/{task_id}/regenerate`` (``regenerate_resolve_task_links``)
    Mints again the links that failed (``result_code`` not "0": a custom short code that was taken, the shortlink
    service unreachable, a creation interrupted), with the same ``cust_flag``, card parameters, custom URL and
    custom short code, and the task's *current* limits (validity, budget). Links already minted are not touched.
    The task state is recomputed from all its links (success | partial | failed). Idempotent: a task without
    failed links answers its state with ``regenerated_count`` 0; a link that fails again (its custom code is still
    taken) keeps its failure code. A task that has expired is refused (KM.00000464: extend its validity first,
    a link minted already expired would be useless).

``POST /v1/magpie/resolve-tasks/{task_id}/resolving-times`` (``add_resolve_task_resolving_times``)
    Raises the budget of a group task's link: ``{"add_resolving_times": n}`` adds n, ``{"resolving_times": n}``
    sets the total (idempotent; equal to the current budget = no change; lower = KM.00000463). Individual tasks
    answer KM.00000463 (an individual link resolves once by definition). The edge applies the new budget from the
    next resolution on, also to a link that had spent its budget (410 before, resolvable after). Raising the budget
    of an expired link is allowed (it counts once the validity is extended). A retried ``add_resolving_times``
    after a lost answer adds again unless it carries the same ``Idempotency-Key`` (use ``resolving_times`` to be
    safe without one).

``POST /v1/magpie/resolve-tasks/{task_id}/validity`` (``extend_resolve_task_validity``)
    ``{"expiration_time": days}``: the new validity counted from the task's creation, like ``expiration_time`` of
    ``create_resolve_task``, so at most 7 days for individual and 180 for group links (KM.00000464 beyond), and
    never shorter than now (KM.00000464; equal = no change, idempotent). **Expired links may be extended** and then
    resolve again: a customer whose campaign ran longer than planned must not have to send new SMS. They can be
    extended while the edge still keeps them (``MAGPIE_SHORTLINK_EXPIRED_RETENTION_S`` after expiry, 30 days by
    default; later the code may have been given to another link, KM.00000464). An individual link's first
    resolution stays the billable one after an extension (a resolution after an extension that follows the
    expiry of a link resolved before is reported again under the same stable event id, which billing and the
    resolution counts deduplicate). Links that were never minted take the new validity when regenerated.

All three: another tenant's task (or an unknown id) answers 404 KM.00000404. While a task is being created
(state ``generating``) or another of these requests changes it, the request answers 409 KM.00000462 (retry);
a task left ``generating`` by an interrupted creation for longer than ``GENERATING_STALE`` is treated as having
failed links (regenerate mints them). The change is made at the shortlink service first
(``/internal/resolution-links/update``, values only raised there), then recorded here, so a request retried after
a 503 KM.00000460 (shortlink unreachable) or a lost answer reaches the same end state. The answer is the task's
state with all its links (``ResolveTaskState``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal
from magpie_gateway.context import GatewayContext
from magpie_gateway.resolve_task_models import AddResolvingTimesRequest, ExtendValidityRequest
from magpie_gateway.resolve_tasks import (
    GROUP,
    MAX_DAYS,
    MAX_RESOLVING_TIMES,
    MINT_PATH,
    OK,
    STATE_GENERATING,
    TOKEN_HEADER,
    LinkPlan,
    TaskPlan,
    mint,
    state_of,
    store_results,
)
from magpie_gateway.timefmt import iso, to_ms, utc_now
from magpie_gateway.upstream import UpstreamRefused, UpstreamUnavailable, post_json, unavailable
from magpie_gateway.validation import invalid

UPDATE_PATH = MINT_PATH + "/update"
MIN_GENERATING_STALE = timedelta(seconds=60)
MIN_LEASE = timedelta(seconds=15)


def generating_stale(context: GatewayContext) -> timedelta:
    """How long a task may stay ``generating`` before it counts as interrupted (a creation takes at most one
    shortlink call)."""
    return max(MIN_GENERATING_STALE, timedelta(seconds=3 * context.config.upstream_timeout_s))


def lease_time(context: GatewayContext) -> timedelta:
    """How long one change holds the task (one shortlink call and a few writes); a crashed holder's lease lapses."""
    return max(MIN_LEASE, timedelta(seconds=2 * context.config.upstream_timeout_s + 5))


# --- loading and holding a task -------------------------------------------------------------------------------------


async def load_task(context: GatewayContext, tenant_id: str, task_id: str) -> dict[str, Any]:
    task = await context.collections.resolve_tasks.find_one({"_id": task_id, "tenant_id": tenant_id})
    if task is None:
        raise codes.not_found(f"resolution task {task_id}")
    return task


async def load_links(context: GatewayContext, task: dict[str, Any]) -> list[dict[str, Any]]:
    query = {"tenant_id": task["tenant_id"], "task_id": task["_id"]}
    return list(await context.collections.resolve_links.find(query).sort("index", 1).to_list(None))


def check_not_generating(context: GatewayContext, task: dict[str, Any], now: datetime) -> None:
    if task["state"] == STATE_GENERATING and task["created_at"] > now - generating_stale(context):
        raise codes.fail(codes.RESOLVE_TASK_BUSY, f"the links of task {task['_id']} are being generated")


@contextlib.asynccontextmanager
async def holding(context: GatewayContext, task: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The task, re-read while this request holds it (one change at a time; a lapsed lease can be taken)."""
    now = utc_now()
    check_not_generating(context, task, now)
    holder = new_id("LS")
    c = context.collections.resolve_tasks
    key = {"_id": task["_id"], "tenant_id": task["tenant_id"]}
    taken = await c.find_one_and_update(
        {**key, "$or": [{"busy_until": None}, {"busy_until": {"$lte": now}}]},
        {"$set": {"busy_until": now + lease_time(context), "busy_by": holder}},
        return_document=ReturnDocument.AFTER,
    )
    if taken is None:
        raise codes.fail(codes.RESOLVE_TASK_BUSY, f"task {task['_id']} is being changed by another request")
    try:
        check_not_generating(context, taken, now)
        yield taken
    finally:
        await c.update_one({**key, "busy_by": holder}, {"$unset": {"busy_until": "", "busy_by": ""}})


# --- the shortlink side ---------------------------------------------------------------------------------------------


async def change_links(
    context: GatewayContext,
    task: dict[str, Any],
    links: list[dict[str, Any]],
    *,
    expires_at: datetime | None = None,
    max_resolutions: int | None = None,
) -> None:
    """Raise the limits of minted links at the shortlink service (all or none)."""
    config = context.config
    body = {
        "tenant_id": task["tenant_id"],
        "task_id": task["_id"],
        "links": [{"index": doc["index"], "code": doc["code"]} for doc in links],
        "expires_at_ms": to_ms(expires_at) if expires_at is not None else None,
        "max_resolutions": max_resolutions,
    }
    try:
        if not config.shortlink_internal_token:
            raise UpstreamUnavailable("MAGPIE_SHORTLINK_INTERNAL_TOKEN is not configured")
        answer = await post_json(
            config.shortlink_url,
            UPDATE_PATH,
            body,
            timeout_s=config.upstream_timeout_s,
            headers={TOKEN_HEADER: config.shortlink_internal_token},
            service="shortlink",
        )
    except (UpstreamUnavailable, UpstreamRefused) as exc:
        raise unavailable("shortlink") from exc
    missing = answer.get("missing")
    if not isinstance(missing, list) or not isinstance(answer.get("links"), list):
        raise unavailable("shortlink")
    if missing:
        flags = [doc.get("cust_flag") or str(doc["index"]) for doc in links if doc["index"] in set(missing)]
        raise codes.fail(
            codes.VALIDITY_INVALID,
            f"links {', '.join(flags)} expired longer ago than the edge keeps expired links: they cannot be changed",
        )


# --- the three operations -------------------------------------------------------------------------------------------


def plan_of(task: dict[str, Any], links: list[dict[str, Any]]) -> TaskPlan:
    """The minting plan of ``links`` of a stored task (its current limits)."""
    return TaskPlan(
        task_name=task.get("task_name"),
        tpl_id=task["tpl_id"],
        sms_signs=task["sms_signs"],
        kind=task["aim_code_type"],
        generation_type=task.get("generation_type") or "1",
        domain=task.get("domain"),
        days=int(task["expiration_time"]),
        resolving_times=int(task["resolving_times"]),
        links=[
            LinkPlan(
                index=int(doc["index"]),
                cust_flag=doc.get("cust_flag") or "",
                dync_params={p["k"]: p["v"] for p in doc.get("dync_params", [])},
                custom_url=doc.get("custom_url") or "",
                custom_short_code=doc.get("custom_short_code") or "",
            )
            for doc in links
        ],
    )


async def _record_state(context: GatewayContext, task: dict[str, Any], links: list[dict[str, Any]]) -> None:
    minted = sum(1 for doc in links if doc.get("result_code") == OK)
    state = state_of(minted, len(links))
    key = {"_id": task["_id"], "tenant_id": task["tenant_id"]}
    await context.collections.resolve_tasks.update_one(key, {"$set": {"state": state, "minted": minted}})
    task.update(state=state, minted=minted)


async def regenerate(context: GatewayContext, principal: Principal, task_id: str) -> dict[str, Any]:
    task = await load_task(context, principal.tenant_id, task_id)
    async with holding(context, task) as task:
        links = await load_links(context, task)
        failed = [doc for doc in links if doc.get("result_code") != OK]
        if failed and task["expires_at"] <= utc_now():
            raise codes.fail(
                codes.VALIDITY_INVALID,
                f"task {task_id} expired at {iso(task['expires_at'])}: extend its validity before regenerating",
            )
        if failed:
            try:
                results = await mint(context, task, plan_of(task, failed))
            except (UpstreamUnavailable, UpstreamRefused) as exc:
                unknown = [doc["_id"] for doc in failed if not doc.get("result_code")]
                if unknown:  # links of an interrupted creation: now known to have failed
                    await context.collections.resolve_links.update_many(
                        {"_id": {"$in": unknown}, "tenant_id": task["tenant_id"]},
                        {"$set": {"result_code": codes.UPSTREAM_UNAVAILABLE.code, "error_message": str(exc)}},
                    )
                    for doc in failed:
                        doc["result_code"] = doc.get("result_code") or codes.UPSTREAM_UNAVAILABLE.code
                    await _record_state(context, task, links)
                raise unavailable("shortlink") from exc
            await store_results(context, failed, results)
        await _record_state(context, task, links)
    regenerated = sum(1 for doc in failed if doc["result_code"] == OK)
    return {**state_view(task, links), "regenerated_count": regenerated}


async def add_resolving_times(
    context: GatewayContext, principal: Principal, task_id: str, body: AddResolvingTimesRequest
) -> dict[str, Any]:
    if (body.add_resolving_times is None) == (body.resolving_times is None):
        raise invalid("give exactly one of add_resolving_times (an increment) and resolving_times (the new total)")
    task = await load_task(context, principal.tenant_id, task_id)
    if task["aim_code_type"] != GROUP:
        raise codes.fail(
            codes.RESOLVING_TIMES_INVALID,
            f"task {task_id} has individual links, which resolve once by definition; only a group link's budget "
            "can be raised",
        )
    async with holding(context, task) as task:
        current = int(task["resolving_times"])
        if body.resolving_times is not None:
            target = body.resolving_times
            if target < current:
                raise codes.fail(
                    codes.RESOLVING_TIMES_INVALID,
                    f"resolving_times {target} is below the current budget {current}: it can only be raised",
                )
        else:
            target = current + int(body.add_resolving_times or 0)
        if target > MAX_RESOLVING_TIMES:
            raise codes.fail(codes.RESOLVING_TIMES_INVALID, f"the budget can be at most {MAX_RESOLVING_TIMES}")
        links = await load_links(context, task)
        if target != current:
            minted = [doc for doc in links if doc.get("result_code") == OK]
            if minted:
                await change_links(context, task, minted, max_resolutions=target)
            key = {"tenant_id": task["tenant_id"], "task_id": task["_id"]}
            await context.collections.resolve_links.update_many(key, {"$max": {"max_resolutions": target}})
            await context.collections.resolve_tasks.update_one(
                {"_id": task["_id"], "tenant_id": task["tenant_id"]}, {"$max": {"resolving_times": target}}
            )
            task["resolving_times"] = target
            for doc in links:
                doc["max_resolutions"] = max(int(doc.get("max_resolutions") or 0), target)
    return state_view(task, links)


async def extend_validity(
    context: GatewayContext, principal: Principal, task_id: str, body: ExtendValidityRequest
) -> dict[str, Any]:
    task = await load_task(context, principal.tenant_id, task_id)
    days = body.expiration_time
    kind = task["aim_code_type"]
    if days > MAX_DAYS[kind]:
        raise codes.fail(
            codes.VALIDITY_INVALID,
            f"{kind} links are valid at most {MAX_DAYS[kind]} days from the task's creation (asked {days})",
        )
    async with holding(context, task) as task:
        current = int(task["expiration_time"])
        if days < current:
            raise codes.fail(
                codes.VALIDITY_INVALID,
                f"the links are valid {current} days from creation; the validity is extended, never shortened",
            )
        links = await load_links(context, task)
        if days != current:
            expires_at: datetime = task["created_at"] + timedelta(days=days)
            minted = [doc for doc in links if doc.get("result_code") == OK]
            if minted:
                await change_links(context, task, minted, expires_at=expires_at)
            key = {"tenant_id": task["tenant_id"], "task_id": task["_id"]}
            await context.collections.resolve_links.update_many(key, {"$max": {"expires_at": expires_at}})
            await context.collections.resolve_tasks.update_one(
                {"_id": task["_id"], "tenant_id": task["tenant_id"]},
                {"$max": {"expiration_time": days, "expires_at": expires_at}},
            )
            task.update(expiration_time=days, expires_at=expires_at)
            for doc in links:
                doc["expires_at"] = max(doc["expires_at"], expires_at)
    return state_view(task, links)


# --- the answer -----------------------------------------------------------------------------------------------------


def link_state(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": int(doc["index"]),
        "cust_flag": doc.get("cust_flag") or None,
        "aim_url": doc.get("aim_url") or None,
        "aim_code": doc.get("code") or None,
        "custom_short_code": doc.get("custom_short_code") or None,
        "result_code": doc.get("result_code") or None,
        "error_message": doc.get("error_message") or None,
        "max_resolutions": int(doc.get("max_resolutions") or 0),
        "resolved_times": int(doc.get("resolved_times") or 0),
        "generate_date": iso(doc["created_at"]),
        "expire_date": iso(doc["expires_at"]),
    }


def state_view(task: dict[str, Any], links: list[dict[str, Any]]) -> dict[str, Any]:
    """``ResolveTaskState`` of a task and its links."""
    return {
        "task_id": task["_id"],
        "task_name": task.get("task_name"),
        "tpl_id": task["tpl_id"],
        "aim_code_type": task["aim_code_type"],
        "task_state": task["state"],
        "resolving_times": int(task["resolving_times"]),
        "resolved_times": int(task.get("resolved_times") or 0),
        "expiration_time": int(task["expiration_time"]),
        "creation_time": iso(task["created_at"]),
        "expire_date": iso(task["expires_at"]),
        "link_count": int(task.get("link_count") or len(links)),
        "minted_count": int(task.get("minted") or 0),
        "params": [link_state(doc) for doc in links],
    }
