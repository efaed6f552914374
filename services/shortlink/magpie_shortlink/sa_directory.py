"""The edge's directory of service numbers (SA), fed by the gateway's snapshots on SA_PUBLISHED (compacted).

Storage:

- MongoDB ``sa_profiles`` (durable): one document per service number, the latest snapshot as the edge needs it:
  ``version``, ``tenant_id``, ``shown`` (effective, not frozen, approved at least once), the ``card`` (what the
  messaging app renders: name, logo, intro, menus, homepage ...), the ``routes`` (port bindings) and their
  signatures (``signs``, indexed; ``all_signs``: every signature the service number was ever bound with).
  A snapshot replaces the document only if its version is not lower than the stored one (stale snapshots are
  ignored, an equal one is applied again: redelivery is harmless).
- MongoDB ``sa_media``: the pieces of the images (``<sha256>:<seq>``, immutable).
- Redis (hot copy, read first): per signature a hash ``sa:sign:<signature>`` with one field per service number
  bound with it (``"<version>|<json>"``: the card and that signature's routes; an empty json is a tombstone for a
  service number no longer bound with it) and ``_complete`` once it was loaded from MongoDB; per service number a
  hash ``sa:pub:<pub_id>`` (field ``p``, same form), read by the click endpoint. Every write is a Lua script that
  keeps the higher version, so a reader re-warming Redis from MongoDB can never overwrite a newer snapshot with
  an older one. A hash without ``_complete`` (never loaded, or recreated by a snapshot after it expired) is read
  from MongoDB and completed; loaded hashes expire after ``CACHE_TTL_S`` and are loaded again when asked for.
  Without Redis the directory answers from MongoDB.

Signatures are compared without 【】/[] and case-insensitively (``sign_key``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from bson import Binary
from prometheus_client import Counter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from redis.exceptions import RedisError

from magpie.v1 import sa_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import Decoded

log = logging.getLogger(__name__)

SA_SNAPSHOTS = Counter("magpie_shortlink_sa_snapshots_total", "Service-number snapshots consumed", ["result"])
SA_LOOKUPS = Counter("magpie_shortlink_sa_lookups_total", "Service-number lookups by where they were found", ["source"])

EFFECTIVE = 2
CACHE_TTL_S = 86400
COMPLETE = "_complete"
PUB_FIELD = "p"

# KEYS[1] the hash; ARGV[1] expiry in ms (0: keep), ARGV[2] "1" to mark the hash complete, then triples
# (field, version, value): a field is written only when its stored version is not higher.
_GUARDED_SET = """
local written = 0
for i = 3, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local stored = -1
  if current then
    local sep = string.find(current, '|', 1, true)
    if sep then stored = tonumber(string.sub(current, 1, sep - 1)) or -1 end
  end
  if tonumber(ARGV[i + 1]) >= stored then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[i + 2])
    written = written + 1
  end
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], '_complete', '1') end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return written
"""


def sign_key(sign: str) -> str:
    """A signature as compared: without surrounding 【】 / [] and white space, case-folded."""
    return sign.strip().strip("【】[]").strip().casefold()


# --- snapshot -> documents ------------------------------------------------------------------------------------------
def _image(image: sa_pb2.SaImage) -> dict[str, Any] | None:
    if not image.sha256:
        return None
    return {
        "sha256": image.sha256,
        "mime": image.mime,
        "size": image.size,
        "width": image.width,
        "height": image.height,
    }


def _menu_item(item: sa_pb2.SaMenuItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "action_type": item.action_type,
        "content": item.content or None,
        "ext": dict(sorted(item.ext.items())),
        "children": [_menu_item(child) for child in item.children],
    }


def card_of(snapshot: sa_pb2.SaPublished) -> dict[str, Any]:
    """What the messaging app renders (images by sha256; the edge turns them into URLs when answering)."""
    homepage: dict[str, Any] | None = None
    if snapshot.HasField("homepage"):
        page = snapshot.homepage
        homepage = {
            "portal_id": page.portal_id,
            "background": _image(page.background),
            "summary": page.summary,
            "hotlines": [{"tel": h.tel, "usage": h.usage} for h in page.hotlines],
            "quick_apps": [
                {
                    "name": app.name,
                    "logo": _image(app.logo),
                    "description": app.description,
                    "deeplink": app.deeplink,
                    "depend_engine_version": app.depend_engine_version,
                }
                for app in page.quick_apps
            ],
        }
    return {
        "pub_id": snapshot.pub_id,
        "name": snapshot.name,
        "remark": snapshot.remark,
        "intro": snapshot.intro,
        "industry": snapshot.industry,
        "company_name": snapshot.company_name,
        "logo": _image(snapshot.logo),
        "menu_id": snapshot.menu_id,
        "menus": [_menu_item(item) for item in snapshot.menus],
        "homepage": homepage,
        "online_at_ms": snapshot.online_at_ms,
    }


def routes_of(snapshot: sa_pb2.SaPublished) -> list[dict[str, Any]]:
    return [
        {
            "binding_id": b.binding_id,
            "port": b.port,
            "port_type": b.port_type,
            "signs": list(b.signs),
            "sign_keys": sorted({sign_key(s) for s in b.signs}),
            "regions": list(b.regions),
            "bound_at_ms": b.bound_at_ms,
        }
        for b in snapshot.bindings
    ]


def is_shown(snapshot: sa_pb2.SaPublished) -> bool:
    return snapshot.state == EFFECTIVE and not snapshot.frozen and bool(snapshot.name)


@dataclass(frozen=True)
class Entry:
    """One service number as a lookup sees it (``routes``: all of them, or those of the signature asked for)."""

    pub_id: str
    version: int
    tenant_id: str
    shown: bool
    card: dict[str, Any]
    routes: list[dict[str, Any]]

    def encode(self, routes: list[dict[str, Any]] | None = None) -> bytes:
        return orjson.dumps(
            {
                "t": self.tenant_id,
                "shown": self.shown,
                "card": self.card,
                "routes": self.routes if routes is None else routes,
            }
        )

    @classmethod
    def decode(cls, pub_id: str, raw: bytes | str) -> Entry | None:
        """From a Redis field ``"<version>|<json>"``; None for a tombstone."""
        text = raw.encode() if isinstance(raw, str) else raw
        version, _, body = text.partition(b"|")
        if not body:
            return None
        data = orjson.loads(body)
        return cls(pub_id, int(version), data["t"], bool(data["shown"]), data["card"], data["routes"])

    @classmethod
    def of_document(cls, doc: dict[str, Any], sign: str | None = None) -> Entry:
        routes = list(doc.get("routes") or [])
        if sign is not None:
            routes = [r for r in routes if sign in r["sign_keys"]]
        return cls(doc["_id"], int(doc["version"]), doc["tenant_id"], bool(doc["shown"]), doc["card"], routes)


class SaDirectory:
    def __init__(self, settings: Settings, db: AsyncDatabase, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.profiles = db["sa_profiles"]
        self.media = db["sa_media"]
        self.redis = redis
        self._guarded_set = redis.register_script(_GUARDED_SET)

    def sign_hash(self, sign: str) -> str:
        return self.settings.rkey("sa", "sign", sign)

    def pub_hash(self, pub_id: str) -> str:
        return self.settings.rkey("sa", "pub", pub_id)

    async def ensure_indexes(self) -> None:
        await self.profiles.create_index([("signs", ASCENDING)])
        await self.media.create_index([("sha256", ASCENDING), ("seq", ASCENDING)])

    async def _write(self, key: str, fields: Iterable[tuple[str, int, bytes]], *, complete: bool = False) -> None:
        args: list[Any] = [CACHE_TTL_S * 1000 if complete else 0, "1" if complete else "0"]
        for name, version, value in fields:
            args.extend((name, version, value))
        await self._guarded_set(keys=[key], args=args)

    # --- consuming SA_PUBLISHED ---------------------------------------------------------------------------------
    async def handle(self, batch: Sequence[Decoded[sa_pb2.SaPublicationRecord]]) -> None:
        for item in batch:
            record = item.message
            kind = record.WhichOneof("record")
            if kind == "chunk":
                await self.apply_chunk(record.chunk)
            elif kind == "pub":
                await self.apply_snapshot(record.pub)
            else:
                log.warning("empty SA publication record ignored", extra={"offset": item.record.offset})

    async def apply_chunk(self, chunk: sa_pb2.SaMediaChunk) -> None:
        await self.media.replace_one(
            {"_id": f"{chunk.sha256}:{chunk.seq}"},
            {
                "sha256": chunk.sha256,
                "seq": chunk.seq,
                "count": chunk.count,
                "size": chunk.size,
                "mime": chunk.mime,
                "data": Binary(chunk.data),
            },
            upsert=True,
        )

    async def apply_snapshot(self, snapshot: sa_pb2.SaPublished) -> bool:
        """Store the snapshot unless a newer one is stored; False when it was stale."""
        if not snapshot.pub_id:
            log.warning("SA snapshot without pub_id ignored")
            return False
        routes = routes_of(snapshot)
        signs = sorted({k for r in routes for k in r["sign_keys"]})
        entry = Entry(
            snapshot.pub_id, snapshot.version, snapshot.meta.tenant_id, is_shown(snapshot), card_of(snapshot), routes
        )
        try:
            before = await self.profiles.find_one_and_update(
                {"_id": snapshot.pub_id, "version": {"$lte": snapshot.version}},
                {
                    "$set": {
                        "version": snapshot.version,
                        "tenant_id": entry.tenant_id,
                        "state": snapshot.state,
                        "frozen": snapshot.frozen,
                        "shown": entry.shown,
                        "card": entry.card,
                        "routes": routes,
                        "signs": signs,
                        "updated_at_ms": now_ms(),
                    },
                    "$addToSet": {"all_signs": {"$each": signs}},
                },
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:
            SA_SNAPSHOTS.labels("stale").inc()
            log.info("stale SA snapshot ignored", extra={"pub_id": snapshot.pub_id, "version": snapshot.version})
            return False
        touched = set(signs) | set((before or {}).get("all_signs") or [])
        try:
            for sign in sorted(touched):
                mine = [r for r in routes if sign in r["sign_keys"]]
                value = entry.encode(mine) if mine else b""
                await self._write(self.sign_hash(sign), [(entry.pub_id, entry.version, value)])
            await self._write(self.pub_hash(entry.pub_id), [(PUB_FIELD, entry.version, entry.encode())])
        except RedisError as exc:
            # Readers fall back to MongoDB while Redis is away; the hashes written before stay versioned. Clear
            # what may now be stale so that it is loaded again from MongoDB.
            log.warning("SA snapshot not cached in Redis", extra={"pub_id": snapshot.pub_id, "error": repr(exc)})
            await self._forget(touched, entry.pub_id)
        SA_SNAPSHOTS.labels("applied").inc()
        return True

    async def _forget(self, signs: Iterable[str], pub_id: str) -> None:
        try:
            await self.redis.delete(*[self.sign_hash(s) for s in signs], self.pub_hash(pub_id))
        except RedisError:
            log.warning("SA cache could not be cleared; it expires by itself", extra={"pub_id": pub_id})

    # --- lookups ------------------------------------------------------------------------------------------------
    async def entries_for_sign(self, sign: str) -> list[Entry]:
        """The service numbers bound with signature ``sign`` (a ``sign_key``), with that signature's routes."""
        key = self.sign_hash(sign)
        try:
            raw: dict[bytes, bytes] = await self.redis.hgetall(key)
        except RedisError as exc:
            log.warning("redis SA lookup failed; reading MongoDB", extra={"error": repr(exc)})
            raw = {}
        if COMPLETE.encode() in raw:
            SA_LOOKUPS.labels("redis").inc()
            found = (Entry.decode(name.decode(), value) for name, value in raw.items() if name != COMPLETE.encode())
            return [e for e in found if e is not None]
        docs = await self.profiles.find({"signs": sign}).to_list(None)
        SA_LOOKUPS.labels("mongo" if docs else "miss").inc()
        entries = [Entry.of_document(doc, sign) for doc in docs]
        try:
            await self._write(key, [(e.pub_id, e.version, e.encode()) for e in entries], complete=True)
        except RedisError as exc:
            log.warning("redis SA re-warm failed", extra={"error": repr(exc)})
        return entries

    async def entry_for_pub(self, pub_id: str) -> Entry | None:
        key = self.pub_hash(pub_id)
        try:
            raw = await self.redis.hget(key, PUB_FIELD)
        except RedisError as exc:
            log.warning("redis SA lookup failed; reading MongoDB", extra={"error": repr(exc)})
            raw = None
        if raw is not None:
            SA_LOOKUPS.labels("redis").inc()
            return Entry.decode(pub_id, raw)
        doc = await self.profiles.find_one({"_id": pub_id})
        if doc is None:
            SA_LOOKUPS.labels("miss").inc()
            return None
        SA_LOOKUPS.labels("mongo").inc()
        entry = Entry.of_document(doc)
        try:
            await self._write(key, [(PUB_FIELD, entry.version, entry.encode())], complete=True)
        except RedisError as exc:
            log.warning("redis SA re-warm failed", extra={"error": repr(exc)})
        return entry

    async def image(self, sha256: str) -> tuple[str, bytes] | None:
        """The mime type and bytes of an image, once all its pieces arrived; None otherwise."""
        pieces = await self.media.find({"sha256": sha256}).sort("seq", ASCENDING).to_list(None)
        if not pieces or len(pieces) != pieces[0]["count"]:
            return None
        data = b"".join(bytes(p["data"]) for p in pieces)
        if len(data) != pieces[0]["size"]:
            return None
        return pieces[0]["mime"] or "application/octet-stream", data
