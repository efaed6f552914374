"""Delivery-receipt routing: queued per system_id, sent to any bound session of that system_id, kept until a
deliver_sm_resp with ESME_ROK comes back.

A receipt leaves the queue only when acknowledged. A session that drops gives its unacknowledged receipts back to
the head of the queue at once; a receipt not answered within ``ack_timeout`` goes back too; one answered with an
error status is retried after ``retry_delay``. So an ESME killed and restarted still receives every receipt of
the messages it submitted (at least once).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from magpie_carrier_simulator.timers import DelayQueue
from magpie_common.smpp.constants import ESME_ROK


@dataclass(slots=True)
class PendingReceipt:
    system_id: str
    message_id: str
    body: bytes  # the encoded deliver_sm body; a header with a fresh sequence number is added per attempt
    attempts: int = 0


class ReceiptSink(Protocol):
    """What the router needs from an SMPP session."""

    receipts_inflight: dict[int, PendingReceipt]

    @property
    def can_receive(self) -> bool: ...

    def send_deliver_sm(self, body: bytes) -> int: ...


@dataclass(slots=True)
class ReceiptStats:
    generated: int = 0
    delivered: int = 0
    attempts: int = 0
    nacked: int = 0
    timed_out: int = 0
    requeued_on_disconnect: int = 0

    @property
    def pending(self) -> int:
        return self.generated - self.delivered


class ReceiptRouter:
    def __init__(self, *, window: int, ack_timeout: float, retry_delay: float) -> None:
        self.window = window
        self.stats = ReceiptStats()
        self._queues: dict[str, deque[PendingReceipt]] = {}
        self._sessions: dict[str, list[ReceiptSink]] = {}
        self._next_session: dict[str, int] = {}
        self._ack_timeouts: DelayQueue[tuple[ReceiptSink, int, PendingReceipt]] = DelayQueue(
            ack_timeout, self._on_ack_timeout
        )
        self._retries: DelayQueue[PendingReceipt] = DelayQueue(retry_delay, self._on_retry)

    # ------------------------------------------------------------------ events

    def enqueue(self, receipt: PendingReceipt) -> None:
        """A new receipt (counted as generated)."""
        self.stats.generated += 1
        self._queue(receipt.system_id).append(receipt)
        self.pump(receipt.system_id)

    def attach(self, system_id: str, session: ReceiptSink) -> None:
        """A session bound as ``system_id``: it may now receive that system_id's receipts."""
        self._sessions.setdefault(system_id, []).append(session)
        self.pump(system_id)

    def detach(self, system_id: str, session: ReceiptSink) -> None:
        """The session unbound or dropped: its unacknowledged receipts go back to the head of the queue."""
        sessions = self._sessions.get(system_id, [])
        if session in sessions:
            sessions.remove(session)
        inflight = session.receipts_inflight
        if inflight:
            self.stats.requeued_on_disconnect += len(inflight)
            self._queue(system_id).extendleft(reversed(list(inflight.values())))
            inflight.clear()
        self.pump(system_id)

    def acknowledged(self, system_id: str, session: ReceiptSink, sequence_number: int, status: int) -> None:
        """A deliver_sm_resp (or generic_nack) for ``sequence_number`` arrived on ``session``."""
        receipt = session.receipts_inflight.pop(sequence_number, None)
        if receipt is None:
            return  # late answer after a timeout: the receipt was already requeued
        if status == ESME_ROK:
            self.stats.delivered += 1
            receipt.body = b""  # done; its ack-timeout entry lingers until the timeout: keep that entry small
        else:
            self.stats.nacked += 1
            self._retries.push(receipt)
        self.pump(system_id)

    def _on_ack_timeout(self, item: tuple[ReceiptSink, int, PendingReceipt]) -> None:
        session, seq, receipt = item
        if session.receipts_inflight.get(seq) is not receipt:
            return  # answered in time, or already requeued when the session dropped
        del session.receipts_inflight[seq]
        self.stats.timed_out += 1
        self._queue(receipt.system_id).appendleft(receipt)
        self.pump(receipt.system_id)

    def _on_retry(self, receipt: PendingReceipt) -> None:
        self._queue(receipt.system_id).append(receipt)
        self.pump(receipt.system_id)

    # ------------------------------------------------------------------ sending

    def _queue(self, system_id: str) -> deque[PendingReceipt]:
        queue = self._queues.get(system_id)
        if queue is None:
            queue = self._queues[system_id] = deque()
        return queue

    def pump(self, system_id: str) -> None:
        """Send queued receipts of ``system_id`` while some bound session has room in its window."""
        queue = self._queues.get(system_id)
        sessions = self._sessions.get(system_id)
        if not queue or not sessions:
            return
        window = self.window
        start = self._next_session.get(system_id, 0)
        count = len(sessions)
        while queue:
            chosen: ReceiptSink | None = None
            for offset in range(count):
                candidate = sessions[(start + offset) % count]
                if candidate.can_receive and len(candidate.receipts_inflight) < window:
                    chosen = candidate
                    start = (start + offset + 1) % count
                    break
            if chosen is None:
                break
            receipt = queue.popleft()
            receipt.attempts += 1
            self.stats.attempts += 1
            seq = chosen.send_deliver_sm(receipt.body)
            chosen.receipts_inflight[seq] = receipt
            self._ack_timeouts.push((chosen, seq, receipt))
        self._next_session[system_id] = start

    # ------------------------------------------------------------------ inspection

    def queued(self, system_id: str | None = None) -> int:
        """Receipts waiting for a session (not in flight, not waiting for a retry)."""
        if system_id is not None:
            return len(self._queues.get(system_id, ()))
        return sum(len(queue) for queue in self._queues.values())

    def in_flight(self) -> int:
        return sum(len(s.receipts_inflight) for sessions in self._sessions.values() for s in sessions)

    def retry_waiting(self) -> int:
        return len(self._retries)

    def close(self) -> None:
        self._ack_timeouts.close()
        self._retries.close()
