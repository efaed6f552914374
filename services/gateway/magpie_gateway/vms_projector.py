"""The VMS projector: VMS_DELIVERY events (``DeliveryBatch`` from the dispatcher's vms role) into the VMS tasks.

Each task document keeps one status per recipient (``st``, indexed like the task's recipients: 0 waiting,
1 submitted, 2 delivered, 3 failed, 4 timeout; the ``DeliveryStatus`` numbers) and the counters derived from it.
A recipient's status only moves forward: a submission never replaces a final status and the first final status
stays (the dispatcher produces one final state per message; a replay changes nothing). So applying events is
idempotent and order-independent, and the counters are recomputed from ``st`` rather than incremented.

Each handler call groups its events by task, reads those tasks once, and writes each changed task with one update
guarded by its version ``v`` (optimistic concurrency: the partitions of one task's batches are handled
concurrently); a task changed under us is re-read and its events re-applied. Events naming an unknown task or a
recipient the task does not have are counted (``magpie_gateway_vms_orphans_total``) and skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from magpie.v1 import dispatch_pb2
from magpie_common.kafka import Decoded
from magpie_gateway.db import Collections
from magpie_gateway.projector import same_number
from magpie_gateway.vms_tasks import STATE_COMPLETE, STATE_FAILED, STATE_PROCESSING, STATE_SUBMITTED

log = logging.getLogger(__name__)

PROJECTED = Counter("magpie_gateway_vms_projected_events_total", "VMS delivery events projected", ["status"])
ORPHANS = Counter("magpie_gateway_vms_orphans_total", "VMS delivery events naming no known recipient (ignored)")

SUBMITTED = dispatch_pb2.DELIVERY_STATUS_SUBMITTED
DELIVERED = dispatch_pb2.DELIVERY_STATUS_DELIVERED
FAILED = dispatch_pb2.DELIVERY_STATUS_FAILED
TIMEOUT = dispatch_pb2.DELIVERY_STATUS_TIMEOUT
FINAL = frozenset({DELIVERED, FAILED, TIMEOUT})
MAX_ATTEMPTS = 50


def advance(current: int, new: int) -> int:
    """The recipient's status after ``new``: forward only, the first final status stays."""
    if current in FINAL:
        return current
    if new in FINAL:
        return new
    return max(current, new)


def counters(st: list[int]) -> dict[str, Any]:
    success = sum(1 for s in st if s == DELIVERED)
    failed = sum(1 for s in st if s == FAILED)
    timeout = sum(1 for s in st if s == TIMEOUT)
    submitted = sum(1 for s in st if s != 0)
    final = success + failed + timeout
    if st and final == len(st):
        state = STATE_COMPLETE if success else STATE_FAILED
    elif submitted:
        state = STATE_PROCESSING
    else:
        state = STATE_SUBMITTED
    return {
        "success_count": success,
        "failed_count": failed,
        "timeout_count": timeout,
        "submitted_count": submitted,
        "task_state": state,
    }


class VmsProjector:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def on_delivery(self, batch: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        by_task: dict[str, list[dispatch_pb2.DeliveryEvent]] = defaultdict(list)
        for item in batch:
            for event in item.message.events:
                if event.status != dispatch_pb2.DELIVERY_STATUS_UNSPECIFIED and event.task_id:
                    by_task[event.task_id].append(event)
        for task_id, events in by_task.items():
            await self.apply(task_id, events)

    async def apply(self, task_id: str, events: list[dispatch_pb2.DeliveryEvent]) -> bool:
        """Apply one task's events; False when the task is unknown."""
        tasks = self._c.vms_tasks
        for _ in range(MAX_ATTEMPTS):
            doc = await tasks.find_one({"_id": task_id}, {"st": 1, "mobiles": 1, "v": 1, "tenant_id": 1})
            if doc is None:
                ORPHANS.inc(len(events))
                log.warning("VMS events of an unknown task ignored", extra={"task_id": task_id, "count": len(events)})
                return False
            st = list(doc["st"])
            mobiles = doc["mobiles"]
            for event in events:
                pos = event.index
                tenant_ok = not event.tenant_id or event.tenant_id == doc["tenant_id"]
                if (
                    not 0 <= pos < len(st)
                    or not tenant_ok
                    or (event.mobile and not same_number(mobiles[pos], event.mobile))
                ):
                    ORPHANS.inc()
                    log.warning("VMS event names no recipient of its task", extra={"task_id": task_id, "index": pos})
                    continue
                st[pos] = advance(st[pos], int(event.status))
                PROJECTED.labels(dispatch_pb2.DeliveryStatus.Name(event.status)).inc()
            if st == doc["st"]:
                return True
            result = await tasks.update_one(
                {"_id": task_id, "v": doc["v"]}, {"$set": {"st": st, "v": doc["v"] + 1, **counters(st)}}
            )
            if result.matched_count == 1:
                return True
        raise RuntimeError(f"VMS task {task_id} kept changing under the projector")
