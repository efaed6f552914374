"""The minting worker: CLASSIFIED (ClassifiedBatch) -> links in MongoDB + Redis -> DISPATCH (DispatchBatch).

For every recipient routed SMART or DEGRADED one code is derived (:mod:`magpie_shortlink.codes`), the links of the
batch are inserted in one bulk write and cached in one Redis pipeline, then one ``DispatchBatch`` with exactly those
recipients is produced (key ``task_id:batch_no``). Other routes are not forwarded: the gateway projects them from
CLASSIFIED. A batch without sendable recipients produces nothing.

Idempotence: codes are a deterministic function of (tenant, task, index, collision counter) and stored documents are
never modified, so a redelivered batch reaches the same codes, inserts nothing new and produces an identical
``DispatchBatch`` (same ``meta.event_id``) that the dispatcher deduplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from magpie.v1 import common_pb2, dispatch_pb2, resolve_pb2, task_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.topics import DISPATCH, Topic
from magpie_shortlink.codes import derive_code
from magpie_shortlink.config import SERVICE_NAME
from magpie_shortlink.links import LinkRecord, normalise_domain, route_name
from magpie_shortlink.metrics import CODE_COLLISIONS, DISPATCH_BATCHES, LINKS_MINTED
from magpie_shortlink.store import LinkStore

log = logging.getLogger(__name__)

SENDABLE_ROUTES = frozenset({common_pb2.ROUTE_SMART, common_pb2.ROUTE_DEGRADED})


class CodeSpaceExhausted(Exception):
    """No free code after the maximum number of re-derivations (only plausible with tiny code lengths)."""


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
        outputs: list[tuple[Topic, str, dispatch_pb2.DispatchBatch]] = []
        for item in items:
            batch = await self.mint_batch(item.message)
            if batch is not None:
                outputs.append((DISPATCH, f"{batch.ctx.task_id}:{batch.batch_no}", batch))
        if outputs:
            await self.producer.send_many(outputs)
            DISPATCH_BATCHES.inc(len(outputs))

    async def mint_batch(self, batch: resolve_pb2.ClassifiedBatch) -> dispatch_pb2.DispatchBatch | None:
        """Mint and store the links of one batch; the DispatchBatch to produce, or None if nothing is sendable."""
        ctx = batch.ctx
        if not ctx.tenant_id or not ctx.task_id:
            raise PoisonMessage("ClassifiedBatch without ctx.tenant_id / ctx.task_id")
        sendable = [r for r in batch.recipients if r.route in SENDABLE_ROUTES]
        if not sendable:
            return None
        records = await self.assign_codes(batch, sendable)
        await self.store.cache(records)
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
        for recipient, record in zip(sendable, records, strict=True):
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
        return out

    def _expiry_ms(self, ctx: task_pb2.TaskContext) -> int:
        if ctx.link_expires_at_ms:
            return ctx.link_expires_at_ms
        # No validity in the task: the default from the task's creation, so redelivery computes the same value.
        return (ctx.created_at_ms or now_ms()) + self.default_validity_s * 1000

    async def assign_codes(
        self, batch: resolve_pb2.ClassifiedBatch, recipients: Sequence[resolve_pb2.ClassifiedRecipient]
    ) -> list[LinkRecord]:
        """The stored link of each recipient, deriving past collisions with other owners."""
        ctx = batch.ctx
        created = now_ms()
        expires = self._expiry_ms(ctx)
        domain = normalise_domain(ctx.link_domain)

        def record_for(recipient: resolve_pb2.ClassifiedRecipient, attempt: int) -> LinkRecord:
            return LinkRecord(
                code=derive_code(
                    self.secret, ctx.tenant_id, ctx.task_id, recipient.index, attempt=attempt, length=self.code_length
                ),
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
