"""The deadline sweeper: messages without a final receipt in time get their final event from here.

``due`` is a sorted set msg_id -> deadline (ms). The sender adds each accepted message with
``submitted_at + MAGPIE_RECEIPT_WINDOW_S`` and each in-doubt one with ``now + MAGPIE_IN_DOUBT_GRACE_S``; a final
event removes it. Every ``MAGPIE_SWEEP_INTERVAL_S`` each dispatcher takes the due members with a Lua script that
leases them (pushes their score ``sweep_lease_s`` ahead) so that concurrent sweepers never take the same member and
one that dies mid-way leaves its members to be taken again. For each member, from its claim:

- S (accepted, no receipt): TIMEOUT once its receipt deadline has passed (an in-doubt deadline may have been set
  before the claim was recorded S: the member is then rescheduled to the receipt deadline);
- P (in doubt, no receipt matched): FAILED with result_code ``IN_DOUBT``;
- F or no claim: nothing to do, forgotten.

The final event goes through :class:`FinalEmitter`, so a receipt that finalised the message first wins, and a late
receipt after a TIMEOUT cannot finalise it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from magpie.v1 import dispatch_pb2
from magpie_common.ids import now_ms
from magpie_dispatcher.events import RESULT_IN_DOUBT, RESULT_TIMEOUT, final_event_id
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.records import STATE_PENDING, STATE_SUBMITTED, MessageRecord
from magpie_dispatcher.store import DeliveryStore

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        store: DeliveryStore,
        emitter: FinalEmitter,
        *,
        interval_s: float = 2.0,
        batch: int = 500,
        lease_s: float = 60.0,
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.interval_s = interval_s
        self.batch = batch
        self.lease_ms = int(lease_s * 1000)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("deadline sweep failed; retrying next round", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._stop.wait()

    async def sweep_once(self) -> int:
        """Finalise every due message; returns how many final events were produced."""
        produced = 0
        while True:
            now = now_ms()
            due = await self.store.take_due(now, self.lease_ms, self.batch)
            if not due:
                return produced
            claims = await self.store.claims(due)
            candidates: list[tuple[dispatch_pb2.DeliveryEvent, MessageRecord]] = []
            later: dict[str, int] = {}
            forget: list[str] = []
            for msg_id, record in zip(due, claims, strict=True):
                if record is None:
                    forget.append(msg_id)
                elif record.state == STATE_SUBMITTED:
                    deadline = record.submitted_at_ms + self.store.receipt_window_ms
                    if deadline > now:
                        later[msg_id] = deadline
                    else:
                        candidates.append(
                            (
                                record.event(
                                    final_event_id(msg_id),
                                    dispatch_pb2.DELIVERY_STATUS_TIMEOUT,
                                    RESULT_TIMEOUT,
                                    done_at_ms=now,
                                ),
                                record,
                            )
                        )
                elif record.state == STATE_PENDING:
                    candidates.append(
                        (
                            record.event(
                                final_event_id(msg_id),
                                dispatch_pb2.DELIVERY_STATUS_FAILED,
                                RESULT_IN_DOUBT,
                                done_at_ms=now,
                            ),
                            record,
                        )
                    )
                else:
                    forget.append(msg_id)
            await self.store.reschedule(later)
            await self.store.forget_deadlines(forget)
            produced += await self.emitter.emit(candidates, source="sweeper")
            if len(due) < self.batch:
                return produced
