"""Helpers for tests and benchmarks that run the sending side in-process against the carrier simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaConsumer

from magpie.v1 import common_pb2, dispatch_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import EventProducer
from magpie_common.send_window import SendWindow
from magpie_common.topics import DELIVERY, DISPATCH, topic_name
from magpie_dispatcher.config import ROLE_SEND, DispatcherConfig, SmscConfig
from magpie_dispatcher.events import FINAL_STATUSES, batch_key
from magpie_dispatcher.wiring import SendRole, redis_pool_client

SIM_SYSTEM_ID = "magpie"
SIM_PASSWORD = "secret"
SHORT_TEMPLATE = "您的订单已发货，查看详情 ${1} 回T退订"


@contextlib.asynccontextmanager
async def simulator(**overrides: Any) -> AsyncIterator[Any]:
    """A CarrierSimulator on a free SMPP port (no HTTP), account magpie/secret."""
    from magpie_carrier_simulator import CarrierSimulator, SimulatorConfig

    options: dict[str, Any] = {
        "smpp_port": 0,
        "http_port": None,
        "accounts": {SIM_SYSTEM_ID: SIM_PASSWORD},
        "dlr_delay": 0.05,
    }
    options.update(overrides)
    sim = CarrierSimulator(SimulatorConfig(**options))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def config_for(port: int, smsc_options: dict[str, Any] | None = None, **overrides: Any) -> DispatcherConfig:
    """A send-only configuration pointing every carrier at the simulator on ``port``. Its marketing window is always
    open (a test must not depend on the hour it runs at); tests of the window pass ``marketing_window``."""
    smsc = SmscConfig(
        **{
            "host": "127.0.0.1",
            "port": port,
            "system_id": SIM_SYSTEM_ID,
            "password": SIM_PASSWORD,
            "enquire_link_s": 5.0,
            "response_timeout_s": 5.0,
            "source_addr": "10690001",
            **(smsc_options or {}),
        }
    )
    base = DispatcherConfig(
        roles=frozenset({ROLE_SEND}),
        http_port=0,
        smsc=smsc,
        bind_wait_s=5.0,
        sweep_interval_s=0.2,
        reconnect_backoff_s=0.1,
        reconnect_backoff_max_s=0.5,
        marketing_window=SendWindow.parse("00:00-00:00"),
    )
    return replace(base, **overrides)


def context(
    task_id: str,
    *,
    tenant_id: str = "tenant-1",
    template: str = SHORT_TEMPLATE,
    sign: str = "喜鹊",
    link_param: int = 1,
    channel_number: str = "",
) -> task_pb2.TaskContext:
    return task_pb2.TaskContext(
        tenant_id=tenant_id,
        task_id=task_id,
        task_name="test",
        tpl_id="tpl-1",
        sms_template_id="sms-tpl-1",
        sms_template_content=template,
        sms_sign=sign,
        channel_number=channel_number,
        link_param=link_param,
        link_domain="https://mgp.example/",
        created_at_ms=now_ms(),
        aim_url="https://customer.example/aim",
    )


def recipient(index: int, *, carrier: str = "CMCC", sms_params: Sequence[str] = ()) -> dispatch_pb2.DispatchRecipient:
    national = f"138{index:08d}"
    return dispatch_pb2.DispatchRecipient(
        index=index,
        mobile=national,
        msisdn="86" + national,
        route=common_pb2.ROUTE_SMART,
        carrier=carrier,
        short_code=f"c{index:09d}",
        short_url=f"https://mgp.example/c{index:09d}",
        sms_params=list(sms_params),
    )


def dispatch_batch(
    ctx: task_pb2.TaskContext,
    batch_no: int,
    recipients: Sequence[dispatch_pb2.DispatchRecipient],
    batch_count: int = 1,
) -> dispatch_pb2.DispatchBatch:
    return dispatch_pb2.DispatchBatch(
        meta=common_pb2.EventMeta(
            event_id=stable_id("shortlink.dispatch", ctx.tenant_id, ctx.task_id, batch_no),
            tenant_id=ctx.tenant_id,
            occurred_at_ms=now_ms(),
            producer="test",
        ),
        ctx=ctx,
        batch_no=batch_no,
        batch_count=batch_count,
        recipients=list(recipients),
    )


async def produce(settings: Settings, batches: Sequence[dispatch_pb2.DispatchBatch]) -> None:
    producer = EventProducer(settings, client_id="test-dispatch")
    await producer.start()
    try:
        await producer.send_many([(DISPATCH, batch_key(b.ctx.task_id, b.batch_no), b) for b in batches])
    finally:
        await producer.stop()


class Worker:
    """The send role running in-process, with a graceful stop and a crash."""

    def __init__(self, settings: Settings, config: DispatcherConfig) -> None:
        self.settings = settings
        self.config = config
        self.redis = redis_pool_client(settings, config.redis_max_connections)
        self.role = SendRole(settings, config, self.redis)
        self.task: asyncio.Task[None] | None = None

    async def start(self, wait_bound: bool = True) -> Worker:
        await self.role.start()
        self.task = asyncio.create_task(self.role.run())
        if wait_bound:
            assert await self.role.pool.wait_bound(10), "the dispatcher did not bind to the simulator"
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.role.stop()
            await self.task
            self.task = None
        await self._close()

    async def crash(self) -> None:
        if self.task is not None:
            await self.role.crash(self.task)
            self.task = None
        await self._close()

    async def _close(self) -> None:
        await self.role.close()
        await self.redis.aclose()

    async def __aenter__(self) -> Worker:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@dataclass
class Fold:
    """DELIVERY events folded by msg_id."""

    events: list[dispatch_pb2.DeliveryEvent] = field(default_factory=list)
    submitted: dict[str, set[str]] = field(default_factory=dict)  # msg_id -> SUBMITTED event ids
    finals: dict[str, dict[str, dispatch_pb2.DeliveryEvent]] = field(default_factory=dict)  # msg_id -> id -> event

    def add(self, event: dispatch_pb2.DeliveryEvent) -> None:
        self.events.append(event)
        if event.status == dispatch_pb2.DELIVERY_STATUS_SUBMITTED:
            self.submitted.setdefault(event.msg_id, set()).add(event.event_id)
        elif event.status in FINAL_STATUSES:
            self.finals.setdefault(event.msg_id, {})[event.event_id] = event

    def final(self, msg_id: str) -> dispatch_pb2.DeliveryEvent:
        (event,) = self.finals[msg_id].values()
        return event

    def final_contents(self, msg_id: str) -> set[bytes]:
        """Distinct serialized final events of a message (duplicates of one event collapse)."""
        return {e.SerializeToString() for e in self.events if e.msg_id == msg_id and e.status in FINAL_STATUSES}


async def collect_delivery(
    settings: Settings, until: Callable[[Fold], bool], timeout_s: float = 30.0, settle_s: float = 0.0
) -> Fold:
    """Read DELIVERY from the beginning until ``until(fold)`` holds (then keep reading ``settle_s`` more, to catch
    anything that should not be there)."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, DELIVERY),
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    fold = Fold()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        settle_until: float | None = None
        while True:
            if settle_until is None and until(fold):
                settle_until = loop.time() + settle_s
            now = loop.time()
            if settle_until is not None and now >= settle_until:
                return fold
            if now > deadline:
                raise TimeoutError(
                    f"DELIVERY: {len(fold.events)} events, {len(fold.submitted)} submitted, {len(fold.finals)} final"
                )
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    message = dispatch_pb2.DeliveryBatch()
                    message.ParseFromString(record.value or b"")
                    for event in message.events:
                        fold.add(event)
    finally:
        await consumer.stop()
