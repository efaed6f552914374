"""IAM tokens (``X-Auth-Token``): issued by ``POST /v3/auth/tokens``, valid for 24 hours, stored hashed.

A token is ``MGT`` followed by 64 URL-safe random characters (384 bits). Only its SHA-256 is stored (in the
``tokens`` collection, ``_id`` = hex digest): a fast hash is right for a random secret of that size, and a leaked
database does not leak usable tokens. The collection's TTL index on ``expires_at`` removes expired tokens
(MongoDB's TTL monitor runs about once a minute, so ``lookup`` returns expired sessions too and the caller
compares ``expires_at`` with its clock).

Tokens are revoked explicitly (``DELETE /v3/auth/tokens``) and when their user is disabled, deleted or changes
its password (``revoke_user``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from magpie_gateway.timefmt import utc_now

TOKEN_TTL = timedelta(hours=24)
TOKEN_PREFIX = "MGT"
MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True, slots=True)
class TokenSession:
    token_id: str  # SHA-256 hex of the token
    tenant_id: str
    user_id: str
    user_name: str
    domain_name: str
    methods: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    project: dict[str, str] | None = field(default=None)

    @property
    def is_root(self) -> bool:
        return self.user_id == self.tenant_id


TokenLookup = Callable[[str], Awaitable[TokenSession | None]]
"""``async def lookup(token) -> TokenSession | None`` (the session may have expired: compare ``expires_at``)"""


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(48)


def _session(doc: dict[str, Any]) -> TokenSession:
    return TokenSession(
        token_id=doc["_id"],
        tenant_id=doc["tenant_id"],
        user_id=doc["user_id"],
        user_name=doc["user_name"],
        domain_name=doc.get("domain_name", ""),
        methods=tuple(doc.get("methods", ())),
        issued_at=doc["issued_at"],
        expires_at=doc["expires_at"],
        project=doc.get("project"),
    )


class TokenStore:
    def __init__(
        self,
        collection: AsyncCollection,
        *,
        ttl: timedelta = TOKEN_TTL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._c = collection
        self._ttl = ttl
        self._clock = clock

    async def issue(
        self,
        *,
        tenant_id: str,
        user_id: str,
        user_name: str,
        domain_name: str,
        methods: tuple[str, ...],
        project: dict[str, str] | None = None,
    ) -> tuple[str, TokenSession]:
        token = new_token()
        now = self._clock()
        issued_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
        doc = {
            "_id": token_id(token),
            "tenant_id": tenant_id,
            "user_id": user_id,
            "user_name": user_name,
            "domain_name": domain_name,
            "methods": list(methods),
            "issued_at": issued_at,
            "expires_at": issued_at + self._ttl,
            "project": project,
        }
        await self._c.insert_one(doc)
        return token, _session(doc)

    async def lookup(self, token: str) -> TokenSession | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        doc = await self._c.find_one({"_id": token_id(token)})
        return _session(doc) if doc is not None else None

    async def __call__(self, token: str) -> TokenSession | None:
        return await self.lookup(token)

    async def revoke(self, token: str) -> bool:
        result = await self._c.delete_one({"_id": token_id(token)})
        return result.deleted_count == 1

    async def revoke_user(self, tenant_id: str, user_id: str) -> int:
        result = await self._c.delete_many({"tenant_id": tenant_id, "user_id": user_id})
        return result.deleted_count
