"""The pipeline worker: RecipientBatch (topic RECIPIENTS) -> ClassifiedBatch (topic CLASSIFIED), one for one.

Per recipient: invalid number -> ROUTE_INVALID / INVALID_NUMBER; capable handset -> ROUTE_SMART (``buttons`` when
it renders coloured buttons); otherwise the task's fallback with the reason: FALLBACK_SMS -> ROUTE_DEGRADED,
FALLBACK_SKIP -> ROUTE_SKIPPED, FALLBACK_VMS -> ROUTE_VMS. FALLBACK_UNSPECIFIED is treated as FALLBACK_SMS (the
console's default, 降级为普通短信; the gateway always sets the field). params, sms_params and custom_url are copied.

Output key ``f"{task_id}:{batch_no}"``, event id ``ids.stable_id("classified", task_id, batch_no)``: a redelivered
batch yields the same event id (and the same classification unless the registry changed meanwhile), so
downstream consumers deduplicate. The handler awaits the broker's acknowledgement before returning, so offsets
are committed only after the output is durable.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.topics import CLASSIFIED
from magpie_number_resolver.classifier import Classifier, vendor_set
from magpie_number_resolver.metrics import BATCH_SECONDS, BATCHES
from magpie_number_resolver.metrics import CLASSIFIED as CLASSIFIED_TOTAL

SERVICE_NAME = "number-resolver"

FALLBACK_ROUTES: dict[int, int] = {
    common_pb2.FALLBACK_UNSPECIFIED: common_pb2.ROUTE_DEGRADED,
    common_pb2.FALLBACK_SMS: common_pb2.ROUTE_DEGRADED,
    common_pb2.FALLBACK_SKIP: common_pb2.ROUTE_SKIPPED,
    common_pb2.FALLBACK_VMS: common_pb2.ROUTE_VMS,
}
ROUTE_NAMES: dict[int, str] = {
    value.number: value.name.removeprefix("ROUTE_") for value in common_pb2.Route.DESCRIPTOR.values
}


def fallback_route(fallback: int) -> int:
    try:
        return FALLBACK_ROUTES[fallback]
    except KeyError:
        raise PoisonMessage(f"unknown fallback policy {fallback}") from None


def event_id(task_id: str, batch_no: int) -> str:
    return stable_id("classified", task_id, batch_no)


class ClassifyWorker:
    """The ConsumerLoop handler (``handle``) and the per-batch classification (``classify_batch``)."""

    def __init__(self, classifier: Classifier, producer: EventProducer | None) -> None:
        self.classifier = classifier
        self.producer = producer  # None: classification only (benchmarks), ``handle`` unavailable

    async def classify_batch(self, batch: task_pb2.RecipientBatch) -> resolve_pb2.ClassifiedBatch:
        started = time.perf_counter()
        ctx = batch.ctx
        if not ctx.task_id:
            raise PoisonMessage("RecipientBatch without ctx.task_id")
        fallback = fallback_route(ctx.fallback)
        recipients = batch.recipients
        results = await self.classifier.classify([r.mobile for r in recipients], vendor_set(ctx.approved_vendors))
        out = resolve_pb2.ClassifiedBatch(
            meta=common_pb2.EventMeta(
                event_id=event_id(ctx.task_id, batch.batch_no),
                tenant_id=ctx.tenant_id,
                occurred_at_ms=now_ms(),
                producer=SERVICE_NAME,
                trace_id=batch.meta.trace_id,
            ),
            ctx=ctx,
            batch_no=batch.batch_no,
            batch_count=batch.batch_count,
        )
        tally: Counter[tuple[int, str]] = Counter()
        add = out.recipients.add
        smart_route = common_pb2.ROUTE_SMART
        invalid_route = common_pb2.ROUTE_INVALID
        for recipient, result in zip(recipients, results, strict=True):
            capability = result.capability
            if not result.valid:
                route = invalid_route
            elif capability.smart:
                route = smart_route
            else:
                route = fallback
            add(
                index=recipient.index,
                mobile=recipient.mobile,
                msisdn=result.msisdn,
                params=recipient.params,
                custom_url=recipient.custom_url,
                route=route,
                reason=capability.reason,
                carrier=result.carrier,
                vendor=capability.vendor,
                buttons=capability.buttons,
                sms_params=recipient.sms_params,
            )
            tally[(route, capability.reason)] += 1
        for (route, reason), count in tally.items():
            CLASSIFIED_TOTAL.labels(ROUTE_NAMES[route], reason).inc(count)
        BATCHES.inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return out

    async def handle(self, items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        if self.producer is None:
            raise RuntimeError("ClassifyWorker.handle needs a producer")
        outputs = []
        for item in items:
            batch = item.message
            classified = await self.classify_batch(batch)
            outputs.append((CLASSIFIED, f"{batch.ctx.task_id}:{batch.batch_no}", classified))
        await self.producer.send_many(outputs)
