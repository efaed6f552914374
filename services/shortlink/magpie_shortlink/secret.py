"""The HMAC secret of the codes: from ``MAGPIE_SHORTLINK_SECRET``, or generated once and kept in MongoDB.

Every replica and every restart must derive the same codes (a redelivered batch after a restart mints the links it
already minted), so a generated secret is stored in the service's ``settings`` collection with an atomic
insert-if-absent and read back by everyone.
"""

from __future__ import annotations

import datetime as dt
import secrets

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

SECRET_DOC_ID = "code_hmac_secret"


async def load_secret(db: AsyncDatabase, configured: str = "") -> bytes:
    if configured:
        return configured.encode()
    settings = db["settings"]
    try:
        doc = await settings.find_one_and_update(
            {"_id": SECRET_DOC_ID},
            {"$setOnInsert": {"value": secrets.token_hex(32), "created_at": dt.datetime.now(dt.UTC)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        # Another replica inserted it at the same moment: use theirs.
        doc = await settings.find_one({"_id": SECRET_DOC_ID})
    if doc is None or not doc.get("value"):
        raise RuntimeError("the shortlink secret could not be stored in MongoDB")
    return bytes.fromhex(doc["value"])
