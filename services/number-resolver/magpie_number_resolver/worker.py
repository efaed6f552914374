"""The pipeline worker: RecipientBatch (topic RECIPIENTS) -> ClassifiedBatch (topic CLASSIFIED), one for one.

Per recipient: invalid number -> ROUTE_INVALID / INVALID_NUMBER; capable handset -> ROUTE_SMART (``buttons`` when
it renders coloured buttons); otherwise the task's fallback with the reason: FALLBACK_SMS -> ROUTE_DEGRADED,
FALLBACK_SKIP -> ROUTE_SKIPPED, FALLBACK_VMS -> ROUTE_VMS. FALLBACK_UNSPECIFIED is treated as FALLBACK_SMS (the
console's default, 降级为普通短信; the gateway always sets the field). params, sms_params and custom_url are copied.

Output key ``f"{task_id}:{batch_no}"``, event id ``ids.stable_id("classified", task_id, batch_no)``: a redelivered
batch yields the same event id (and the same classification unless the registry changed meanwhile), so
downstream consumers deduplicate. The handler awaits the broker's acknowledgement before returning, so offsets
are committed only after the output is durable.

Throughput: the output is assembled as wire bytes (``wire``), and the records of one poll are pipelined: the
Redis look-up of batch i+1 is sent before the output of batch i is built, so Redis answers while this process
works (``classify_values``; ``bench`` measures exactly this path).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import Decoded, EventProducer, PoisonMessage
from magpie_common.topics import CLASSIFIED
from magpie_number_resolver.classifier import (
    INVALID_CAPABILITY,
    BatchResult,
    Capability,
    Classifier,
    Prepared,
    vendor_set,
)
from magpie_number_resolver.fast_mget import PendingMget
from magpie_number_resolver.metrics import BATCH_SECONDS, BATCHES
from magpie_number_resolver.metrics import CLASSIFIED as CLASSIFIED_TOTAL
from magpie_number_resolver.wire import VARINTS, RawRecipientBatch, length_delimited, retag_all, varint

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
_SMART = common_pb2.ROUTE_SMART
_INVALID = common_pb2.ROUTE_INVALID
_MSISDN13 = b"\x1a\x0d"  # tag and length of msisdn (a valid one is always 86 + 11 digits)
_RECIPIENT_TAG = b"\x2a"


def fallback_route(fallback: int) -> int:
    try:
        return FALLBACK_ROUTES[fallback]
    except KeyError:
        raise PoisonMessage(f"unknown fallback policy {fallback}") from None


def event_id(task_id: str, batch_no: int) -> str:
    return stable_id("classified", task_id, batch_no)


def encoded_fields(capability: Capability, fallback: int, carrier: str) -> bytes:
    """ClassifiedRecipient fields 6-10 (route, reason, carrier, vendor, buttons) of a verdict under a task's fallback,
    as wire bytes, cached on the verdict (the route is SMART for a smart verdict, INVALID for an invalid number)."""
    key = (fallback, carrier)
    found = capability.encoded.get(key)
    if found is None:
        route = _INVALID if capability is INVALID_CAPABILITY else _SMART if capability.smart else fallback
        found = resolve_pb2.ClassifiedRecipient(
            route=route,  # type: ignore[arg-type]
            reason=capability.reason,
            carrier=carrier,
            vendor=capability.vendor,
            buttons=capability.buttons,
        ).SerializeToString()
        if len(capability.encoded) < 64:
            capability.encoded[key] = found
    return found


class ClassifyWorker:
    """The ConsumerLoop handler (``handle``) and the per-batch classification (``classify_batch``)."""

    def __init__(self, classifier: Classifier, producer: EventProducer | None) -> None:
        self.classifier = classifier
        self.producer = producer  # None: classification only (benchmarks), ``handle`` unavailable

    # ------------------------------------------------------------------------------------------ per batch

    def _prepare(self, batch: task_pb2.RecipientBatch) -> Prepared:
        if not batch.ctx.task_id:
            raise PoisonMessage("RecipientBatch without ctx.task_id")
        fallback_route(batch.ctx.fallback)
        return self.classifier.prepare([r.mobile for r in batch.recipients])

    def _build(self, batch: task_pb2.RecipientBatch, value: bytes, result: BatchResult, started: float) -> bytes:
        """The ClassifiedBatch of ``batch`` (whose serialised form is ``value``) as wire bytes."""
        ctx = batch.ctx
        fallback = fallback_route(ctx.fallback)
        raw = RawRecipientBatch.FromString(value)
        meta = common_pb2.EventMeta(
            event_id=event_id(ctx.task_id, batch.batch_no),
            tenant_id=ctx.tenant_id,
            occurred_at_ms=now_ms(),
            producer=SERVICE_NAME,
            trace_id=batch.meta.trace_id,
        ).SerializeToString()
        parts = [length_delimited(b"\x0a", meta), length_delimited(b"\x12", raw.ctx)]  # type: ignore[attr-defined]
        if batch.batch_no:
            parts.append(b"\x18" + varint(batch.batch_no))
        if batch.batch_count:
            parts.append(b"\x20" + varint(batch.batch_count))
        extend = parts.extend
        invalid_fields = encoded_fields(INVALID_CAPABILITY, fallback, "")
        invalid_size = len(invalid_fields)
        next_msisdn = iter(result.msisdns).__next__
        next_capability = iter(result.capabilities).__next__
        varints = VARINTS
        for body, carrier in zip(retag_all(raw.recipients), result.carriers, strict=True):  # type: ignore[attr-defined]
            if carrier is None:
                size = len(body) + invalid_size
                extend((_RECIPIENT_TAG, varints[size] if size < 16384 else varint(size), body, invalid_fields))
                continue
            capability = next_capability()
            fields = capability.encoded.get((fallback, carrier))
            if fields is None:
                fields = encoded_fields(capability, fallback, carrier)
            size = len(body) + 15 + len(fields)
            extend(
                (
                    _RECIPIENT_TAG,
                    varints[size] if size < 16384 else varint(size),
                    body,
                    _MSISDN13,
                    next_msisdn(),
                    fields,
                )
            )
        self._count(result, fallback)
        BATCHES.inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return b"".join(parts)

    @staticmethod
    def _count(result: BatchResult, fallback: int) -> None:
        capabilities = result.capabilities
        by_identity = Counter(map(id, capabilities))
        objects = dict(zip(map(id, capabilities), capabilities, strict=True))
        tally: Counter[tuple[int, str]] = Counter()
        invalid = result.carriers.count(None)
        if invalid:
            tally[(_INVALID, INVALID_CAPABILITY.reason)] = invalid
        for identity, count in by_identity.items():
            capability = objects[identity]
            tally[(_SMART if capability.smart else fallback, capability.reason)] += count
        for (route, reason), count in tally.items():
            CLASSIFIED_TOTAL.labels(ROUTE_NAMES[route], reason).inc(count)

    async def classify_values(self, batches: Sequence[tuple[task_pb2.RecipientBatch, bytes]]) -> list[bytes]:
        """ClassifiedBatch wire bytes for each (batch, its serialised form), look-ups pipelined one batch ahead."""
        outputs: list[bytes] = []
        if not batches:
            return outputs
        classifier = self.classifier
        pending: PendingMget | None = None
        try:
            started = time.perf_counter()
            prepared = self._prepare(batches[0][0])
            pending = await classifier.send(prepared)
            for position, (batch, value) in enumerate(batches):
                current, current_pending, current_started = prepared, pending, started
                pending = None
                result = await classifier.finish(current, current_pending, vendor_set(batch.ctx.approved_vendors))
                if position + 1 < len(batches):
                    started = time.perf_counter()
                    prepared = self._prepare(batches[position + 1][0])
                    pending = await classifier.send(prepared)
                outputs.append(self._build(batch, value, result, current_started))
        finally:
            if pending is not None:
                await pending.abort()
        return outputs

    async def classify_batch(self, batch: task_pb2.RecipientBatch) -> resolve_pb2.ClassifiedBatch:
        """The ClassifiedBatch of one RecipientBatch (as a message; the pipeline itself sends the bytes)."""
        (value,) = await self.classify_values([(batch, batch.SerializeToString())])
        return resolve_pb2.ClassifiedBatch.FromString(value)

    async def handle(self, items: Sequence[Decoded[task_pb2.RecipientBatch]]) -> None:
        if self.producer is None:
            raise RuntimeError("ClassifyWorker.handle needs a producer")
        batches = [(item.message, item.record.value or b"") for item in items]
        values = await self.classify_values(batches)
        await self.producer.send_many(
            (CLASSIFIED, f"{batch.ctx.task_id}:{batch.batch_no}", value)
            for (batch, _), value in zip(batches, values, strict=True)
        )
