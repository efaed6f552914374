"""An asyncio SMPP 3.4 ESME client bound as a transceiver.

- ``submit`` assigns sequence numbers, keeps at most ``window`` submits outstanding (a semaphore), times each
  request out individually and matches responses by sequence number. Every command_status comes back to the
  caller in the ``SubmitSmResp`` (``ESME_RTHROTTLED`` included: the caller decides to retry).
- deliver_sm PDUs go to ``on_deliver``; the deliver_sm_resp is written only once the handler has returned, with
  the status it returned. A handler that raises (or returns a non-int) is answered ``ESME_RX_T_APPN`` so the
  SMSC keeps the receipt; a crash before the handler returns sends nothing, and the SMSC redelivers.
  ``on_deliver_batch`` (when set, instead of ``on_deliver``) receives every deliver_sm read in one socket read
  (a whole window, under load) in ONE call and returns their statuses in order: one task per read instead of one
  per PDU, and the window's deliver_sm_resps leave together (one write), after the handler returned.
- enquire_link keepalive (a missing enquire_link_resp closes the connection) and answers to the SMSC's
  enquire_link and unbind.
- When the connection drops, every outstanding request fails with ``SmppConnectionError`` (a
  ``ConnectionError``) and later calls fail the same way at once: nothing hangs. A closed client can
  ``connect_and_bind()`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from types import TracebackType
from typing import Self, cast

from magpie_common.smpp.constants import (
    DEFAULT_MAX_PDU_LENGTH,
    DELIVER_SM_RESP,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RX_T_APPN,
    HEADER_LENGTH,
    RESPONSE_BIT,
)
from magpie_common.smpp.errors import (
    PduError,
    SmppBindError,
    SmppConnectionError,
    SmppError,
    SmppTimeoutError,
)
from magpie_common.smpp.framing import PduFramer
from magpie_common.smpp.pdu import (
    HEADER,
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
)
from magpie_common.smpp.writer import CoalescingWriter

logger = logging.getLogger(__name__)

DeliverHandler = Callable[[DeliverSm], Awaitable[int]]
BatchDeliverHandler = Callable[[list[DeliverSm]], Awaitable[Sequence[int]]]

_MAX_SEQUENCE = 0x7FFFFFFF
_DELIVER_SM_RESP_OK_BODY = b"\0"  # message_id: unused in deliver_sm_resp, a single NUL


def _deliver_sm_resp(sequence_number: int, status: int) -> bytes:
    return HEADER.pack(HEADER_LENGTH + 1, DELIVER_SM_RESP, status, sequence_number) + _DELIVER_SM_RESP_OK_BODY


class _Window:
    """A FIFO counting semaphore with O(1) acquire/release: a release hands its slot straight to the oldest
    live waiter (asyncio.Semaphore on 3.11 rescans every waiter on each release, quadratic under load)."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0:  # a free slot implies no live waiter: release() hands slots to waiters first
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just before the cancellation: pass it on
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


_Watched = tuple[float, int, "asyncio.Future[Pdu]", int]  # deadline, sequence number, future, command_id


class _Deadlines:
    """Response deadlines without a timer per request: one FIFO per timeout value (deadlines in it are in order,
    as requests are sent in order) and one timer armed for the earliest head. Answered requests leave the heads as
    the answers come (mostly in order), the rest when the timer passes them."""

    __slots__ = ("_at", "_expire", "_loop", "_queues", "_timer")

    def __init__(self, expire: Callable[[int, asyncio.Future[Pdu], int, float], None]) -> None:
        self._expire = expire
        self._queues: dict[float, deque[_Watched]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(
        self, loop: asyncio.AbstractEventLoop, timeout: float, seq: int, future: asyncio.Future[Pdu], command_id: int
    ) -> None:
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        while queue and queue[0][2].done():
            queue.popleft()
        at = loop.time() + timeout
        queue.append((at, seq, future, command_id))
        if self._timer is None or at < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._loop = loop
            self._at = at
            self._timer = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        earliest: float | None = None
        for timeout, queue in self._queues.items():
            while queue and (queue[0][2].done() or queue[0][0] <= now):
                _, seq, future, command_id = queue.popleft()
                if not future.done():
                    self._expire(seq, future, command_id, timeout)
            if queue and (earliest is None or queue[0][0] < earliest):
                earliest = queue[0][0]
        if earliest is not None:
            self._at = earliest
            self._timer = loop.call_at(earliest, self._fire)

    def clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queues.clear()


class ClientState(Enum):
    CLOSED = "closed"
    CONNECTED = "connected"  # TCP open, bind not (yet) accepted
    BOUND = "bound"
    UNBINDING = "unbinding"


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, client: SmppClient) -> None:
        self._client = client
        self.transport: asyncio.Transport | None = None
        self.writer: CoalescingWriter | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence a cast, not an isinstance check).
        self.transport = transport = cast(asyncio.Transport, transport)
        self.writer = CoalescingWriter(asyncio.get_running_loop(), transport)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes) -> bool:
        """Queue ``data`` for the end of this loop iteration; False if the connection is closing."""
        if self.writer is None or self.transport is None or self.transport.is_closing():
            return False
        self.writer.write(data)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.discard()
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self._client._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_connection_lost(self, exc)

    def pause_writing(self) -> None:
        self._client._writable.clear()

    def resume_writing(self) -> None:
        self._client._writable.set()


class SmppClient:
    """ESME side of one SMPP transceiver session.

    ``on_deliver(pdu) -> command_status`` may also be assigned after construction; ``on_deliver_batch(pdus) ->
    statuses`` takes precedence when set. ``max_deliver_concurrency`` bounds the deliver_sm being handled at once
    (reading from the socket pauses beyond it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        window: int = 64,
        enquire_link_interval: float = 30.0,
        on_deliver: DeliverHandler | None = None,
        on_deliver_batch: BatchDeliverHandler | None = None,
        response_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        system_type: str = "",
        max_deliver_concurrency: int = 256,
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.on_deliver: DeliverHandler | None = on_deliver
        self.on_deliver_batch: BatchDeliverHandler | None = on_deliver_batch
        self.response_timeout = response_timeout
        self.connect_timeout = connect_timeout
        self.system_type = system_type
        self.max_deliver_concurrency = max_deliver_concurrency
        self.max_pdu_length = max_pdu_length

        self.smsc_system_id: str = ""
        self.close_reason: BaseException | None = None

        self._state = ClientState.CLOSED
        self._protocol: _ClientProtocol | None = None
        self._framer = PduFramer(max_pdu_length)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._sequence = 0
        self._window = _Window(window)
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = asyncio.Event()
        self._closed.set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._deadlines = _Deadlines(self._expire)
        self._deliver_tasks: set[asyncio.Task[None]] = set()
        self._delivering = 0  # deliver_sm handed to handlers and not answered yet
        self._reading_paused = False

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def is_bound(self) -> bool:
        return self._state is ClientState.BOUND

    @property
    def closed(self) -> bool:
        return self._state is ClientState.CLOSED

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered (submits, enquire_links, the bind or unbind)."""
        return len(self._pending)

    async def connect_and_bind(self) -> BindTransceiverResp:
        """Open the TCP connection and bind as a transceiver. Raises ``SmppConnectionError`` if the SMSC cannot
        be reached, ``SmppBindError`` (with ``command_status``) if it refuses the bind, ``SmppTimeoutError`` if it
        does not answer in ``response_timeout``."""
        if self._state is not ClientState.CLOSED:
            raise SmppError(f"connect_and_bind() called in state {self._state.value}")
        loop = asyncio.get_running_loop()
        self._framer = PduFramer(self.max_pdu_length)
        self._pending = {}
        self._deadlines.clear()
        self._window = _Window(self.window)
        self._writable.set()
        self._reading_paused = False
        self.close_reason = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(lambda: _ClientProtocol(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise SmppConnectionError(f"cannot connect to SMSC {self.host}:{self.port}: {exc!r}") from exc
        self._protocol = protocol
        self._state = ClientState.CONNECTED
        self._closed.clear()
        bind = BindTransceiver(system_id=self.system_id, password=self.password, system_type=self.system_type)
        try:
            resp = await self._request(bind, self.response_timeout)
        except BaseException:
            await self._close_and_wait(1.0)
            raise
        if resp.command_status != ESME_ROK or not isinstance(resp, BindTransceiverResp):
            self.close_reason = SmppBindError(resp.command_status)
            await self._close_and_wait(1.0)
            raise SmppBindError(resp.command_status)
        self.smsc_system_id = resp.system_id
        self._state = ClientState.BOUND
        if self.enquire_link_interval > 0:
            self._keepalive_task = asyncio.create_task(self._keepalive(protocol), name="smpp-enquire-link")
        logger.info("smpp bound", extra={"smsc": f"{self.host}:{self.port}", "system_id": self.system_id})
        return resp

    async def submit(self, pdu: SubmitSm, *, timeout: float | None = None) -> SubmitSmResp:
        """Send ``pdu`` (its sequence_number is overwritten) and return the SMSC's answer, whatever its
        command_status; a generic_nack comes back as a ``SubmitSmResp`` with the nack's status and no id.
        Waits for a free window slot first. Raises ``SmppConnectionError`` if not bound or if the connection
        drops, ``SmppTimeoutError`` after ``timeout`` (default ``response_timeout``) without an answer."""
        self._check_bound()
        async with self._window:
            self._check_bound()
            resp = await self._request(pdu, self.response_timeout if timeout is None else timeout)
        if isinstance(resp, SubmitSmResp):
            return resp
        if isinstance(resp, GenericNack):
            return SubmitSmResp(sequence_number=resp.sequence_number, command_status=resp.command_status)
        raise PduError(f"unexpected answer to submit_sm: {type(resp).__name__}")

    async def submit_each(
        self, pdus: Sequence[SubmitSm], *, timeout: float | None = None
    ) -> list[tuple[SubmitSmResp | SmppError, float]]:
        """Submit ``pdus`` in order, each as soon as a window slot is free, without a task per PDU, and return,
        per PDU, ``(answer or error, seconds from write to answer)``: the answers as :meth:`submit` returns them;
        ``SmppConnectionError`` for a PDU that was never written (its ``sequence_number`` stays 0: safe to send
        again), ``SmppTimeoutError`` / ``SmppConnectionError`` for one written but unanswered (in doubt)."""
        timeout = self.response_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        clock = loop.time
        futures: list[asyncio.Future[Pdu] | SmppError] = []
        sent_at: list[float] = []
        answered_at: list[float] = [0.0] * len(pdus)
        window = self._window
        for position, pdu in enumerate(pdus):
            pdu.sequence_number = 0
            try:
                self._check_bound()
                await window.acquire()
            except SmppConnectionError as exc:
                futures.append(exc)
                sent_at.append(0.0)
                continue
            try:
                self._check_bound()
                if not self._writable.is_set():
                    await self._writable.wait()
                protocol = self._open_protocol()
            except BaseException as exc:
                window.release()
                if not isinstance(exc, SmppConnectionError):
                    raise
                futures.append(exc)
                sent_at.append(0.0)
                continue
            seq = self._next_sequence()
            pdu.sequence_number = seq
            future: asyncio.Future[Pdu] = loop.create_future()
            self._pending[seq] = future
            protocol.send(pdu.encode())
            self._deadlines.watch(loop, timeout, seq, future, pdu.command_id)
            future.add_done_callback(self._submit_done(seq, position, answered_at, clock, window))
            futures.append(future)
            sent_at.append(clock())
        waiting = [f for f in futures if isinstance(f, asyncio.Future)]
        if waiting:
            await asyncio.wait(waiting)
        results: list[tuple[SubmitSmResp | SmppError, float]] = []
        for position, item in enumerate(futures):
            if not isinstance(item, asyncio.Future):
                results.append((item, 0.0))
                continue
            elapsed = answered_at[position] - sent_at[position]
            error = None if item.cancelled() else item.exception()
            if item.cancelled():
                results.append((SmppConnectionError("submit cancelled"), elapsed))
            elif error is not None:
                if not isinstance(error, SmppError):
                    raise error
                results.append((error, elapsed))
            else:
                resp = item.result()
                if isinstance(resp, GenericNack):
                    resp = SubmitSmResp(sequence_number=resp.sequence_number, command_status=resp.command_status)
                if not isinstance(resp, SubmitSmResp):
                    results.append((PduError(f"unexpected answer to submit_sm: {type(resp).__name__}"), elapsed))
                else:
                    results.append((resp, elapsed))
        return results

    def _submit_done(
        self, seq: int, position: int, answered_at: list[float], clock: Callable[[], float], window: _Window
    ) -> Callable[[asyncio.Future[Pdu]], None]:
        def done(future: asyncio.Future[Pdu]) -> None:
            answered_at[position] = clock()
            if self._pending.get(seq) is future:
                del self._pending[seq]
            window.release()

        return done

    async def enquire_link(self, *, timeout: float | None = None) -> EnquireLinkResp | GenericNack:
        """Send one enquire_link and wait for its answer."""
        if self._state not in (ClientState.BOUND, ClientState.CONNECTED):
            raise SmppConnectionError(f"not connected (state {self._state.value})")
        resp = await self._request(EnquireLink(), self.response_timeout if timeout is None else timeout)
        assert isinstance(resp, EnquireLinkResp | GenericNack)
        return resp

    async def unbind_and_close(self, timeout: float = 5.0) -> None:
        """Stop taking submits, let outstanding submits be answered and running deliver handlers finish (and
        their deliver_sm_resp go out), send unbind, wait for unbind_resp, close. Each step is bounded by
        ``timeout`` overall; whatever is still outstanding at the end fails with ``SmppConnectionError``."""
        if self._state is ClientState.CLOSED:
            return
        protocol = self._protocol
        self._state = ClientState.UNBINDING
        self._stop_keepalive()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if self._pending:
                await asyncio.wait(list(self._pending.values()), timeout=max(0.0, deadline - loop.time()))
            if self._deliver_tasks:
                await asyncio.wait(set(self._deliver_tasks), timeout=max(0.0, deadline - loop.time()))
            if protocol is self._protocol and not self._closed.is_set():
                with contextlib.suppress(SmppError):
                    await self._request(Unbind(), max(0.01, deadline - loop.time()))
        finally:
            if self.close_reason is None:
                self.close_reason = SmppConnectionError("session unbound by the client")
            await self._close_and_wait(max(0.1, deadline - loop.time()))
        logger.info("smpp unbound", extra={"smsc": f"{self.host}:{self.port}", "system_id": self.system_id})

    def abort(self) -> None:
        """Drop the connection at once, without unbind (what a crash looks like to the SMSC)."""
        self._stop_keepalive()
        if self._protocol is not None:
            self._protocol.abort()

    async def wait_closed(self) -> None:
        """Return once the connection is closed (by us, by the SMSC or by a network failure)."""
        await self._closed.wait()

    async def __aenter__(self) -> Self:
        await self.connect_and_bind()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.unbind_and_close()

    # ------------------------------------------------------------------ requests

    def _check_bound(self) -> None:
        if self._state is not ClientState.BOUND:
            reason = f": {self.close_reason!r}" if self.close_reason else ""
            raise SmppConnectionError(f"SMPP session not bound (state {self._state.value}){reason}")

    def _next_sequence(self) -> int:
        seq = self._sequence
        while True:
            seq = seq + 1 if seq < _MAX_SEQUENCE else 1
            if seq not in self._pending:
                self._sequence = seq
                return seq

    def _open_protocol(self) -> _ClientProtocol:
        protocol = self._protocol
        if protocol is None or not protocol.open:
            raise SmppConnectionError(f"SMPP connection closed: {self.close_reason!r}")
        return protocol

    async def _request(self, pdu: Pdu, timeout: float) -> Pdu:
        if not self._writable.is_set():
            await self._writable.wait()
        protocol = self._open_protocol()
        seq = self._next_sequence()
        pdu.sequence_number = seq
        data = pdu.encode()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Pdu] = loop.create_future()
        self._pending[seq] = future
        protocol.send(data)
        self._deadlines.watch(loop, timeout, seq, future, pdu.command_id)
        try:
            return await future
        finally:
            if self._pending.get(seq) is future:
                del self._pending[seq]

    def _expire(self, seq: int, future: asyncio.Future[Pdu], command_id: int, timeout: float) -> None:
        if self._pending.get(seq) is future:
            del self._pending[seq]
        if not future.done():
            future.set_exception(
                SmppTimeoutError(f"no answer to command 0x{command_id:08X} seq {seq} within {timeout:g}s")
            )

    async def _keepalive(self, protocol: _ClientProtocol) -> None:
        try:
            while self._state is ClientState.BOUND and protocol is self._protocol:
                await asyncio.sleep(self.enquire_link_interval)
                if self._state is not ClientState.BOUND or protocol is not self._protocol:
                    return
                try:
                    await self._request(EnquireLink(), self.response_timeout)
                except SmppTimeoutError as exc:
                    logger.warning("smpp enquire_link unanswered, closing", extra={"smsc": f"{self.host}:{self.port}"})
                    self.close_reason = exc
                    self.abort()
                    return
        except SmppConnectionError:
            return

    def _stop_keepalive(self) -> None:
        task = self._keepalive_task
        self._keepalive_task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # ------------------------------------------------------------------ incoming data

    def _on_data(self, protocol: _ClientProtocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return
        try:
            frames = self._framer.feed(data)
        except PduError as exc:
            logger.error("smpp framing error, closing: %s", exc)
            self.close_reason = exc
            self.abort()
            return
        delivers: list[DeliverSm] | None = [] if self.on_deliver_batch is not None else None
        for frame in frames:
            try:
                pdu = decode_pdu(frame)
            except PduError as exc:
                self._on_bad_pdu(exc)
                continue
            if delivers is not None and isinstance(pdu, DeliverSm):
                delivers.append(pdu)
            else:
                self._dispatch(protocol, pdu)
        if delivers:
            self._start_deliver_batch(protocol, delivers)

    def _on_bad_pdu(self, exc: PduError) -> None:
        seq = exc.sequence_number or 0
        if exc.command_id is not None and exc.command_id & RESPONSE_BIT:
            future = self._pending.pop(seq, None)
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        logger.warning("smpp bad pdu from SMSC: %s", exc)
        self._write_quiet(GenericNack(sequence_number=seq, command_status=exc.command_status))

    def _dispatch(self, protocol: _ClientProtocol, pdu: Pdu) -> None:
        if pdu.command_id & RESPONSE_BIT:  # a response, generic_nack included
            future = self._pending.pop(pdu.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(pdu)
            else:
                logger.debug("smpp late or unknown response seq %d", pdu.sequence_number)
            return
        if isinstance(pdu, DeliverSm):
            self._start_deliver(protocol, pdu)
        elif isinstance(pdu, EnquireLink):
            self._write_quiet(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, Unbind):
            self._write_quiet(UnbindResp(sequence_number=pdu.sequence_number))
            self._state = ClientState.UNBINDING
            self.close_reason = SmppConnectionError("SMSC unbound the session")
            self._close_transport()
        else:
            self._write_quiet(GenericNack(sequence_number=pdu.sequence_number, command_status=ESME_RINVCMDID))

    def _write_quiet(self, pdu: Pdu) -> None:
        if self._protocol is not None:
            self._protocol.send(pdu.encode())

    def _start_deliver(self, protocol: _ClientProtocol, pdu: DeliverSm) -> None:
        if self.on_deliver_batch is not None:
            self._start_deliver_batch(protocol, [pdu])
            return
        self._track_deliver(asyncio.get_running_loop().create_task(self._handle_deliver(protocol, pdu)), 1, protocol)

    def _start_deliver_batch(self, protocol: _ClientProtocol, pdus: list[DeliverSm]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle_deliver_batch(protocol, pdus))
        self._track_deliver(task, len(pdus), protocol)

    def _track_deliver(self, task: asyncio.Task[None], count: int, protocol: _ClientProtocol) -> None:
        self._deliver_tasks.add(task)
        self._delivering += count
        task.add_done_callback(lambda done: self._deliver_done(done, count))
        transport = protocol.transport
        if (
            self._delivering >= self.max_deliver_concurrency
            and not self._reading_paused
            and transport is not None
            and not transport.is_closing()
        ):
            transport.pause_reading()
            self._reading_paused = True

    def _deliver_done(self, task: asyncio.Task[None], count: int = 1) -> None:
        self._deliver_tasks.discard(task)
        self._delivering -= count
        if self._reading_paused and self._delivering < self.max_deliver_concurrency:
            self._reading_paused = False
            protocol = self._protocol
            if protocol is not None and protocol.open and protocol.transport is not None:
                protocol.transport.resume_reading()

    async def _handle_deliver(self, protocol: _ClientProtocol, pdu: DeliverSm) -> None:
        handler = self.on_deliver
        status = ESME_RX_T_APPN
        if handler is None:
            logger.warning("smpp deliver_sm without an on_deliver handler; answering ESME_RX_T_APPN")
        else:
            try:
                result = await handler(pdu)
            except Exception:
                logger.exception("smpp on_deliver handler failed; answering ESME_RX_T_APPN")
            else:
                if isinstance(result, int):
                    status = result
                else:
                    logger.error("smpp on_deliver returned %r, not a command status; answering ESME_RX_T_APPN", result)
        if protocol is self._protocol:
            protocol.send(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=status).encode())

    async def _handle_deliver_batch(self, protocol: _ClientProtocol, pdus: list[DeliverSm]) -> None:
        handler = self.on_deliver_batch
        statuses: list[int] = [ESME_RX_T_APPN] * len(pdus)
        if handler is None:
            logger.warning("smpp deliver_sm without an on_deliver_batch handler; answering ESME_RX_T_APPN")
        else:
            try:
                result = list(await handler(pdus))
            except Exception:
                logger.exception("smpp on_deliver_batch handler failed; answering ESME_RX_T_APPN")
            else:
                if len(result) == len(pdus) and all(isinstance(status, int) for status in result):
                    statuses = result
                else:
                    logger.error(
                        "smpp on_deliver_batch returned %d statuses for %d deliver_sm; answering ESME_RX_T_APPN",
                        len(result),
                        len(pdus),
                    )
        if protocol is self._protocol:
            protocol.send(
                b"".join(
                    _deliver_sm_resp(pdu.sequence_number, status) for pdu, status in zip(pdus, statuses, strict=True)
                )
            )

    # ------------------------------------------------------------------ teardown

    async def _close_and_wait(self, timeout: float) -> None:
        self._close_transport()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._closed.wait()

    def _close_transport(self) -> None:
        if self._protocol is not None:
            self._protocol.close()

    def _on_connection_lost(self, protocol: _ClientProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        was_unbinding = self._state is ClientState.UNBINDING
        self._state = ClientState.CLOSED
        if self.close_reason is None:
            self.close_reason = exc or SmppConnectionError("connection closed by the SMSC")
        self._stop_keepalive()
        error = SmppConnectionError(f"SMPP connection lost: {self.close_reason!r}")
        pending = self._pending
        self._pending = {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        self._deadlines.clear()
        self._writable.set()
        self._closed.set()
        log = logger.info if was_unbinding and exc is None else logger.warning
        log(
            "smpp connection closed",
            extra={"smsc": f"{self.host}:{self.port}", "reason": repr(self.close_reason)},
        )
