"""Deferred sends: scheduled tasks and the marketing send window, and the cancellation of scheduled tasks.

Which batches wait
==================

A DispatchBatch is not sent when it arrives if

- ``ctx.send_at_ms`` is in the future (a scheduled task, ``X-Magpie-Send-At`` at the gateway): it waits until then;
- ``ctx.marketing`` is set (promotion template, smart or plain SMS) and the time is outside the marketing window
  (``MAGPIE_MARKETING_WINDOW`` in ``MAGPIE_MARKETING_TZ``, :mod:`magpie_common.send_window`): it waits for the next
  opening. Both combine: a batch is due at the first instant inside the window at or after ``send_at_ms``.

Everything else (notifications, marketing inside the window) goes straight to the :class:`~magpie_dispatcher.sender.
Sender`.

How they wait
=============

Collection ``deferred`` of the dispatcher's MongoDB database, one document per batch (``_id`` =
``<tenant_id>:<task_id>:<batch_no>``): ``tenant_id``, ``task_id``, ``batch_no``, ``recipients``, ``reason``
(``SCHEDULED`` | ``MARKETING_WINDOW``), ``due_ms``, ``state`` (``waiting`` -> ``released`` | ``cancelled``),
``lease_ms`` (end of the lease of the dispatcher settling it, 0 = free), ``attempts``, ``batch`` (the serialized
DispatchBatch), ``created_at``, ``released_at`` / ``cancelled_at`` and ``expire_at`` (TTL, set once settled:
``MAGPIE_DEFERRAL_RETENTION_S``). The consumer writes the document (an upsert: a redelivered record changes nothing)
and moves on; its offset is committed once the document is durable. Nothing waits in memory, so the batches behind a
deferred one in its partition (notifications) are sent at once, and a restart loses nothing.

Release
=======

Every ``MAGPIE_DEFERRAL_INTERVAL_S`` each dispatcher takes due documents one at a time with ``find_one_and_update``
(``state`` waiting, ``due_ms <= now``, ``lease_ms <= now`` -> ``lease_ms = now + MAGPIE_DEFERRAL_LEASE_S``), so two
replicas never hold the same document. The holder produces the batch back to DISPATCH (same key, same partition)
and marks the document released. The batch then takes the normal path: it is due, so the sender submits it (if the
marketing window closed in between, it waits for the next opening again, as any marketing batch would). A holder
that dies between the produce and the mark leaves its lease to expire and another dispatcher releases the batch
again: harmless, the sender's per-recipient claims (:mod:`magpie_dispatcher.sender`) never submit a message twice;
the second copy only produces the same events again (same event ids).

Cancellation
============

``TaskControl`` with ``TASK_COMMAND_CANCEL`` on ``task.control`` (from the gateway's cancel operation). The handler
records the task in ``cancelled_tasks`` (``_id`` = ``<tenant_id>:<task_id>``, ``tenant_id``, ``task_id``,
``operator``, ``requested_at_ms``, ``expire_at`` after ``CANCELLED_RETENTION``), then settles every waiting document
of the task at once (taken like a release, whatever its due time). Settling a document of a cancelled task cancels
its batch instead of releasing it: each recipient's message is claimed exactly like the sender claims it, but
recorded FAILED with result code ``CANCELLED`` instead of being submitted, and its final event (DELIVERY,
``DELIVERY_STATUS_FAILED`` / ``CANCELLED``, through the first-decision-wins mark of :mod:`magpie_dispatcher.finals`)
tells the projector, billing (nothing to bill) and the receipts. A recipient whose message was already claimed
(submitted, refused, in doubt) keeps its own outcome: sending and cancelling exclude each other per recipient.
Recipients routed VMS (a smart send task's VMS fallback) are not the send role's: they are handed to the vms role
when their batch is sent, and a cancelled batch asks the vms role to cancel them (``magpie_dispatcher.vms_fallback``;
the same rule, per recipient, in the vms role's records).

``cancelled_tasks`` is also checked for every batch that can be cancelled (one with a ``send_at_ms``, or a marketing
one: the gateway lets a promotion task held by the window be cancelled) when it reaches the consumer, so the batches
of a cancelled task that were still upstream (number resolver, short links) when the cancel came, and a batch
released in a race with the cancel, are cancelled too. Limit: a cancel that reaches the dispatcher after a batch was
released AND consumed does not stop that batch; the gateway refuses cancels close to the send time
(``MAGPIE_SCHEDULE_CANCEL_MARGIN_S``) so that this needs the dispatcher to lag by more than that margin.

Time comes from ``clock`` (epoch milliseconds), replaceable in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from magpie.v1 import dispatch_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import ConsumerLoop, Decoded, EventProducer, PoisonMessage
from magpie_common.send_window import SendWindow
from magpie_common.storage import mongo_client
from magpie_common.topics import DISPATCH, TASK_CONTROL
from magpie_dispatcher.config import SERVICE_NAME, DispatcherConfig
from magpie_dispatcher.events import batch_key, final_event_id, message_id
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.records import STATE_FAILED, MessageRecord
from magpie_dispatcher.sender import SENDABLE_ROUTES, Sender, run_batches
from magpie_dispatcher.store import DeliveryStore
from magpie_dispatcher.vms_fallback import VmsHandOff

log = logging.getLogger(__name__)

SERVICE_DB = "dispatcher"
CONTROL_GROUP = f"{SERVICE_NAME}-control"

WAITING = "waiting"
RELEASED = "released"
CANCELLED = "cancelled"
REASON_SCHEDULED = "SCHEDULED"
REASON_WINDOW = "MARKETING_WINDOW"
RESULT_CANCELLED = "CANCELLED"
CANCELLED_RETENTION = timedelta(days=40)  # beyond the longest schedule (30 days) plus pipeline lag

DEFERRED = Counter("magpie_dispatcher_deferred_batches_total", "Batches held for later", ["reason"])
RELEASED_BATCHES = Counter("magpie_dispatcher_released_batches_total", "Deferred batches released to DISPATCH")
CANCELLED_RECIPIENTS = Counter(
    "magpie_dispatcher_cancelled_recipients_total", "Recipients of cancelled scheduled tasks, finalised CANCELLED"
)


def deferred_id(tenant_id: str, task_id: str, batch_no: int) -> str:
    return f"{tenant_id}:{task_id}:{batch_no}"


def cancelled_id(tenant_id: str, task_id: str) -> str:
    return f"{tenant_id}:{task_id}"


def due_time(ctx: task_pb2.TaskContext, now: int, window: SendWindow) -> tuple[int, str]:
    """When the batch of ``ctx`` may go out (``now`` or later) and why it waits ("" when it does not)."""
    due, reason = now, ""
    if ctx.send_at_ms > now:
        due, reason = ctx.send_at_ms, REASON_SCHEDULED
    if ctx.marketing:
        opens = window.next_open_ms(due)
        if opens > due:
            due, reason = opens, REASON_WINDOW
    return due, reason


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeferralStore:
    """The ``deferred`` and ``cancelled_tasks`` collections."""

    def __init__(self, db: AsyncDatabase, *, retention_s: float) -> None:
        self.deferred = db["deferred"]
        self.cancelled = db["cancelled_tasks"]
        self.retention = timedelta(seconds=retention_s)

    async def ensure_indexes(self) -> None:
        await self.deferred.create_indexes(
            [
                IndexModel([("state", ASCENDING), ("due_ms", ASCENDING)], name="due"),
                IndexModel([("task_id", ASCENDING), ("state", ASCENDING)], name="task"),
                IndexModel([("expire_at", ASCENDING)], name="ttl", expireAfterSeconds=0, sparse=True),
            ]
        )
        await self.cancelled.create_indexes(
            [IndexModel([("expire_at", ASCENDING)], name="ttl", expireAfterSeconds=0, sparse=True)]
        )

    async def defer(self, batch: dispatch_pb2.DispatchBatch, due_ms: int, reason: str) -> bool:
        """Store the batch until ``due_ms``; True when it was not waiting already (a redelivery changes nothing).

        A batch released earlier that has to wait again (the marketing window closed before it was sent) waits
        anew for ``due_ms``."""
        ctx = batch.ctx
        doc_id = deferred_id(ctx.tenant_id, ctx.task_id, batch.batch_no)
        data = batch.SerializeToString()
        result = await self.deferred.update_one(
            {"_id": doc_id},
            {
                "$setOnInsert": {
                    "tenant_id": ctx.tenant_id,
                    "task_id": ctx.task_id,
                    "batch_no": batch.batch_no,
                    "recipients": len(batch.recipients),
                    "reason": reason,
                    "due_ms": due_ms,
                    "state": WAITING,
                    "lease_ms": 0,
                    "attempts": 0,
                    "batch": data,
                    "created_at": _utcnow(),
                }
            },
            upsert=True,
        )
        if result.upserted_id is not None:
            return True
        again = await self.deferred.update_one(
            {"_id": doc_id, "tenant_id": ctx.tenant_id, "state": RELEASED},
            {
                "$set": {"state": WAITING, "due_ms": due_ms, "reason": reason, "lease_ms": 0, "batch": data},
                "$unset": {"expire_at": "", "released_at": ""},
            },
        )
        return again.modified_count == 1

    async def claim_due(self, now: int, lease_ms: int) -> dict[str, Any] | None:
        """Take the oldest due waiting document for ``lease_ms`` (None when nothing is due)."""
        doc: dict[str, Any] | None = await self.deferred.find_one_and_update(
            {"state": WAITING, "due_ms": {"$lte": now}, "lease_ms": {"$lte": now}},
            {"$set": {"lease_ms": now + lease_ms}, "$inc": {"attempts": 1}},
            sort=[("due_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def claim_of_task(self, tenant_id: str, task_id: str, now: int, lease_ms: int) -> dict[str, Any] | None:
        """Take a free waiting document of the task, whatever its due time (None when there is none)."""
        doc: dict[str, Any] | None = await self.deferred.find_one_and_update(
            {"task_id": task_id, "tenant_id": tenant_id, "state": WAITING, "lease_ms": {"$lte": now}},
            {"$set": {"lease_ms": now + lease_ms}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def settle(self, doc: dict[str, Any], state: str) -> bool:
        """Mark a claimed document released or cancelled, if the claim is still ours."""
        at = _utcnow()
        result = await self.deferred.update_one(
            {"_id": doc["_id"], "state": WAITING, "lease_ms": doc["lease_ms"]},
            {"$set": {"state": state, f"{state}_at": at, "lease_ms": 0, "expire_at": at + self.retention}},
        )
        return result.modified_count == 1

    async def record_cancel(self, command: task_pb2.TaskControl) -> None:
        at = _utcnow()
        await self.cancelled.update_one(
            {"_id": cancelled_id(command.tenant_id, command.task_id)},
            {
                "$setOnInsert": {
                    "tenant_id": command.tenant_id,
                    "task_id": command.task_id,
                    "operator": command.operator,
                    "requested_at_ms": command.requested_at_ms,
                    "created_at": at,
                    "expire_at": at + CANCELLED_RETENTION,
                }
            },
            upsert=True,
        )

    async def is_cancelled(self, tenant_id: str, task_id: str) -> bool:
        return await self.cancelled.find_one({"_id": cancelled_id(tenant_id, task_id)}, {"_id": 1}) is not None

    async def waiting(self, task_id: str) -> list[dict[str, Any]]:
        """The waiting documents of a task (without their batches): for operations and tests."""
        docs: list[dict[str, Any]] = await self.deferred.find(
            {"task_id": task_id, "state": WAITING}, {"batch": 0}
        ).to_list(None)
        return docs


class Deferrals:
    """The DISPATCH handler in front of the sender, the release loop and the task.control consumer."""

    def __init__(
        self,
        settings: Settings,
        config: DispatcherConfig,
        *,
        sender: Sender,
        store: DeliveryStore,
        emitter: FinalEmitter,
        producer: EventProducer,
        mongo: AsyncMongoClient | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.sender = sender
        self.delivery = store
        self.emitter = emitter
        self.producer = producer
        self._own_mongo = mongo is None
        self.mongo: AsyncMongoClient = mongo if mongo is not None else mongo_client(settings)
        self.store = DeferralStore(self.mongo[settings.db_name(SERVICE_DB)], retention_s=config.deferral_retention_s)
        self.window = config.marketing_window
        self.clock: Callable[[], int] = now_ms
        self.interval_s = config.deferral_interval_s
        self.lease_ms = int(config.deferral_lease_s * 1000)
        self.control: ConsumerLoop[task_pb2.TaskControl] = ConsumerLoop(
            settings,
            group_id=CONTROL_GROUP,
            topic=TASK_CONTROL,
            message_type=task_pb2.TaskControl,
            handler=self.handle_control,
            producer=producer,
        )
        self._stop = asyncio.Event()
        # Recipients routed VMS (a smart send task's VMS fallback) go to the vms role when their batch is sent.
        self.vms_fallback = VmsHandOff(producer, emitter)

    async def start(self) -> None:
        await self.store.ensure_indexes()

    async def close(self) -> None:
        if self._own_mongo:
            await self.mongo.close()

    def stop(self) -> None:
        self._stop.set()
        self.control.stop()

    async def run(self) -> None:
        """The release loop and the control consumer, until :meth:`stop`."""
        self._stop.clear()
        await asyncio.gather(self._release_loop(), self.control.run())

    # ------------------------------------------------------------------ DISPATCH

    async def handle(self, items: Sequence[Decoded[dispatch_pb2.DispatchBatch]]) -> None:
        """ConsumerLoop handler of DISPATCH: each batch is sent, stored for later, or cancelled; the batches of a
        partition concurrently, sharing the sender's bound on chunks in flight (``sender.run_batches``)."""
        await run_batches([item.message for item in items], self.route, self.sender.new_gate())

    async def route(self, batch: dispatch_pb2.DispatchBatch, gate: asyncio.Semaphore | None = None) -> str:
        """Send, defer or cancel one batch; returns what happened (``sent``, ``deferred``, ``cancelled``)."""
        ctx = batch.ctx
        if not ctx.tenant_id or not ctx.task_id:
            raise PoisonMessage("DispatchBatch without ctx.tenant_id / ctx.task_id")
        if (ctx.send_at_ms or ctx.marketing) and await self.store.is_cancelled(ctx.tenant_id, ctx.task_id):
            await self.cancel_batch(batch)
            return "cancelled"
        due, reason = due_time(ctx, self.clock(), self.window)
        if reason:
            if await self.store.defer(batch, due, reason):
                DEFERRED.labels(reason).inc()
                log.info(
                    "batch deferred",
                    extra={"task_id": ctx.task_id, "batch_no": batch.batch_no, "due_ms": due, "reason": reason},
                )
            return "deferred"
        await self.vms_fallback.hand_off(batch)
        await self.sender.process(batch, gate)
        return "sent"

    # ------------------------------------------------------------------ release

    async def _release_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.release_due()
            except Exception as exc:
                log.warning("releasing deferred batches failed; retrying next round", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._stop.wait()

    async def release_due(self) -> int:
        """Settle every due waiting document (release it, or cancel it if its task was cancelled); returns how many
        were settled."""
        settled = 0
        while not self._stop.is_set():
            doc = await self.store.claim_due(self.clock(), self.lease_ms)
            if doc is None:
                break
            await self._settle(doc)
            settled += 1
        return settled

    async def _settle(self, doc: dict[str, Any]) -> None:
        batch = dispatch_pb2.DispatchBatch.FromString(doc["batch"])
        ctx = batch.ctx
        if await self.store.is_cancelled(ctx.tenant_id, ctx.task_id):
            await self.cancel_batch(batch)
            await self.store.settle(doc, CANCELLED)
            return
        await self.producer.send(DISPATCH, batch_key(ctx.task_id, batch.batch_no), batch)
        if await self.store.settle(doc, RELEASED):
            RELEASED_BATCHES.inc()
        log.info("deferred batch released", extra={"task_id": ctx.task_id, "batch_no": batch.batch_no})

    # ------------------------------------------------------------------ cancellation

    async def handle_control(self, items: Sequence[Decoded[task_pb2.TaskControl]]) -> None:
        for item in items:
            command = item.message
            if command.command != task_pb2.TASK_COMMAND_CANCEL:
                log.warning("unknown task command ignored", extra={"command": int(command.command)})
                continue
            if not command.tenant_id or not command.task_id:
                raise PoisonMessage("TaskControl without tenant_id / task_id")
            await self.cancel_task(command)

    async def cancel_task(self, command: task_pb2.TaskControl) -> int:
        """Record the cancel and cancel the task's waiting batches; returns how many were cancelled here."""
        await self.store.record_cancel(command)
        cancelled = 0
        while True:
            doc = await self.store.claim_of_task(command.tenant_id, command.task_id, self.clock(), self.lease_ms)
            if doc is None:
                break
            await self._settle(doc)
            cancelled += 1
        log.info("task cancelled", extra={"task_id": command.task_id, "batches": cancelled})
        return cancelled

    def _records(self, batch: dispatch_pb2.DispatchBatch) -> list[MessageRecord]:
        """The message records of the batch's sendable recipients, as the sender would claim them (nothing to
        render: a cancelled message is never submitted)."""
        ctx = batch.ctx
        records: list[MessageRecord] = []
        seen: set[int] = set()
        for recipient in batch.recipients:
            if recipient.route not in SENDABLE_ROUTES or recipient.index in seen:
                continue
            seen.add(recipient.index)
            link, _ = self.sender.pool.route(recipient.carrier)
            records.append(
                MessageRecord(
                    msg_id=message_id(ctx.task_id, batch.batch_no, recipient.index),
                    tenant_id=ctx.tenant_id,
                    task_id=ctx.task_id,
                    batch_no=batch.batch_no,
                    index=recipient.index,
                    mobile=recipient.mobile,
                    destination=recipient.msisdn or recipient.mobile,
                    parts=1,
                    segments=0,
                    route=recipient.route,
                    carrier=recipient.carrier,
                    tpl_id=ctx.tpl_id,
                    sms_sign=ctx.sms_sign,
                    aim_url=ctx.aim_url,
                    smsc=link.ns,
                )
            )
        return records

    async def cancel_batch(self, batch: dispatch_pb2.DispatchBatch) -> int:
        """Finalise every recipient of the batch not claimed yet as FAILED/CANCELLED (claimed like a send, so it
        can never be submitted afterwards); returns how many final events were produced."""
        await self.vms_fallback.cancel(batch)  # the recipients routed VMS: the vms role cancels them
        records = self._records(batch)
        claims = await self.delivery.claim(records)
        fresh = [record for record, claim in zip(records, claims, strict=True) if claim is None]
        earlier = [claim for claim in claims if claim is not None and claim.state == STATE_FAILED]
        cancelled = [record.failed(RESULT_CANCELLED, [], 0) for record in fresh]
        now = now_ms()
        await self.delivery.record_outcomes(failed=cancelled, now_ms=now)
        candidates = [
            (
                record.event(
                    final_event_id(record.msg_id),
                    dispatch_pb2.DELIVERY_STATUS_FAILED,
                    record.code,
                    done_at_ms=record.submitted_at_ms or now,
                ),
                record,
            )
            for record in (*cancelled, *earlier)
        ]
        produced = await self.emitter.emit(candidates, source="cancel")
        CANCELLED_RECIPIENTS.inc(len(cancelled))
        if len(fresh) < len(records):
            log.info(
                "recipients of a cancelled batch were already claimed: they keep their outcome",
                extra={"task_id": batch.ctx.task_id, "batch_no": batch.batch_no, "count": len(records) - len(fresh)},
            )
        return produced
