"""The projector: CLASSIFIED, DELIVERY and LINK events into the per-batch read model (see ``read_model``).

Each handler call (one partition's records) groups its events by batch document, reads those documents once,
computes the new arrays in memory and writes each changed document with ONE update that sets the changed
arrays, guarded by the document's version (optimistic concurrency: the delivery loop handles several
partitions at once, and different topics' loops may touch the same document). A document changed under us is
re-read and the events re-applied, which is safe because every projection is idempotent and order-independent.
Then the batch counters, recomputed from the arrays, are written with the new version (an older computation
never overwrites a newer one), with the unresolvable recipients by reason (``read_model.reasons``).

LINK events of resolution tasks (links minted without a send, task ids ``RT...``) have no recipient batch: they
go to :class:`magpie_gateway.resolve_task_projection.ResolutionProjection`.

Whole arrays are written rather than positional ``"status.17"`` paths: on the embedded SecantusDB a ``$set`` of
many positional paths costs far more than replacing the array (measured: 500 positions ~700 ms per document,
the whole array ~10 ms), and on MongoDB both are one document write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from pymongo import UpdateOne

from magpie.v1 import dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.ids import now_ms
from magpie_common.kafka import Decoded
from magpie_gateway import template_stats
from magpie_gateway.db import Collections
from magpie_gateway.read_model import DELIVERY_ARRAYS, RANK, array, batch_id, counters, reasons
from magpie_gateway.resolve_task_projection import ResolutionProjection, is_resolution_task
from magpie_gateway.sms_sends_api import TASK_PREFIX as PLAIN_SMS_TASK_PREFIX
from magpie_gateway.tasks import mark_batches_final

log = logging.getLogger(__name__)

PROJECTED = Counter("magpie_gateway_projected_events_total", "Recipient events projected", ["kind"])
ORPHANS = Counter(
    "magpie_gateway_projection_orphans_total", "Recipient events naming no known recipient (ignored)", ["kind"]
)
CONFLICTS = Counter("magpie_gateway_projection_conflicts_total", "Batch documents re-read after a concurrent write")

MAX_ATTEMPTS = 50
WRITE_CONCURRENCY = 16
MARKED_MEMORY = 200_000


@dataclass(frozen=True)
class Change:
    """One recipient's event: its task-level ``index``, the ``mobile`` it names (checked when given) and the
    event kind's payload."""

    index: int
    mobile: str
    payload: Any


Mutator = Callable[[dict[str, Any], list[tuple[int, Any]]], dict[str, list[Any]]]


def _classify(doc: dict[str, Any], changes: list[tuple[int, Any]]) -> dict[str, list[Any]]:
    route, reason = list(array(doc, "route")), list(array(doc, "reason"))
    for pos, (new_route, new_reason) in changes:
        route[pos], reason[pos] = new_route, new_reason
    return {"route": route, "reason": reason}


def _deliver(doc: dict[str, Any], changes: list[tuple[int, Any]]) -> dict[str, list[Any]]:
    arrays = {name: list(array(doc, name)) for name in DELIVERY_ARRAYS}
    dstat, msg_id, send_time = arrays["dstat"], arrays["msg_id"], arrays["send_time"]
    receive_time, result_code, segments = arrays["receive_time"], arrays["result_code"], arrays["segments"]
    for pos, event in changes:
        if event.msg_id and not msg_id[pos]:
            msg_id[pos] = event.msg_id
        if event.submitted_at_ms and not send_time[pos]:
            send_time[pos] = event.submitted_at_ms
        if event.segments and not segments[pos]:
            segments[pos] = event.segments
        if RANK.get(event.status, 0) > RANK.get(dstat[pos], 0):
            dstat[pos] = event.status
            if event.result_code:
                result_code[pos] = event.result_code
            if event.status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED and event.done_at_ms:
                receive_time[pos] = event.done_at_ms
    return arrays


def _resolve(doc: dict[str, Any], changes: list[tuple[int, Any]]) -> dict[str, list[Any]]:
    resolved_at = list(array(doc, "resolved_at"))
    for pos, at_ms in changes:
        if not resolved_at[pos] or at_ms < resolved_at[pos]:
            resolved_at[pos] = at_ms
    return {"resolved_at": resolved_at}


KINDS: dict[str, Mutator] = {"classified": _classify, "delivery": _deliver, "link": _resolve}


def same_number(submitted: str, named: str) -> bool:
    """Whether an event's ``mobile`` names the submitted number (events may carry it normalised, e.g. 86...)."""
    if submitted == named:
        return True
    a = "".join(ch for ch in submitted if ch.isdigit())
    b = "".join(ch for ch in named if ch.isdigit())
    return bool(a) and bool(b) and (a.endswith(b) or b.endswith(a)) and min(len(a), len(b)) >= 5


class Projector:
    def __init__(self, collections: Collections) -> None:
        self._c = collections
        self.resolutions = ResolutionProjection(collections)
        # Batches this process already recorded as final (saves a task write per later event, e.g. resolutions).
        self._marked: set[tuple[str, int]] = set()

    # --- consumer handlers ----------------------------------------------------------------------------------
    async def on_classified(self, batch: Sequence[Decoded[resolve_pb2.ClassifiedBatch]]) -> None:
        changes: dict[str, list[Change]] = defaultdict(list)
        for item in batch:
            message = item.message
            doc_id = batch_id(message.ctx.task_id, message.batch_no)
            for r in message.recipients:
                changes[doc_id].append(Change(r.index, r.mobile, (int(r.route), r.reason)))
        await self.apply("classified", changes)
        await template_stats.record_vendors(self._c, [item.message for item in batch])

    async def on_delivery(self, batch: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        changes: dict[str, list[Change]] = defaultdict(list)
        for item in batch:
            for event in item.message.events:
                if event.status == dispatch_pb2.DELIVERY_STATUS_UNSPECIFIED:
                    continue
                if event.task_id.startswith(PLAIN_SMS_TASK_PREFIX):
                    continue  # plain SMS sends (sms_sends_api) have no read-model batch; receipts report them
                changes[batch_id(event.task_id, event.batch_no)].append(Change(event.index, event.mobile, event))
        await self.apply("delivery", changes)

    async def on_link(self, batch: Sequence[Decoded[link_pb2.LinkEvent]]) -> None:
        changes: dict[str, list[Change]] = defaultdict(list)
        resolution_tasks: list[link_pb2.LinkEvent] = []
        for item in batch:
            event = item.message
            if is_resolution_task(event.task_id):
                resolution_tasks.append(event)
                continue
            if event.type != link_pb2.LINK_EVENT_TYPE_RESOLVED:
                continue
            at_ms = event.at_ms or event.meta.occurred_at_ms or now_ms()
            changes[batch_id(event.task_id, event.batch_no)].append(Change(event.index, event.mobile, at_ms))
        if resolution_tasks:
            await self.resolutions.on_link(resolution_tasks)
        await self.apply("link", changes)
        await template_stats.record_link_events(self._c, [item.message for item in batch])

    # --- the write path -------------------------------------------------------------------------------------
    async def apply(self, kind: str, changes: dict[str, list[Change]]) -> None:
        """Apply ``changes`` (by batch document id) of one event kind; returns when they are durable."""
        pending = {doc_id: items for doc_id, items in changes.items() if items}
        attempts = 0
        while pending:
            attempts += 1
            if attempts > MAX_ATTEMPTS:
                raise RuntimeError(f"batch documents kept changing under the projector: {sorted(pending)[:5]}")
            conflicted, finals = await self._apply_once(kind, pending)
            finals = [f for f in finals if f not in self._marked]
            if finals:
                await mark_batches_final(self._c, finals)
                if len(self._marked) > MARKED_MEMORY:
                    self._marked.clear()
                self._marked.update(finals)
            if conflicted:
                CONFLICTS.inc(len(conflicted))
            pending = {doc_id: pending[doc_id] for doc_id in conflicted}

    async def _apply_once(self, kind: str, pending: dict[str, list[Change]]) -> tuple[list[str], list[tuple[str, int]]]:
        """One read-compute-write round; returns the documents changed under us and the (task, batch) pairs
        whose recipients are now all final."""
        mutate = KINDS[kind]
        docs = await self._c.recipient_batches.find({"_id": {"$in": list(pending)}}).to_list(None)
        found = {doc["_id"]: doc for doc in docs}
        writes: list[tuple[dict[str, Any], dict[str, Any], dict[str, int], dict[str, int]]] = []
        finals: list[tuple[str, int]] = []
        for doc_id, items in pending.items():
            doc = found.get(doc_id)
            if doc is None:
                ORPHANS.labels(kind).inc(len(items))
                log.warning("events for an unknown recipient batch ignored", extra={"batch": doc_id, "kind": kind})
                continue
            positioned = self._positions(kind, doc, items)
            if not positioned:
                continue
            new_arrays = mutate(doc, positioned)
            changed = {name: values for name, values in new_arrays.items() if values != array(doc, name)}
            PROJECTED.labels(kind).inc(len(positioned))
            if not changed:
                # A replay, or nothing new: no write. Re-record finality in case a crash lost it.
                if counters(doc)["final"] == doc["n"]:
                    finals.append((doc["task_id"], doc["batch_no"]))
                continue
            updated = {**doc, **changed}
            writes.append((doc, changed, counters(updated), reasons(updated)))
        if not writes:
            return [], finals
        semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(doc: dict[str, Any], changed: dict[str, Any]) -> bool:
            async with semaphore:
                result = await self._c.recipient_batches.update_one(
                    {"_id": doc["_id"], "v": doc["v"]}, {"$set": {**changed, "v": doc["v"] + 1}}
                )
                return result.matched_count == 1

        results = await asyncio.gather(*(write(doc, changed) for doc, changed, _, _ in writes))
        conflicted = [doc["_id"] for (doc, _, _, _), ok in zip(writes, results, strict=True) if not ok]
        count_ops = [
            UpdateOne({"_id": doc["_id"], "v": {"$lt": doc["v"] + 1}}, {"$set": {"c": c, "r": r, "v": doc["v"] + 1}})
            for (doc, _, c, r), ok in zip(writes, results, strict=True)
            if ok
        ]
        if count_ops:
            await self._c.batch_counts.bulk_write(count_ops, ordered=False)
        finals.extend(
            (doc["task_id"], doc["batch_no"])
            for (doc, _, c, _), ok in zip(writes, results, strict=True)
            if ok and c["final"] == doc["n"]
        )
        return conflicted, finals

    @staticmethod
    def _positions(kind: str, doc: dict[str, Any], items: list[Change]) -> list[tuple[int, Any]]:
        positioned: list[tuple[int, Any]] = []
        first, n, mobiles = doc["first_index"], doc["n"], doc["mobiles"]
        for change in items:
            pos = change.index - first
            if not 0 <= pos < n or (change.mobile and not same_number(mobiles[pos], change.mobile)):
                ORPHANS.labels(kind).inc()
                log.warning(
                    "event names no recipient of its batch; ignored",
                    extra={"batch": doc["_id"], "index": change.index, "kind": kind},
                )
                continue
            positioned.append((pos, change.payload))
        return positioned
