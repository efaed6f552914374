"""The sender: drains the outbox into the customers' callback URLs, reliably and without head-of-line blocking.

Two ways in, one way out:

- Hot path: the Kafka handler offers its new outbox documents (one per handler batch x URL, see ``outbox``) to
  the sender (``admit``) before inserting them; those the sender has room for are inserted already leased to
  this instance (``next_at`` = end of the lease) and handed over in memory (``take``) once the insert is durable:
  single-mode receipts are POSTed at once, batch-mode ones when their batch window
  (``MAGPIE_RECEIPT_BATCH_WINDOW_MS``, tumbling, per-URL phase) closes. A document costs one insert (plus its
  receipts' id records) and one (bulk) ``done`` update once every receipt in it was acknowledged.
- Sweep: everything else (retries, receipts of URLs that were at their quota, receipts of another instance that
  stopped or crashed, receipts queued while no sender ran) is found by ``SweepCursor`` in bounded slices of the
  ``(state, next_at)`` index and leased with one bulk ``update_many`` (``next_at`` = lease end, so two instances
  never POST a receipt concurrently and a crashed instance's receipts come due again when its lease ends).

Units: one POST per single-mode receipt; batch mode (url_type 2) one POST per (tenant, URL, callback_type,
attempts) of at most ``MAGPIE_RECEIPT_MAX_BATCH`` receipts, possibly of several documents; a hot batch goes as
soon as it is full. Quotas count POST units; a document is taken whole, so a URL holds at most one document more.
Units wait in their URL's FIFO lane and run at the URL's adaptive limit (``limiter``: grows while its latency
stays near its minimum, halves on 5xx / 429 / timeouts / connection errors), the lanes sharing
``MAGPIE_RECEIPT_MAX_IN_FLIGHT`` running POSTs round-robin, with a bounded quota of units per URL
(``endpoints``), so a slow or dead endpoint only ever holds its own receipts, never another tenant's nor the Kafka
partitions (the handlers only insert).

A claimed document is held in memory (``Held``) until every one of its receipts is answered, then its outcome is
buffered and written in bulk every 100 ms: all 2xx -> ``done``; otherwise the acknowledged receipts join the
document's ``delivered`` list and the others (non-2xx, timeout, connection error, or not attempted while the URL's
circuit breaker is open) are retried together after 1 s, 2 s, 4 s ... (capped at ``MAGPIE_RECEIPT_RETRY_MAX_MS``)
with ``retry`` one higher, and ``dead`` (with the last error) after ``MAGPIE_RECEIPT_MAX_ATTEMPTS`` attempts; a
refused destination (SSRF check, scheme) is dead at once.

Delivery is at-least-once: a receipt is POSTed again only if the process dies between the customer's 2xx and the
buffered ``done`` write (a unit whose lease could end before its POST deadline is released, not POSTed). The
envelope's ``request_id`` (and ``webhook-id``) is stable: a single receipt's is derived from its id, a batch's
from its members' ids, so a batch re-POSTed whole keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from magpie_common.ids import new_id, stable_id
from magpie_dispatcher.receipts import metrics
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.destination import DestinationRefused, check_scheme
from magpie_dispatcher.receipts.endpoints import Endpoint, Endpoints
from magpie_dispatcher.receipts.outbox import PENDING, Outbox, open_receipts, utcnow
from magpie_dispatcher.receipts.payloads import URL_TYPE_BATCH, envelope, request_id_of
from magpie_dispatcher.receipts.signing import ReceiptSigner
from magpie_dispatcher.receipts.sweep import MIN_SLICE, MainSweep, SliceCursor

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500
BACKLOG_LIMIT = 2000
CLAIM_LIMIT = 2000  # outbox documents claimed in one bulk write (SecantusDB: ~1-3 ms each)
FLUSH_INTERVAL_S = 0.1
FLUSH_AT_ITEMS = 200
GAUGE_INTERVAL_S = 60.0
DEPTH_COUNT_CAP = 100_000
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 500

BatchKey = tuple[str, str, str, int]  # tenant, url, callback_type, attempts


@dataclass
class Held:
    """A claimed outbox document in memory until every one of its receipts is answered (acknowledged, failed,
    refused or handed back): then its outcome is written once."""

    doc: dict[str, Any]
    token: str
    waiting: int
    acked: list[str] = field(default_factory=list)
    error: str = ""  # the last failed attempt of one of its receipts
    refused: str = ""  # the destination may not be called: dead at once
    released: bool = False


Entry = tuple[Held, dict[str, Any]]  # a receipt of a held document (``{"id", "receipt", ...}``)


@dataclass
class Unit:
    """One POST: a single receipt, or a batch of receipts of one (tenant, URL, callback_type, attempts)."""

    url: str
    tenant_id: str
    callback_type: str
    batch: bool
    request_id: str
    entries: list[Entry]
    retry: int
    token: str
    lease_until: datetime

    @property
    def receipts(self) -> list[dict[str, Any]]:
        return [e[1]["receipt"] for e in self.entries]


@dataclass
class Outcomes:
    """Finished documents waiting for the next flush: done ids and the others (retry, dead, release)."""

    done: list[str] = field(default_factory=list)
    other: list[Held] = field(default_factory=list)

    def size(self) -> int:
        return len(self.done) + len(self.other)

    def merge(self, other: Outcomes) -> None:
        self.done.extend(other.done)
        self.other.extend(other.other)


@dataclass
class HotBatch:
    """Batch-mode receipts handed over in memory, waiting for their window to close."""

    due_at: datetime
    entries: list[Entry] = field(default_factory=list)


class ReceiptSender:
    def __init__(
        self,
        outbox: Outbox,
        config: ReceiptsConfig,
        client: httpx.AsyncClient,
        signer: ReceiptSigner | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.client = client
        self.signer = signer
        self.clock = clock
        self.instance = new_id("S")
        self.hot_token = f"{self.instance}:hot"
        self.endpoints = Endpoints(
            concurrency=config.url_concurrency,
            max_concurrency=config.url_max_concurrency,
            breaker_base_s=config.retry_base_ms / 1000,
            drain_s=config.lease_s / 4,
            max_units=config.max_queued,
        )
        self.sweep = MainSweep()
        self._backlogs: dict[str, SliceCursor] = {}
        self.lease = timedelta(seconds=config.lease_s)
        self.post_deadline_s = config.http_timeout_s * 3
        self._rounds = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._drained = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # POSTs running
        self._units = 0  # POST units queued in a URL's lane or running, all URLs
        self._starved: dict[str, Endpoint] = {}  # lanes with a free slot of their own, waiting for MAX_IN_FLIGHT
        self._hot_batches: dict[BatchKey, HotBatch] = {}
        self._outcomes = Outcomes()
        self._due: dict[str, datetime] = {}  # admitted documents' due time, between admit and take
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """POST units queued or running."""
        return self._units

    async def run(self) -> None:
        self.running = True
        flusher = asyncio.create_task(self._flush_loop())
        gauge = asyncio.create_task(self._gauge_loop())
        try:
            while not self._stopping.is_set():
                self._launch_due_hot_batches()
                try:
                    more = await self._sweep_round()
                    if self._backlogs and await self._backlog_round():
                        more = True
                except Exception as exc:
                    log.warning("receipt sweep failed; retrying", extra={"error": repr(exc)})
                    more = False
                    await self._idle(1.0)
                if not more:
                    await self._idle(self._idle_timeout())
        finally:
            self.running = False
            self._stopping.set()
            self._release_hot_batches()
            self._release_queues()
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            self._drained.set()
            self._flush_now.set()
            await flusher
            gauge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauge

    def _idle_timeout(self) -> float:
        timeout = self.config.poll_ms / 1000.0
        if self._hot_batches:
            first = min(b.due_at for b in self._hot_batches.values())
            timeout = min(timeout, max((first - self.clock()).total_seconds(), 0.0))
        return timeout

    async def _idle(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- hot path --------------------------------------------------------------------------------------------

    def admit(self, docs: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Before the insert: lease to this instance the new outbox documents it has room for (their receipts are
        then POSTed from memory; the others stay free for the sweep). Sets their ``next_at`` (end of the lease; the
        due time, the end of the batch window in batch mode, is kept until ``take``) and ``lease_token``; returns
        their ids with the number of receipts each held."""
        admitted: dict[str, int] = {}
        if not self.running or self._stopping.is_set():
            return admitted
        now = self.clock()
        loop_now = asyncio.get_running_loop().time()
        budget = self.config.max_queued - self._units  # single POSTs this process may still queue
        for doc in docs:
            endpoint = self.endpoints.get(doc["url"])
            batch = doc["url_type"] == URL_TYPE_BATCH
            if endpoint.circuit_open(loop_now) or (not batch and budget <= 0):
                continue
            cap = self.endpoints.unit_cap(endpoint, batch=batch)
            room = (cap - endpoint.units) * (self.config.max_batch if batch else 1) - endpoint.held
            if room <= 0:
                continue  # a document is taken whole: a URL holds at most its quota and one document more
            count = len(doc["receipts"])
            budget -= 0 if batch else count
            endpoint.held += count
            admitted[doc["_id"]] = count
            self._due[doc["_id"]] = doc["next_at"]
            doc["next_at"] = now + self.lease
            doc["lease_token"] = self.hot_token
        return admitted

    def take(self, docs: Iterable[dict[str, Any]], admitted: dict[str, int], written: list[dict[str, Any]]) -> None:
        """After the insert: POST (or hold until their window closes) the receipts of the admitted documents that
        were written (``written``: as written, without the receipts that were already in the outbox)."""
        by_id = {d["_id"]: d for d in written}
        for offered in docs:
            count = admitted.get(offered["_id"])
            doc = by_id.get(offered["_id"])
            due_at = self._due.pop(offered["_id"], offered["next_at"])
            if count is None:
                if doc is not None and self.running:
                    self.note_waiting(doc["url"], doc["next_at"])
                continue
            endpoint = self.endpoints.get(offered["url"])
            endpoint.held -= count
            if doc is None:
                continue  # every receipt was a duplicate
            held = Held(doc, self.hot_token, waiting=len(doc["receipts"]))
            if self._stopping.is_set():
                self._release_entries([(held, r) for r in doc["receipts"]])
                continue
            if doc["url_type"] == URL_TYPE_BATCH:
                key = (doc["tenant_id"], doc["url"], doc["callback_type"], 0)
                hot = self._hot_batches.get(key)
                if hot is None:
                    hot = self._hot_batches[key] = HotBatch(due_at)
                hot.entries.extend((held, r) for r in doc["receipts"])
                hot.due_at = min(hot.due_at, due_at)
                endpoint.held += len(doc["receipts"])
                if len(hot.entries) >= self.config.max_batch:
                    self._launch_hot_batch(key)  # full: no reason to wait for the end of the window
            else:
                for receipt in doc["receipts"]:
                    self._launch(self._unit([(held, receipt)], request_id_of(receipt["id"]), batch=False))
        self._wake.set()

    def cancel(self, docs: Iterable[dict[str, Any]], admitted: dict[str, int]) -> None:
        """The insert failed: undo the admissions (the handler is retried with fresh documents)."""
        for doc in docs:
            self._due.pop(doc["_id"], None)
            if doc["_id"] in admitted:
                self.endpoints.get(doc["url"]).held -= admitted[doc["_id"]]

    def _launch_due_hot_batches(self) -> None:
        now = self.clock()
        for key in [k for k, b in self._hot_batches.items() if b.due_at <= now]:
            self._launch_hot_batch(key)

    def _launch_hot_batch(self, key: BatchKey) -> None:
        hot = self._hot_batches.pop(key)
        self.endpoints.get(key[1]).held -= len(hot.entries)
        for unit in self._batch_units(hot.entries):
            self._launch(unit)

    def _release_hot_batches(self) -> None:
        for key, hot in self._hot_batches.items():
            self.endpoints.get(key[1]).held -= len(hot.entries)
            self._release_entries(hot.entries)
        self._hot_batches.clear()

    # -- sweep -----------------------------------------------------------------------------------------------

    async def _sweep_round(self) -> bool:
        """Read one slice of the main sweep and take what there is room for; True when more slices are waiting
        before the present."""
        capacity = self.config.max_queued - self._units
        if capacity <= 0:
            return False
        now = self.clock()
        bounds = self.sweep.range_for(now)
        if bounds is None:
            return False
        lo, hi = bounds
        docs = await self.outbox.due_between(lo, hi, limit=SWEEP_LIMIT)
        self.sweep.advance(lo, hi, len(docs), SWEEP_LIMIT, docs[-1]["next_at"] if docs else None)
        if len(docs) >= SWEEP_LIMIT and docs[-1]["next_at"] <= lo:
            # More than a slice of receipts share one instant (one handler batch): read them all, then step on.
            docs = await self.outbox.due_between(lo, lo + MIN_SLICE, limit=0)
            self.sweep.cursor = lo + MIN_SLICE
        for doc in await self._take(docs, capacity, now):
            self.note_waiting(doc["url"], doc["next_at"])
        return self.sweep.cursor < self.sweep.horizon(now)  # more slices before the present

    def note_waiting(self, url: str, next_at: datetime) -> None:
        """A receipt of ``url`` is (or will be) due at ``next_at`` and is not held by this process: make sure a
        cursor passes there after it was written (the main sweep may already be past it)."""
        backlog = self._backlogs.get(url)
        if backlog is None:
            self._backlogs[url] = SliceCursor(next_at, timedelta(seconds=1))
        else:
            backlog.back_to(next_at)

    async def _backlog_round(self) -> bool:
        """Read one slice of the backlog of each URL that has room again; True when a slice was full (more to
        read at once)."""
        progress = False
        upto = self.sweep.horizon(self.clock())
        for url, backlog in list(self._backlogs.items()):
            capacity = self.config.max_queued - self._units
            if capacity <= 0:
                break
            endpoint = self.endpoints.get(url)
            room = self.endpoints.unit_cap(endpoint, batch=endpoint.batch) - endpoint.units
            if room <= 0:
                continue
            bounds = backlog.next_range(upto)
            if bounds is None:
                del self._backlogs[url]
                continue
            lo, hi = bounds
            limit = min(room * self.config.max_batch, BACKLOG_LIMIT) if endpoint.batch else room
            now = self.clock()
            docs = await self.outbox.url_due_between(url, lo, hi, limit=limit)
            backlog.advance(lo, hi, len(docs), limit, docs[-1]["next_at"] if docs else None)
            left = await self._take(docs, capacity, now)
            if left:
                backlog.back_to(min(d["next_at"] for d in left))
            elif hi >= upto and len(docs) < limit:
                del self._backlogs[url]  # caught up with the present: nothing of this URL is waiting
            progress = progress or len(docs) >= limit
        return progress

    async def _take(self, docs: list[dict[str, Any]], capacity: int, now: datetime) -> list[dict[str, Any]]:
        """Claim and start the due documents among ``docs`` there is room for; returns those left behind."""
        if not docs:
            return []
        loop_now = asyncio.get_running_loop().time()
        planned: dict[str, int] = {}  # units (single) or receipts (batch) planned per URL this round
        chosen: list[dict[str, Any]] = []
        left: list[dict[str, Any]] = []
        for doc in docs:
            if len(chosen) >= CLAIM_LIMIT:
                left.append(doc)  # one bounded claim per round: POSTs start while the rest is claimed next round
                continue
            url = doc["url"]
            endpoint = self.endpoints.get(url)
            batch = doc["url_type"] == URL_TYPE_BATCH
            endpoint.batch = batch
            if endpoint.circuit_open(loop_now):
                chosen.append(doc)  # failed at once, without a POST (see _start)
                continue
            count = len(open_receipts(doc))
            already = planned.get(url, 0)
            units = endpoint.units + (-(-already // self.config.max_batch) if batch else already)
            if capacity <= 0 or units >= self.endpoints.unit_cap(endpoint, batch=batch):
                left.append(doc)
                continue
            chosen.append(doc)
            planned[url] = already + count
            capacity -= -(-count // self.config.max_batch) if batch else count
        if chosen:
            self._rounds += 1
            token = f"{self.instance}:{self._rounds}"
            claimed = await self.outbox.claim(chosen, now, self.config.lease_s, token)
            self._start(claimed, token, loop_now)
            self._flush_now.set()
        return left

    def _start(self, claimed: list[dict[str, Any]], token: str, loop_now: float) -> None:
        entries: list[Entry] = []
        for doc in claimed:
            receipts = open_receipts(doc)
            held = Held(doc, token, waiting=len(receipts))
            endpoint = self.endpoints.get(doc["url"])
            if not receipts:
                self._finish(held)  # every receipt acknowledged: only its done write was lost
            elif endpoint.circuit_open(loop_now):
                unit = self._unit([(held, r) for r in receipts], "", batch=False)
                self._record_failure(unit, self._not_attempted(endpoint))
            elif doc["url_type"] == URL_TYPE_BATCH:
                entries.extend((held, r) for r in receipts)
            else:
                for receipt in receipts:
                    self._launch(self._unit([(held, receipt)], request_id_of(receipt["id"]), batch=False))
        for unit in self._batch_units(entries):
            self._launch(unit)

    def _batch_units(self, entries: list[Entry]) -> list[Unit]:
        groups: dict[BatchKey, list[Entry]] = defaultdict(list)
        for held, receipt in entries:
            doc = held.doc
            groups[(doc["tenant_id"], doc["url"], doc["callback_type"], int(doc["attempts"]))].append((held, receipt))
        units = []
        for members in groups.values():
            members.sort(key=lambda e: (e[0].doc["created_at"], e[1]["id"]))
            for start in range(0, len(members), self.config.max_batch):
                chunk = members[start : start + self.config.max_batch]
                request_id = request_id_of(stable_id("batch", *(e[1]["id"] for e in chunk)))
                units.append(self._unit(chunk, request_id, batch=True))
        return units

    @staticmethod
    def _unit(entries: list[Entry], request_id: str, *, batch: bool) -> Unit:
        first = entries[0][0]
        return Unit(
            url=first.doc["url"],
            tenant_id=first.doc["tenant_id"],
            callback_type=first.doc["callback_type"],
            batch=batch,
            request_id=request_id,
            entries=entries,
            retry=max(int(e[0].doc["attempts"]) for e in entries),
            token=first.token,
            lease_until=min(e[0].doc["next_at"] for e in entries),
        )

    # -- lanes: one FIFO queue per URL, drained at the URL's adaptive limit ----------------------------------

    def _launch(self, unit: Unit) -> None:
        endpoint = self.endpoints.get(unit.url)
        endpoint.units += 1
        self._units += 1
        endpoint.queue.append(unit)
        self._pump(endpoint)

    def _pump(self, endpoint: Endpoint, most: int | None = None) -> None:
        """Start queued POSTs of ``endpoint`` while it has slots of its own (at most ``most``); when the process
        cap of running POSTs is reached the lane waits in ``_starved`` for the next free one."""
        started = 0
        while endpoint.queue and endpoint.has_slot() and (most is None or started < most):
            if len(self._tasks) >= self.config.max_in_flight:
                self._starved[endpoint.url] = endpoint
                return
            unit = endpoint.queue.popleft()
            endpoint.active += 1
            started += 1
            task = asyncio.create_task(self._deliver(unit, endpoint))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _pump_starved(self) -> None:
        """Hand free process slots to the waiting lanes in turn, one POST each per turn."""
        while self._starved and len(self._tasks) < self.config.max_in_flight:
            url = next(iter(self._starved))
            endpoint = self._starved.pop(url)
            self._pump(endpoint, most=1)
            if endpoint.queue and endpoint.has_slot() and url not in self._starved:
                self._starved[url] = endpoint  # to the back of the line

    def _release_queues(self) -> None:
        """Stopping: hand back the units still queued in the lanes (they were never POSTed)."""
        self._starved.clear()
        for endpoint in self.endpoints.all():
            while endpoint.queue:
                unit = endpoint.queue.popleft()
                endpoint.units -= 1
                self._units -= 1
                self._release_entries(unit.entries)

    # -- posting ---------------------------------------------------------------------------------------------

    async def _deliver(self, unit: Unit, endpoint: Endpoint) -> None:
        try:
            loop = asyncio.get_running_loop()
            late = self.clock() + timedelta(seconds=self.post_deadline_s + 1) >= unit.lease_until
            if self._stopping.is_set() or late:
                # Not started: hand the receipts back rather than POST when the lease could end meanwhile.
                self._release_entries(unit.entries)
                return
            if endpoint.circuit_open(loop.time()):
                self._record_failure(unit, self._not_attempted(endpoint))
                return
            started = loop.time()
            try:
                error, congestion = await self._post(unit)
            except DestinationRefused as exc:
                self._record_dead(unit, str(exc))
                return
            elapsed = loop.time() - started
            if error is None:
                self.endpoints.succeeded(endpoint, elapsed, loop.time())
                metrics.POSTED.labels(unit.callback_type).inc(len(unit.entries))
                for held, receipt in unit.entries:
                    held.acked.append(receipt["id"])
                    self._answered(held)
            else:
                self.endpoints.failed(endpoint, error, loop.time(), congestion=congestion, elapsed_s=elapsed)
                self._record_failure(unit, error)
        except Exception:
            log.exception("receipt delivery failed unexpectedly", extra={"url": unit.url})
            self._record_failure(unit, "internal error")
        finally:
            endpoint.active -= 1
            endpoint.units -= 1
            self._units -= 1
            self._pump(endpoint)
            self._pump_starved()
            cap = self.endpoints.unit_cap(endpoint, batch=unit.batch)
            if endpoint.idle():
                self.endpoints.release(endpoint)
            if self._outcomes.size() >= FLUSH_AT_ITEMS:
                self._flush_now.set()
            if endpoint.units == 0 or endpoint.units == cap // 2:
                self._wake.set()  # room for this URL again: look for its waiting receipts

    @staticmethod
    def _not_attempted(endpoint: Endpoint) -> str:
        return f"not attempted: endpoint failing: {endpoint.last_error}"

    def _record_failure(self, unit: Unit, error: str) -> None:
        for held, _ in unit.entries:
            held.error = error[:MAX_ERROR_CHARS]
            self._answered(held)
        log.info(
            "receipt attempt failed",
            extra={"url": unit.url, "tenant_id": unit.tenant_id, "attempts": unit.retry + 1, "error": error},
        )

    def _record_dead(self, unit: Unit, error: str) -> None:
        for held, _ in unit.entries:
            held.refused = error[:MAX_ERROR_CHARS]
            self._answered(held)

    def _release_entries(self, entries: list[Entry]) -> None:
        for held, _ in entries:
            held.released = True
            self._answered(held)

    def _answered(self, held: Held) -> None:
        held.waiting -= 1
        if held.waiting <= 0:
            self._finish(held)

    def _finish(self, held: Held) -> None:
        """Every receipt of a held document is answered: buffer its outcome (written at the next flush)."""
        remaining = len(open_receipts(held.doc)) - len(held.acked)
        if remaining <= 0:
            self._outcomes.done.append(held.doc["_id"])
        else:
            self._outcomes.other.append(held)
            attempts = int(held.doc["attempts"]) + 1
            callback_type = held.doc["callback_type"]
            if held.refused or (held.error and attempts >= self.config.max_attempts):
                metrics.DEAD.labels(callback_type).inc(remaining)
                log.warning(
                    "receipts dead",
                    extra={
                        "url": held.doc["url"],
                        "tenant_id": held.doc["tenant_id"],
                        "count": remaining,
                        "error": held.refused or held.error,
                    },
                )
            elif held.error:
                metrics.FAILED_ATTEMPTS.labels(callback_type).inc(remaining)
        if self._outcomes.size() >= FLUSH_AT_ITEMS:
            self._flush_now.set()

    def _outcome_update(self, held: Held, now: datetime) -> tuple[str, str, dict[str, Any], datetime | None]:
        """(document id, lease token, ``$set``, when it is due again or None) of a document not entirely done."""
        doc = held.doc
        delivered = [*doc.get("delivered", ()), *held.acked]
        remaining = len(doc["receipts"]) - len(delivered)
        attempts = int(doc["attempts"]) + 1
        if held.refused or (held.error and attempts >= self.config.max_attempts):
            error = held.refused or held.error
            fields = self.outbox.dead_fields(
                now, delivered=delivered, remaining=remaining, attempts=attempts, error=error
            )
            return doc["_id"], held.token, fields, None
        if held.error:
            delay = self.config.retry_delay_s(attempts)
            fields = self.outbox.retry_fields(
                now, delivered=delivered, remaining=remaining, attempts=attempts, delay_s=delay, error=held.error
            )
            return doc["_id"], held.token, fields, fields["next_at"]
        fields = self.outbox.release_fields(now, delivered=delivered, remaining=remaining)
        return doc["_id"], held.token, fields, now

    async def _post(self, unit: Unit) -> tuple[str | None, bool]:
        """POST one unit: (None, False) on 2xx, else (the error, whether it signals congestion: a timeout, a
        connection error, 5xx or 429). Raises DestinationRefused for a URL that may not be called."""
        check_scheme(unit.url)
        content = envelope(
            request_id=unit.request_id,
            tenant_id=unit.tenant_id,
            callback_type=unit.callback_type,
            receipts=unit.receipts,
            batch=unit.batch,
            retry=unit.retry,
        )
        headers = {"content-type": "application/json; charset=utf-8", "user-agent": "Magpie-Receipts/1.0"}
        if self.signer is not None:
            headers.update(self.signer.headers(unit.tenant_id, unit.request_id, content))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.post_deadline_s):
                async with self.client.stream("POST", unit.url, content=content, headers=headers) as response:
                    received = 0
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received > MAX_RESPONSE_BYTES:
                            break  # the body is ignored; do not let a customer stream into our memory
                    status = response.status_code
        except DestinationRefused:
            raise
        except TimeoutError:
            return f"timeout after {self.post_deadline_s:g}s", True
        except httpx.TimeoutException as exc:
            return f"timeout: {type(exc).__name__}", True
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True
        finally:
            elapsed = time.perf_counter() - started
            metrics.POST_SECONDS.labels("batch" if unit.batch else "single").observe(elapsed)
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", status >= 500 or status == 429

    # -- outcomes --------------------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._drained.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_INTERVAL_S)
            self._flush_now.clear()
            await self.flush()
        for _ in range(50):
            if await self.flush():
                return
            await asyncio.sleep(0.2)
        log.error("could not record receipt outcomes before stopping; they are re-sent when their lease ends")

    async def flush(self) -> bool:
        """Write the buffered outcomes; on failure keep them for the next flush. True when nothing is left."""
        if self._outcomes.size() == 0:
            return True
        outcomes, self._outcomes = self._outcomes, Outcomes()
        try:
            now = self.clock()
            updates = [self._outcome_update(held, now) for held in outcomes.other]
            await self.outbox.apply(now, done=outcomes.done, updates=[u[:3] for u in updates])
            for held, update in zip(outcomes.other, updates, strict=True):
                if update[3] is not None:
                    self.note_waiting(held.doc["url"], update[3])
            return self._outcomes.size() == 0
        except Exception as exc:
            log.warning("recording receipt outcomes failed; retrying", extra={"error": repr(exc)})
            outcomes.merge(self._outcomes)
            self._outcomes = outcomes
            return False

    async def _gauge_loop(self) -> None:
        while True:
            try:
                await self.update_gauges()
            except Exception as exc:
                log.debug("outbox depth unavailable", extra={"error": repr(exc)})
            await asyncio.sleep(GAUGE_INTERVAL_S)

    async def update_gauges(self) -> int:
        """Refresh the outbox depth gauge: receipts pending, counted up to ``DEPTH_COUNT_CAP`` (a count costs a pass
        over them, so once a minute). Dead receipts: ``magpie_receipts_dead_total`` and ``Outbox.find_items``."""
        depth = await self.outbox.count(PENDING, limit=DEPTH_COUNT_CAP)
        metrics.OUTBOX_DEPTH.set(depth)
        return depth
