"""Learning from what handsets do: resolutions make a number capable, smart messages never resolved downgrade it.

**Resolutions** (topic LINK, :class:`Learner`): a ``LinkEvent`` RESOLVED of a recipient's own link (not a group link
of a resolution task, and with the recipient's msisdn) proves that the handset behind the number renders smart
messages. The registry records it as an *observed* profile (``devices.DeviceProfile.observed``), which the
classifier treats as capable whatever the table says (see ``classifier``), so the number's next task sends it a
smart message. The profile's fields come from the event's handset (the edge reads brand, model, OS and
messaging-app version from the resolve call and its User-Agent):

- the handset names a brand: when the registry already has a record of the same vendor and model (or the handset
  names no model), the record is kept, its app version replaced by the handset's (the app that just resolved
  knows its version) and its empty fields filled in; its OS stays (WebView User-Agents of HarmonyOS handsets say
  "Android"); otherwise (another handset behind the number) the record is replaced by the handset's fields;
- the handset names no brand: an existing record is kept as it is and marked observed; without a record nothing is
  written (a profile without a vendor cannot pass a template's vendor filter, and an empty record would hide the
  vendor provider's answer for the number) — counted as ``no_brand``.

An import or ``PUT`` of the number afterwards replaces the observed record (operator data wins); its next
resolution marks it observed again. Each batch of events costs one MongoDB read of the existing records and one
registry upsert (MongoDB + Redis) of the records that change; a repeat resolution by the same handset, or a
replayed event, writes nothing.

**Downgrade** (topic DELIVERY, :class:`Downgrades`): every delivered smart message (``DeliveryEvent`` with route
SMART and status DELIVERED) counts towards the number's unresolved sends; a resolution resets the count. When a
number reaches ``MAGPIE_NR_DOWNGRADE_AFTER`` (N) unresolved sends it is downgraded: the classifier no longer
routes it SMART (reason ``NEVER_RESOLVED``) until it resolves a link (e.g. a fallback SMS's link, opened in a
capable messaging app), the downgrade expires (``MAGPIE_NR_DOWNGRADE_TTL_S``) or an operator clears it
(``DELETE /internal/downgrades/{mobile}``). Why deliveries and not the resolver's own SMART classifications: a
number classified SMART may never be sent (task cancelled, carrier failure); only a delivered message gave the
handset a chance to resolve. Failed and expired deliveries say nothing about the handset and are not counted.

Storage
- Redis hash ``rkey("nrsends", msisdn)``: one field per counted message (``m:<msg_id>``, so a redelivered
  DeliveryBatch never counts twice) and ``_r`` = the time of the number's last resolution; messages submitted
  before it are not counted (a receipt that arrives after the resolution of its message). Expires
  ``MAGPIE_NR_DOWNGRADE_WINDOW_S`` after the last counted message. The count, the resolution check and the
  decision to downgrade are one Lua script per message, pipelined per DeliveryBatch. If Redis loses its data,
  partial counts restart from zero (a downgrade comes later, never wrongly).
- MongoDB ``downgrades`` (``_id`` msisdn, ``sends``, ``at``, ``expires_at``; a TTL index removes expired ones) is
  the truth of the downgrades; Redis ``rkey("dg", msisdn)`` is the copy the classifier reads in its one MGET (with
  the same expiry), refilled from MongoDB with the rest of the registry (``hotcache``).
- Race with a concurrent resolution: the script sets the Redis flag first; after the MongoDB write the flag is
  checked again and the document removed if a resolution cleared the flag meanwhile (a resolution clears Redis
  first, then MongoDB), so a resolution always wins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from pymongo.asynchronous.database import AsyncDatabase

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2
from magpie_common.config import Settings
from magpie_common.kafka import Decoded
from magpie_number_resolver.capability import CapabilityEngine
from magpie_number_resolver.capability.normalize import fold
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.devices import ALL_FIELDS, TEXT_FIELDS, VERSION_MAX, DeviceProfile
from magpie_number_resolver.metrics import DOWNGRADE_RESETS, DOWNGRADES, LEARNED, SMART_SENDS
from magpie_number_resolver.mongo_bulk import upsert_documents
from magpie_number_resolver.numbers import parse
from magpie_number_resolver.registry import DeviceRegistry

log = logging.getLogger(__name__)

IN_SLICE = 100
RESOLVED_FIELD = "_r"
DOWNGRADED = "1"

# KEYS: sends hash, downgrade flag. ARGV: message field, submitted_at_ms, threshold, window_s, downgrade ttl_s.
# Returns the number's unresolved sends after this message (0 = not counted: a message sent before the last
# resolution, or a duplicate), negated when this message downgrades the number; "D" when already downgraded.
_COUNT = """
if redis.call('exists', KEYS[2]) == 1 then return 'D' end
local resolved = tonumber(redis.call('hget', KEYS[1], '_r') or '0')
if tonumber(ARGV[2]) <= resolved then return 0 end
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('expire', KEYS[1], ARGV[4])
local n = redis.call('hlen', KEYS[1])
if resolved > 0 then n = n - 1 end
if n >= tonumber(ARGV[3]) then
  if tonumber(ARGV[5]) > 0 then
    redis.call('set', KEYS[2], ARGV[3], 'EX', ARGV[5])
  else
    redis.call('set', KEYS[2], ARGV[3])
  end
  redis.call('del', KEYS[1])
  return -n
end
return n
"""


def _clean_text(value: str, limit: int) -> str:
    text = "".join(ch for ch in value if ch >= " " and ch != "\x7f").strip()
    return text[:limit]


def handset_fields(handset: link_pb2.Handset) -> dict[str, str]:
    """The handset of a LinkEvent as device fields (cleaned of control characters, cut to the registry's limits)."""
    return {
        "brand": _clean_text(handset.brand, TEXT_FIELDS["brand"]),
        "model": _clean_text(handset.model, TEXT_FIELDS["model"]),
        "os_name": _clean_text(handset.os_name, TEXT_FIELDS["os_name"]),
        "os_version": _clean_text(handset.os_version, VERSION_MAX),
        "app_version": _clean_text(handset.app_version, VERSION_MAX),
    }


def learned_profile(
    existing: DeviceProfile | None, handset: dict[str, str], engine: CapabilityEngine
) -> DeviceProfile | None:
    """The observed profile to record (see the module docstring), or None when nothing can be recorded."""
    brand = handset["brand"]
    if not brand:
        if existing is None:
            return None
        return DeviceProfile(**{**existing.as_dict(), "observed": True})
    table = engine.table
    same_handset = False
    if existing is not None:
        vendor = table.vendor_code(brand)
        same_vendor = (vendor is not None and vendor == table.vendor_code(existing.brand)) or fold(brand) == fold(
            existing.brand
        )
        same_handset = same_vendor and (not handset["model"] or fold(handset["model"]) == fold(existing.model))
    if existing is not None and same_handset:
        fields = existing.as_dict()
        for name in ("model", "os_name", "os_version"):
            if not fields[name]:
                fields[name] = handset[name]
        if handset["app_version"]:
            fields["app_version"] = handset["app_version"]
        fields["observed"] = True
        return DeviceProfile(**fields)
    return DeviceProfile(
        brand=brand,
        model=handset["model"],
        os_name=handset["os_name"],
        os_version=handset["os_version"],
        app_version=handset["app_version"],
        observed=True,
    )


class Downgrades:
    """Unresolved smart sends per number and the downgrades they lead to (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase,
        redis: aioredis.Redis,
        segments: SegmentTable,
        *,
        after: int,
        window_s: int,
        ttl_s: int,
    ) -> None:
        if after < 0 or window_s <= 0 or ttl_s < 0:
            raise ValueError("downgrade settings: after >= 0, window_s > 0, ttl_s >= 0")
        self.collection = db["downgrades"]
        self.redis = redis
        self.segments = segments
        self.after = after
        self.window_s = window_s
        self.ttl_s = ttl_s
        self.flag_prefix = settings.rkey("dg", "")
        self.sends_prefix = settings.rkey("nrsends", "")
        self._count = redis.register_script(_COUNT)

    @property
    def enabled(self) -> bool:
        return self.after > 0

    def flag_key(self, msisdn: str) -> str:
        return self.flag_prefix + msisdn

    def sends_key(self, msisdn: str) -> str:
        return self.sends_prefix + msisdn

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")

    # ------------------------------------------------------------------------------------------ counting

    async def handle_deliveries(self, items: Sequence[Decoded[dispatch_pb2.DeliveryBatch]]) -> None:
        """ConsumerLoop handler of DELIVERY: count delivered smart messages, downgrade at the threshold."""
        if not self.enabled:
            return
        counted: list[tuple[str, str, int]] = []
        for item in items:
            for event in item.message.events:
                if event.route != common_pb2.ROUTE_SMART or event.status != dispatch_pb2.DELIVERY_STATUS_DELIVERED:
                    continue
                parsed = parse(event.mobile, self.segments)
                if parsed is None:
                    continue
                message = event.msg_id or f"{event.task_id}:{event.index}"
                sent_at = event.submitted_at_ms or event.done_at_ms or item.message.meta.occurred_at_ms
                counted.append((parsed[0], message, sent_at))
        if counted:
            await self.count_sends(counted)

    async def count_sends(self, sends: Sequence[tuple[str, str, int]]) -> list[str]:
        """Count (msisdn, message id, submitted at ms) sends; returns the numbers this call downgraded."""
        pipe = self.redis.pipeline(transaction=False)
        for msisdn, message, sent_at in sends:
            await self._count(
                keys=[self.sends_key(msisdn), self.flag_key(msisdn)],
                args=["m:" + message, max(1, sent_at), self.after, self.window_s, self.ttl_s],
                client=pipe,
            )
        results = await pipe.execute()
        downgraded: dict[str, int] = {}
        already: set[str] = set()
        uncounted = 0
        for (msisdn, _, _), result in zip(sends, results, strict=True):
            if result == b"D":
                uncounted += 1
                already.add(msisdn)
                continue
            value = int(result)
            if value == 0:
                uncounted += 1
            elif value < 0:
                downgraded[msisdn] = -value
        SMART_SENDS.labels("counted").inc(len(sends) - uncounted)
        if uncounted:
            SMART_SENDS.labels("not_counted").inc(uncounted)
        if downgraded:
            await self._record(downgraded)
        if already:
            await self._repair(sorted(already))
        return list(downgraded)

    async def _repair(self, numbers: list[str]) -> None:
        """Downgraded in Redis but not in MongoDB: the process stopped between the two writes and the DeliveryBatch
        was redelivered. Write the missing documents (with the flag's remaining lifetime); existing ones stay."""
        present: set[str] = set()
        for start in range(0, len(numbers), IN_SLICE):
            async for doc in self.collection.find({"_id": {"$in": numbers[start : start + IN_SLICE]}}, {"_id": 1}):
                present.add(doc["_id"])
        missing = [msisdn for msisdn in numbers if msisdn not in present]
        if not missing:
            return
        now = datetime.now(UTC)
        docs = []
        for msisdn in missing:
            remaining = await self.redis.ttl(self.flag_key(msisdn))
            if remaining == -2:  # lifted meanwhile
                continue
            expires = now + timedelta(seconds=remaining) if remaining > 0 else None
            docs.append({"_id": msisdn, "sends": self.after, "at": now, "expires_at": expires})
        if docs:
            await upsert_documents(self.collection, docs)
            log.warning("downgrades repaired in MongoDB", extra={"count": len(docs)})

    async def _record(self, downgraded: dict[str, int]) -> None:
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl_s) if self.ttl_s else None
        await upsert_documents(
            self.collection,
            [{"_id": msisdn, "sends": sends, "at": now, "expires_at": expires} for msisdn, sends in downgraded.items()],
        )
        numbers = list(downgraded)
        flags = await self.redis.mget([self.flag_key(m) for m in numbers])
        cleared = [msisdn for msisdn, flag in zip(numbers, flags, strict=True) if flag is None]
        if cleared:  # resolved while we were writing: the resolution wins
            await self.collection.delete_many({"_id": {"$in": cleared}})
        DOWNGRADES.inc(len(numbers) - len(cleared))
        log.info("numbers downgraded", extra={"count": len(numbers) - len(cleared), "after": self.after})

    # ------------------------------------------------------------------------------------------ resets

    async def reset(self, resolved: dict[str, int]) -> int:
        """Numbers that resolved a link (msisdn -> resolution time ms): counts restart, downgrades are lifted."""
        if not resolved:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for msisdn, at_ms in resolved.items():
            key = self.sends_key(msisdn)
            pipe.delete(key)
            pipe.hset(key, RESOLVED_FIELD, max(1, at_ms))
            pipe.expire(key, self.window_s)
            pipe.delete(self.flag_key(msisdn))
        results = await pipe.execute()
        lifted = sum(1 for position in range(3, len(results), 4) if results[position])
        numbers = list(resolved)
        for start in range(0, len(numbers), IN_SLICE):
            await self.collection.delete_many({"_id": {"$in": numbers[start : start + IN_SLICE]}})
        if lifted:
            DOWNGRADE_RESETS.inc(lifted)
        return lifted

    # ------------------------------------------------------------------------------------------ operations

    async def get(self, msisdn: str) -> dict[str, Any] | None:
        """The number's live downgrade, or None."""
        doc = await self.collection.find_one({"_id": msisdn})
        if doc is None:
            return None
        expires = doc.get("expires_at")
        if expires is not None and _aware(expires) <= datetime.now(UTC):
            return None  # expired; the TTL index removes the document soon
        return {
            "msisdn": msisdn,
            "sends": int(doc.get("sends", 0)),
            "downgraded_at": _iso(doc.get("at")),
            "expires_at": _iso(expires),
        }

    async def unresolved_sends(self, msisdn: str) -> int:
        fields = await self.redis.hkeys(self.sends_key(msisdn))
        return sum(1 for name in fields if name != RESOLVED_FIELD.encode())

    async def clear(self, msisdn: str) -> bool:
        """Lift a downgrade (operator action); the number's count restarts from zero."""
        removed_flag = await self.redis.delete(self.flag_key(msisdn))
        await self.redis.delete(self.sends_key(msisdn))
        result = await self.collection.delete_one({"_id": msisdn})
        return bool(result.deleted_count or removed_flag)

    async def reload_redis(self) -> int:
        """Copy every live downgrade from MongoDB into Redis (after Redis lost its data)."""
        now = datetime.now(UTC)
        count = 0
        pipe = self.redis.pipeline(transaction=False)
        async for doc in self.collection.find({}):
            expires = doc.get("expires_at")
            if expires is not None:
                remaining = int((_aware(expires) - now).total_seconds())
                if remaining <= 0:
                    continue
                pipe.set(self.flag_key(doc["_id"]), DOWNGRADED, ex=remaining)
            else:
                pipe.set(self.flag_key(doc["_id"]), DOWNGRADED)
            count += 1
            if count % 5000 == 0:
                await pipe.execute()
        await pipe.execute()
        return count


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat() if value is not None else None


class Learner:
    """ConsumerLoop handler of LINK: resolutions -> observed profiles in the registry, downgrade resets."""

    def __init__(
        self, registry: DeviceRegistry, downgrades: Downgrades, engine: CapabilityEngine, segments: SegmentTable
    ) -> None:
        self.registry = registry
        self.downgrades = downgrades
        self.engine = engine
        self.segments = segments

    def _msisdn(self, event: link_pb2.LinkEvent) -> str | None:
        for candidate in (event.msisdn, event.mobile):
            if candidate:
                parsed = parse(candidate, self.segments)
                if parsed is not None:
                    return parsed[0]
        return None

    async def handle(self, items: Sequence[Decoded[link_pb2.LinkEvent]]) -> None:
        latest: dict[str, link_pb2.LinkEvent] = {}
        skipped = 0
        for item in items:
            event = item.message
            if event.type != link_pb2.LINK_EVENT_TYPE_RESOLVED:
                continue
            msisdn = None if event.group else self._msisdn(event)
            if msisdn is None:
                skipped += 1
                continue
            known = latest.get(msisdn)
            if known is None or event.at_ms >= known.at_ms:
                latest[msisdn] = event
        if skipped:
            LEARNED.labels("skipped").inc(skipped)
        if latest:
            await self.learn(latest)

    async def learn(self, events: dict[str, link_pb2.LinkEvent]) -> int:
        """Record the handsets of resolved links (msisdn -> its latest RESOLVED event); returns records written."""
        existing = await self._existing(list(events))
        rows: list[tuple[str, DeviceProfile]] = []
        no_brand = 0
        unchanged = 0
        for msisdn, event in events.items():
            known = existing.get(msisdn)
            profile = learned_profile(known, handset_fields(event.handset), self.engine)
            if profile is None:
                no_brand += 1
            elif profile == known:
                unchanged += 1  # a repeat resolution by the same handset: nothing new to write
            else:
                rows.append((msisdn, profile))
        if rows:
            await self.registry.upsert_many(rows)
        await self.downgrades.reset({msisdn: event.at_ms for msisdn, event in events.items()})
        LEARNED.labels("observed").inc(len(rows))
        if unchanged:
            LEARNED.labels("unchanged").inc(unchanged)
        if no_brand:
            LEARNED.labels("no_brand").inc(no_brand)
        return len(rows)

    async def _existing(self, msisdns: list[str]) -> dict[str, DeviceProfile]:
        found: dict[str, DeviceProfile] = {}
        projection = {name: 1 for name in (*ALL_FIELDS, "observed")}
        for start in range(0, len(msisdns), IN_SLICE):
            async for doc in self.registry.collection.find(
                {"_id": {"$in": msisdns[start : start + IN_SLICE]}}, projection
            ):
                fields = {name: doc.get(name) for name in ALL_FIELDS}
                fields.update({name: fields[name] or "" for name in ("brand", "model", "os_name", "os_version")})
                fields["app_version"] = fields["app_version"] or ""
                found[doc["_id"]] = DeviceProfile(**fields, observed=bool(doc.get("observed", False)))
        return found
