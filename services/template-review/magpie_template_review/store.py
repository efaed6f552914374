"""MongoDB persistence of reviews (database ``<prefix>_template_review``, collection ``reviews``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from magpie_template_review.review_doc import (
    STATE_SUPERSEDED,
    Decision,
    DecisionError,
    Doc,
    apply_decision,
)

DUPLICATE_KEY = 11000
DECISION_ATTEMPTS = 8

SubjectKey = tuple[int, str]


@dataclass(frozen=True)
class DecisionOutcome:
    doc: Doc
    changed: bool


class ReviewStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.reviews = db["reviews"]

    async def ensure_indexes(self) -> None:
        # One review per (subject, subject_id, revision); also serves "latest revision of a subject".
        await self.reviews.create_index(
            [("subject", ASCENDING), ("subject_id", ASCENDING), ("revision", ASCENDING)],
            unique=True,
            name="subject_revision_unique",
        )
        await self.reviews.create_index([("state", ASCENDING), ("created_at_ms", ASCENDING)], name="state_created")
        await self.reviews.create_index([("unpublished", ASCENDING)], name="unpublished")

    async def ping(self) -> bool:
        await self.db.command("ping")
        return True

    # --- consumer side ----------------------------------------------------------------------------------------
    async def latest_revisions(self, keys: Iterable[SubjectKey]) -> dict[SubjectKey, int]:
        """The highest reviewed revision of each subject (subjects never reviewed are absent)."""

        async def latest(key: SubjectKey) -> tuple[SubjectKey, int | None]:
            doc = await self.reviews.find_one(
                {"subject": key[0], "subject_id": key[1]},
                projection={"revision": 1},
                sort=[("revision", DESCENDING)],
            )
            return key, None if doc is None else int(doc["revision"])

        results = await asyncio.gather(*(latest(k) for k in set(keys)))
        return {key: rev for key, rev in results if rev is not None}

    async def get_many(self, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {doc["_id"]: doc async for doc in self.reviews.find({"_id": {"$in": list(set(ids))}})}

    async def get(self, rid: str) -> Doc | None:
        return await self.reviews.find_one({"_id": rid})

    async def insert_new(self, docs: Sequence[Doc]) -> set[str]:
        """Insert reviews; returns the ids that already existed (another delivery stored them first)."""
        if not docs:
            return set()
        try:
            await self.reviews.insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def supersede_older(self, subject: int, subject_id: str, revision: int) -> None:
        """Close the reviews of older revisions: they no longer accept manual decisions."""
        await self.reviews.update_many(
            {
                "subject": subject,
                "subject_id": subject_id,
                "revision": {"$lt": revision},
                "state": {"$ne": STATE_SUPERSEDED},
            },
            {"$set": {"state": STATE_SUPERSEDED}},
        )

    # --- outbox -----------------------------------------------------------------------------------------------
    async def mark_published(self, published: Sequence[tuple[str, int]]) -> None:
        """Clear ``unpublished`` of (review id, outbox version) pairs, unless a newer version replaced it."""
        if not published:
            return
        await self.reviews.bulk_write(
            [
                UpdateOne({"_id": rid, "outbox.version": version}, {"$set": {"unpublished": False}})
                for rid, version in published
            ],
            ordered=False,
        )

    async def unpublished(self, *, updated_before_ms: int, limit: int = 100) -> list[Doc]:
        cursor = self.reviews.find({"unpublished": True, "updated_at_ms": {"$lt": updated_before_ms}}).limit(limit)
        return [doc async for doc in cursor]

    # --- reviewer API -----------------------------------------------------------------------------------------
    async def find_reviews(self, *, state: str | None, subject: int | None, limit: int) -> list[Doc]:
        query: Doc = {}
        if state:
            query["state"] = state
        if subject is not None:
            query["subject"] = subject
        cursor = self.reviews.find(query).sort("created_at_ms", ASCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def decide(self, rid: str, decision: Decision, now_ms: int) -> DecisionOutcome:
        """Apply a manual decision with optimistic concurrency (the update matches the version it was computed on)."""
        for _ in range(DECISION_ATTEMPTS):
            doc = await self.get(rid)
            if doc is None:
                raise DecisionError(404, f"review {rid} not found")
            fields = apply_decision(doc, decision, now_ms)
            if fields is None:
                return DecisionOutcome(doc, changed=False)
            result = await self.reviews.update_one(
                {"_id": rid, "version": doc["version"], "state": {"$ne": STATE_SUPERSEDED}}, {"$set": fields}
            )
            if result.modified_count == 1:
                return DecisionOutcome({**doc, **fields}, changed=True)
        raise DecisionError(409, f"review {rid} kept changing; retry the decision")
