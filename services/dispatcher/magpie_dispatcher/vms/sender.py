"""VMS_SEND handler: submit each ``VmsSendBatch`` to the VMS channel and produce its delivery events.

For every record (recipients of one task batch), in order:

1. Each recipient's message id is ``stable_id("vms-msg", task_id, index)``. A recipient whose final state is
   recorded, or that the channel already accepted (record S), is not submitted again: its recorded event is
   produced again instead (same id and content: harmless downstream), so a redelivered batch re-sends nothing.
2. The other recipients' records are written (state P, deadline = the message's expiry + ``MAGPIE_VMS_REPORT_GRACE_S``
   in the ``due`` set) before anything is submitted, so every report the channel sends can be matched.
3. The template (released by the gateway on VMS_TEMPLATES, see ``templates``) is awaited up to
   ``MAGPIE_VMS_TEMPLATE_WAIT_S`` (the release and the send travel on different topics); if it never comes, every
   recipient fails with result_code ``TEMPLATE_UNAVAILABLE``. It is registered at the channel once per revision.
4. Submits of ``MAGPIE_VMS_SUBMIT_CHUNK`` recipients with ``client_msg_id`` = msg_id (the channel deduplicates on
   it, so a retried submit whose answer was lost sends nothing twice). Accepted: record S with the channel's
   message id, a SUBMITTED event (``stable_id("vms-submitted", msg_id)``). Refused (bad number, carrier did not
   approve the template, ...): final FAILED with the channel's code (``stable_id("vms-final", msg_id)``).
5. One ``DeliveryBatch`` (route ``ROUTE_VMS``) per record on VMS_DELIVERY, key ``task_id:batch_no``, acknowledged
   before the handler returns (so before the offsets are committed).

The VMS fallback of a smart send task (``aim_fallback``, handed over by the send role: ``magpie_dispatcher.
vms_fallback``) takes the same path; its records remember it (``VmsRecord.aim_fallback``), so its events, whoever
produces them (sender, reports poller, sweeper), go to DELIVERY, the AIM task's stream, carrying ``aim_url``.
A ``cancel`` record (the task was cancelled before the send role released these recipients) submits nothing: each
recipient without a record or final state gets the final FAILED ``CANCELLED`` (no segments), the others keep their
outcome; it shares the key (so the partition) of the task batch's send records, which are handled before it.

A channel that is down raises ``CarrierUnavailable`` (a ConnectionError): the consumer loop retries the batch
until it is back, without dead-lettering it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet

from prometheus_client import Counter

from magpie.v1 import dispatch_pb2, vms_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded, EventProducer
from magpie_common.topics import DELIVERY, VMS_DELIVERY
from magpie_dispatcher.events import batch_key, delivery_batch
from magpie_dispatcher.vms.carrier import CarrierUnavailable, SubmitResult, UnknownTemplate, VmsCarrierClient
from magpie_dispatcher.vms.config import VmsConfig
from magpie_dispatcher.vms.store import RETENTION_S, STATE_SUBMITTED, VmsRecord, VmsStore
from magpie_dispatcher.vms.templates import LoadedTemplate, TemplateStore

log = logging.getLogger(__name__)

SUBMITS = Counter("magpie_dispatcher_vms_recipients_total", "VMS recipients handled by the sender", ["outcome"])

RESULT_ACCEPTED = "ACCEPTED"
TEMPLATE_UNAVAILABLE = "TEMPLATE_UNAVAILABLE"
EXPIRED_BEFORE_SUBMIT = "EXPIRED"
RESULT_CANCELLED = "CANCELLED"  # the result code of cancelled messages, as magpie_dispatcher.deferral's
TEMPLATE_POLL_S = 0.5


def vms_message_id(task_id: str, index: int) -> str:
    return stable_id("vms-msg", task_id, index)


def submitted_event_id(msg_id: str) -> str:
    return stable_id("vms-submitted", msg_id)


def final_event_id(msg_id: str) -> str:
    return stable_id("vms-final", msg_id)


def final_ttl_s(deadline_ms: int, now: int) -> int:
    return max(60, (deadline_ms - now) // 1000) + RETENTION_S


async def produce_delivery(
    producer: EventProducer, events: Sequence[dispatch_pb2.DeliveryEvent], aim_ids: AbstractSet[str] = frozenset()
) -> None:
    """The events as DeliveryBatch records, one per (task, batch): on VMS_DELIVERY, or on DELIVERY for the
    messages of a smart send task's VMS fallback (``aim_ids``, their msg_ids)."""
    groups: dict[tuple[str, int, bool], list[dispatch_pb2.DeliveryEvent]] = {}
    for event in events:
        groups.setdefault((event.task_id, event.batch_no, event.msg_id in aim_ids), []).append(event)
    if groups:
        await producer.send_many(
            (DELIVERY if aim else VMS_DELIVERY, batch_key(task, batch), delivery_batch(group))
            for (task, batch, aim), group in groups.items()
        )


def aim_ids_of(records: Iterable[VmsRecord | None]) -> frozenset[str]:
    """The msg_ids of the records that belong to a smart send task's VMS fallback."""
    return frozenset(r.msg_id for r in records if r is not None and r.aim_fallback)


class VmsSender:
    def __init__(
        self,
        config: VmsConfig,
        store: VmsStore,
        templates: TemplateStore,
        carrier: VmsCarrierClient,
        producer: EventProducer,
        stopping: Callable[[], bool],
    ) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.carrier = carrier
        self.producer = producer
        self.stopping = stopping

    async def handle(self, batch: Sequence[Decoded[vms_pb2.VmsSendBatch]]) -> None:
        for item in batch:
            await self.send(item.message)

    async def send(self, message: vms_pb2.VmsSendBatch) -> None:
        if message.cancel:
            await self.cancel(message)
            return
        now = now_ms()
        deadline = message.expires_at_ms + int(self.config.report_grace_s * 1000)
        wanted = self.wanted(message, deadline)
        params = {
            vms_message_id(message.task_id, r.index): list(r.params) or list(message.params) for r in message.recipients
        }
        ids = [r.msg_id for r in wanted]
        existing, finals = await self.store.records(ids), await self.store.finals(ids)
        events: list[dispatch_pb2.DeliveryEvent] = []
        to_submit: list[VmsRecord] = []
        for record, old, final in zip(wanted, existing, finals, strict=True):
            if final is not None:
                events.append(final)
            elif old is not None and old.state == STATE_SUBMITTED:
                events.append(
                    old.event(submitted_event_id(old.msg_id), dispatch_pb2.DELIVERY_STATUS_SUBMITTED, RESULT_ACCEPTED)
                )
            else:
                to_submit.append(record)
        if to_submit:
            await self.store.put_records(to_submit, now, schedule=True)
            events.extend(await self._submit_all(message, to_submit, params))
        await produce_delivery(self.producer, events, frozenset(ids) if message.aim_fallback else frozenset())
        await self.store.forget_deadlines(
            [e.msg_id for e in events if e.status != dispatch_pb2.DELIVERY_STATUS_SUBMITTED]
        )

    @staticmethod
    def wanted(message: vms_pb2.VmsSendBatch, deadline_ms: int) -> list[VmsRecord]:
        """The record of each recipient of ``message`` (state P)."""
        return [
            VmsRecord(
                vms_message_id(message.task_id, r.index),
                message.meta.tenant_id,
                message.task_id,
                message.batch_no,
                r.index,
                r.mobile,
                message.tpl_id,
                deadline_ms,
                aim_fallback=message.aim_fallback,
                aim_url=message.aim_url,
            )
            for r in message.recipients
        ]

    async def cancel(self, message: vms_pb2.VmsSendBatch) -> None:
        """Finalise FAILED / CANCELLED the recipients not sent (no record, no final state); see the docstring."""
        now = now_ms()
        wanted = self.wanted(message, now)
        ids = [r.msg_id for r in wanted]
        existing, finals = await self.store.records(ids), await self.store.finals(ids)
        events: list[dispatch_pb2.DeliveryEvent] = []
        candidates: list[dispatch_pb2.DeliveryEvent] = []
        for record, old, final in zip(wanted, existing, finals, strict=True):
            if final is not None:
                events.append(final)
            elif old is None:
                event = record.event(
                    final_event_id(record.msg_id), dispatch_pb2.DELIVERY_STATUS_FAILED, RESULT_CANCELLED, done_at_ms=now
                )
                event.segments = 0
                candidates.append(event)
        SUBMITS.labels("cancelled").inc(len(candidates))
        events.extend(await self.store.decide(candidates, now, final_ttl_s(now, now)))
        await produce_delivery(self.producer, events, frozenset(ids) if message.aim_fallback else frozenset())

    async def _submit_all(
        self, message: vms_pb2.VmsSendBatch, records: list[VmsRecord], params: dict[str, list[str]]
    ) -> list[dispatch_pb2.DeliveryEvent]:
        now = now_ms()
        expire_s = (message.expires_at_ms - now) // 1000
        loaded = await self._template(message)
        if loaded is None or expire_s <= 0:
            code = TEMPLATE_UNAVAILABLE if loaded is None else EXPIRED_BEFORE_SUBMIT
            log.error("VMS recipients cannot be sent", extra={"task_id": message.task_id, "reason": code})
            return await self._fail(records, code, now)
        events: list[dispatch_pb2.DeliveryEvent] = []
        refused: list[tuple[VmsRecord, str]] = []
        for start in range(0, len(records), self.config.submit_chunk):
            chunk = records[start : start + self.config.submit_chunk]
            results = await self._submit(loaded, chunk, params, int(expire_s))
            accepted: list[VmsRecord] = []
            at = now_ms()
            for record in chunk:
                result = results[record.msg_id]
                if result.accepted:
                    accepted.append(record.submitted(result.msg_id, result.carrier, at))
                else:
                    refused.append((record, result.code or "REFUSED"))
            await self.store.put_records(accepted, at, schedule=False)
            for record in accepted:
                events.append(
                    record.event(
                        submitted_event_id(record.msg_id), dispatch_pb2.DELIVERY_STATUS_SUBMITTED, RESULT_ACCEPTED
                    )
                )
            SUBMITS.labels("accepted").inc(len(accepted))
        if refused:
            SUBMITS.labels("refused").inc(len(refused))
            candidates = [
                record.event(
                    final_event_id(record.msg_id), dispatch_pb2.DELIVERY_STATUS_FAILED, code, done_at_ms=now_ms()
                )
                for record, code in refused
            ]
            events.extend(await self.store.decide(candidates, now, final_ttl_s(records[0].deadline_ms, now)))
        return events

    async def _fail(self, records: list[VmsRecord], code: str, now: int) -> list[dispatch_pb2.DeliveryEvent]:
        SUBMITS.labels(code.lower()).inc(len(records))
        candidates = [
            r.event(final_event_id(r.msg_id), dispatch_pb2.DELIVERY_STATUS_FAILED, code, done_at_ms=now)
            for r in records
        ]
        return await self.store.decide(candidates, now, final_ttl_s(records[0].deadline_ms, now))

    async def _template(self, message: vms_pb2.VmsSendBatch) -> LoadedTemplate | None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.config.template_wait_s
        while True:
            loaded = await self.templates.load(message.tpl_id, message.tpl_revision)
            if loaded is not None:
                return loaded
            if self.stopping():
                raise CarrierUnavailable("stopping while waiting for a VMS template")  # left uncommitted
            if loop.time() >= give_up:
                return None
            await asyncio.sleep(TEMPLATE_POLL_S)

    async def _register(self, loaded: LoadedTemplate) -> None:
        released = loaded.released
        await self.carrier.register(released, loaded.media)
        await self.store.mark_registered(released.tpl_id, released.revision)

    async def _submit(
        self, loaded: LoadedTemplate, chunk: list[VmsRecord], params: dict[str, list[str]], expire_s: int
    ) -> dict[str, SubmitResult]:
        released = loaded.released
        if await self.store.registered_revision(released.tpl_id) < released.revision:
            await self._register(loaded)
        recipients = [{"client_msg_id": r.msg_id, "mobile": r.mobile, "params": params[r.msg_id]} for r in chunk]
        try:
            results = await self.carrier.submit(released.tpl_id, released.revision, expire_s, recipients)
        except UnknownTemplate:  # the channel lost it (restarted): register again
            await self._register(loaded)
            results = await self.carrier.submit(released.tpl_id, released.revision, expire_s, recipients)
        by_id = {r.client_msg_id: r for r in results}
        missing = [r.msg_id for r in chunk if r.msg_id not in by_id]
        if missing:
            raise CarrierUnavailable(f"the VMS channel answered {len(results)} of {len(chunk)} recipients")
        return by_id
