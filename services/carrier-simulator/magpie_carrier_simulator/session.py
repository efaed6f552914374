"""One SMPP connection to the simulator: framing, bind state, request dispatch, receipt window."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, cast

from magpie_carrier_simulator.receipts import PendingReceipt
from magpie_common.smpp.constants import (
    DELIVER_SM,
    ESME_RALYBND,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    HEADER_LENGTH,
    RESPONSE_BIT,
)
from magpie_common.smpp.errors import FramingError, PduError
from magpie_common.smpp.framing import PduFramer
from magpie_common.smpp.pdu import (
    HEADER,
    BindTransceiver,
    BindTransceiverResp,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
    decode_pdu,
)
from magpie_common.smpp.writer import CoalescingWriter

if TYPE_CHECKING:
    from magpie_carrier_simulator.simulator import CarrierSimulator

logger = logging.getLogger(__name__)

_session_ids = itertools.count(1)
_MAX_SEQUENCE = 0x7FFFFFFF


class SmscSession(asyncio.Protocol):
    def __init__(self, simulator: CarrierSimulator) -> None:
        self.id = next(_session_ids)
        self.simulator = simulator
        self.system_id: str | None = None  # set once bound
        self.peer = ""
        self.receipts_inflight: dict[int, PendingReceipt] = {}
        self.submits = 0  # submit_sm received on this session
        self.transport: asyncio.Transport | None = None
        self.writer: CoalescingWriter | None = None
        self._framer = PduFramer()
        self._sequence = 0
        self._closing = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence a cast, not an isinstance check).
        self.transport = transport = cast(asyncio.Transport, transport)
        self.writer = CoalescingWriter(asyncio.get_running_loop(), transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.simulator.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.simulator.sessions.discard(self)
        self._unbind_locally()
        logger.debug("smpp session %d closed", self.id, extra={"peer": self.peer})

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except FramingError as exc:
            logger.warning("smpp framing error from %s: %s", self.peer, exc)
            self.write(GenericNack(command_status=exc.command_status).encode())
            self.close()
            return
        for frame in frames:
            try:
                pdu = decode_pdu(frame)
            except PduError as exc:
                self._on_bad_pdu(exc)
                continue
            self._dispatch(pdu)

    # ------------------------------------------------------------------ state for the receipt router

    @property
    def bound(self) -> bool:
        return self.system_id is not None

    @property
    def can_receive(self) -> bool:
        return self.system_id is not None and not self._closing

    def send_deliver_sm(self, body: bytes) -> int:
        seq = self._next_sequence()
        self.write(HEADER.pack(HEADER_LENGTH + len(body), DELIVER_SM, ESME_ROK, seq) + body)
        return seq

    # ------------------------------------------------------------------ I/O

    def write(self, data: bytes) -> None:
        if self.writer is not None and not self._closing:
            self.writer.write(data)

    def close(self) -> None:
        """Flush what is buffered and close."""
        if self.writer is not None:
            self.writer.flush()
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence + 1 if self._sequence < _MAX_SEQUENCE else 1
        return self._sequence

    def _unbind_locally(self) -> None:
        system_id = self.system_id
        if system_id is not None:
            self.system_id = None
            self.simulator.router.detach(system_id, self)
            self.simulator.on_session_unbound(system_id)

    # ------------------------------------------------------------------ dispatch

    def _on_bad_pdu(self, exc: PduError) -> None:
        command_id = exc.command_id or 0
        if command_id & RESPONSE_BIT:
            if command_id == DeliverSmResp.command_id and self.system_id is not None:
                # An unreadable deliver_sm_resp is no acknowledgement: retry the receipt.
                self.simulator.router.acknowledged(
                    self.system_id, self, exc.sequence_number or 0, exc.command_status or 1
                )
            return
        logger.info("smpp bad pdu from %s: %s", self.peer, exc)
        seq = exc.sequence_number or 0
        if command_id == SubmitSm.command_id:  # a malformed submit_sm gets a submit_sm_resp with the reason
            self.simulator.count_refused(exc.command_status)
            self.write(HEADER.pack(HEADER_LENGTH, SubmitSm.command_id | RESPONSE_BIT, exc.command_status, seq))
            return
        self.write(GenericNack(sequence_number=seq, command_status=exc.command_status).encode())

    def _dispatch(self, pdu: Pdu) -> None:
        if isinstance(pdu, SubmitSm):
            if self.system_id is None:
                self.simulator.count_refused(ESME_RINVBNDSTS)
                self._respond_submit_error(pdu, ESME_RINVBNDSTS)
            else:
                self.submits += 1
                self.simulator.handle_submit(self, pdu)
        elif isinstance(pdu, DeliverSmResp):
            if self.system_id is not None:
                self.simulator.router.acknowledged(self.system_id, self, pdu.sequence_number, pdu.command_status)
        elif isinstance(pdu, GenericNack):
            if self.system_id is not None and pdu.sequence_number in self.receipts_inflight:
                self.simulator.router.acknowledged(
                    self.system_id, self, pdu.sequence_number, pdu.command_status or ESME_RINVCMDID
                )
        elif isinstance(pdu, EnquireLink):
            self.write(EnquireLinkResp(sequence_number=pdu.sequence_number).encode())
        elif isinstance(pdu, BindTransceiver):
            self._on_bind(pdu)
        elif isinstance(pdu, Unbind):
            self.write(UnbindResp(sequence_number=pdu.sequence_number).encode())
            self._unbind_locally()
            self.close()
        elif isinstance(pdu, UnbindResp):
            self.close()
        elif pdu.command_id & RESPONSE_BIT:
            return  # an answer to something we did not ask: ignore
        else:
            self.write(GenericNack(sequence_number=pdu.sequence_number, command_status=ESME_RINVCMDID).encode())

    def _respond_submit_error(self, pdu: SubmitSm, status: int) -> None:
        self.write(HEADER.pack(HEADER_LENGTH, SubmitSm.command_id | RESPONSE_BIT, status, pdu.sequence_number))

    def _on_bind(self, pdu: BindTransceiver) -> None:
        if self.system_id is not None:
            status = ESME_RALYBND
        else:
            status = self.simulator.check_credentials(pdu.system_id, pdu.password)
        resp = BindTransceiverResp(sequence_number=pdu.sequence_number, command_status=status)
        if status == ESME_ROK:
            resp.system_id = self.simulator.config.smsc_system_id
        self.write(resp.encode())
        if status == ESME_ROK:
            self.system_id = pdu.system_id
            logger.info("smpp bind", extra={"system_id": pdu.system_id, "peer": self.peer, "session": self.id})
            self.simulator.on_session_bound(pdu.system_id)
            self.simulator.router.attach(pdu.system_id, self)
        elif status != ESME_RALYBND:
            logger.info("smpp bind refused", extra={"system_id": pdu.system_id, "peer": self.peer, "status": status})

    def send_unbind(self) -> None:
        """Ask the ESME to unbind (used on shutdown)."""
        self.write(Unbind(sequence_number=self._next_sequence()).encode())
