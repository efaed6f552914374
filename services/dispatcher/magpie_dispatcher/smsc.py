"""SMPP sessions to the SMSCs: binding, reconnecting with backoff, picking a session, pacing after throttling.

An :class:`SmscLink` is one SMSC account (host, port, system_id) with ``sessions`` transceiver sessions
(``SmppClient``, which does the enquire_link keepalive and the window). Receipts go to ``on_deliver_batch`` (when
given) one socket read at a time, so a window of deliver_sm is one call, answered together.

A supervisor per session binds, waits for the connection to drop, and binds again with exponential backoff (0.5 s
doubling to 30 s, with jitter). Submits go to the bound session with the fewest outstanding requests and wait
(bounded) for one when none is bound.

``ESME_RTHROTTLED`` pauses the whole link: every submitter waits until the pause ends, the pause doubling (from
20 ms to 1 s) while throttling continues and resetting after an accepted submit. That is the backpressure: nothing
queues beyond the submits already waiting for a window slot.

:class:`SmscPool` maps carriers (CMCC, CUCC, CTCC, CBN, DEFAULT) to links and source addresses; carriers that share
an account share its link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from magpie_common.smpp import (
    DeliverSm,
    SmppBindError,
    SmppClient,
    SmppConnectionError,
    SmppTimeoutError,
    SubmitSm,
    SubmitSmResp,
    status_name,
)
from magpie_dispatcher.config import CARRIERS, DEFAULT_CARRIER, DispatcherConfig, SmscConfig, carrier_key
from magpie_dispatcher.metrics import SMPP_BOUND, SMPP_CONNECTS

log = logging.getLogger(__name__)

LinkDeliverHandler = Callable[["SmscLink", DeliverSm], Awaitable[int]]
LinkBatchDeliverHandler = Callable[["SmscLink", list[DeliverSm]], Awaitable[list[int]]]


class SmscLink:
    def __init__(
        self,
        config: SmscConfig,
        on_deliver: LinkDeliverHandler,
        *,
        bind_wait_s: float = 30.0,
        reconnect_backoff_s: float = 0.5,
        reconnect_backoff_max_s: float = 30.0,
        throttle_backoff_s: float = 0.02,
        throttle_backoff_max_s: float = 1.0,
        max_deliver_concurrency: int = 4096,
        on_deliver_batch: LinkBatchDeliverHandler | None = None,
    ) -> None:
        self.config = config
        self.ns = config.namespace
        self.label = config.label
        self.bind_wait_s = bind_wait_s
        self.reconnect_backoff_s = reconnect_backoff_s
        self.reconnect_backoff_max_s = reconnect_backoff_max_s
        self.throttle_backoff_s = throttle_backoff_s
        self.throttle_backoff_max_s = throttle_backoff_max_s

        async def deliver(pdu: DeliverSm) -> int:
            return await on_deliver(self, pdu)

        deliver_batch = None
        if on_deliver_batch is not None:
            batch_handler = on_deliver_batch

            async def deliver_batch(pdus: list[DeliverSm]) -> list[int]:
                return await batch_handler(self, pdus)

        self.clients = [
            SmppClient(
                config.host,
                config.port,
                config.system_id,
                config.password,
                window=config.window,
                enquire_link_interval=config.enquire_link_s,
                response_timeout=config.response_timeout_s,
                system_type=config.system_type,
                on_deliver=deliver,
                on_deliver_batch=deliver_batch,
                max_deliver_concurrency=max_deliver_concurrency,
            )
            for _ in range(config.sessions)
        ]
        self._bound = asyncio.Event()
        self._stopping = False
        self._supervisors: list[asyncio.Task[None]] = []
        self._throttled_until = 0.0
        self._throttle_level = 0
        self._next_pick = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stopping = False
        self._supervisors = [
            asyncio.create_task(self._supervise(client), name=f"smpp-{self.label}-{n}")
            for n, client in enumerate(self.clients)
        ]

    @property
    def bound(self) -> bool:
        return any(client.is_bound for client in self.clients)

    @property
    def bound_sessions(self) -> int:
        return sum(1 for client in self.clients if client.is_bound)

    async def wait_bound(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.bound:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._bound.wait()
            if not self.bound:
                await asyncio.sleep(0.01)
        return True

    def _refresh(self) -> None:
        count = self.bound_sessions
        SMPP_BOUND.labels(self.label).set(count)
        if count:
            self._bound.set()
        else:
            self._bound.clear()

    async def _supervise(self, client: SmppClient) -> None:
        delay = self.reconnect_backoff_s
        while not self._stopping:
            try:
                await client.connect_and_bind()
            except SmppBindError as exc:
                SMPP_CONNECTS.labels(self.label, "refused").inc()
                log.error(
                    "SMSC refused the bind",
                    extra={"smsc": self.label, "status": status_name(exc.command_status)},
                )
            except (SmppConnectionError, SmppTimeoutError, OSError) as exc:
                SMPP_CONNECTS.labels(self.label, "unreachable").inc()
                log.warning("SMSC unreachable", extra={"smsc": self.label, "error": repr(exc)})
            else:
                SMPP_CONNECTS.labels(self.label, "ok").inc()
                delay = self.reconnect_backoff_s
                self._refresh()
                await client.wait_closed()
                self._refresh()
                if self._stopping:
                    return
                log.warning(
                    "SMPP session lost; reconnecting", extra={"smsc": self.label, "reason": repr(client.close_reason)}
                )
            if self._stopping:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.reconnect_backoff_max_s, delay * 2)

    async def close(self, timeout: float = 10.0) -> None:
        """Unbind every session once its outstanding submits are answered and its receipt handlers returned."""
        self._stopping = True
        await asyncio.gather(*(client.unbind_and_close(timeout) for client in self.clients), return_exceptions=True)
        await self._stop_supervisors()
        self._refresh()

    async def abort(self) -> None:
        """Drop every connection without unbinding (what a crash looks like to the SMSC)."""
        self._stopping = True
        for client in self.clients:
            client.abort()
        await self._stop_supervisors()
        self._refresh()

    async def _stop_supervisors(self) -> None:
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        self._supervisors = []

    # ------------------------------------------------------------------ submits

    def pick(self) -> SmppClient | None:
        """The bound session with the fewest outstanding requests, None when none is bound (no waiting)."""
        return self._pick()

    @property
    def throttled(self) -> bool:
        """The link is paused after an ESME_RTHROTTLED (:meth:`wait_unthrottled` waits for the end)."""
        return self._throttled_until > 0 and asyncio.get_running_loop().time() < self._throttled_until

    def _pick(self) -> SmppClient | None:
        """Fewest outstanding requests; ties go round-robin, so idle sessions share the work too."""
        clients = self.clients
        count = len(clients)
        start = self._next_pick = (self._next_pick + 1) % count
        best: SmppClient | None = None
        for offset in range(count):
            client = clients[(start + offset) % count]
            if client.is_bound and (best is None or client.outstanding < best.outstanding):
                best = client
        return best

    async def session(self) -> SmppClient:
        """A bound session, waiting up to ``bind_wait_s`` for one. Raises ``SmppConnectionError`` (nothing was
        written) when none comes."""
        client = self._pick()
        if client is not None:
            return client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bind_wait_s
        while True:
            if self._stopping:
                raise SmppConnectionError(f"SMSC {self.label}: link closing")
            self._refresh()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SmppConnectionError(f"SMSC {self.label}: no bound session within {self.bind_wait_s:g}s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._bound.wait()
            client = self._pick()
            if client is not None:
                return client
            await asyncio.sleep(0.01)

    async def submit(self, pdu: SubmitSm) -> SubmitSmResp:
        await self.wait_unthrottled()
        client = await self.session()
        return await client.submit(pdu)

    async def wait_unthrottled(self) -> None:
        loop = asyncio.get_running_loop()
        while (delay := self._throttled_until - loop.time()) > 0:
            await asyncio.sleep(delay)

    def on_throttled(self) -> None:
        """The SMSC answered ESME_RTHROTTLED: pause the link (longer if the previous pause did not help)."""
        now = asyncio.get_running_loop().time()
        if now < self._throttled_until:
            return  # already paused: the answers to submits written before the pause say nothing new
        self._throttle_level = min(self._throttle_level + 1, 16)
        pause = min(self.throttle_backoff_max_s, self.throttle_backoff_s * 2 ** (self._throttle_level - 1))
        self._throttled_until = now + pause * random.uniform(0.8, 1.2)

    def on_accepted(self) -> None:
        if self._throttle_level and asyncio.get_running_loop().time() >= self._throttled_until:
            self._throttle_level = 0


class SmscPool:
    """The links of every configured SMSC account and the carrier -> (link, default source address) routes."""

    def __init__(
        self,
        config: DispatcherConfig,
        on_deliver: LinkDeliverHandler,
        on_deliver_batch: LinkBatchDeliverHandler | None = None,
        **link_options: float,
    ) -> None:
        self.links: dict[tuple[str, int, str], SmscLink] = {}
        self.routes: dict[str, tuple[SmscLink, str]] = {}
        options = {
            "bind_wait_s": config.bind_wait_s,
            "reconnect_backoff_s": config.reconnect_backoff_s,
            "reconnect_backoff_max_s": config.reconnect_backoff_max_s,
            "throttle_backoff_s": config.throttle_backoff_s,
            "throttle_backoff_max_s": config.throttle_backoff_max_s,
            **link_options,
        }
        for carrier in (DEFAULT_CARRIER, *CARRIERS):
            smsc = config.smsc_for(carrier)
            link = self.links.get(smsc.identity)
            if link is None:
                link = self.links[smsc.identity] = SmscLink(
                    smsc,
                    on_deliver,
                    on_deliver_batch=on_deliver_batch,
                    **options,  # type: ignore[arg-type]
                )
            self.routes[carrier] = (link, smsc.source_addr)

    def route(self, carrier: str) -> tuple[SmscLink, str]:
        return self.routes[carrier_key(carrier)]

    def start(self) -> None:
        for link in self.links.values():
            link.start()

    @property
    def all_bound(self) -> bool:
        return all(link.bound for link in self.links.values())

    async def wait_bound(self, timeout: float) -> bool:
        results = await asyncio.gather(*(link.wait_bound(timeout) for link in self.links.values()))
        return all(results)

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links.values()))

    async def abort(self) -> None:
        await asyncio.gather(*(link.abort() for link in self.links.values()))
