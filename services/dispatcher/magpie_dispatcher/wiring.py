"""Build the dispatcher's roles from the settings, so ``__main__`` and the tests wire them the same way.

``await build(settings, config)`` -> :class:`Components`: ``workers()`` are the coroutines to run (with
``Service.run``), ``stop()`` asks them to drain, ``close()`` releases the clients. The ``send`` role is a
:class:`SendRole`; the ``receipts`` role is whatever ``magpie_dispatcher.receipts.build_receipts`` returns;
the ``vms`` role (only when listed) is ``magpie_dispatcher.vms.role.VmsRole``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.service import ReadinessCheck
from magpie_common.topics import DISPATCH
from magpie_dispatcher.config import (
    CARRIERS,
    DEFAULT_CARRIER,
    ROLE_RECEIPTS,
    ROLE_SEND,
    ROLE_VMS,
    SERVICE_NAME,
    DispatcherConfig,
)
from magpie_dispatcher.deferral import Deferrals
from magpie_dispatcher.dlr import ReceiptProcessor
from magpie_dispatcher.finals import FinalEmitter
from magpie_dispatcher.ratelimit import CarrierRateLimiter
from magpie_dispatcher.sender import Sender
from magpie_dispatcher.smsc import SmscPool
from magpie_dispatcher.store import DeliveryStore
from magpie_dispatcher.sweeper import Sweeper

log = logging.getLogger(__name__)


def redis_pool_client(settings: Settings, max_connections: int, timeout_s: float = 10.0) -> aioredis.Redis:
    """A Redis client whose pool makes callers wait for a free connection instead of failing."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections, timeout=timeout_s, health_check_interval=30
    )
    return aioredis.Redis.from_pool(pool)


class SendRole:
    """The sending side: SMPP sessions, the DISPATCH consumer, the receipt processor and the deadline sweeper.

    ``run()`` until ``stop()``: stop taking batches (the batch in hand finishes: its submits are answered and its
    DeliveryBatch produced, then committed), stop the sweeper, unbind every session (which waits for the receipts
    being processed, answered once their events are produced), then stop the receipt processor.
    """

    def __init__(self, settings: Settings, config: DispatcherConfig, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.config = config
        self.redis = redis
        self.producer = EventProducer(settings, client_id=f"{SERVICE_NAME}-send")
        self.store = DeliveryStore(
            settings, redis, receipt_window_s=config.receipt_window_s, in_doubt_grace_s=config.grace_s
        )
        self.emitter = FinalEmitter(self.store, self.producer)
        self.processor = ReceiptProcessor(
            self.store,
            self.emitter,
            flush_s=config.dlr_flush_s,
            flush_max=config.dlr_flush_max,
            flushes_in_flight=config.dlr_flushes_in_flight,
        )
        self.pool = SmscPool(config, self.processor.on_deliver, on_deliver_batch=self.processor.on_deliver_many)
        rates = {carrier: config.tps_for(carrier) for carrier in (DEFAULT_CARRIER, *CARRIERS)}
        self.limiter = CarrierRateLimiter(settings, redis, rates, config.carrier_burst)
        self.sender = Sender(config, self.store, self.pool, self.limiter, self.producer)
        self.sweeper = Sweeper(
            self.store,
            self.emitter,
            interval_s=config.sweep_interval_s,
            batch=config.sweep_batch,
            lease_s=config.sweep_lease_s,
        )
        # Scheduled and marketing-window batches wait in MongoDB; the rest goes to the sender (deferral.py).
        self.deferrals = Deferrals(
            settings, config, sender=self.sender, store=self.store, emitter=self.emitter, producer=self.producer
        )
        self.loop: ConsumerLoop[dispatch_pb2.DispatchBatch] = ConsumerLoop(
            settings,
            group_id=SERVICE_NAME,
            topic=DISPATCH,
            message_type=dispatch_pb2.DispatchBatch,
            handler=self.deferrals.handle,
            producer=self.producer,
            max_records=config.max_records,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._crashed = False

    async def start(self) -> None:
        await self.producer.start()
        await self.deferrals.start()

    async def run(self) -> None:
        processor = asyncio.create_task(self.processor.run(), name="dispatcher-receipts-in")
        sweeper = asyncio.create_task(self.sweeper.run(), name="dispatcher-sweeper")
        deferrals = asyncio.create_task(self.deferrals.run(), name="dispatcher-deferrals")
        await asyncio.sleep(0)  # the receipt processor runs before any session can deliver
        self.pool.start()
        self._tasks = [processor, sweeper, deferrals]
        try:
            await self.loop.run()
        finally:
            if self._crashed:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                self.sweeper.stop()
                self.deferrals.stop()
                await asyncio.gather(sweeper, deferrals, return_exceptions=True)
                await self.pool.close()
                self.processor.stop()
                await asyncio.gather(processor, return_exceptions=True)
                log.info("send role drained")

    def stop(self) -> None:
        self.loop.stop()

    async def crash(self, task: asyncio.Task[None]) -> None:
        """Test helper: die like a SIGKILL would (drop the SMPP connections, abandon the batch in hand without
        committing, answer no receipt). ``task`` is the task running :meth:`run`."""
        self._crashed = True
        await self.pool.abort()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def smpp_ready(self) -> bool:
        return self.pool.all_bound

    def consumer_ready(self) -> bool:
        return self.loop.ready

    async def close(self) -> None:
        await self.producer.stop()
        await self.deferrals.close()


@dataclass
class Components:
    settings: Settings
    config: DispatcherConfig
    redis: aioredis.Redis
    send: SendRole | None = None
    receipts: Any = None  # magpie_dispatcher.receipts.build_receipts(settings)
    vms: Any = None  # magpie_dispatcher.vms.role.VmsRole
    _closed: bool = field(default=False, repr=False)

    def workers(self) -> list[Awaitable[None]]:
        workers: list[Awaitable[None]] = []
        if self.send is not None:
            workers.append(self.send.run())
        if self.receipts is not None:
            workers.extend(self.receipts.workers())
        if self.vms is not None:
            workers.extend(self.vms.workers())
        return workers

    def stop(self) -> None:
        if self.send is not None:
            self.send.stop()
        if self.receipts is not None:
            self.receipts.stop()
        if self.vms is not None:
            self.vms.stop()

    async def redis_ready(self) -> bool:
        return bool(await self.redis.ping())

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {"redis": self.redis_ready}
        if self.send is not None:
            checks["smpp"] = self.send.smpp_ready
            checks["consumer"] = self.send.consumer_ready
        if self.receipts is not None:
            checks["receipts"] = self.receipts_ready
        if self.vms is not None:
            checks["vms"] = self.vms.ready
        return checks

    async def receipts_ready(self) -> bool:
        """Every dependency of the receipts role (its ``readiness()`` says which, in its logs and tests)."""
        states: dict[str, bool] = await self.receipts.readiness()
        if not all(states.values()):
            log.debug("receipts role not ready", extra={"checks": states})
        return all(states.values())

    async def readiness(self) -> dict[str, bool]:
        result: dict[str, bool] = {}
        for name, check in self.readiness_checks().items():
            try:
                value = check()
                result[name] = bool(await value) if inspect.isawaitable(value) else bool(value)
            except Exception:
                result[name] = False
        return result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.receipts is not None:
            with contextlib.suppress(Exception):
                await self.receipts.close()
        if self.vms is not None:
            with contextlib.suppress(Exception):
                await self.vms.close()
        if self.send is not None:
            with contextlib.suppress(Exception):
                await self.send.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()


async def build(settings: Settings, config: DispatcherConfig | None = None) -> Components:
    """The configured roles, ready to run (producers started)."""
    config = config or DispatcherConfig.from_env()
    redis = redis_pool_client(settings, config.redis_max_connections)
    components = Components(settings, config, redis)
    try:
        if ROLE_SEND in config.roles:
            components.send = SendRole(settings, config, redis)
            await components.send.start()
        if ROLE_RECEIPTS in config.roles:
            from magpie_dispatcher.receipts import build_receipts

            components.receipts = await build_receipts(settings)
        if ROLE_VMS in config.roles:
            from magpie_dispatcher.vms.role import build_vms

            components.vms = await build_vms(settings, redis)
    except BaseException:
        await components.close()
        raise
    return components
