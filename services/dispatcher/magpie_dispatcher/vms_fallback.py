"""The VMS fallback of smart send tasks: the send role hands the recipients routed VMS to the vms role.

A smart send task with ``X-Magpie-Fallback: vms`` (``magpie_gateway.vms_fallback``) names a VMS template in its
context (``ctx.vms_tpl_id``, ``vms_tpl_revision``) and the source of each template param (``ctx.vms_params``,
``magpie_common.vms_params``). The number-resolver routes its unresolvable recipients ``ROUTE_VMS`` and shortlink
forwards them, without a link, in the ``DispatchBatch``. When the send role *sends* that batch
(``deferral.Deferrals.route``: due now, after a schedule or the marketing window if it waited), :meth:`VmsHandOff.
hand_off` produces its VMS recipients as ``VmsSendBatch`` records on VMS_SEND before the SMS are submitted:

- ``task_id`` the smart send task, ``batch_no`` / ``batch_count`` its recipient batch, each recipient's task-level
  ``index`` and ``mobile`` (as submitted), ``params`` computed from the sources (``value_of``), ``tpl_id`` /
  ``tpl_revision`` the context's VMS template, ``aim_fallback`` and ``aim_url``: the vms role sends them like a
  VMS send task's and produces their events on DELIVERY, where the gateway's projector (send details: route VMS,
  final status), billing (one VMS unit per delivered message) and the AIM receipts take them;
- validity ``expires_at_ms`` = hand-off time + ``MAGPIE_VMS_FALLBACK_EXPIRATION_H`` (1-72 hours, default 24, the
  default validity of VMS send tasks); no report by then (plus the vms role's grace) = TIMEOUT;
- key ``task_id:batch_no``, at most 500 recipients and about 256 KB per record (a batch may need more than one),
  event id ``stable_id("vms-fallback", "send", tenant, task, batch_no, part)``. A batch handled again (redelivery,
  a retry after an SMPP outage) hands the same recipients again: the vms role sends each message at most once
  (message id ``stable_id("vms-msg", task_id, index)``) and repeats the recorded events.

Cancellation (``deferral.Deferrals.cancel_batch``, a scheduled task cancelled): :meth:`VmsHandOff.cancel` produces
the same records with ``cancel`` set instead; the vms role finalises every recipient it has not sent FAILED /
``CANCELLED``, and a recipient already sent keeps its outcome, the same rule as for the SMS.

A batch whose VMS recipients come without a VMS template (not a gateway's task; shortlink refuses those already)
has them finalised FAILED ``VMS_TEMPLATE_MISSING`` through the send role's first-decision-wins emitter, so
nothing stays pending. The vms role must run somewhere (``MAGPIE_DISPATCHER_ROLES`` with ``vms``) for VMS fallback
recipients to be sent.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from magpie.v1 import common_pb2, dispatch_pb2, vms_pb2
from magpie_common.config import env_int
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import EventProducer
from magpie_common.topics import VMS_SEND
from magpie_common.vms_params import values_of
from magpie_dispatcher.config import SERVICE_NAME
from magpie_dispatcher.events import batch_key
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.vms.sender import final_event_id, vms_message_id

log = logging.getLogger(__name__)

HANDED = Counter(
    "magpie_dispatcher_vms_fallback_recipients_total", "Recipients routed VMS handed to the vms role", ["kind"]
)

HOUR_MS = 3_600_000
DEFAULT_EXPIRATION_H = 24
MAX_EXPIRATION_H = 72
RECORD_RECIPIENTS = 500
RECORD_BYTES = 256 * 1024
VMS_TEMPLATE_MISSING = "VMS_TEMPLATE_MISSING"


def vms_recipients(batch: dispatch_pb2.DispatchBatch) -> list[dispatch_pb2.DispatchRecipient]:
    """The batch's recipients routed VMS, each index once."""
    seen: set[int] = set()
    found: list[dispatch_pb2.DispatchRecipient] = []
    for recipient in batch.recipients:
        if recipient.route == common_pb2.ROUTE_VMS and recipient.index not in seen:
            seen.add(recipient.index)
            found.append(recipient)
    return found


def send_records(
    batch: dispatch_pb2.DispatchBatch,
    recipients: list[dispatch_pb2.DispatchRecipient],
    *,
    cancel: bool,
    now: int,
    expiration_ms: int,
) -> list[tuple[str, vms_pb2.VmsSendBatch]]:
    """The VmsSendBatch records of ``recipients`` (key, message)."""
    ctx = batch.ctx
    sources = list(ctx.vms_params)
    groups: list[list[vms_pb2.VmsRecipient]] = [[]]
    size = 0
    for recipient in recipients:
        values = values_of(sources, recipient.params, recipient.sms_params)
        item = vms_pb2.VmsRecipient(index=recipient.index, mobile=recipient.mobile, params=values)
        weight = item.ByteSize() + 4
        if groups[-1] and (len(groups[-1]) >= RECORD_RECIPIENTS or size + weight > RECORD_BYTES):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += weight
    kind = "cancel" if cancel else "send"
    key = batch_key(ctx.task_id, batch.batch_no)
    records: list[tuple[str, vms_pb2.VmsSendBatch]] = []
    for part, group in enumerate(groups):
        message = vms_pb2.VmsSendBatch(
            meta=common_pb2.EventMeta(
                event_id=stable_id("vms-fallback", kind, ctx.tenant_id, ctx.task_id, batch.batch_no, part),
                tenant_id=ctx.tenant_id,
                occurred_at_ms=now,
                producer=SERVICE_NAME,
                trace_id=batch.meta.trace_id,
            ),
            task_id=ctx.task_id,
            task_name=ctx.task_name,
            tpl_id=ctx.vms_tpl_id,
            tpl_revision=ctx.vms_tpl_revision,
            batch_no=batch.batch_no,
            batch_count=batch.batch_count,
            expires_at_ms=now + expiration_ms,
            recipients=group,
            aim_fallback=True,
            aim_url=ctx.aim_url,
            cancel=cancel,
        )
        records.append((key, message))
    return records


class VmsHandOff:
    """Hands a DispatchBatch's VMS recipients to the vms role (send or cancel)."""

    def __init__(self, producer: EventProducer, emitter: FinalEmitter, expiration_h: int | None = None) -> None:
        hours = (
            env_int("MAGPIE_VMS_FALLBACK_EXPIRATION_H", DEFAULT_EXPIRATION_H) if expiration_h is None else expiration_h
        )
        if not 1 <= hours <= MAX_EXPIRATION_H:
            raise ValueError(f"MAGPIE_VMS_FALLBACK_EXPIRATION_H must be between 1 and {MAX_EXPIRATION_H} hours")
        self.producer = producer
        self.emitter = emitter
        self.expiration_ms = hours * HOUR_MS

    async def hand_off(self, batch: dispatch_pb2.DispatchBatch) -> int:
        """Produce the batch's VMS recipients to VMS_SEND; returns how many were handed over."""
        return await self._produce(batch, cancel=False)

    async def cancel(self, batch: dispatch_pb2.DispatchBatch) -> int:
        """Ask the vms role to cancel the batch's VMS recipients not sent yet; returns how many were named."""
        return await self._produce(batch, cancel=True)

    async def _produce(self, batch: dispatch_pb2.DispatchBatch, *, cancel: bool) -> int:
        recipients = vms_recipients(batch)
        if not recipients:
            return 0
        ctx = batch.ctx
        if not ctx.vms_tpl_id:
            await self._fail_without_template(batch, recipients)
            return 0
        records = send_records(batch, recipients, cancel=cancel, now=now_ms(), expiration_ms=self.expiration_ms)
        await self.producer.send_many((VMS_SEND, key, message) for key, message in records)
        HANDED.labels("cancel" if cancel else "send").inc(len(recipients))
        return len(recipients)

    async def _fail_without_template(
        self, batch: dispatch_pb2.DispatchBatch, recipients: list[dispatch_pb2.DispatchRecipient]
    ) -> None:
        ctx = batch.ctx
        at = now_ms()
        log.error(
            "recipients routed VMS but the task names no VMS template: they fail",
            extra={"task_id": ctx.task_id, "batch_no": batch.batch_no, "count": len(recipients)},
        )
        candidates: list[tuple[dispatch_pb2.DeliveryEvent, None]] = []
        for recipient in recipients:
            msg_id = vms_message_id(ctx.task_id, recipient.index)
            event = dispatch_pb2.DeliveryEvent(
                event_id=final_event_id(msg_id),
                tenant_id=ctx.tenant_id,
                task_id=ctx.task_id,
                batch_no=batch.batch_no,
                index=recipient.index,
                mobile=recipient.mobile,
                msg_id=msg_id,
                status=dispatch_pb2.DELIVERY_STATUS_FAILED,
                result_code=VMS_TEMPLATE_MISSING,
                done_at_ms=at,
                carrier=recipient.carrier,
                route=common_pb2.ROUTE_VMS,
                aim_url=ctx.aim_url,
            )
            candidates.append((event, None))
        await self.emitter.emit(candidates, source="vms_fallback")
        HANDED.labels("no_template").inc(len(recipients))
