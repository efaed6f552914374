"""Resolutions of resolution-task links (LINK events whose ``task_id`` is a resolution task, ``RT...``) into the
``resolve_links`` documents (``resolved_times``, ``first_resolved_at``, ``last_resolved_at``) and the task's
``resolved_times``.

Only billable RESOLVED events count (clicks and repeat resolutions of an individual link do not):

- an individual link's billable event is its first resolution: ``resolved_times`` becomes 1;
- a group link's n-th counted resolution has the stable event id ``resolved.<code>.<n>`` (minted by the shortlink
  edge, see ``magpie_shortlink.resolution_links``): ``resolved_times`` becomes at least n.

Every update is a ``$max`` / ``$min``, so replayed, duplicated and reordered events change nothing twice. The task's
``resolved_times`` is the sum over its links (at most 100), recomputed for the tasks an event batch touched and
written with ``$max`` (a slower, older computation never lowers it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo import UpdateOne

from magpie.v1 import link_pb2
from magpie_common.ids import now_ms
from magpie_gateway.db import Collections
from magpie_gateway.timefmt import from_ms

log = logging.getLogger(__name__)

RESOLUTION_TASK_PREFIX = "RT"
_COUNTED_EVENT_ID = re.compile(r"resolved\.([0-9A-Za-z]+)\.(\d+)")

PROJECTED = Counter("magpie_gateway_resolution_task_events_total", "Resolution-task link events projected", ["kind"])


def is_resolution_task(task_id: str) -> bool:
    return task_id.startswith(RESOLUTION_TASK_PREFIX)


def link_id(task_id: str, index: int) -> str:
    return f"{task_id}:{index}"


def ordinal(event: link_pb2.LinkEvent) -> int:
    """How many resolutions this billable event proves: n for a group link's n-th, else 1."""
    match = _COUNTED_EVENT_ID.fullmatch(event.meta.event_id)
    if match is not None and match.group(1) == event.code:
        return max(1, int(match.group(2)))
    return 1


class ResolutionProjection:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def on_link(self, events: Sequence[link_pb2.LinkEvent]) -> None:
        per_link: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            if event.type != link_pb2.LINK_EVENT_TYPE_RESOLVED or not event.billable:
                PROJECTED.labels("ignored").inc()
                continue
            tenant = event.meta.tenant_id
            at: datetime = from_ms(event.at_ms or event.meta.occurred_at_ms or now_ms())
            key = (tenant, link_id(event.task_id, event.index))
            state = per_link.setdefault(key, {"n": 0, "first": at, "last": at, "task": event.task_id})
            state["n"] = max(state["n"], ordinal(event))
            state["first"] = min(state["first"], at)
            state["last"] = max(state["last"], at)
        if not per_link:
            return
        ops = [
            UpdateOne(
                {"_id": doc_id, "tenant_id": tenant},
                {
                    "$max": {"resolved_times": state["n"], "last_resolved_at": state["last"]},
                    "$min": {"first_resolved_at": state["first"]},
                },
            )
            for (tenant, doc_id), state in per_link.items()
        ]
        result = await self._c.resolve_links.bulk_write(ops, ordered=False)
        PROJECTED.labels("resolved").inc(len(ops))
        if result.matched_count < len(ops):
            PROJECTED.labels("orphan").inc(len(ops) - result.matched_count)
            log.warning(
                "resolutions of unknown resolution-task links ignored",
                extra={"links": len(ops) - result.matched_count},
            )
        await self._task_totals({(tenant, state["task"]) for (tenant, _), state in per_link.items()})

    async def _task_totals(self, tasks: set[tuple[str, str]]) -> None:
        totals: dict[tuple[str, str], int] = dict.fromkeys(tasks, 0)
        query = {
            "tenant_id": {"$in": sorted({tenant for tenant, _ in tasks})},
            "task_id": {"$in": sorted({task_id for _, task_id in tasks})},
        }
        async for doc in self._c.resolve_links.find(query, {"tenant_id": 1, "task_id": 1, "resolved_times": 1}):
            key = (doc["tenant_id"], doc["task_id"])
            if key in totals:
                totals[key] += int(doc.get("resolved_times") or 0)
        ops = [
            UpdateOne({"_id": task_id, "tenant_id": tenant}, {"$max": {"resolved_times": total}})
            for (tenant, task_id), total in totals.items()
        ]
        if ops:
            await self._c.resolve_tasks.bulk_write(ops, ordered=False)
