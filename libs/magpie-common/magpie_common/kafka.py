"""Kafka producer and the consumer loop every service uses.

The loop follows the at-least-once recipe: fetch a bounded batch, run the handler per partition, make every output
durable (the handler awaits its produces), and only then commit the offsets. A crash anywhere replays the
uncommitted records, so handlers must be idempotent (stable event ids, unique indexes, set semantics).

A record the handler cannot process after retries goes to the dead-letter topic with the error; it never blocks
its partition and never vanishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from google.protobuf.message import DecodeError, Message
from prometheus_client import Counter, Histogram

from magpie.v1 import billing_pb2
from magpie_common.config import Settings, env_str
from magpie_common.ids import now_ms
from magpie_common.topics import DLQ, Topic, topic_name

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

RECORDS_IN = Counter("magpie_kafka_records_consumed_total", "Records consumed", ["group", "topic"])
RECORDS_DLQ = Counter(
    "magpie_kafka_records_dead_lettered_total", "Records sent to the dead-letter topic", ["group", "topic"]
)
HANDLER_SECONDS = Histogram(
    "magpie_kafka_handler_seconds",
    "Time to process one partition batch, outputs included",
    ["group", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HANDLER_RETRIES = Counter("magpie_kafka_handler_retries_total", "Handler retries after an error", ["group", "topic"])


def is_transient(exc: BaseException) -> bool:
    """Errors of the infrastructure (broker, database, cache unreachable), worth retrying without limit."""
    from pymongo.errors import ConnectionFailure, OperationFailure
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, OperationFailure):
        return exc.has_error_label("TransientTransactionError") or exc.code in (11600, 11602, 189, 91, 112)
    return isinstance(
        exc, (ConnectionFailure, RedisConnectionError, RedisTimeoutError, KafkaError, ConnectionError, OSError)
    )


class ShutdownDuringRetry(Exception):
    """The service is stopping while a batch still fails: leave it uncommitted for the next owner."""


class PoisonMessage(Exception):
    """Raised by a handler for input that can never be processed (goes straight to the dead-letter topic)."""


@dataclass(frozen=True)
class Decoded(Generic[M]):
    """A consumed record and its decoded protobuf message."""

    record: ConsumerRecord
    message: M


class EventProducer:
    """A producer (acks=all, idempotent unless ``KAFKA_ENABLE_IDEMPOTENCE`` is off) that sends protobuf messages and
    awaits their durability."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_options(),  # type: ignore[arg-type]
            client_id=client_id,
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=5,
            max_batch_size=1 << 20,
            max_request_size=8 << 20,
            compression_type=None,
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    def name(self, topic: Topic) -> str:
        return topic_name(self.settings, topic)

    async def send(self, topic: Topic, key: str | bytes, message: Message | bytes) -> None:
        await self.send_many([(topic, key, message)])

    async def send_many(self, items: Iterable[tuple[Topic, str | bytes, Message | bytes]]) -> None:
        """Send all items and return once every one is acknowledged by the broker."""
        futures = []
        for topic, key, message in items:
            value = message if isinstance(message, bytes) else message.SerializeToString()
            raw_key = key.encode() if isinstance(key, str) else key
            futures.append(await self._producer.send(self.name(topic), value=value, key=raw_key))
        if futures:
            await asyncio.gather(*futures)


BatchHandler = Callable[[Sequence[Decoded[M]]], Awaitable[None]]


@dataclass(frozen=True)
class Route(Generic[M]):
    """One topic of a consumer loop: its message type, its handler and the most records per handler call."""

    topic: Topic
    message_type: type[M]
    handler: BatchHandler[M]
    max_records: int = 50


class ConsumerLoop(Generic[M]):
    """Consume topics in a consumer group; handler per partition batch; commit after the handler's outputs.

    One topic (``topic``, ``message_type``, ``handler``, ``max_records``), or several (``routes``) read by ONE
    Kafka consumer: a service that reads several low-volume topics in one group pays for one fetch session and one
    group membership instead of one per topic (an idle consumer still costs its broker a fetch every 500 ms). Each
    route's handler gets at most its own ``max_records`` per call; the records of one fetch are handled route by route
    in the order of ``routes`` (put reference data such as templates before the events that use it), and the fetch is
    committed once every handler call of it returned.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        producer: EventProducer,
        topic: Topic | None = None,
        message_type: type[M] | None = None,
        handler: BatchHandler[M] | None = None,
        max_records: int = 50,
        routes: Sequence[Route[Any]] = (),
        max_retries: int = 5,
        retry_backoff_s: float = 0.2,
        from_beginning: bool = True,
    ) -> None:
        if routes and (topic is not None or handler is not None or message_type is not None):
            raise ValueError("give either topic, message_type and handler, or routes")
        if not routes:
            if topic is None or message_type is None or handler is None:
                raise ValueError("a consumer loop needs a topic, its message type and a handler (or routes)")
            routes = (Route(topic, message_type, handler, max_records),)
        self.settings = settings
        # Groups live in the deployment's namespace (the topic prefix), like the topics they read.
        self.group_id = settings.topic_prefix + group_id
        self.producer = producer
        self.routes: dict[str, Route[Any]] = {topic_name(settings, r.topic): r for r in routes}
        self._order = list(self.routes)
        if len(self.routes) != len(routes):
            raise ValueError("a topic appears twice in the routes of one consumer loop")
        first = routes[0]
        self.topic = first.topic
        self.message_type = first.message_type
        self.handler = first.handler
        self.max_records = max(r.max_records for r in routes)
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.from_beginning = from_beginning
        # Static membership (KIP-345): a restarted instance (same MAGPIE_INSTANCE_ID, e.g. the pod name of a
        # StatefulSet) takes its partitions back at once instead of waiting for the group to expire the old member.
        instance = env_str("MAGPIE_INSTANCE_ID", "")
        member = "+".join(r.topic.name for r in routes)
        self.group_instance_id = f"{instance}:{member}" if instance else None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = False
        self.last_activity = time.monotonic()

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *self.routes,
            **self.settings.kafka_client_options(),  # type: ignore[arg-type]
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_session_timeout_ms // 3,
            max_poll_interval_ms=300000,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=16 << 20,
            group_instance_id=self.group_instance_id,
        )

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it, and return."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = self._consumer = self._new_consumer()
        await consumer.start()
        self.ready = True
        try:
            while not self._stopping.is_set():
                fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=500, max_records=self.max_records))
                stop_wait = asyncio.ensure_future(self._stopping.wait())
                done, _ = await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                if fetch not in done:
                    fetch.cancel()
                    break
                batches: dict[TopicPartition, list[ConsumerRecord]] = fetch.result()
                if not batches:
                    continue
                self.last_activity = time.monotonic()
                try:
                    # Routes in the order given: reference data (templates, callback registrations) fetched together
                    # with the events that need it is applied first; the partitions of one route run concurrently.
                    for topic in self._order:
                        group = [(tp, recs) for tp, recs in batches.items() if tp.topic == topic]
                        if group:
                            await asyncio.gather(*(self._process_partition(tp, recs) for tp, recs in group))
                except ShutdownDuringRetry:
                    log.warning("stopping with a failing batch uncommitted; it will be replayed")
                    break
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, KafkaError) as exc:
                    # The group rebalanced under us: the new owner replays these records; handlers are idempotent.
                    log.warning("offset commit failed; records will be replayed", extra={"error": repr(exc)})
        finally:
            self.ready = False
            await consumer.stop()

    async def _process_partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        route = self.routes[tp.topic]
        for start in range(0, len(records), route.max_records):
            await self._process_slice(route, tp.topic, records[start : start + route.max_records])

    async def _process_slice(self, route: Route[Any], name: str, records: list[ConsumerRecord]) -> None:
        RECORDS_IN.labels(self.group_id, name).inc(len(records))
        decoded: list[Decoded[Any]] = []
        for record in records:
            message = route.message_type()
            try:
                message.ParseFromString(record.value or b"")
            except DecodeError as exc:
                await self._dead_letter(record, f"undecodable {route.message_type.__name__}: {exc}")
                continue
            decoded.append(Decoded(record, message))
        if not decoded:
            return
        with HANDLER_SECONDS.labels(self.group_id, name).time():
            try:
                await self._with_retries(route, decoded, name)
            except ShutdownDuringRetry:
                raise
            except Exception as exc:
                if len(decoded) == 1:
                    await self._dead_letter(decoded[0].record, repr(exc))
                    return
                for item in decoded:
                    await self._one_or_dead_letter(route, item, name)

    async def _one_or_dead_letter(self, route: Route[Any], item: Decoded[Any], name: str) -> None:
        try:
            await self._with_retries(route, [item], name)
        except ShutdownDuringRetry:
            raise
        except Exception as exc:
            await self._dead_letter(item.record, repr(exc))

    async def _with_retries(self, route: Route[Any], decoded: Sequence[Decoded[Any]], name: str) -> None:
        attempt = 0
        while True:
            try:
                await route.handler(decoded)
                return
            except PoisonMessage:
                if len(decoded) == 1:
                    await self._dead_letter(decoded[0].record, "poison message")
                    return
                raise
            except Exception as exc:
                attempt += 1
                if self._stopping.is_set():
                    raise ShutdownDuringRetry() from exc
                if is_transient(exc):
                    # Infrastructure trouble is not the record's fault: wait it out, never dead-letter good data.
                    HANDLER_RETRIES.labels(self.group_id, name).inc()
                    log.warning("transient error; retrying", extra={"topic": name, "error": repr(exc)})
                    await asyncio.sleep(min(5.0, self.retry_backoff_s * (2 ** min(attempt, 5))))
                    continue
                if attempt > self.max_retries:
                    log.exception("handler failed", extra={"topic": name, "attempts": attempt})
                    raise
                HANDLER_RETRIES.labels(self.group_id, name).inc()
                await asyncio.sleep(self.retry_backoff_s * (2 ** (attempt - 1)))

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        letter = billing_pb2.DeadLetter(
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            error=error[:4000],
            consumer_group=self.group_id,
            at_ms=now_ms(),
        )
        await self.producer.send(DLQ, f"{record.topic}:{record.partition}:{record.offset}", letter)
        RECORDS_DLQ.labels(self.group_id, record.topic).inc()
        log.error("dead-lettered a record", extra={"topic": record.topic, "offset": record.offset, "error": error})
