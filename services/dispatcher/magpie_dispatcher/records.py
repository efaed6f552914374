"""The compact per-message record kept in Redis, and the DeliveryEvents built from it.

One JSON document (short keys, orjson) describes a message: who it belongs to, where it went and, once the SMSC
answered, the SMSC's message id of every part. It is stored as the submission claim (``sub:<msg_id>``) and, after
submit_sm_resp, under every part's SMSC message id (``cmid:<smsc>:<id>``), so a receipt finds everything it needs
to build its event in one read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from magpie.v1 import dispatch_pb2

STATE_PENDING = "P"  # claimed, submit_sm written or about to be; no answer recorded (in doubt after a crash)
STATE_SUBMITTED = "S"  # every part accepted (ids known)
STATE_FAILED = "F"  # refused by the SMSC (code = the command status name) or not sendable


@dataclass(slots=True)
class MessageRecord:
    """Treated as immutable (``submitted`` / ``failed`` return new records). Not a frozen dataclass on purpose:
    frozen ``__init__`` sets each of the 19 fields through ``object.__setattr__``, which made creating records a
    visible share of the dispatcher's CPU (several are created per recipient)."""

    msg_id: str
    tenant_id: str
    task_id: str
    batch_no: int
    index: int
    mobile: str
    destination: str  # the destination_addr submitted (msisdn, or the mobile as given)
    parts: int
    segments: int
    route: int
    carrier: str
    tpl_id: str
    sms_sign: str
    aim_url: str
    smsc: str  # namespace of the SMSC account the parts went to
    state: str = STATE_PENDING
    carrier_ids: tuple[str, ...] = field(default_factory=tuple)
    submitted_at_ms: int = 0
    code: str = ""  # failure code for STATE_FAILED

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "m": self.msg_id,
            "t": self.tenant_id,
            "k": self.task_id,
            "b": self.batch_no,
            "i": self.index,
            "mo": self.mobile,
            "d": self.destination,
            "p": self.parts,
            "sg": self.segments,
            "r": self.route,
            "c": self.carrier,
            "tp": self.tpl_id,
            "sn": self.sms_sign,
            "au": self.aim_url,
            "ns": self.smsc,
            "st": self.state,
        }
        if self.carrier_ids:
            doc["ids"] = list(self.carrier_ids)
        if self.submitted_at_ms:
            doc["at"] = self.submitted_at_ms
        if self.code:
            doc["code"] = self.code
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageRecord:
        doc = orjson.loads(data)
        get = doc.get
        return cls(  # positional, in field order: this runs for every receipt
            doc["m"],
            doc["t"],
            doc["k"],
            doc["b"],
            doc["i"],
            doc["mo"],
            doc["d"],
            doc["p"],
            doc["sg"],
            doc["r"],
            doc["c"],
            doc["tp"],
            doc["sn"],
            doc["au"],
            doc["ns"],
            get("st", STATE_PENDING),
            tuple(get("ids", ())),
            get("at", 0),
            get("code", ""),
        )

    def _with(self, state: str, carrier_ids: tuple[str, ...], submitted_at_ms: int, code: str) -> MessageRecord:
        return MessageRecord(
            self.msg_id,
            self.tenant_id,
            self.task_id,
            self.batch_no,
            self.index,
            self.mobile,
            self.destination,
            self.parts,
            self.segments,
            self.route,
            self.carrier,
            self.tpl_id,
            self.sms_sign,
            self.aim_url,
            self.smsc,
            state,
            carrier_ids,
            submitted_at_ms,
            code,
        )

    def submitted(self, carrier_ids: list[str], at_ms: int) -> MessageRecord:
        return self._with(STATE_SUBMITTED, tuple(carrier_ids), at_ms, self.code)

    def failed(self, code: str, carrier_ids: list[str], at_ms: int) -> MessageRecord:
        return self._with(STATE_FAILED, tuple(carrier_ids), at_ms, code)

    def event(
        self,
        event_id: str,
        status: int,
        result_code: str,
        *,
        carrier_msg_id: str = "",
        done_at_ms: int = 0,
    ) -> dispatch_pb2.DeliveryEvent:
        return dispatch_pb2.DeliveryEvent(
            event_id=event_id,
            tenant_id=self.tenant_id,
            task_id=self.task_id,
            batch_no=self.batch_no,
            index=self.index,
            mobile=self.mobile,
            msg_id=self.msg_id,
            carrier_msg_id=carrier_msg_id or (self.carrier_ids[0] if self.carrier_ids else ""),
            status=status,  # type: ignore[arg-type]
            result_code=result_code,
            segments=self.segments,
            submitted_at_ms=self.submitted_at_ms,
            done_at_ms=done_at_ms,
            carrier=self.carrier,
            route=self.route,  # type: ignore[arg-type]
            tpl_id=self.tpl_id,
            sms_sign=self.sms_sign,
            aim_url=self.aim_url,
        )
