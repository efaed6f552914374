"""Delivery receipts from the SMSCs -> final DeliveryEvents, acknowledged to the SMSC only once produced.

Every SMPP session hands its deliver_sm to :meth:`ReceiptProcessor.on_deliver`, which parses the receipt
(``receipt_from_deliver_sm``), queues it and waits; the SmppClient writes the deliver_sm_resp with the status
``on_deliver`` returns, only after it returned. The processor flushes the queue in batches (at most
``MAGPIE_DLR_FLUSH_MS`` after the first receipt, at most ``MAGPIE_DLR_FLUSH_MAX`` receipts):

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
    DeliveryReceipt,
    ReceiptParseError,
    receipt_from_deliver_sm,
)
from magpie_dispatcher.events import RESULT_DELIVERED, final_event_id
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.metrics import CORRELATED_RECEIPTS, DLR_FLUSH_SECONDS, DLR_FLUSH_SIZE, ORPHAN_RECEIPTS, RECEIPTS
from magpie_dispatcher.records import MessageRecord
from magpie_dispatcher.smsc import SmscLink
from magpie_dispatcher.store import DeliveryStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Queued:
    smsc: str
    destination: str
    receipt: DeliveryReceipt
    answer: asyncio.Future[int]


class ReceiptProcessor:
    def __init__(
        self, store: DeliveryStore, emitter: FinalEmitter, *, flush_s: float = 0.02, flush_max: int = 500
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.flush_s = flush_s
        self.flush_max = max(1, flush_max)
        self._queue: list[_Queued] = []
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._running = False

    # ------------------------------------------------------------------ SMPP side

    async def on_deliver(self, link: SmscLink, pdu: DeliverSm) -> int:
        """The deliver_sm handler of every session: the command status of the deliver_sm_resp."""
        if not pdu.is_delivery_receipt:
            ORPHAN_RECEIPTS.labels("not_a_receipt").inc()
            log.info("mobile-originated message ignored", extra={"smsc": link.label, "source": pdu.source_addr})
            return ESME_ROK
        try:
            receipt = receipt_from_deliver_sm(pdu)
        except ReceiptParseError as exc:
            ORPHAN_RECEIPTS.labels("malformed").inc()
            log.warning("malformed delivery receipt acknowledged", extra={"smsc": link.label, "error": str(exc)})
            return ESME_ROK
        RECEIPTS.labels(receipt.stat).inc()
        if not receipt.final:
            ORPHAN_RECEIPTS.labels("not_final").inc()
            return ESME_ROK
        if not self._running:
            return ESME_RX_T_APPN  # not processing (stopped): the SMSC keeps the receipt
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(link.ns, pdu.source_addr, receipt, answer))
        self._wakeup.set()
        return await answer

    # ------------------------------------------------------------------ flushing

    def stop(self) -> None:
        """Flush what is queued, then return from :meth:`run` (call once no session can deliver any more)."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        self._running = True
        self._stopping = False
        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if len(self._queue) < self.flush_max and not self._stopping:
                    await asyncio.sleep(self.flush_s)
                batch = self._queue[: self.flush_max]
                del self._queue[: self.flush_max]
                await self._flush_and_answer(batch)
        finally:
            self._running = False
            queued, self._queue = self._queue, []
            for item in queued:  # cancelled (crash): no answer at all, the SMSC redelivers
                item.answer.cancel()

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
