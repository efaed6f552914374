"""The sender: DISPATCH (DispatchBatch) -> SMPP submit_sm per SMS part -> DELIVERY (one DeliveryBatch per batch).

Exactly-once submission
=======================

Kafka gives at-least-once: a batch whose offsets were not committed comes back after a crash, a rebalance, or a
retry of the handler. SMPP gives nothing: a submit_sm cannot be asked about later, and a resent one is a second
SMS (and a second bill) on the handset. So the sender never relies on "did this batch run before?" but on a
per-message claim in Redis, written BEFORE the message can reach the SMSC.

- ``msg_id = stable_id("msg", task_id, batch_no, index)``: every redelivery computes the same id.
- Claim: ``SET sub:<msg_id> <record state P> NX`` (plus ``pend:<smsc>:<destination>`` -> msg_id, see receipts
  below), pipelined for a chunk of recipients, before any of them is written to the socket. Only a new claim is
  submitted; an existing one means "some process already owns this message" and it is never submitted again.
- After submit_sm_resp: one Redis transaction per chunk stores the outcome in the claim (state S with the SMSC id
  of every part, or state F with the refusal's status name), the reverse map ``cmid:<smsc>:<id>`` -> record for
  each part, and the receipt deadline.

What a redelivered batch finds, per recipient:

- no claim: never attempted -> submitted now;
- S: submitted -> not re-sent; its SUBMITTED event is produced again from the claim (same event id, deduplicated
  downstream);
- F: refused -> not re-sent; its FAILED event is produced again unless already produced (see finals);
- P: the previous owner claimed it and died (or is still running after losing the partition) before recording
  an answer. The submit_sm may or may not have reached the SMSC, and nobody can tell: SMPP has no query by our
  reference. Re-sending would risk a duplicate, so the message is NOT re-sent; it is "in doubt". It gets a
  deadline (``MAGPIE_IN_DOUBT_GRACE_S``, default the receipt window) and:
    * if it did reach the SMSC, its receipt comes back (the SMSC keeps unacknowledged receipts and delivers them
      to the restarted process). The receipt's SMSC id is unknown to us, so it is matched through the pending
      registry ``pend:<smsc>:<destination>``: exactly one pending message to that destination on that SMSC ->
      that message gets its true final state (DELIVERED / FAILED). Two pending messages to the same number are
      ambiguous: the receipt is answered with an error so the SMSC retries it later, when at most one remains;
    * otherwise, at the deadline, the sweeper finalises it FAILED with result_code ``IN_DOUBT``.

Within a live process the same rule applies to a submit_sm that was written but not answered (response timeout,
connection lost): in doubt, not re-sent. A submit_sm that was provably never written (the client assigns the
sequence number only as it writes the PDU, so ``sequence_number == 0`` after a failure means "not written") loses
its claim and is submitted again when the batch is retried. The same rule holds for the chunk-wide first attempt
(``SmppClient.submit_each``, single-part messages on one session, no task per recipient): a PDU it reports with
``sequence_number == 0`` was not written and goes through the per-recipient path again; a written one without an
answer is in doubt.

The in-doubt window is small by construction: recipients are claimed in chunks (``MAGPIE_DISPATCHER_CHUNK``, 64),
a chunk's answers are recorded as soon as the chunk's submits are answered, and at most
``MAGPIE_DISPATCHER_CHUNKS_IN_FLIGHT`` chunks per partition are between claim and record (the batches of one fetch
from a partition run concurrently and share that bound: :func:`run_batches`). A SIGKILL therefore
leaves at most ``chunk x chunks_in_flight`` recipients per partition in doubt, and those whose submit_sm reached
the SMSC still get their true outcome from their receipt. Limitation: a message in doubt whose receipt never
arrives (or cannot be matched) ends FAILED/IN_DOUBT even though the handset may have received it; one whose
submit_sm was cut off before reaching the SMSC also ends FAILED/IN_DOUBT (it was not sent, but we cannot prove
it, and proving the opposite would be the only way to re-send safely). Matching by destination trusts that the
only pending message to a number on an SMSC is the one a receipt with an unknown id belongs to; a stray receipt
(for a message finalised IN_DOUBT long ago, or sent by another system on the same account) that arrives while a
new message to the same number is between claim and record would be attributed to the new one.

Output: one DeliveryBatch per DispatchBatch (key ``task_id:batch_no``): a SUBMITTED event per submitted recipient
(``event_id = stable_id("submitted", msg_id)``, ``submitted_at_ms``, ``segments``, the first part's SMSC id) and
a FAILED event per refused one (``event_id = stable_id("final", msg_id)``, through the same first-decision-wins
mark as receipts, :mod:`magpie_dispatcher.finals`). It is acknowledged by Kafka before the handler returns.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from prometheus_client import Counter, Histogram

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_common.ids import now_ms
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.smpp import (
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
    PduError,
    SmppClient,
    SmppConnectionError,
    SmppError,
    SubmitSm,
    build_submit_sms,
    status_name,
)
from magpie_common.smpp.constants import ESME_RINVMSGLEN
from magpie_common.sms_text import count_segments
from magpie_common.topics import DELIVERY
from magpie_dispatcher.config import DispatcherConfig, carrier_key
from magpie_dispatcher.events import (
    RESULT_OK,
    batch_key,
    delivery_batch,
    final_event_id,
    message_id,
    submitted_event_id,
)
from magpie_dispatcher.metrics import IN_DOUBT, IN_FLIGHT, RECIPIENTS, SUBMIT_SECONDS, SUBMITS, THROTTLED
from magpie_dispatcher.ratelimit import CarrierRateLimiter
from magpie_dispatcher.records import STATE_FAILED, STATE_SUBMITTED, MessageRecord
from magpie_dispatcher.render import CompiledTemplate, RenderError
from magpie_dispatcher.smsc import SmscLink, SmscPool
from magpie_dispatcher.store import DeliveryStore

log = logging.getLogger(__name__)

SENDABLE_ROUTES = frozenset({common_pb2.ROUTE_SMART, common_pb2.ROUTE_DEGRADED})
RETRY_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
# International number (E.164 without '+'): TON 1, NPI 1 (ISDN); a number as given: unknown / unknown.
TON_INTERNATIONAL = 1
NPI_ISDN = 1


class Outcome(Enum):
    SUBMITTED = "submitted"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    UNSENT = "unsent"


@dataclass(slots=True)
class Prepared:
    """A recipient ready to claim and submit (its PDUs sealed: encoded once, here)."""

    record: MessageRecord
    pdus: list[SubmitSm]
    link: SmscLink
    carrier: str
    error: str = ""  # the message cannot be submitted (PDU does not encode): fails without being sent
    paced: bool = False  # the carrier has a rate: take a token per part


@dataclass(slots=True)
class SendResult:
    outcome: Outcome
    carrier_ids: list[str] = field(default_factory=list)
    code: str = ""
    at_ms: int = 0


@dataclass(slots=True)
class ChunkResult:
    submitted: list[dispatch_pb2.DeliveryEvent] = field(default_factory=list)
    finals: list[tuple[dispatch_pb2.DeliveryEvent, MessageRecord]] = field(default_factory=list)
    unsent: int = 0


class NotSent(SmppConnectionError):
    """Recipients could not be submitted because no SMPP session was bound: the batch is retried."""


async def run_batches(
    batches: Sequence[dispatch_pb2.DispatchBatch],
    process: Callable[[dispatch_pb2.DispatchBatch, asyncio.Semaphore], Awaitable[object]],
    gate: asyncio.Semaphore,
) -> None:
    """Run ``process`` for the batches of one partition concurrently, sharing ``gate``, so that one batch's tail
    (its DeliveryBatch produce) and the next one's head (rendering, claims) overlap instead of queueing. A batch
    found twice (a producer retry) runs its copy after the original. Returns only once every batch finished,
    success or failure (a retry must never overlap a batch still submitting), then raises the first error."""
    unique: dict[tuple[str, int], dispatch_pb2.DispatchBatch] = {}
    again: list[dispatch_pb2.DispatchBatch] = []
    for batch in batches:
        key = (batch.ctx.task_id, batch.batch_no)
        if key in unique:
            again.append(batch)
        else:
            unique[key] = batch
    if len(unique) == 1:
        await process(next(iter(unique.values())), gate)
    else:
        results = await asyncio.gather(*(process(batch, gate) for batch in unique.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
    for batch in again:  # a copy runs after the original, like a redelivery: it finds the claims
        await process(batch, gate)


class Sender:
    def __init__(
        self,
        config: DispatcherConfig,
        store: DeliveryStore,
        pool: SmscPool,
        limiter: CarrierRateLimiter,
        producer: EventProducer,
    ) -> None:
        self.config = config
        self.store = store
        self.pool = pool
        self.limiter = limiter
        self.producer = producer
        # Metric children by label values: labels() per submit costs more than the rest of the bookkeeping.
        self._submit_seconds: dict[str, Histogram] = {}
        self._submits: dict[tuple[str, int], Counter] = {}

    async def handle(self, items: Sequence[Decoded[dispatch_pb2.DispatchBatch]]) -> None:
        """ConsumerLoop handler: the batches of a partition are sent concurrently (see :func:`run_batches`)."""
        await run_batches([item.message for item in items], self.process, self.new_gate())

    def new_gate(self) -> asyncio.Semaphore:
        """The bound on chunks between claim and record, shared by the batches of one partition."""
        return asyncio.Semaphore(self.config.chunks_in_flight)

    # ------------------------------------------------------------------ one batch

    async def process(
        self, batch: dispatch_pb2.DispatchBatch, gate: asyncio.Semaphore | None = None
    ) -> dispatch_pb2.DeliveryBatch | None:
        """Send one batch; its DeliveryBatch is acknowledged by Kafka before this returns. ``gate`` (shared with the
        other batches of the partition) bounds the chunks between claim and record."""
        ctx = batch.ctx
        if not ctx.tenant_id or not ctx.task_id:
            raise PoisonMessage("DispatchBatch without ctx.tenant_id / ctx.task_id")
        prepared = self.prepare(batch)
        size = self.config.chunk_size
        chunks = [prepared[i : i + size] for i in range(0, len(prepared), size)]
        gate = gate or self.new_gate()
        results = await asyncio.gather(*(self._chunk(chunk, gate) for chunk in chunks), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        done = [r for r in results if isinstance(r, ChunkResult)]
        submitted = [event for r in done for event in r.submitted]
        decisions = await self.store.decide_finals([event for r in done for event, _ in r.finals])
        finals = [d.event for d in decisions if d.event is not None]
        out: dispatch_pb2.DeliveryBatch | None = None
        if submitted or finals:
            out = delivery_batch([*submitted, *finals], trace_id=batch.meta.trace_id)
            await self.producer.send(DELIVERY, batch_key(ctx.task_id, batch.batch_no), out)
        await self.store.finals_produced([d.msg_id for d in decisions])
        unsent = sum(r.unsent for r in done)
        if unsent:
            raise NotSent(f"task {ctx.task_id} batch {batch.batch_no}: {unsent} recipient(s) not sent, retrying")
        return out

    def prepare(self, batch: dispatch_pb2.DispatchBatch) -> list[Prepared]:
        """Render every recipient first: a template problem poisons the batch before anything is submitted.
        The template is compiled once per batch, routes looked up once per carrier, each PDU encoded once."""
        ctx = batch.ctx
        prepared: list[Prepared] = []
        seen: set[int] = set()
        template: CompiledTemplate | None = None
        routes: dict[str, tuple[SmscLink, str, str, bool]] = {}
        skipped = 0
        for recipient in batch.recipients:
            if recipient.route not in SENDABLE_ROUTES:
                skipped += 1
                continue
            if recipient.index in seen:
                continue
            seen.add(recipient.index)
            msg_id = message_id(ctx.task_id, batch.batch_no, recipient.index)
            try:
                if template is None:
                    template = CompiledTemplate(ctx)
                text = template.text(recipient)
            except RenderError as exc:
                raise PoisonMessage(
                    f"task {ctx.task_id} batch {batch.batch_no} recipient {recipient.index}: {exc}"
                ) from exc
            route = routes.get(recipient.carrier)
            if route is None:
                link, default_source = self.pool.route(recipient.carrier)
                carrier = carrier_key(recipient.carrier)
                route = routes[recipient.carrier] = (link, default_source, carrier, self.limiter.paced(carrier))
            link, default_source, carrier, paced = route
            source = ctx.channel_number or default_source
            if recipient.msisdn:
                destination, ton, npi = recipient.msisdn, TON_INTERNATIONAL, NPI_ISDN
            else:
                destination, ton, npi = recipient.mobile, 0, 0
            error = ""
            try:
                pdus = build_submit_sms(
                    source,
                    destination,
                    text,
                    reference=int(msg_id[:2], 16),
                    dest_addr_ton=ton,
                    dest_addr_npi=npi,
                )
                for pdu in pdus:
                    pdu.seal()
            except PduError as exc:
                pdus, error = [], status_name(exc.command_status)
            except ValueError:  # more than 255 parts
                pdus, error = [], status_name(ESME_RINVMSGLEN)
            # build_submit_sms splits exactly as count_segments counts: one part per billable segment.
            segments = len(pdus) if pdus else count_segments(text)[1]
            record = MessageRecord(
                msg_id=msg_id,
                tenant_id=ctx.tenant_id,
                task_id=ctx.task_id,
                batch_no=batch.batch_no,
                index=recipient.index,
                mobile=recipient.mobile,
                destination=destination,
                parts=max(1, len(pdus)),
                segments=segments,
                route=recipient.route,
                carrier=recipient.carrier,
                tpl_id=ctx.tpl_id,
                sms_sign=ctx.sms_sign,
                aim_url=ctx.aim_url,
                smsc=link.ns,
            )
            prepared.append(Prepared(record, pdus, link, carrier, error, paced))
        if skipped:
            RECIPIENTS.labels("skipped_route").inc(skipped)
        return prepared

    # ------------------------------------------------------------------ one chunk

    async def _chunk(self, chunk: list[Prepared], gate: asyncio.Semaphore) -> ChunkResult:
        result = ChunkResult()
        async with gate:
            claims = await self.store.claim([p.record for p in chunk])
            fresh: list[Prepared] = []
            found_pending: list[str] = []
            counts: collections.Counter[str] = collections.Counter()
            for item, existing in zip(chunk, claims, strict=True):
                if existing is None:
                    fresh.append(item)
                elif existing.state == STATE_SUBMITTED:
                    counts["already_submitted"] += 1
                    result.submitted.append(self._submitted_event(existing))
                elif existing.state == STATE_FAILED:
                    counts["already_failed"] += 1
                    result.finals.append((self._failed_event(existing), existing))
                else:
                    counts["already_pending"] += 1
                    found_pending.append(existing.msg_id)
            if found_pending:
                log.warning(
                    "recipients claimed by an earlier attempt without an answer: in doubt, not re-sent",
                    extra={"task_id": chunk[0].record.task_id, "count": len(found_pending)},
                )
                await self.store.schedule_in_doubt(found_pending, now_ms())
            sends = await self._send_all(fresh)
            submitted: list[MessageRecord] = []
            failed: list[MessageRecord] = []
            in_doubt: list[MessageRecord] = []
            unsent: list[MessageRecord] = []
            for item, sent in zip(fresh, sends, strict=True):
                counts[sent.outcome.value] += 1
                if sent.outcome is Outcome.SUBMITTED:
                    record = item.record.submitted(sent.carrier_ids, sent.at_ms)
                    submitted.append(record)
                    result.submitted.append(self._submitted_event(record))
                elif sent.outcome is Outcome.FAILED:
                    record = item.record.failed(sent.code, sent.carrier_ids, sent.at_ms)
                    failed.append(record)
                    result.finals.append((self._failed_event(record), record))
                elif sent.outcome is Outcome.IN_DOUBT:
                    IN_DOUBT.inc()
                    in_doubt.append(item.record)
                else:
                    unsent.append(item.record)
            await self.store.record_outcomes(
                submitted=submitted, failed=failed, in_doubt=in_doubt, unsent=unsent, now_ms=now_ms()
            )
            result.unsent = len(unsent)
        for outcome, count in counts.items():
            RECIPIENTS.labels(outcome).inc(count)
        return result

    @staticmethod
    def _submitted_event(record: MessageRecord) -> dispatch_pb2.DeliveryEvent:
        return record.event(submitted_event_id(record.msg_id), dispatch_pb2.DELIVERY_STATUS_SUBMITTED, RESULT_OK)

    @staticmethod
    def _failed_event(record: MessageRecord) -> dispatch_pb2.DeliveryEvent:
        return record.event(
            final_event_id(record.msg_id),
            dispatch_pb2.DELIVERY_STATUS_FAILED,
            record.code,
            done_at_ms=record.submitted_at_ms or now_ms(),
        )

    # ------------------------------------------------------------------ the chunk's submits

    async def _send_all(self, items: list[Prepared]) -> list[SendResult]:
        """Every item's outcome. Single-part messages of an unpaced, unthrottled link go out together on one
        session (``SmppClient.submit_each``: no task per recipient); whatever that first attempt does not settle
        (throttled, or provably not written) and every other message goes through :meth:`_send`."""
        results: list[SendResult | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for position, item in enumerate(items):
            if not item.error and len(item.pdus) == 1 and not item.paced:
                groups.setdefault(id(item.link), []).append(position)
        for positions in groups.values():
            link = items[positions[0]].link
            client = None if link.throttled else link.pick()
            if client is None:
                continue
            await self._submit_together(client, link, [items[p] for p in positions], positions, results)
        slow = [position for position, result in enumerate(results) if result is None]
        if slow:
            for position, result in zip(slow, await asyncio.gather(*(self._send(items[p]) for p in slow)), strict=True):
                results[position] = result
        return [result for result in results if result is not None]

    async def _submit_together(
        self,
        client: SmppClient,
        link: SmscLink,
        items: list[Prepared],
        positions: list[int],
        results: list[SendResult | None],
    ) -> None:
        """The first attempt of single-part messages on one session; settles ``results`` where it can."""
        IN_FLIGHT.inc(len(items))
        try:
            answers = await client.submit_each([item.pdus[0] for item in items])
        finally:
            IN_FLIGHT.dec(len(items))
        at_ms = now_ms()
        accepted = False
        for item, position, (answer, seconds) in zip(items, positions, answers, strict=True):
            if isinstance(answer, SmppError):
                if item.pdus[0].sequence_number == 0 and isinstance(answer, SmppConnectionError):
                    continue  # never written: the per-recipient path tries again (another session, or unsent)
                log.warning(
                    "submit_sm unanswered: in doubt",
                    extra={"msg_id": item.record.msg_id, "smsc": link.label, "error": repr(answer)},
                )
                results[position] = SendResult(Outcome.IN_DOUBT, [])
                continue
            status = answer.command_status
            self._observe(item.carrier, status, seconds)
            if status == ESME_ROK:
                accepted = True
                results[position] = SendResult(Outcome.SUBMITTED, [answer.message_id], at_ms=at_ms)
            elif status in RETRY_STATUSES:
                THROTTLED.labels(item.carrier).inc()
                link.on_throttled()  # the per-recipient path waits for the pause and submits again
            else:
                results[position] = SendResult(Outcome.FAILED, [], code=status_name(status), at_ms=at_ms)
        if accepted:
            link.on_accepted()

    # ------------------------------------------------------------------ one recipient

    async def _send(self, item: Prepared) -> SendResult:
        """Submit the parts in order. Never raises (but for cancellation): the outcome says what happened."""
        if item.error:
            return SendResult(Outcome.FAILED, code=item.error, at_ms=now_ms())
        link = item.link
        carrier = item.carrier
        ids: list[str] = []
        for pdu in item.pdus:
            while True:
                pdu.sequence_number = 0
                try:
                    if item.paced:
                        await self.limiter.acquire(carrier)
                    if link.throttled:
                        await link.wait_unthrottled()
                    client = link.pick() or await link.session()
                except SmppConnectionError:
                    # Nothing of this part was written. The first part: nothing of the message was, retry later.
                    # A later part: the message is cut, its first parts are out: in doubt.
                    return SendResult(Outcome.IN_DOUBT if ids else Outcome.UNSENT, ids)
                started = time.perf_counter()
                IN_FLIGHT.inc()
                try:
                    resp = await client.submit(pdu)
                except SmppError as exc:
                    if pdu.sequence_number == 0 and isinstance(exc, SmppConnectionError):
                        # The session dropped before the PDU was written: try again (on another session).
                        await asyncio.sleep(0.01)
                        continue
                    log.warning(
                        "submit_sm unanswered: in doubt",
                        extra={"msg_id": item.record.msg_id, "smsc": link.label, "error": repr(exc)},
                    )
                    return SendResult(Outcome.IN_DOUBT, ids)
                finally:
                    IN_FLIGHT.dec()
                self._observe(carrier, resp.command_status, time.perf_counter() - started)
                status = resp.command_status
                if status == ESME_ROK:
                    link.on_accepted()
                    ids.append(resp.message_id)
                    break
                if status in RETRY_STATUSES:
                    THROTTLED.labels(carrier).inc()
                    link.on_throttled()
                    continue
                return SendResult(Outcome.FAILED, ids, code=status_name(status), at_ms=now_ms())
        return SendResult(Outcome.SUBMITTED, ids, at_ms=now_ms())

    def _observe(self, carrier: str, status: int, seconds: float) -> None:
        histogram = self._submit_seconds.get(carrier)
        if histogram is None:
            histogram = self._submit_seconds[carrier] = SUBMIT_SECONDS.labels(carrier)
        histogram.observe(seconds)
        counter = self._submits.get((carrier, status))
        if counter is None:
            counter = self._submits[(carrier, status)] = SUBMITS.labels(carrier, status_name(status))
        counter.inc()
