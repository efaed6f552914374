"""The vms role's state in Redis (keys through ``settings.rkey``; D = the message's deadline).

=========================  ===================================================================  ==================
key                        value                                                                TTL
=========================  ===================================================================  ==================
``vms:rec:<msg_id>``       the message record (JSON): tenant, task, batch, index, mobile,       until D + 7 days
                           template, state P (to submit) / S (accepted: carrier msg id, carrier,
                           submit time), deadline, VMS fallback of a smart send task (+ aim_url)
``vms:final:<msg_id>``     the serialized final DeliveryEvent: the first decision wins          until D + 7 days
``vms:due``                sorted set msg_id -> deadline (ms): expiry + report grace           none
``vms:tplreg:<tpl_id>``    the template revision registered at the channel                      1 day
=========================  ===================================================================  ==================

The record is written (state P) *before* the submit, so a report is always matched, even one polled before the
submit's answer is recorded: reports name the message by ``client_msg_id`` = Magpie's msg_id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import redis.asyncio as aioredis

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_common.config import Settings

STATE_PENDING = "P"
STATE_SUBMITTED = "S"
RETENTION_S = 7 * 86400

_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, member)
end
return due
"""


@dataclass(frozen=True, slots=True)
class VmsRecord:
    msg_id: str
    tenant_id: str
    task_id: str
    batch_no: int
    index: int
    mobile: str
    tpl_id: str
    deadline_ms: int
    state: str = STATE_PENDING
    carrier_msg_id: str = ""
    carrier: str = ""
    submitted_at_ms: int = 0
    aim_fallback: bool = False  # VMS fallback of a smart send task: its events go to DELIVERY (vms_fallback)
    aim_url: str = ""

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "m": self.msg_id,
                "t": self.tenant_id,
                "k": self.task_id,
                "b": self.batch_no,
                "i": self.index,
                "mo": self.mobile,
                "tp": self.tpl_id,
                "dl": self.deadline_ms,
                "st": self.state,
                "cm": self.carrier_msg_id,
                "c": self.carrier,
                "at": self.submitted_at_ms,
                "af": self.aim_fallback,
                "au": self.aim_url,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> VmsRecord:
        d: dict[str, Any] = orjson.loads(data)
        return cls(
            d["m"],
            d["t"],
            d["k"],
            d["b"],
            d["i"],
            d["mo"],
            d["tp"],
            d["dl"],
            d["st"],
            d["cm"],
            d["c"],
            d["at"],
            aim_fallback=bool(d.get("af", False)),  # records written before the VMS fallback existed lack it
            aim_url=str(d.get("au", "")),
        )

    def submitted(self, carrier_msg_id: str, carrier: str, at_ms: int) -> VmsRecord:
        return replace(
            self, state=STATE_SUBMITTED, carrier_msg_id=carrier_msg_id, carrier=carrier, submitted_at_ms=at_ms
        )

    def event(
        self, event_id: str, status: int, result_code: str, *, done_at_ms: int = 0, submitted_at_ms: int = 0
    ) -> dispatch_pb2.DeliveryEvent:
        return dispatch_pb2.DeliveryEvent(
            event_id=event_id,
            tenant_id=self.tenant_id,
            task_id=self.task_id,
            batch_no=self.batch_no,
            index=self.index,
            mobile=self.mobile,
            msg_id=self.msg_id,
            carrier_msg_id=self.carrier_msg_id,
            status=status,  # type: ignore[arg-type]
            result_code=result_code,
            segments=1,
            submitted_at_ms=submitted_at_ms or self.submitted_at_ms,
            done_at_ms=done_at_ms,
            carrier=self.carrier,
            route=common_pb2.ROUTE_VMS,
            tpl_id=self.tpl_id,
            aim_url=self.aim_url,
        )


class VmsStore:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.due_key = settings.rkey("vms", "due")
        self._take_due = redis.register_script(_TAKE_DUE)

    def rec_key(self, msg_id: str) -> str:
        return self.settings.rkey("vms", "rec", msg_id)

    def final_key(self, msg_id: str) -> str:
        return self.settings.rkey("vms", "final", msg_id)

    def tpl_key(self, tpl_id: str) -> str:
        return self.settings.rkey("vms", "tplreg", tpl_id)

    @staticmethod
    def _ttl(record: VmsRecord, now_ms: int) -> int:
        return max(60, (record.deadline_ms - now_ms) // 1000) + RETENTION_S

    async def records(self, msg_ids: Sequence[str]) -> list[VmsRecord | None]:
        if not msg_ids:
            return []
        values = await self.redis.mget([self.rec_key(m) for m in msg_ids])
        return [None if v is None else VmsRecord.from_bytes(v) for v in values]

    async def finals(self, msg_ids: Sequence[str]) -> list[dispatch_pb2.DeliveryEvent | None]:
        if not msg_ids:
            return []
        values = await self.redis.mget([self.final_key(m) for m in msg_ids])
        result: list[dispatch_pb2.DeliveryEvent | None] = []
        for value in values:
            if value is None:
                result.append(None)
            else:
                event = dispatch_pb2.DeliveryEvent()
                event.ParseFromString(value)
                result.append(event)
        return result

    async def put_records(self, records: Sequence[VmsRecord], now_ms: int, *, schedule: bool) -> None:
        """Write records (and, with ``schedule``, their deadline) in one transaction."""
        if not records:
            return
        pipe = self.redis.pipeline(transaction=True)
        for record in records:
            pipe.set(self.rec_key(record.msg_id), record.to_bytes(), ex=self._ttl(record, now_ms))
        if schedule:
            pipe.zadd(self.due_key, {r.msg_id: r.deadline_ms for r in records}, nx=True)
        await pipe.execute()

    async def decide(
        self, candidates: Sequence[dispatch_pb2.DeliveryEvent], now_ms: int, ttl_s: int
    ) -> list[dispatch_pb2.DeliveryEvent]:
        """Record each candidate as its message's final state unless one is recorded; returns the final events to
        produce: the candidate where it won, the recorded event otherwise (same id and content: idempotent)."""
        if not candidates:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for event in candidates:
            pipe.set(self.final_key(event.msg_id), event.SerializeToString(), ex=ttl_s, nx=True, get=True)
        decided = []
        for event, old in zip(candidates, await pipe.execute(), strict=True):
            if old is None:
                decided.append(event)
            else:
                recorded = dispatch_pb2.DeliveryEvent()
                recorded.ParseFromString(old)
                decided.append(recorded)
        return decided

    async def forget_deadlines(self, msg_ids: Sequence[str]) -> None:
        if msg_ids:
            await self.redis.zrem(self.due_key, *msg_ids)

    async def take_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        members = await self._take_due(keys=[self.due_key], args=[now_ms, lease_ms, limit])
        return [m.decode() for m in members]

    async def registered_revision(self, tpl_id: str) -> int:
        value = await self.redis.get(self.tpl_key(tpl_id))
        return int(value) if value is not None else 0

    async def mark_registered(self, tpl_id: str, revision: int) -> None:
        await self.redis.set(self.tpl_key(tpl_id), revision, ex=86400)
