"""The channel's notifications (delivery reports and replies) into events, and the timeout sweeper.

Reports poller: ``GET notifications`` (leased to this instance for ``MAGPIE_VMS_LEASE_S``, so several dispatchers
share the work and a crashed one's notifications come back), then for each:

- a report names its message by ``client_msg_id`` (Magpie's msg_id): ``DELIVRD`` -> DELIVERED, any other status
  (``UNDELIV``, ``EXPIRED``, ``REJECTD``) -> FAILED with that result_code; the first final state of a message wins
  (``VmsStore.decide``), a late or repeated report re-produces the recorded event;
- a reply (MO) names the message it answers (``linked_client_msg_id``) -> ``VmsMoEvent`` on VMS_MO, event id
  ``stable_id("vms-mo", mo_id)``;
- one naming no known message is left unacknowledged (its record may not be written yet) until it is
  ``MAGPIE_VMS_ORPHAN_AFTER_S`` old, then dropped and counted.

The events are produced (and acknowledged by Kafka) before the notifications are acknowledged to the channel: a
crash in between means the notifications come again, and their events are produced again with the same ids.

Events of a smart send task's VMS fallback go to DELIVERY instead of VMS_DELIVERY (``VmsRecord.aim_fallback``).

Sweeper: messages without a final state by their deadline (expiry + grace) get TIMEOUT (accepted by the channel)
or FAILED ``NOT_SUBMITTED`` (never accepted: the channel stayed unreachable past the deadline). Deadlines are taken
with a lease (a Lua script), so concurrent sweepers never take the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from magpie.v1 import common_pb2, dispatch_pb2, vms_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import EventProducer
from magpie_common.topics import VMS_MO
from magpie_dispatcher.vms.carrier import VmsCarrierClient
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.sender import aim_ids_of, final_event_id, final_ttl_s, produce_delivery
from magpie_dispatcher.vms.store import STATE_SUBMITTED, VmsRecord, VmsStore

log = logging.getLogger(__name__)

REPORTS = Counter("magpie_dispatcher_vms_reports_total", "VMS delivery reports received", ["status"])
REPLIES = Counter("magpie_dispatcher_vms_replies_total", "VMS replies (MO) received")
ORPHANS = Counter("magpie_dispatcher_vms_orphans_total", "VMS notifications naming no known message", ["kind"])
TIMEOUTS = Counter("magpie_dispatcher_vms_timeouts_total", "VMS messages finalised by the sweeper", ["result"])

DELIVERED = "DELIVRD"
TIMEOUT = "TIMEOUT"
NOT_SUBMITTED = "NOT_SUBMITTED"
SWEEP_LEASE_MS = 60_000
SWEEP_BATCH = 500


def parse_ms(value: Any) -> int:
    if not value:
        return 0
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


class _Stoppable:
    def __init__(self) -> None:
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()


class ReportPoller(_Stoppable):
    def __init__(self, config: VmsConfig, store: VmsStore, carrier: VmsCarrierClient, producer: EventProducer) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.carrier = carrier
        self.producer = producer
        self.running = False

    async def run(self) -> None:
        self.running = True
        failures = 0
        # Empty polls back off (doubling up to MAGPIE_VMS_POLL_IDLE_MAX_MS): an idle channel costs a poll every few
        # seconds, not five a second; the first notification brings the pace back to MAGPIE_VMS_POLL_MS.
        idle_pause = self.config.poll_interval_s
        try:
            while not self._stop.is_set():
                try:
                    handled = await self.poll_once()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning("VMS notification poll failed; retrying", extra={"error": repr(exc)})
                    await self._pause(min(5.0, 0.2 * 2**failures))
                    continue
                if handled == 0:
                    await self._pause(idle_pause)
                    idle_pause = min(max(self.config.poll_idle_max_s, self.config.poll_interval_s), idle_pause * 2)
                else:
                    idle_pause = self.config.poll_interval_s
        finally:
            self.running = False

    async def poll_once(self) -> int:
        """Handle one poll's notifications; returns how many came."""
        items = await self.carrier.poll(self.config.poll_max, self.config.lease_s)
        if not items:
            return 0
        now = now_ms()
        keys = [str(i.get("client_msg_id") or i.get("linked_client_msg_id") or "") for i in items]
        records = dict(zip(keys, await self.store.records(keys), strict=True))
        candidates: list[dispatch_pb2.DeliveryEvent] = []
        replies: list[vms_pb2.VmsMoEvent] = []
        ack: list[str] = []
        ttl = 0
        for item, key in zip(items, keys, strict=True):
            kind = item.get("kind")
            record = records.get(key)
            if record is None:
                at = parse_ms(item.get("done_time") or item.get("time"))
                if at and now - at > self.config.orphan_after_s * 1000:
                    ORPHANS.labels(str(kind)).inc()
                    log.warning("VMS notification for an unknown message dropped", extra={"id": item.get("id")})
                    ack.append(str(item["id"]))
                continue
            ack.append(str(item["id"]))
            if kind == "report":
                candidates.append(self._final(record, item))
                ttl = max(ttl, final_ttl_s(record.deadline_ms, now))
            elif kind == "mo":
                replies.append(self._reply(record, item))
        decided = await self.store.decide(candidates, now, ttl) if candidates else []
        await produce_delivery(self.producer, decided, aim_ids_of(records.values()))
        if replies:
            await self.producer.send_many((VMS_MO, r.task_id, r) for r in replies)
            REPLIES.inc(len(replies))
        await self.store.forget_deadlines([e.msg_id for e in decided])
        await self.carrier.ack(ack)
        return len(items)

    @staticmethod
    def _final(record: VmsRecord, item: dict[str, Any]) -> dispatch_pb2.DeliveryEvent:
        status = str(item.get("status") or "UNDELIV")
        REPORTS.labels(status).inc()
        delivered = status == DELIVERED
        if record.state != STATE_SUBMITTED:  # the report came before the submit's answer was recorded
            record = record.submitted(str(item.get("msg_id", "")), str(item.get("carrier", "")), 0)
        return record.event(
            final_event_id(record.msg_id),
            dispatch_pb2.DELIVERY_STATUS_DELIVERED if delivered else dispatch_pb2.DELIVERY_STATUS_FAILED,
            status,
            done_at_ms=parse_ms(item.get("done_time")) or now_ms(),
            submitted_at_ms=record.submitted_at_ms or parse_ms(item.get("submit_time")),
        )

    @staticmethod
    def _reply(record: VmsRecord, item: dict[str, Any]) -> vms_pb2.VmsMoEvent:
        return vms_pb2.VmsMoEvent(
            meta=common_pb2.EventMeta(
                event_id=stable_id("vms-mo", item.get("mo_id") or item["id"]),
                tenant_id=record.tenant_id,
                occurred_at_ms=now_ms(),
                producer="dispatcher",
            ),
            task_id=record.task_id,
            tpl_id=record.tpl_id,
            msg_id=record.msg_id,
            mobile=record.mobile,
            content=str(item.get("content", "")),
            at_ms=parse_ms(item.get("time")) or now_ms(),
            carrier=str(item.get("carrier", "")),
        )


class VmsSweeper(_Stoppable):
    def __init__(self, config: VmsConfig, store: VmsStore, producer: EventProducer) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.producer = producer

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("VMS deadline sweep failed; retrying next round", extra={"error": repr(exc)})
            await self._pause(self.config.sweep_interval_s)

    async def sweep_once(self) -> int:
        """Finalise every message past its deadline; returns how many final events were produced."""
        produced = 0
        while True:
            now = now_ms()
            due = await self.store.take_due(now, SWEEP_LEASE_MS, SWEEP_BATCH)
            if not due:
                return produced
            records, finals = await self.store.records(due), await self.store.finals(due)
            candidates: list[dispatch_pb2.DeliveryEvent] = []
            forget: list[str] = []
            ttl = 60
            for msg_id, record, final in zip(due, records, finals, strict=True):
                if record is None or final is not None:
                    forget.append(msg_id)
                    continue
                result = TIMEOUT if record.state == STATE_SUBMITTED else NOT_SUBMITTED
                status = (
                    dispatch_pb2.DELIVERY_STATUS_TIMEOUT if result == TIMEOUT else dispatch_pb2.DELIVERY_STATUS_FAILED
                )
                candidates.append(record.event(final_event_id(msg_id), status, result, done_at_ms=now))
                TIMEOUTS.labels(result).inc()
            decided = await self.store.decide(candidates, now, ttl + 7 * 86400)
            await produce_delivery(self.producer, decided, aim_ids_of(records))
            await self.store.forget_deadlines(forget + [e.msg_id for e in decided])
            produced += len(decided)
            if len(due) < SWEEP_BATCH:
                return produced
