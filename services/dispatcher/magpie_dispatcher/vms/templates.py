"""Approved VMS templates as released by the gateway on VMS_TEMPLATES, kept in the dispatcher's MongoDB.

- ``vms_templates``: ``_id`` = tpl_id, ``tenant_id``, ``revision``, ``released`` (the serialized
  ``VmsTemplateReleased``); a record of an older revision never replaces a newer one.
- ``vms_media``: ``_id`` = ``<sha256>:<seq>``, the pieces of every medium (content-addressed, written once).

The handler writes a partition batch with one bulk write per collection, so a redelivered batch writes the same
documents again. ``load`` returns a template only once it is complete (every piece of every medium present).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from magpie.v1 import vms_pb2
from magpie_common.kafka import Decoded


@dataclass(frozen=True)
class LoadedTemplate:
    released: vms_pb2.VmsTemplateReleased
    tenant_id: str
    media: dict[str, bytes]  # sha256 -> bytes


class TemplateStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.templates = db["vms_templates"]
        self.media = db["vms_media"]

    async def ensure_indexes(self) -> None:
        await self.media.create_indexes([IndexModel([("sha", ASCENDING), ("seq", ASCENDING)], name="sha_seq")])

    async def handle(self, batch: Sequence[Decoded[vms_pb2.VmsTemplateRecord]]) -> None:
        templates: dict[str, vms_pb2.VmsTemplateReleased] = {}
        pieces: list[UpdateOne[Any]] = []
        for item in batch:
            record = item.message
            kind = record.WhichOneof("record")
            if kind == "template":
                released = record.template
                current = templates.get(released.tpl_id)
                if current is None or current.revision <= released.revision:
                    templates[released.tpl_id] = released
            elif kind == "chunk":
                chunk = record.chunk
                pieces.append(
                    UpdateOne(
                        {"_id": f"{chunk.sha256}:{chunk.seq}"},
                        {
                            "$setOnInsert": {
                                "sha": chunk.sha256,
                                "seq": chunk.seq,
                                "count": chunk.count,
                                "size": chunk.size,
                                "data": bytes(chunk.data),
                            }
                        },
                        upsert=True,
                    )
                )
        if pieces:
            await self.media.bulk_write(pieces, ordered=False)
        for released in templates.values():
            await self._put(released)

    async def _put(self, released: vms_pb2.VmsTemplateReleased) -> None:
        try:
            await self.templates.update_one(
                {"_id": released.tpl_id, "revision": {"$lte": released.revision}},
                {
                    "$set": {
                        "tenant_id": released.meta.tenant_id,
                        "revision": released.revision,
                        "released": released.SerializeToString(),
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # a newer revision is stored: the upsert collides with it, which is fine

    async def load(self, tpl_id: str, min_revision: int) -> LoadedTemplate | None:
        """The template (revision >= ``min_revision``) with all its media, or None while it is not complete."""
        doc = await self.templates.find_one({"_id": tpl_id})
        if doc is None or doc["revision"] < min_revision:
            return None
        released = vms_pb2.VmsTemplateReleased()
        released.ParseFromString(doc["released"])
        shas = sorted({e.media_sha256 for e in released.elements if e.type != "txt"})
        media: dict[str, bytes] = {}
        if shas:
            pieces: dict[str, list[dict[str, Any]]] = {sha: [] for sha in shas}
            async for piece in self.media.find({"sha": {"$in": shas}}):
                pieces[piece["sha"]].append(piece)
            for sha, found in pieces.items():
                found.sort(key=lambda p: p["seq"])
                if not found or len(found) != found[0]["count"]:
                    return None
                data = b"".join(bytes(p["data"]) for p in found)
                if len(data) != found[0]["size"]:
                    return None
                media[sha] = data
        return LoadedTemplate(released, doc.get("tenant_id", ""), media)
