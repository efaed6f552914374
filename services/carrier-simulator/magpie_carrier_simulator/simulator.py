"""The simulated SMSC: accepts binds and submits, decides each message's fate, emits delivery receipts."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from magpie_carrier_simulator.config import SimulatorConfig
from magpie_carrier_simulator.http_api import HttpApi
from magpie_carrier_simulator.outcomes import OutcomePolicy
from magpie_carrier_simulator.receipts import PendingReceipt, ReceiptRouter
from magpie_carrier_simulator.session import SmscSession
from magpie_carrier_simulator.submissions import Submission, SubmissionLog
from magpie_carrier_simulator.throttle import TokenBucket
from magpie_carrier_simulator.timers import DelayQueue
from magpie_common.smpp.constants import (
    ESM_CLASS_UDHI,
    ESME_RINVDSTADR,
    ESME_RINVESMCLASS,
    ESME_RINVPASWD,
    ESME_RINVSYSID,
    ESME_ROK,
    ESME_RTHROTTLED,
    HEADER_LENGTH,
    REGISTERED_DELIVERY_ON_FAILURE,
    REGISTERED_DELIVERY_RECEIPT,
    REGISTERED_DELIVERY_RECEIPT_MASK,
    SUBMIT_SM_RESP,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    status_name,
)
from magpie_common.smpp.pdu import HEADER, SubmitSm, tlv_to_int
from magpie_common.smpp.receipt import STAT_DELIVERED, DeliveryReceipt, receipt_deliver_sm_body
from magpie_common.sms_text import ConcatInfo, decode_text, parse_udh

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SubmitCounters:
    submits_total: int = 0
    accepted: int = 0
    throttled: int = 0
    refused: int = 0  # answered with an error other than ESME_RTHROTTLED
    submit_status: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    binds_ok: int = 0
    binds_failed: int = 0


# (session, encoded submit_sm_resp, submission whose receipt is due after the response or None)
_Accepted = tuple[SmscSession, bytes, Submission | None]


def _concat_from_sar(pdu: SubmitSm) -> ConcatInfo | None:
    tlvs = pdu.tlvs
    if TAG_SAR_MSG_REF_NUM in tlvs and TAG_SAR_TOTAL_SEGMENTS in tlvs and TAG_SAR_SEGMENT_SEQNUM in tlvs:
        return ConcatInfo(
            reference=tlv_to_int(tlvs[TAG_SAR_MSG_REF_NUM]),
            total=tlv_to_int(tlvs[TAG_SAR_TOTAL_SEGMENTS]),
            seq=tlv_to_int(tlvs[TAG_SAR_SEGMENT_SEQNUM]),
        )
    return None


class CarrierSimulator:
    """``async with CarrierSimulator(config) as sim:`` starts the SMPP listener (``sim.smpp_port``) and the HTTP
    endpoint (``sim.http_port``); ``stats()``, ``submissions()`` and ``duplicates()`` are what HTTP serves."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.sessions: set[SmscSession] = set()
        self.router = ReceiptRouter(
            window=config.deliver_window,
            ack_timeout=config.receipt_ack_timeout,
            retry_delay=config.receipt_retry_delay,
        )
        self.log = SubmissionLog(config.max_records, config.submissions_log)
        self.policy = OutcomePolicy(
            failure_rate=config.failure_rate, seed=config.seed, reject_prefixes=config.reject_prefixes
        )
        self.throttle = TokenBucket(config.max_tps, config.throttle_burst)
        self.counters = SubmitCounters()
        self.bound_sessions: Counter[str] = Counter()
        self.smpp_port = 0
        self.http_port: int | None = None
        self.started_at = 0.0
        self._responses: DelayQueue[_Accepted] = DelayQueue(config.submit_latency, self._send_submit_resp)
        self._dlrs: DelayQueue[Submission] = DelayQueue(config.dlr_delay, self._emit_receipt)
        self._id_prefix = secrets.token_hex(5)
        self._id_counter = 0
        self._server: asyncio.Server | None = None
        self._http = HttpApi(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.log.open()
        self._server = await loop.create_server(
            lambda: SmscSession(self), self.config.host, self.config.smpp_port, backlog=256
        )
        self.smpp_port = self._server.sockets[0].getsockname()[1]
        if self.config.http_port is not None:
            self.http_port = await self._http.start(self.config.host, self.config.http_port)
        self.started_at = time.time()
        logger.info(
            "carrier simulator started",
            extra={
                "event": "started",
                "host": self.config.host,
                "smpp_port": self.smpp_port,
                "http_port": self.http_port,
                "system_ids": sorted(self.config.accounts),
                "submit_latency": self.config.submit_latency,
                "dlr_delay": self.config.dlr_delay,
                "failure_rate": self.config.failure_rate,
                "seed": self.config.seed,
                "max_tps": self.config.max_tps,
            },
        )

    async def stop(self) -> None:
        """Stop listening, close every session (queued receipts are dropped with the process), flush the log."""
        if self._server is not None:
            self._server.close()
        await self._http.stop()
        for session in list(self.sessions):
            if session.bound:
                session.send_unbind()  # tell the ESME; we do not wait for its unbind_resp
            session.close()
        self._responses.close()
        self._dlrs.close()
        self.router.close()
        self.log.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        logger.info("carrier simulator stopped", extra={"event": "stopped"})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ binds

    def check_credentials(self, system_id: str, password: str) -> int:
        expected = self.config.accounts.get(system_id)
        if expected is None:
            self.counters.binds_failed += 1
            return ESME_RINVSYSID
        if not secrets.compare_digest(expected.encode(), password.encode()):
            self.counters.binds_failed += 1
            return ESME_RINVPASWD
        self.counters.binds_ok += 1
        return ESME_ROK

    def on_session_bound(self, system_id: str) -> None:
        self.bound_sessions[system_id] += 1

    def on_session_unbound(self, system_id: str) -> None:
        self.bound_sessions[system_id] -= 1
        if self.bound_sessions[system_id] <= 0:
            del self.bound_sessions[system_id]

    # ------------------------------------------------------------------ submits

    def count_refused(self, status: int) -> None:
        counters = self.counters
        counters.submits_total += 1
        counters.refused += 1
        counters.submit_status[status] += 1

    def _new_message_id(self) -> str:
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter:010x}"

    def handle_submit(self, session: SmscSession, pdu: SubmitSm) -> None:
        counters = self.counters
        if not self.throttle.try_acquire():
            counters.submits_total += 1
            counters.throttled += 1
            counters.submit_status[ESME_RTHROTTLED] += 1
            session.write(HEADER.pack(HEADER_LENGTH, SUBMIT_SM_RESP, ESME_RTHROTTLED, pdu.sequence_number))
            return
        if not pdu.destination_addr:
            self._refuse(session, pdu, ESME_RINVDSTADR)
            return
        data = pdu.message_bytes
        payload = data
        concat: ConcatInfo | None = None
        if pdu.esm_class & ESM_CLASS_UDHI:
            try:
                _, concat, payload = parse_udh(data)
            except ValueError:
                self._refuse(session, pdu, ESME_RINVESMCLASS)
                return
        elif pdu.tlvs:
            concat = _concat_from_sar(pdu)
        if concat is not None and concat.total > 1:
            message_key = f"{pdu.source_addr}|{concat.reference}|{concat.total}".encode()
        else:
            concat = None
            message_key = data
        stat, err = self.policy.decide(pdu.destination_addr, message_key)
        message_id = self._new_message_id()
        log = self.log
        submission = Submission(
            message_id=message_id,
            system_id=log.shared(session.system_id or ""),
            source_addr=log.shared(pdu.source_addr),
            destination_addr=pdu.destination_addr,
            text=decode_text(payload, pdu.data_coding),
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            submitted_at=time.time(),
            stat=stat,
            err=err,
            concat_ref=concat.reference if concat else None,
            concat_total=concat.total if concat else None,
            concat_seq=concat.seq if concat else None,
        )
        log.add(submission)
        counters.submits_total += 1
        counters.accepted += 1
        counters.submit_status[ESME_ROK] += 1
        counters.outcomes[stat] += 1
        body = message_id.encode() + b"\0"
        resp = HEADER.pack(HEADER_LENGTH + len(body), SUBMIT_SM_RESP, ESME_ROK, pdu.sequence_number) + body
        wanted = pdu.registered_delivery & REGISTERED_DELIVERY_RECEIPT_MASK
        wants_receipt = wanted == REGISTERED_DELIVERY_RECEIPT or (
            wanted == REGISTERED_DELIVERY_ON_FAILURE and stat != STAT_DELIVERED
        )
        self._responses.push((session, resp, submission if wants_receipt else None))

    def _refuse(self, session: SmscSession, pdu: SubmitSm, status: int) -> None:
        self.count_refused(status)
        session.write(HEADER.pack(HEADER_LENGTH, SUBMIT_SM_RESP, status, pdu.sequence_number))

    def _send_submit_resp(self, item: _Accepted) -> None:
        session, resp, submission = item
        session.write(resp)  # dropped if the session closed meanwhile: the message was still accepted
        if submission is not None:
            self._dlrs.push(submission)

    def _emit_receipt(self, submission: Submission) -> None:
        receipt = DeliveryReceipt(
            message_id=submission.message_id,
            stat=submission.stat,
            err=submission.err,
            sub=1,
            dlvrd=1 if submission.stat == STAT_DELIVERED else 0,
            submit_date=datetime.fromtimestamp(submission.submitted_at, UTC),
            done_date=datetime.now(UTC),
            text=submission.text,
        )
        body = receipt_deliver_sm_body(
            receipt, source_addr=submission.destination_addr, destination_addr=submission.source_addr
        )
        self.router.enqueue(PendingReceipt(system_id=submission.system_id, message_id=submission.message_id, body=body))

    # ------------------------------------------------------------------ inspection

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        receipts = self.router.stats
        return {
            "submits_total": counters.submits_total,
            "accepted": counters.accepted,
            "throttled": counters.throttled,
            "refused": counters.refused,
            "submit_status": {status_name(s): n for s, n in sorted(counters.submit_status.items())},
            "outcomes": dict(sorted(counters.outcomes.items())),
            "messages": self.log.messages_total,
            "incomplete_concatenated": self.log.incomplete_concatenated,
            "duplicates": self.log.duplicate_count,
            "records_kept": len(self.log.records),
            "records_dropped": self.log.records_dropped,
            "receipts": {
                "generated": receipts.generated,
                "delivered": receipts.delivered,
                "pending": receipts.pending + len(self._dlrs),
                "scheduled": len(self._dlrs),
                "queued": self.router.queued(),
                "in_flight": self.router.in_flight(),
                "retry_waiting": self.router.retry_waiting(),
                "attempts": receipts.attempts,
                "nacked": receipts.nacked,
                "timed_out": receipts.timed_out,
                "requeued_on_disconnect": receipts.requeued_on_disconnect,
            },
            "responses_waiting": len(self._responses),
            "sessions": {
                "connected": len(self.sessions),
                "bound": sum(self.bound_sessions.values()),
                "bound_by_system_id": dict(self.bound_sessions),
            },
            "binds": {"ok": counters.binds_ok, "failed": counters.binds_failed},
            "uptime_s": round(time.time() - self.started_at, 3) if self.started_at else 0.0,
        }

    def submissions(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self.log.list(destination, limit)

    def messages(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self.log.messages(destination, limit)

    def duplicates(self) -> list[dict[str, Any]]:
        return self.log.duplicates()

    def pending_receipts(self, system_id: str | None = None) -> int:
        """Receipts waiting for a bound session of ``system_id`` (all system_ids when None)."""
        return self.router.queued(system_id)
