"""Every piece of dispatcher state in Redis, with the operations on it (pipelined per chunk / per batch).

Keys (``settings.rkey``; ``<smsc>`` is the namespace of the SMSC account, ``SmscConfig.namespace``):

==========================  =========================================================================  ==========
key                         value                                                                      TTL
==========================  =========================================================================  ==========
``sub:<msg_id>``            submission claim: the :class:`MessageRecord` (state P, S or F)             W + G + 1 d
``pend:<smsc>:<dest>``      set of msg_ids whose claim is P, by destination (correlates receipts that  W + G + 1 d
                            arrive before, or instead of, the recorded submit_sm_resp)
``cmid:<smsc>:<id>``        the :class:`MessageRecord` under each part's SMSC message id               W + 1 h
``dlr:<msg_id>``            hash part id -> stat of the final receipts of a multi-part message         W + 1 h
``final:<msg_id>``          ``P`` + the serialized final DeliveryEvent once decided, ``D`` once        W + G + 1 d
                            produced
``due``                     sorted set msg_id -> deadline (ms): receipt window, or in-doubt grace      none
``tps:<carrier>``           token bucket of the carrier (:mod:`magpie_dispatcher.ratelimit`)          refill time
==========================  =========================================================================  ==========

(W = receipt window, G = in-doubt grace.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from magpie.v1 import dispatch_pb2
from magpie_common.config import Settings
from magpie_dispatcher.records import STATE_PENDING, MessageRecord

# Every hot operation is ONE script call for a whole chunk (or receipt batch): one command to pack, one reply to
# parse, one round trip, atomic. Per-key commands in a pipeline cost far more on the client (redis-py packs and parses
# each command in Python) than the work Redis does. Like the MULTI/EXEC and MGET they replace, the scripts touch many
# keys: a single Redis (or a cluster with hash tags making the keys share a slot), as before.

# Claim messages before their submit_sm: SET NX GET of each claim, returning the existing claim; a new claim also
# registers the msg_id under its destination (receipts that arrive before the submit_sm_resp is recorded).
# KEYS: sub1, pend1, sub2, pend2, ...; ARGV: ttl, record1, msg_id1, record2, msg_id2, ...
_CLAIM = """
local ttl = ARGV[1]
local result = {}
for i = 1, #KEYS, 2 do
  local j = i + 1
  local old = redis.call('SET', KEYS[i], ARGV[j], 'NX', 'GET', 'EX', ttl)
  if old then
    result[#result + 1] = old
  else
    redis.call('SADD', KEYS[j], ARGV[j + 1])
    redis.call('EXPIRE', KEYS[j], ttl)
    result[#result + 1] = false
  end
end
return result
"""

# A batch of writes applied atomically (what a MULTI/EXEC did, in one command). ARGV is a flat list of operations,
# each an opcode followed by its arguments; every operation takes its key from KEYS in order:
#   S value ttl        SET key value EX ttl          R member      SREM key member
#   D                  DEL key
#   Z score member     ZADD key score member         N score member  ZADD key NX score member
#   M member           ZREM key member
_WRITE = """
local k = 1
local a = 1
local n = #ARGV
while a <= n do
  local op = ARGV[a]
  local key = KEYS[k]
  k = k + 1
  if op == 'S' then
    redis.call('SET', key, ARGV[a + 1], 'EX', ARGV[a + 2])
    a = a + 3
  elseif op == 'R' then
    redis.call('SREM', key, ARGV[a + 1])
    a = a + 2
  elseif op == 'D' then
    redis.call('DEL', key)
    a = a + 1
  elseif op == 'Z' then
    redis.call('ZADD', key, ARGV[a + 1], ARGV[a + 2])
    a = a + 3
  elseif op == 'N' then
    redis.call('ZADD', key, 'NX', ARGV[a + 1], ARGV[a + 2])
    a = a + 3
  elseif op == 'M' then
    redis.call('ZREM', key, ARGV[a + 1])
    a = a + 2
  else
    return redis.error_reply('unknown write op ' .. tostring(op))
  end
end
return #KEYS
"""

# Final events produced: mark each decision done (SET FINAL_DONE XX KEEPTTL) and, when asked, drop the messages from the
# deadline set. KEYS: due, final1, final2, ...; ARGV: forget ("1" or "0"), msg_id1, msg_id2, ...
_DONE = """
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], 'D', 'XX', 'KEEPTTL')
end
if ARGV[1] == '1' then
  for i = 2, #ARGV, 1000 do
    redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
end
return #KEYS - 1
"""

# The first final decision of each message wins: SET NX GET per key, the previous value (or false) per key.
# KEYS: final1, final2, ...; ARGV: ttl, value1, value2, ...
_DECIDE = """
local ttl = ARGV[1]
local result = {}
for i = 1, #KEYS do
  result[i] = redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'GET', 'EX', ttl) or false
end
return result
"""

# Count the final receipt of one part (a duplicate receipt of the same part counts once); every part's stat when
# the message is complete, nil before.
_PART_DONE = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('HGETALL', KEYS[1])
end
return false
"""

# Take the due members of the deadline set for a lease: they stay in the set with a later score, so a sweeper that
# dies before finishing them leaves them to be taken again once the lease ends.
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, member)
end
return due
"""


class _Writes:
    """Operations for the ``_WRITE`` script: keys and a flat argument list, applied in order, atomically."""

    __slots__ = ("args", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[bytes | str | int] = []

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self.keys.append(key)
        self.args += ("S", value, ttl)

    def srem(self, key: str, member: str) -> None:
        self.keys.append(key)
        self.args += ("R", member)

    def delete(self, key: str) -> None:
        self.keys.append(key)
        self.args.append("D")

    def zadd(self, key: str, score: int, member: str, *, nx: bool = False) -> None:
        self.keys.append(key)
        self.args += ("N" if nx else "Z", score, member)

    def zrem(self, key: str, member: str) -> None:
        self.keys.append(key)
        self.args += ("M", member)


FINAL_PENDING = b"P"
FINAL_DONE = b"D"


@dataclass(frozen=True, slots=True)
class FinalDecision:
    """The outcome of :meth:`DeliveryStore.decide_finals` for one message."""

    msg_id: str
    event: dispatch_pb2.DeliveryEvent | None  # to produce (the candidate, or the one decided earlier); None: done


class DeliveryStore:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        receipt_window_s: float,
        in_doubt_grace_s: float,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.receipt_window_ms = int(receipt_window_s * 1000)
        self.in_doubt_grace_ms = int(in_doubt_grace_s * 1000)
        self.claim_ttl = int(receipt_window_s + in_doubt_grace_s) + 86400
        self.cmid_ttl = int(receipt_window_s) + 3600
        self.due_key = settings.rkey("due")
        # settings.rkey(kind, *parts) with the constant head computed once (keys are built per message)
        self._sub, self._pend, self._cmid, self._dlr, self._final = (
            settings.rkey(kind, "") for kind in ("sub", "pend", "cmid", "dlr", "final")
        )
        self._claim = redis.register_script(_CLAIM)
        self._write = redis.register_script(_WRITE)
        self._decide = redis.register_script(_DECIDE)
        self._done = redis.register_script(_DONE)
        self._part_done = redis.register_script(_PART_DONE)
        self._take_due = redis.register_script(_TAKE_DUE)

    # ------------------------------------------------------------------ keys

    def sub_key(self, msg_id: str) -> str:
        return self._sub + msg_id

    def pend_key(self, smsc: str, destination: str) -> str:
        return f"{self._pend}{smsc}:{destination}"

    def cmid_key(self, smsc: str, carrier_id: str) -> str:
        return f"{self._cmid}{smsc}:{carrier_id}"

    def dlr_key(self, msg_id: str) -> str:
        return self._dlr + msg_id

    def final_key(self, msg_id: str) -> str:
        return self._final + msg_id

    # ------------------------------------------------------------------ submission claims

    async def claim(self, records: Sequence[MessageRecord]) -> list[MessageRecord | None]:
        """Claim each message (state P). None where the claim is new (submit it); the existing record otherwise."""
        if not records:
            return []
        keys: list[str] = []
        args: list[bytes | str | int] = [self.claim_ttl]
        for record in records:
            keys += (self.sub_key(record.msg_id), self.pend_key(record.smsc, record.destination))
            args += (record.to_bytes(), record.msg_id)
        results = await self._claim(keys=keys, args=args)
        return [MessageRecord.from_bytes(value) if value else None for value in results]

    async def record_outcomes(
        self,
        *,
        submitted: Sequence[MessageRecord] = (),
        failed: Sequence[MessageRecord] = (),
        in_doubt: Sequence[MessageRecord] = (),
        unsent: Sequence[MessageRecord] = (),
        now_ms: int,
    ) -> None:
        """One transaction for a chunk's answers: accepted messages get their SMSC ids, reverse maps and receipt
        deadline; refused ones their failure; in-doubt ones (written, unanswered) a grace deadline; unsent ones
        (never written) lose their claim so a retry submits them."""
        if not (submitted or failed or in_doubt or unsent):
            return
        writes = _Writes()
        due = self.due_key
        for record in submitted:
            data = record.to_bytes()
            writes.set(self.sub_key(record.msg_id), data, self.claim_ttl)
            for carrier_id in record.carrier_ids:
                writes.set(self.cmid_key(record.smsc, carrier_id), data, self.cmid_ttl)
            writes.srem(self.pend_key(record.smsc, record.destination), record.msg_id)
            writes.zadd(due, record.submitted_at_ms + self.receipt_window_ms, record.msg_id)
        for record in failed:
            writes.set(self.sub_key(record.msg_id), record.to_bytes(), self.claim_ttl)
            writes.srem(self.pend_key(record.smsc, record.destination), record.msg_id)
        for record in in_doubt:
            writes.zadd(due, now_ms + self.in_doubt_grace_ms, record.msg_id, nx=True)
        for record in unsent:
            writes.delete(self.sub_key(record.msg_id))
            writes.srem(self.pend_key(record.smsc, record.destination), record.msg_id)
        await self._write(keys=writes.keys, args=writes.args)

    async def schedule_in_doubt(self, msg_ids: Sequence[str], now_ms: int) -> None:
        """Found pending claims on redelivery: give them the grace deadline unless they already have one."""
        if msg_ids:
            await self.redis.zadd(self.due_key, dict.fromkeys(msg_ids, now_ms + self.in_doubt_grace_ms), nx=True)

    async def claims(self, msg_ids: Sequence[str]) -> list[MessageRecord | None]:
        if not msg_ids:
            return []
        values = await self.redis.mget([self.sub_key(m) for m in msg_ids])
        return [None if v is None else MessageRecord.from_bytes(v) for v in values]

    # ------------------------------------------------------------------ receipts

    async def records_by_carrier_id(self, keys: Sequence[tuple[str, str]]) -> list[MessageRecord | None]:
        """The record of each (smsc, carrier id), None when unknown."""
        if not keys:
            return []
        values = await self.redis.mget([self.cmid_key(smsc, cid) for smsc, cid in keys])
        return [None if v is None else MessageRecord.from_bytes(v) for v in values]

    async def pending_by_destination(self, keys: Sequence[tuple[str, str]]) -> list[list[MessageRecord]]:
        """For each (smsc, destination): the messages to it whose claim is still pending (state P)."""
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for smsc, destination in keys:
            pipe.smembers(self.pend_key(smsc, destination))
        members: list[set[bytes]] = await pipe.execute()
        wanted = sorted({m.decode() for group in members for m in group})
        by_id = dict(zip(wanted, await self.claims(wanted), strict=True))
        result: list[list[MessageRecord]] = []
        for group in members:
            records = [by_id.get(m.decode()) for m in sorted(group)]
            result.append([r for r in records if r is not None and r.state == STATE_PENDING])
        return result

    async def remember_carrier_ids(self, pairs: Sequence[tuple[MessageRecord, str]]) -> None:
        """Map carrier ids learnt from receipts (correlated by destination) to their record."""
        if pairs:
            pipe = self.redis.pipeline(transaction=False)
            for record, carrier_id in pairs:
                pipe.set(self.cmid_key(record.smsc, carrier_id), record.to_bytes(), ex=self.cmid_ttl, nx=True)
            await pipe.execute()

    async def parts_done(self, items: Sequence[tuple[MessageRecord, str, str]]) -> list[dict[str, str] | None]:
        """Count the final receipt (record, carrier id, stat) of one part each; for every item whose message now
        has all its parts: part id -> stat; None while parts are missing. Single-part messages skip Redis."""
        result: list[dict[str, str] | None] = [None] * len(items)
        pipe = self.redis.pipeline(transaction=False)
        positions: list[int] = []
        for position, (record, carrier_id, stat) in enumerate(items):
            if record.parts <= 1:
                result[position] = {carrier_id: stat}
                continue
            positions.append(position)
            await self._part_done(
                keys=[self.dlr_key(record.msg_id)],
                args=[carrier_id, stat, record.parts, self.cmid_ttl],
                client=pipe,
            )
        if positions:
            for position, value in zip(positions, await pipe.execute(), strict=True):
                if value:
                    flat = [v.decode() for v in value]
                    result[position] = dict(zip(flat[0::2], flat[1::2], strict=True))
        return result

    # ------------------------------------------------------------------ final states

    async def decide_finals(self, candidates: Sequence[dispatch_pb2.DeliveryEvent]) -> list[FinalDecision]:
        """The first final decision of a message wins (SET NX). For each candidate: the event to produce (the
        candidate if it is the first decision, the recorded one if an earlier decision was not confirmed produced),
        or None if the final event was already produced."""
        if not candidates:
            return []
        keys = [self.final_key(event.msg_id) for event in candidates]
        args: list[bytes | int] = [self.claim_ttl]
        args += (FINAL_PENDING + event.SerializeToString() for event in candidates)
        previous = await self._decide(keys=keys, args=args)
        decisions: list[FinalDecision] = []
        for event, old in zip(candidates, previous, strict=True):
            if not old:
                decisions.append(FinalDecision(event.msg_id, event))
            elif old.startswith(FINAL_PENDING):
                recorded = dispatch_pb2.DeliveryEvent()
                recorded.ParseFromString(old[len(FINAL_PENDING) :])
                decisions.append(FinalDecision(event.msg_id, recorded))
            else:
                decisions.append(FinalDecision(event.msg_id, None))
        return decisions

    async def finals_produced(
        self, msg_ids: Sequence[str], cleanup: Sequence[MessageRecord] = (), *, forget_deadline: bool = True
    ) -> None:
        """The final events of ``msg_ids`` are acknowledged by Kafka: mark them done and drop what no longer
        matters (deadline, part counts, pending-by-destination entries of ``cleanup`` records)."""
        if not msg_ids:
            return
        await self._done(
            keys=[self.due_key, *(self._final + msg_id for msg_id in msg_ids)],
            args=["1" if forget_deadline else "0", *msg_ids],
        )
        writes = _Writes()
        for record in cleanup:
            if record.parts > 1:
                writes.delete(self.dlr_key(record.msg_id))
            if record.state == STATE_PENDING:  # S and F records left the pending registry when recorded
                writes.srem(self.pend_key(record.smsc, record.destination), record.msg_id)
        if writes.keys:
            await self._write(keys=writes.keys, args=writes.args)

    async def final_states(self, msg_ids: Sequence[str]) -> list[bytes | None]:
        if not msg_ids:
            return []
        values: list[bytes | None] = await self.redis.mget([self.final_key(m) for m in msg_ids])
        return values

    # ------------------------------------------------------------------ deadlines

    async def take_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        members = await self._take_due(keys=[self.due_key], args=[now_ms, lease_ms, limit])
        return [m.decode() for m in members]

    async def reschedule(self, deadlines: dict[str, int]) -> None:
        if deadlines:
            await self.redis.zadd(self.due_key, deadlines, xx=True)

    async def forget_deadlines(self, msg_ids: Sequence[str]) -> None:
        if msg_ids:
            await self.redis.zrem(self.due_key, *msg_ids)
