"""The minting worker: CLASSIFIED (ClassifiedBatch) -> links in MongoDB + Redis -> DISPATCH (DispatchBatch).

For every recipient routed SMART or DEGRADED one code is derived (:mod:`magpie_shortlink.codes`), the links of the
batch are inserted in one bulk write and cached in one Redis pipeline, then one ``DispatchBatch`` with exactly those
recipients is produced (key ``task_id:batch_no``). Recipients routed VMS (the task's VMS fallback, ``ctx.vms_tpl_id``)
are forwarded in the same DispatchBatch without a link (no code, no URL: the VMS template is sent, see
``magpie_dispatcher.vms_fallback``); routed VMS without a VMS template in the context (not a gateway's task) they are
refused like a taken custom code below, with result code ``VMS_TEMPLATE_MISSING``. Other routes are not forwarded:
the gateway projects them from CLASSIFIED. A batch without sendable recipients produces nothing.

Idempotence: codes are a deterministic function of (tenant, task, index, collision counter) and stored documents are
never modified, so a redelivered batch reaches the same codes, inserts nothing new and produces an identical
``DispatchBatch`` (same ``meta.event_id``) that the dispatcher deduplicates.

Custom short codes (KooMessage ``generation_type`` 2, ``ClassifiedRecipient.custom_code``): the recipient's link gets
exactly that code, on the task's domain (``ctx.link_domain``, ``https://<domain>/`` for a tenant's short-link
domain: the edge finds links by path only, so any host pointed at it serves them). Custom codes are minted before
the derived ones of the batch. A custom code that another link already holds (another task's, live or expired
within its retention, see :mod:`magpie_shortlink.custom_codes`; another recipient of the same batch; or a route of
the edge) is not re-derived: that recipient is not sent, and a final ``DeliveryEvent`` (status FAILED, result code
``KM.90016482``, no segments, ``msg_id`` = the message id the dispatcher would have given it) is produced on
DELIVERY next to the batch's DispatchBatch, so the gateway's send details show the recipient FAILED with that
code, the receipts report it and billing charges nothing. No exception, no retry: the decision is final. A
redelivered batch finds its own links again and refuses the same recipients again (same event ids, deduplicated
downstream); only if the other link vanished in between (its retention ended) would a redelivery mint the code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from magpie.v1 import common_pb2, dispatch_pb2, resolve_pb2, task_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.topics import DELIVERY, DISPATCH, Topic
from magpie_shortlink.codes import derive_code, looks_like_code
from magpie_shortlink.config import SERVICE_NAME
from magpie_shortlink.custom_codes import reserved
from magpie_shortlink.links import LinkRecord, normalise_domain, route_name
from magpie_shortlink.metrics import CODE_COLLISIONS, DISPATCH_BATCHES, LINKS_MINTED
from magpie_shortlink.resolution_links import DUPLICATE_CUSTOM_CODE
from magpie_shortlink.store import LinkStore

log = logging.getLogger(__name__)

SENDABLE_ROUTES = frozenset({common_pb2.ROUTE_SMART, common_pb2.ROUTE_DEGRADED})
BAD_CUSTOM_CODE = "KM.00000400"
VMS_TEMPLATE_MISSING = "VMS_TEMPLATE_MISSING"
CUSTOM_CODE_ROUNDS = 3  # inserts of a custom code whose holder keeps vanishing (TTL) before it counts as taken


class CodeSpaceExhausted(Exception):
    """No free code after the maximum number of re-derivations (only plausible with tiny code lengths)."""


def message_id(task_id: str, batch_no: int, index: int) -> str:
    """The id of the message to one recipient, as the dispatcher gives it (``magpie_dispatcher.events``)."""
    return stable_id("msg", task_id, batch_no, index)


@dataclass(frozen=True)
class Refusal:
    """A recipient that gets no link (its custom code is taken): it ends FAILED with ``result_code``."""

    recipient: resolve_pb2.ClassifiedRecipient
    result_code: str
    detail: str


@dataclass(frozen=True)
class BatchOutcome:
    dispatch: dispatch_pb2.DispatchBatch | None  # the recipients with a link (None: nothing to send)
    refused: dispatch_pb2.DeliveryBatch | None  # final FAILED events of the recipients without one


class Minter:
    def __init__(
        self,
        store: LinkStore,
        producer: EventProducer,
        secret: bytes,
        *,
        code_length: int,
        max_attempts: int,
        default_validity_s: int,
    ) -> None:
        self.store = store
        self.producer = producer
        self.secret = secret
        self.code_length = code_length
        self.max_attempts = max_attempts
        self.default_validity_s = default_validity_s

    async def handle(self, items: Sequence[Decoded[resolve_pb2.ClassifiedBatch]]) -> None:
        """ConsumerLoop handler: every link durable (MongoDB, Redis) before the DispatchBatches are acknowledged."""
        outputs: list[tuple[Topic, str, dispatch_pb2.DispatchBatch | dispatch_pb2.DeliveryBatch]] = []
        dispatched = 0
        for item in items:
            outcome = await self.mint(item.message)
            key = f"{item.message.ctx.task_id}:{item.message.batch_no}"
            if outcome.dispatch is not None:
                outputs.append((DISPATCH, key, outcome.dispatch))
                dispatched += 1
            if outcome.refused is not None:
                outputs.append((DELIVERY, key, outcome.refused))
        if outputs:
            await self.producer.send_many(outputs)
            DISPATCH_BATCHES.inc(dispatched)

    async def mint_batch(self, batch: resolve_pb2.ClassifiedBatch) -> dispatch_pb2.DispatchBatch | None:
        """Mint and store the links of one batch; the DispatchBatch to produce, or None if nothing is sendable."""
        return (await self.mint(batch)).dispatch

    async def mint(self, batch: resolve_pb2.ClassifiedBatch) -> BatchOutcome:
        """Mint and store the links of one batch: the DispatchBatch and the refused recipients' final events."""
        ctx = batch.ctx
        if not ctx.tenant_id or not ctx.task_id:
            raise PoisonMessage("ClassifiedBatch without ctx.tenant_id / ctx.task_id")
        sendable = [r for r in batch.recipients if r.route in SENDABLE_ROUTES]
        vms = [r for r in batch.recipients if r.route == common_pb2.ROUTE_VMS]
        forwarded = vms if ctx.vms_tpl_id else []
        no_template = [] if ctx.vms_tpl_id else [Refusal(r, VMS_TEMPLATE_MISSING, "no VMS template") for r in vms]
        if not sendable and not vms:
            return BatchOutcome(None, None)
        custom = [r for r in sendable if r.custom_code]
        refusals: list[Refusal] = []
        if custom:
            custom_records, refusals = await self.assign_custom_codes(batch, custom)
            standard = [r for r in sendable if not r.custom_code]
            minted = {r.index: record for r, record in custom_records}
            for r, record in zip(standard, await self.assign_codes(batch, standard), strict=True):
                minted[r.index] = record
            pairs = [(r, minted[r.index]) for r in sendable if r.index in minted]
        else:
            pairs = list(zip(sendable, await self.assign_codes(batch, sendable), strict=True))
        await self.store.cache([record for _, record in pairs])
        refusals = [*refusals, *no_template]
        dispatch = self.dispatch_batch(batch, pairs, forwarded) if pairs or forwarded else None
        refused = self.refused_batch(batch, refusals) if refusals else None
        return BatchOutcome(dispatch, refused)

    def dispatch_batch(
        self,
        batch: resolve_pb2.ClassifiedBatch,
        pairs: Sequence[tuple[resolve_pb2.ClassifiedRecipient, LinkRecord]],
        forwarded: Sequence[resolve_pb2.ClassifiedRecipient] = (),
    ) -> dispatch_pb2.DispatchBatch:
        """The recipients with their links, then the ``forwarded`` ones (routed VMS: no link)."""
        ctx = batch.ctx
        out = dispatch_pb2.DispatchBatch(
            meta=common_pb2.EventMeta(
                event_id=stable_id("shortlink.dispatch", ctx.tenant_id, ctx.task_id, batch.batch_no),
                tenant_id=ctx.tenant_id,
                occurred_at_ms=now_ms(),
                producer=SERVICE_NAME,
                trace_id=batch.meta.trace_id,
            ),
            ctx=ctx,
            batch_no=batch.batch_no,
            batch_count=batch.batch_count,
        )
        for recipient, record in pairs:
            out.recipients.add(
                index=recipient.index,
                mobile=recipient.mobile,
                msisdn=recipient.msisdn,
                params=dict(recipient.params),
                sms_params=list(recipient.sms_params),
                route=recipient.route,
                carrier=recipient.carrier,
                short_code=record.code,
                short_url=record.short_url,
            )
        for recipient in forwarded:
            out.recipients.add(
                index=recipient.index,
                mobile=recipient.mobile,
                msisdn=recipient.msisdn,
                params=dict(recipient.params),
                sms_params=list(recipient.sms_params),
                route=recipient.route,
                carrier=recipient.carrier,
            )
        return out

    def refused_batch(
        self, batch: resolve_pb2.ClassifiedBatch, refusals: Sequence[Refusal]
    ) -> dispatch_pb2.DeliveryBatch:
        """The final FAILED events of the refused recipients (stable ids: a redelivery repeats them exactly)."""
        ctx = batch.ctx
        at = now_ms()
        out = dispatch_pb2.DeliveryBatch(
            meta=common_pb2.EventMeta(
                event_id=stable_id("shortlink.refused", ctx.tenant_id, ctx.task_id, batch.batch_no),
                tenant_id=ctx.tenant_id,
                occurred_at_ms=at,
                producer=SERVICE_NAME,
                trace_id=batch.meta.trace_id,
            )
        )
        for refusal in refusals:
            recipient = refusal.recipient
            out.events.add(
                event_id=stable_id("shortlink.refused", ctx.tenant_id, ctx.task_id, batch.batch_no, recipient.index),
                tenant_id=ctx.tenant_id,
                task_id=ctx.task_id,
                batch_no=batch.batch_no,
                index=recipient.index,
                mobile=recipient.mobile,
                msg_id=message_id(ctx.task_id, batch.batch_no, recipient.index),
                status=dispatch_pb2.DELIVERY_STATUS_FAILED,
                result_code=refusal.result_code,
                segments=0,
                done_at_ms=at,
                carrier=recipient.carrier,
                route=recipient.route,
                tpl_id=ctx.tpl_id,
                sms_sign=ctx.sms_sign,
                aim_url=ctx.aim_url,
            )
        return out

    def _expiry_ms(self, ctx: task_pb2.TaskContext) -> int:
        if ctx.link_expires_at_ms:
            return ctx.link_expires_at_ms
        # No validity in the task: the default from the task's creation, so redelivery computes the same value.
        return (ctx.created_at_ms or now_ms()) + self.default_validity_s * 1000

    def _record(
        self,
        batch: resolve_pb2.ClassifiedBatch,
        recipient: resolve_pb2.ClassifiedRecipient,
        code: str,
        *,
        domain: str,
        created: int,
        expires: int,
    ) -> LinkRecord:
        ctx = batch.ctx
        return LinkRecord(
            code=code,
            tenant_id=ctx.tenant_id,
            task_id=ctx.task_id,
            batch_no=batch.batch_no,
            index=recipient.index,
            mobile=recipient.mobile,
            msisdn=recipient.msisdn,
            tpl_id=ctx.tpl_id,
            tpl_name=ctx.tpl_name,
            params=dict(sorted(recipient.params.items())),
            route=recipient.route,
            carrier=recipient.carrier,
            custom_url=recipient.custom_url,
            link_domain=domain,
            aim_url=ctx.aim_url,
            created_at_ms=created,
            expires_at_ms=expires,
        )

    async def assign_custom_codes(
        self, batch: resolve_pb2.ClassifiedBatch, recipients: Sequence[resolve_pb2.ClassifiedRecipient]
    ) -> tuple[list[tuple[resolve_pb2.ClassifiedRecipient, LinkRecord]], list[Refusal]]:
        """The links of recipients with a custom code, and the recipients whose code is taken."""
        ctx = batch.ctx
        created = now_ms()
        expires = self._expiry_ms(ctx)
        domain = normalise_domain(ctx.link_domain)
        minted: list[tuple[resolve_pb2.ClassifiedRecipient, LinkRecord]] = []
        refusals: list[Refusal] = []
        pending: list[LinkRecord] = []
        by_index = {r.index: r for r in recipients}
        for recipient in recipients:
            code = recipient.custom_code
            if not looks_like_code(code):  # the gateway refuses these: a guard for other producers
                refusals.append(Refusal(recipient, BAD_CUSTOM_CODE, f"the short code {code!r} is malformed"))
                continue
            if reserved(code):
                refusals.append(
                    Refusal(recipient, DUPLICATE_CUSTOM_CODE, f"the short code {code} is taken by the edge")
                )
                continue
            pending.append(self._record(batch, recipient, code, domain=domain, created=created, expires=expires))
        new_links: dict[int, int] = {}
        for _ in range(CUSTOM_CODE_ROUNDS):
            if not pending:
                break
            duplicates = await self.store.insert_new(pending)
            owners = await self.store.owners([pending[i].code for i in duplicates]) if duplicates else {}
            still: list[LinkRecord] = []
            for i, draft in enumerate(pending):
                recipient = by_index[draft.index]
                if i not in duplicates:
                    minted.append((recipient, draft))
                    new_links[draft.route] = new_links.get(draft.route, 0) + 1
                    continue
                owner = owners.get(draft.code)
                if owner == draft.owner:
                    minted.append((recipient, draft))  # minted before (redelivery): the stored link is this one
                elif owner is None:
                    still.append(draft)  # its holder vanished in between (TTL): insert it again
                else:
                    refusals.append(Refusal(recipient, DUPLICATE_CUSTOM_CODE, f"the short code {draft.code} is taken"))
            pending = still
        for draft in pending:  # a holder that keeps vanishing and coming back: not ours
            refusals.append(
                Refusal(by_index[draft.index], DUPLICATE_CUSTOM_CODE, f"the short code {draft.code} is taken")
            )
        for route, count in new_links.items():
            LINKS_MINTED.labels(route_name(route)).inc(count)
        if refusals:
            log.warning(
                "custom short codes taken: recipients fail",
                extra={
                    "tenant_id": ctx.tenant_id,
                    "task_id": ctx.task_id,
                    "batch_no": batch.batch_no,
                    "refused": len(refusals),
                    "first": refusals[0].detail,
                },
            )
        return minted, refusals

    async def assign_codes(
        self, batch: resolve_pb2.ClassifiedBatch, recipients: Sequence[resolve_pb2.ClassifiedRecipient]
    ) -> list[LinkRecord]:
        """The stored link of each recipient, deriving past collisions with other owners."""
        if not recipients:
            return []
        ctx = batch.ctx
        created = now_ms()
        expires = self._expiry_ms(ctx)
        domain = normalise_domain(ctx.link_domain)

        def record_for(recipient: resolve_pb2.ClassifiedRecipient, attempt: int) -> LinkRecord:
            code = derive_code(
                self.secret, ctx.tenant_id, ctx.task_id, recipient.index, attempt=attempt, length=self.code_length
            )
            return self._record(batch, recipient, code, domain=domain, created=created, expires=expires)

        attempts = [0] * len(recipients)
        final: list[LinkRecord | None] = [None] * len(recipients)
        pending = list(range(len(recipients)))
        new_links: dict[int, int] = {}
        rounds = 0
        while pending:
            rounds += 1
            if rounds > 2 * self.max_attempts:
                raise CodeSpaceExhausted(f"task {ctx.task_id}: links keep vanishing while being minted")
            over = [p for p in pending if attempts[p] >= self.max_attempts]
            if over:
                raise CodeSpaceExhausted(
                    f"task {ctx.task_id}: no free code for recipient {recipients[over[0]].index} "
                    f"after {self.max_attempts} attempts (code length {self.code_length})"
                )
            drafts = [record_for(recipients[p], attempts[p]) for p in pending]
            duplicates = await self.store.insert_new(drafts)
            owners = await self.store.owners([drafts[i].code for i in duplicates]) if duplicates else {}
            still: list[int] = []
            for i, position in enumerate(pending):
                draft = drafts[i]
                if i not in duplicates:
                    final[position] = draft
                    new_links[draft.route] = new_links.get(draft.route, 0) + 1
                    continue
                owner = owners.get(draft.code)
                if owner == draft.owner:
                    final[position] = draft  # minted before (redelivery): the stored link is this one
                elif owner is None:
                    still.append(position)  # vanished in between (TTL): insert it again
                else:
                    CODE_COLLISIONS.inc()
                    log.info(
                        "code collision; re-deriving",
                        extra={"task_id": ctx.task_id, "index": draft.index, "attempt": attempts[position]},
                    )
                    attempts[position] += 1
                    still.append(position)
            pending = still
        for route, count in new_links.items():
            LINKS_MINTED.labels(route_name(route)).inc(count)
        return [r for r in final if r is not None]
