"""Delivery receipts from the SMSCs -> final DeliveryEvents, acknowledged to the SMSC only once produced.

Every SMPP session hands the deliver_sm of each socket read (a whole window under load) to
:meth:`ReceiptProcessor.on_deliver_many` (:meth:`ReceiptProcessor.on_deliver` for one), which parses the receipts
(``receipt_id_and_stat``: the id and stat from the TLVs, the text only when they are missing), queues them and
waits; the SmppClient writes the deliver_sm_resps with the statuses returned, only after the call returned.

Group commit: the queue is flushed as one batch (at most ``MAGPIE_DLR_FLUSH_MAX`` receipts) through the steps below
- one MGET, a few script calls and ONE produce for the whole batch - and every receipt of the batch is answered once
that produce is acknowledged. A flush starts at once when none is running (an idle system answers without delay);
while flushes are running, receipts accumulate and the next flush starts when the batch is full, when
``MAGPIE_DLR_FLUSH_MS`` passed, or when a running flush ends. At most ``MAGPIE_DLR_FLUSHES_IN_FLIGHT`` flushes run
at once, so the throughput is not bounded by one flush's latency: with W receipts in the SMSC's windows (sessions x
deliver window) and a flush taking L, up to about min(W, flushes x flush_max) / L receipts per second. Concurrent
flushes are safe because every step is atomic per message (first decision wins, part counts by part id).

1. ``cmid:<smsc>:<id>`` -> the message's record (one MGET for the batch). A receipt whose id is unknown may belong
   to a message whose submit_sm_resp is not recorded yet (the receipt overtook it, or the sender died in between):
   it is matched through ``pend:<smsc>:<destination>`` when exactly one pending message goes to that number
   (several: answered ``ESME_RX_T_APPN`` so the SMSC retries later). None pending: the id is read once more,
   because the sender records the answer (id map + leaving the registry) in one transaction that may have
   committed between the two reads; still unknown: an orphan, acknowledged, logged and counted.
2. Multi-part messages: each part's final receipt is counted once in ``dlr:<msg_id>`` (a hash keyed by the part's
   id, so a duplicate receipt does not count twice); the message is final when every part has its receipt:
   DELIVERED if every part is DELIVRD, else FAILED with the first failing part's stat (UNDELIV, REJECTD, ...).
3. The final event (``event_id = stable_id("final", msg_id)``) goes through :class:`FinalEmitter` (first decision
   wins, produce, mark done), grouped into one DeliveryBatch per (task, batch).
4. Only then are the receipts answered ESME_ROK. If anything fails the whole batch is answered ESME_RX_T_APPN and
   the SMSC delivers the receipts again: a crash or an outage never loses a receipt.

Receipts that are not final (ENROUTE, ACCEPTD), not receipts at all (mobile-originated messages) or malformed
are acknowledged at once, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from magpie.v1 import dispatch_pb2
from magpie_common.ids import now_ms
from magpie_common.smpp import (
    ESME_ROK,
    ESME_RX_T_APPN,
    STAT_DELIVERED,
    DeliverSm,
    ReceiptParseError,
    receipt_id_and_stat,
)
from magpie_common.smpp.receipt import FINAL_STATS
from magpie_dispatcher.events import RESULT_DELIVERED, final_event_id
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.metrics import CORRELATED_RECEIPTS, DLR_FLUSH_SECONDS, DLR_FLUSH_SIZE, ORPHAN_RECEIPTS, RECEIPTS
from magpie_dispatcher.records import MessageRecord
from magpie_dispatcher.smsc import SmscLink
from magpie_dispatcher.store import DeliveryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Receipt:
    """What correlating a receipt needs: the SMSC's message id and the final stat."""

    message_id: str
    stat: str


@dataclass(slots=True)
class _Queued:
    smsc: str
    destination: str
    receipt: _Receipt
    answer: asyncio.Future[int]


class ReceiptProcessor:
    def __init__(
        self,
        store: DeliveryStore,
        emitter: FinalEmitter,
        *,
        flush_s: float = 0.01,
        flush_max: int = 1000,
        flushes_in_flight: int = 4,
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.flush_s = flush_s
        self.flush_max = max(1, flush_max)
        self.flushes_in_flight = max(1, flushes_in_flight)
        self._queue: list[_Queued] = []
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._running = False
        self._flushes: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ SMPP side

    async def on_deliver(self, link: SmscLink, pdu: DeliverSm) -> int:
        """The deliver_sm handler of one PDU: the command status of its deliver_sm_resp."""
        (status,) = await self.on_deliver_many(link, [pdu])
        return status

    async def on_deliver_many(self, link: SmscLink, pdus: list[DeliverSm]) -> list[int]:
        """The deliver_sm handler of every session, one socket read at a time: the deliver_sm_resp statuses."""
        statuses: list[int | asyncio.Future[int]] = [self._admit(link, pdu) for pdu in pdus]
        waiting = [status for status in statuses if isinstance(status, asyncio.Future)]
        if waiting:
            # A cancelled answer (the processor crashed) cancels the lot: no answer at all, the SMSC redelivers.
            await asyncio.gather(*waiting)
        return [status if isinstance(status, int) else status.result() for status in statuses]

    def _admit(self, link: SmscLink, pdu: DeliverSm) -> int | asyncio.Future[int]:
        """The status to answer at once, or the future of a queued receipt's status."""
        if not pdu.is_delivery_receipt:
            ORPHAN_RECEIPTS.labels("not_a_receipt").inc()
            log.info("mobile-originated message ignored", extra={"smsc": link.label, "source": pdu.source_addr})
            return ESME_ROK
        try:
            message_id, stat = receipt_id_and_stat(pdu)
        except ReceiptParseError as exc:
            ORPHAN_RECEIPTS.labels("malformed").inc()
            log.warning("malformed delivery receipt acknowledged", extra={"smsc": link.label, "error": str(exc)})
            return ESME_ROK
        RECEIPTS.labels(stat).inc()
        if stat not in FINAL_STATS:
            ORPHAN_RECEIPTS.labels("not_final").inc()
            return ESME_ROK
        if not self._running:
            return ESME_RX_T_APPN  # not processing (stopped): the SMSC keeps the receipt
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue = self._queue
        queue.append(_Queued(link.ns, pdu.source_addr, _Receipt(message_id, stat), answer))
        if len(queue) == 1 or len(queue) >= self.flush_max:
            self._wakeup.set()
        return answer

    # ------------------------------------------------------------------ flushing

    def stop(self) -> None:
        """Flush what is queued, then return from :meth:`run` (call once no session can deliver any more)."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        self._running = True
        self._stopping = False
        loop = asyncio.get_running_loop()
        linger_until: float | None = None
        try:
            while True:
                queue = self._queue
                if not queue:
                    linger_until = None
                    if self._stopping and not self._flushes:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                flushes = self._flushes
                now = loop.time()
                if len(flushes) < self.flushes_in_flight and (
                    not flushes
                    or len(queue) >= self.flush_max
                    or self._stopping
                    or (linger_until is not None and now >= linger_until)
                ):
                    batch = queue[: self.flush_max]
                    del queue[: self.flush_max]
                    linger_until = None
                    task = loop.create_task(self._flush_and_answer(batch))
                    flushes.add(task)
                    task.add_done_callback(self._flush_done)
                    continue
                # Group commit: let receipts accumulate while flushes run (until one ends, the batch is full or
                # the linger passed).
                if linger_until is None:
                    linger_until = now + self.flush_s
                self._wakeup.clear()
                timeout = None if len(flushes) >= self.flushes_in_flight else max(0.0, linger_until - now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()
        finally:
            self._running = False
            running = list(self._flushes)
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            queued, self._queue = self._queue, []
            for item in queued:  # cancelled (crash): no answer at all, the SMSC redelivers
                item.answer.cancel()

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._wakeup.set()

    async def _flush_and_answer(self, batch: list[_Queued]) -> None:
        started = time.perf_counter()
        try:
            statuses = await self.flush(batch)
        except asyncio.CancelledError:
            for item in batch:
                item.answer.cancel()
            raise
        except Exception as exc:
            log.warning(
                "receipts not processed; answered ESME_RX_T_APPN for redelivery",
                extra={"count": len(batch), "error": repr(exc)},
            )
            statuses = [ESME_RX_T_APPN] * len(batch)
        DLR_FLUSH_SECONDS.observe(time.perf_counter() - started)
        DLR_FLUSH_SIZE.observe(len(batch))
        for item, status in zip(batch, statuses, strict=True):
            if not item.answer.done():
                item.answer.set_result(status)

    async def flush(self, batch: list[_Queued]) -> list[int]:
        """Turn receipts into produced final events; the deliver_sm_resp status of each receipt."""
        statuses = [ESME_ROK] * len(batch)
        records = await self.store.records_by_carrier_id([(q.smsc, q.receipt.message_id) for q in batch])
        misses = [i for i, record in enumerate(records) if record is None]
        if misses:
            candidates = await self.store.pending_by_destination(
                [(batch[i].smsc, batch[i].destination) for i in misses]
            )
            learnt: list[tuple[MessageRecord, str]] = []
            unmatched: list[int] = []
            for i, pending in zip(misses, candidates, strict=True):
                if len(pending) == 1:
                    records[i] = pending[0]
                    learnt.append((pending[0], batch[i].receipt.message_id))
                    CORRELATED_RECEIPTS.inc()
                elif pending:
                    ORPHAN_RECEIPTS.labels("ambiguous").inc()
                    statuses[i] = ESME_RX_T_APPN
                else:
                    unmatched.append(i)
            if unmatched:
                # The sender records a submit_sm_resp (SMSC id -> record, and leaving the pending registry) in one
                # transaction. It may have committed between our first read and the registry read: read again.
                again = await self.store.records_by_carrier_id(
                    [(batch[i].smsc, batch[i].receipt.message_id) for i in unmatched]
                )
                for i, record in zip(unmatched, again, strict=True):
                    records[i] = record
                    if record is None:
                        queued = batch[i]
                        ORPHAN_RECEIPTS.labels("unknown").inc()
                        log.info(
                            "receipt for an unknown message acknowledged",
                            extra={
                                "smsc": queued.smsc,
                                "carrier_msg_id": queued.receipt.message_id,
                                "destination": queued.destination,
                                "stat": queued.receipt.stat,
                            },
                        )
            await self.store.remember_carrier_ids(learnt)
        known = [(i, record) for i, record in enumerate(records) if record is not None]
        completions = await self.store.parts_done(
            [(record, batch[i].receipt.message_id, batch[i].receipt.stat) for i, record in known]
        )
        done_at = now_ms()
        finals: list[tuple[dispatch_pb2.DeliveryEvent, MessageRecord]] = []
        for (_, record), stats in zip(known, completions, strict=True):
            if stats is not None:
                finals.append((final_event(record, stats, done_at), record))
        await self.emitter.emit(finals, source="receipt")
        return statuses


def final_event(record: MessageRecord, stats: dict[str, str], done_at_ms: int) -> dispatch_pb2.DeliveryEvent:
    """DELIVERED if every part is DELIVRD, else FAILED with the stat of the first failing part (part order)."""
    order = list(record.carrier_ids) + sorted(set(stats) - set(record.carrier_ids))
    failing = [stats[cid] for cid in order if cid in stats and stats[cid] != STAT_DELIVERED]
    first_id = record.carrier_ids[0] if record.carrier_ids else order[0]
    if failing:
        status, code = dispatch_pb2.DELIVERY_STATUS_FAILED, failing[0]
    else:
        status, code = dispatch_pb2.DELIVERY_STATUS_DELIVERED, RESULT_DELIVERED
    return record.event(final_event_id(record.msg_id), status, code, carrier_msg_id=first_id, done_at_ms=done_at_ms)
