"""Per-template daily counters behind ``list_aim_template_reports``, kept from the short-link events.

What is counted (one row per template, day and handset vendor; ``AIMTemplateReport``'s fields):

=================  ==================================================================================
``resolving_times``  billable resolutions: the first resolution of each link (what is charged)
``expose_pv``        every resolution (the card was rendered; a recipient re-opening the message counts again)
``expose_uv``        distinct recipients (link + number) whose card was rendered that day
``click_pv``         every click on the short link in a browser (the H5 landing page; e.g. a plain-SMS fallback)
``click_uv``         distinct recipients (link + number) that clicked that day
=================  ==================================================================================

A day is a calendar day at the UTC offset ``MAGPIE_REPORT_UTC_OFFSET_MINUTES`` (default 480, China Standard Time
as in KooMessage's console); it is fixed when an event is counted, so changing it affects later events only.
Unlike KooMessage (data of a day available the next day after 16:00), the counters are updated as the events
arrive.

The vendor of a recipient is the handset vendor the number resolver classified it with (``record_vendors`` keeps
it per recipient batch in ``recipient_vendors``, 190 days); events of recipients without a known vendor (and of
links not minted for a send task) are counted under vendor ``""``: in the totals, not under any vendor filter.

Exactly once: every event is represented by de-duplication marks (``template_stat_marks``: ``e:<event id>`` for
the pv counters, ``u:<day, visitor>`` for the uv counters) inserted in the same MongoDB transaction as the counter
increments. A replayed or duplicated event finds its marks and counts nothing; a crash before the commit leaves
neither marks nor increments. Marks expire after 35 days (far beyond the topic's retention and any replay).

Hooks (called by the projector after its own work, see ``projector.py``)::

    await template_stats.record_vendors(self._c, [item.message for item in batch])       # on_classified
    await template_stats.record_link_events(self._c, [item.message for item in batch])   # on_link
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo import ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure

from magpie.v1 import link_pb2, resolve_pb2
from magpie_common.config import env_int
from magpie_common.ids import now_ms, stable_id
from magpie_gateway.db import Collections
from magpie_gateway.timefmt import from_ms, to_ms, utc_now

log = logging.getLogger(__name__)

COUNTERS = ("resolving_times", "expose_pv", "expose_uv", "click_pv", "click_uv")
KINDS = {link_pb2.LINK_EVENT_TYPE_RESOLVED: "expose", link_pb2.LINK_EVENT_TYPE_CLICKED: "click"}
CHUNK_MARKS = 1000
MAX_ATTEMPTS = 30
DUPLICATE_KEY = 11000
WRITE_CONFLICT = 112
NO_SUCH_TRANSACTION = 251

COUNTED = Counter("magpie_gateway_template_stats_events_total", "Link events counted in template reports", ["kind"])
DUPLICATES = Counter("magpie_gateway_template_stats_duplicates_total", "Link events already counted (replays)")
RETRIES = Counter("magpie_gateway_template_stats_retries_total", "Template counter transactions retried", ["reason"])


def utc_offset_minutes() -> int:
    return env_int("MAGPIE_REPORT_UTC_OFFSET_MINUTES", 480)


def day_start(at_ms: int, offset_minutes: int | None = None) -> datetime:
    """The UTC instant at which the report day of ``at_ms`` begins."""
    offset = utc_offset_minutes() if offset_minutes is None else offset_minutes
    shift = offset * 60_000
    day_ms = 86_400_000
    return from_ms((at_ms + shift) // day_ms * day_ms - shift)


def stat_id(tenant_id: str, tpl_id: str, day: datetime, vendor: str) -> str:
    return stable_id("template-day", tenant_id, tpl_id, to_ms(day), vendor)


def batch_key(task_id: str, batch_no: int) -> str:
    return f"{task_id}:{batch_no}"


# --- recipients' vendors (CLASSIFIED) ------------------------------------------------------------------------------
async def record_vendors(collections: Collections, batches: Sequence[resolve_pb2.ClassifiedBatch]) -> None:
    """Remember the handset vendor of every classified recipient that has one (idempotent: replace by a stable id)."""
    ops: list[ReplaceOne[Any]] = []
    now = utc_now()
    for message in batches:
        pairs = [(r.index, r.vendor.strip().upper()) for r in message.recipients if r.vendor.strip()]
        if not pairs or not message.ctx.task_id:
            continue
        key = batch_key(message.ctx.task_id, message.batch_no)
        indices = [index for index, _ in pairs]
        doc_id = stable_id("recipient-vendors", key, min(indices), max(indices), len(indices))
        doc = {
            "_id": doc_id,
            "batch_key": key,
            "indices": indices,
            "vendors": [vendor for _, vendor in pairs],
            "created_at": now,
        }
        ops.append(ReplaceOne({"_id": doc_id}, doc, upsert=True))
    if not ops:
        return
    try:
        await collections.recipient_vendors.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:  # a concurrent upsert of the same document wrote the same content
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise


async def vendors_of(collections: Collections, events: Sequence[link_pb2.LinkEvent]) -> dict[tuple[str, int, int], str]:
    """(task, batch, index) -> vendor for the recipients the events name."""
    keys = sorted({batch_key(e.task_id, e.batch_no) for e in events if e.task_id})
    found: dict[tuple[str, int, int], str] = {}
    if not keys:
        return found
    async for doc in collections.recipient_vendors.find({"batch_key": {"$in": keys}}):
        task_id, _, batch_no = doc["batch_key"].rpartition(":")
        for index, vendor in zip(doc["indices"], doc["vendors"], strict=True):
            found[(task_id, int(batch_no), int(index))] = vendor
    return found


# --- link events (LINK) --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mark:
    """One de-duplication mark: the counter document it increments and which counters."""

    stat_id: str
    counters: tuple[str, ...]


def marks_of(
    events: Sequence[link_pb2.LinkEvent], vendors: dict[tuple[str, int, int], str], offset_minutes: int
) -> tuple[dict[str, Mark], dict[str, dict[str, Any]]]:
    """The marks of the events (first occurrence wins) and the identity fields of each counter document."""
    marks: dict[str, Mark] = {}
    identities: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = KINDS.get(event.type)
        tenant = event.meta.tenant_id
        if kind is None or not tenant or not event.tpl_id:
            continue
        at_ms = event.at_ms or event.meta.occurred_at_ms or now_ms()
        day = day_start(at_ms, offset_minutes)
        vendor = vendors.get((event.task_id, event.batch_no, event.index), "")
        sid = stat_id(tenant, event.tpl_id, day, vendor)
        identities[sid] = {"tenant_id": tenant, "tpl_id": event.tpl_id, "day": day, "vendor": vendor}
        event_id = event.meta.event_id or stable_id("link", event.type, event.code, event.at_ms, event.mobile)
        pv: tuple[str, ...] = (f"{kind}_pv",)
        if kind == "expose" and event.billable:
            pv += ("resolving_times",)
        marks.setdefault(f"e:{event_id}", Mark(sid, pv))
        visitor = f"{event.code}/{event.msisdn or event.mobile}"
        uv_id = stable_id("template-uv", kind, tenant, event.tpl_id, to_ms(day), visitor)
        marks.setdefault(f"u:{uv_id}", Mark(sid, (f"{kind}_uv",)))
    return marks, identities


def retry_reason(exc: BaseException) -> str | None:
    if isinstance(exc, BulkWriteError):
        codes = {e.get("code") for e in exc.details.get("writeErrors", [])}
        if DUPLICATE_KEY in codes:
            return "duplicate_mark"
        if WRITE_CONFLICT in codes:
            return "write_conflict"
        return None
    if isinstance(exc, ConnectionFailure):
        return None
    if isinstance(exc, OperationFailure):
        if exc.code == DUPLICATE_KEY:
            return "duplicate_mark"
        if exc.code == WRITE_CONFLICT:
            return "write_conflict"
        if exc.has_error_label("UnknownTransactionCommitResult"):
            return "unknown_commit_result"
        if exc.has_error_label("TransientTransactionError") or exc.code == NO_SUCH_TRANSACTION:
            return "transient_transaction"
    return None


async def _commit(collections: Collections, marks: dict[str, Mark], identities: dict[str, dict[str, Any]]) -> None:
    """Insert the marks not present yet and apply their increments, in one transaction; retried on conflicts."""
    client = collections.database.client
    attempt = 0
    while True:
        attempt += 1
        present = {
            doc["_id"] async for doc in collections.template_stat_marks.find({"_id": {"$in": list(marks)}}, {"_id": 1})
        }
        fresh = {mark_id: mark for mark_id, mark in marks.items() if mark_id not in present}
        if present:
            DUPLICATES.inc(len(present))
        if not fresh:
            return
        increments: dict[str, dict[str, int]] = {}
        for mark in fresh.values():
            counters = increments.setdefault(mark.stat_id, {})
            for name in mark.counters:
                counters[name] = counters.get(name, 0) + 1
        now = utc_now()
        try:
            async with client.start_session() as session, await session.start_transaction():
                await collections.template_stat_marks.insert_many(
                    [{"_id": mark_id, "at": now} for mark_id in fresh], ordered=True, session=session
                )
                await collections.template_stats.bulk_write(
                    [
                        UpdateOne(
                            {"_id": sid},
                            {
                                "$inc": counters,
                                "$set": {"updated_at": now},
                                "$setOnInsert": identities[sid],
                            },
                            upsert=True,
                        )
                        for sid, counters in increments.items()
                    ],
                    ordered=True,
                    session=session,
                )
            for mark in fresh.values():
                for name in mark.counters:
                    COUNTED.labels(name).inc()
            return
        except Exception as exc:
            reason = retry_reason(exc)
            if reason is None or attempt >= MAX_ATTEMPTS:
                raise
            RETRIES.labels(reason).inc()
            await asyncio.sleep(min(1.0, 0.005 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.5))


async def record_link_events(
    collections: Collections, events: Sequence[link_pb2.LinkEvent], *, offset_minutes: int | None = None
) -> None:
    """Count RESOLVED and CLICKED events into the per-template daily counters, exactly once per event."""
    relevant = [e for e in events if e.type in KINDS and e.tpl_id and e.meta.tenant_id]
    if not relevant:
        return
    vendors = await vendors_of(collections, relevant)
    offset = utc_offset_minutes() if offset_minutes is None else offset_minutes
    marks, identities = marks_of(relevant, vendors, offset)
    items = list(marks.items())
    for start in range(0, len(items), CHUNK_MARKS):
        chunk = dict(items[start : start + CHUNK_MARKS])
        await _commit(collections, chunk, {m.stat_id: identities[m.stat_id] for m in chunk.values()})


# --- reading -------------------------------------------------------------------------------------------------------
async def daily_rows(
    collections: Collections,
    tenant_id: str,
    tpl_ids: Sequence[str],
    begin: datetime,
    end: datetime,
    vendors: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (template, day) with data in the window (days from the one ``begin`` falls in up to ``end``),
    the counters summed over ``vendors`` (all when None); newest day first, then in the order of ``tpl_ids``."""
    query: dict[str, Any] = {
        "tenant_id": tenant_id,
        "tpl_id": {"$in": list(tpl_ids)},
        "day": {"$gte": day_start(to_ms(begin)), "$lte": end},
    }
    if vendors:
        query["vendor"] = {"$in": list(vendors)}
    totals: dict[tuple[str, datetime], dict[str, int]] = {}
    async for doc in collections.template_stats.find(query):
        row = totals.setdefault((doc["tpl_id"], doc["day"]), dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            row[name] += int(doc.get(name, 0))
    order = {tpl_id: position for position, tpl_id in enumerate(tpl_ids)}
    keys = sorted(totals, key=lambda key: (-to_ms(key[1]), order.get(key[0], len(order))))
    return [
        {"tpl_id": tpl_id, "day": day, "end": day + timedelta(days=1) - timedelta(seconds=1), **totals[(tpl_id, day)]}
        for tpl_id, day in keys
    ]


async def templates_with_stats(collections: Collections, tenant_id: str, tpl_ids: Sequence[str]) -> set[str]:
    """The ids among ``tpl_ids`` that have counters of the tenant (deleted templates keep their reports)."""
    found: set[str] = set()
    for tpl_id in tpl_ids:
        if await collections.template_stats.find_one({"tenant_id": tenant_id, "tpl_id": tpl_id}, {"_id": 1}):
            found.add(tpl_id)
    return found
