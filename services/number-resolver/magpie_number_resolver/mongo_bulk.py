"""Bulk "upsert" of whole documents: look up which exist, insert the new ones, update the others.

A bulk of ``UpdateOne(upsert=True)`` makes the server search, then insert or update, one document at a time.
Splitting the chunk instead — ``find({_id: {$in: ...}})`` in slices of ``IN_SLICE`` ids, ``insert_many`` of the new
documents, ``bulk_write`` of ``$set`` updates for the existing ones — gives the same result (the last write of a
document wins) on any MongoDB and loads a fresh registry 2-3x faster on the embedded SecantusDB (measured with
2,000-document chunks on a shared, loaded 2-core machine):

==========================  ======================  ==================================
                            bulk upserts            find + insert_many / update
==========================  ======================  ==================================
new documents               570-920/s               1,200-2,000/s
existing documents          450-690/s               230-460/s
==========================  ======================  ==================================

(Inserting first and updating on duplicate-key errors reached 1,600/s for new documents but 130/s for existing
ones.) On a real MongoDB both are far faster; the extra indexed read costs little there. A document inserted
concurrently between the look-up and the insert surfaces as a duplicate-key error and is then updated, so
concurrent imports of the same numbers are safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000
IN_SLICE = 100  # long $in lists are slow on the embedded server


def _update(doc: dict[str, Any]) -> UpdateOne:
    return UpdateOne({"_id": doc["_id"]}, {"$set": {k: v for k, v in doc.items() if k != "_id"}}, upsert=True)


async def upsert_documents(collection: AsyncCollection, docs: Sequence[dict[str, Any]]) -> None:
    """Write whole documents (each with its ``_id``, unique within ``docs``), replacing the fields of existing ones."""
    if not docs:
        return
    ids = [doc["_id"] for doc in docs]
    existing: set[Any] = set()
    for start in range(0, len(ids), IN_SLICE):
        async for found in collection.find({"_id": {"$in": ids[start : start + IN_SLICE]}}, {"_id": 1}):
            existing.add(found["_id"])
    updates = [_update(doc) for doc in docs if doc["_id"] in existing]
    fresh = [doc for doc in docs if doc["_id"] not in existing]
    if fresh:
        try:
            await collection.insert_many(fresh, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            updates.extend(_update(fresh[error["index"]]) for error in errors)
    if updates:
        await collection.bulk_write(updates, ordered=False)
