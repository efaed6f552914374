"""``Idempotency-Key`` for ``create_aim_send_task``: the same key with the same request answers the same
response (and creates one task); the same key with a different request answers 409.

A key is remembered per tenant for ``MAGPIE_IDEMPOTENCY_TTL_S`` (default 24 h). The request is identified by the
SHA-256 of its body bytes and the fallback header. While the first request is in flight, a second one with the
same key answers 409 (retry later). If the first failed after its task id was assigned (e.g. the broker was
unreachable), a retry resumes it with the same task id, so downstream services see one task, not two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.timefmt import utc_now
from magpie_gateway.validation import invalid

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
PENDING, FAILED, DONE = "pending", "failed", "done"
LEASE = timedelta(seconds=300)


def fingerprint(body: bytes, *extras: str) -> str:
    digest = hashlib.sha256(body)
    for extra in extras:
        digest.update(b"\x1f" + extra.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    """The outcome of looking a key up: a stored ``response`` to replay, or the ``task_id`` to use (new or
    resumed)."""

    response: dict[str, Any] | None = None
    task_id: str | None = None


class IdempotencyStore:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    @staticmethod
    def _id(tenant_id: str, key: str) -> str:
        return f"{tenant_id}:{key}"

    @staticmethod
    def check_key(key: str) -> str:
        key = key.strip()
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise invalid(f"{HEADER} must be 1-{MAX_KEY_CHARS} printable characters")
        return key

    async def lookup(self, tenant_id: str, key: str, request_hash: str) -> Claim | None:
        """None when the key is unused; otherwise the stored response or the task id to resume (409 when the
        key belongs to another request or is still in flight)."""
        doc = await self._c.find_one({"_id": self._id(tenant_id, key)})
        if doc is None:
            return None
        if doc["request_hash"] != request_hash:
            raise fail(codes.IDEMPOTENCY_CONFLICT, f"{HEADER} {key!r} was used for a different request")
        if doc["state"] == DONE:
            return Claim(response=doc["response"])
        if doc["state"] == PENDING and utc_now() - doc["updated_at"] < LEASE:
            raise fail(codes.IDEMPOTENCY_CONFLICT, f"a request with {HEADER} {key!r} is still in progress")
        await self._c.update_one({"_id": doc["_id"]}, {"$set": {"state": PENDING, "updated_at": utc_now()}})
        return Claim(task_id=doc["task_id"])

    async def claim(self, tenant_id: str, key: str, request_hash: str, task_id: str) -> Claim:
        """Reserve an unused key for ``task_id``; if another request got it first, behave like ``lookup``."""
        now = utc_now()
        try:
            await self._c.insert_one(
                {
                    "_id": self._id(tenant_id, key),
                    "request_hash": request_hash,
                    "task_id": task_id,
                    "state": PENDING,
                    "response": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except DuplicateKeyError:
            existing = await self.lookup(tenant_id, key, request_hash)
            if existing is None:  # expired in between: try again
                return await self.claim(tenant_id, key, request_hash, task_id)
            return existing
        return Claim(task_id=task_id)

    async def finish(self, tenant_id: str, key: str, response: dict[str, Any]) -> None:
        await self._c.update_one(
            {"_id": self._id(tenant_id, key)},
            {"$set": {"state": DONE, "response": response, "updated_at": utc_now()}},
        )

    async def failed(self, tenant_id: str, key: str) -> None:
        await self._c.update_one(
            {"_id": self._id(tenant_id, key)}, {"$set": {"state": FAILED, "updated_at": utc_now()}}
        )
