"""Tenants and their AK/SK credentials, and the cached credential lookup the signature middleware calls.

Secrets are stored as given for now (encryption at rest is a later change) and never returned by list calls:
only ``create_tenant`` / ``create_credential`` hand the secret key out, once.

A tenant is a main account (``user_id == tenant_id``); its name is also its IAM *domain name* and the user name of
the main account when it obtains a token with a password (``POST /v3/auth/tokens``). The main account's password
is optional (``password_hash`` in the tenant document, set by the operator); sub-users and their keys are managed
by ``magpie_gateway.iam.store``. Sub-user access keys live in the same ``credentials`` collection with the
sub-user's ``user_id`` and ``user_name``.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from magpie_common.ids import new_id
from magpie_gateway.auth import Credential
from magpie_gateway.db import Collections
from magpie_gateway.timefmt import iso, utc_now

_AK_ALPHABET = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits
ACCESS_KEY_LENGTH = 20  # like Huawei Cloud access keys
SECRET_KEY_LENGTH = 40
NAME_MAX_CHARS = 64


@dataclass(frozen=True)
class NewTenant:
    tenant_id: str
    name: str
    access_key: str
    secret_key: str

    def as_json(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


class TenantStore:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def create_tenant(self, name: str, password_hash: str | None = None) -> NewTenant:
        """A tenant with one enabled AK/SK pair (and the main account's password hash, if given)."""
        name = name.strip()
        if not name or len(name) > NAME_MAX_CHARS:
            raise ValueError(f"tenant name must be 1-{NAME_MAX_CHARS} characters")
        tenant_id = new_id("TN")
        now = utc_now()
        tenant: dict[str, Any] = {"_id": tenant_id, "name": name, "created_at": now, "app_count": 0}
        if password_hash is not None:
            tenant["password_hash"] = password_hash
        await self._c.tenants.insert_one(tenant)
        access_key, secret_key = await self.create_credential(tenant_id, tenant_id, None)
        return NewTenant(tenant_id, name, access_key, secret_key)

    async def create_credential(
        self, tenant_id: str, user_id: str, user_name: str | None, *, description: str = ""
    ) -> tuple[str, str]:
        """A new enabled AK/SK pair of the main account (``user_id == tenant_id``) or of a sub-user."""
        while True:
            access_key = _random(_AK_ALPHABET, ACCESS_KEY_LENGTH)
            secret_key = _random(_SK_ALPHABET, SECRET_KEY_LENGTH)
            try:
                await self._c.credentials.insert_one(
                    {
                        "_id": access_key,
                        "secret_key": secret_key,
                        "tenant_id": tenant_id,
                        "user_id": user_id,
                        "user_name": user_name,
                        "description": description,
                        "enabled": True,
                        "created_at": utc_now(),
                    }
                )
                return access_key, secret_key
            except DuplicateKeyError:
                continue  # astronomically unlikely: draw another key

    async def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        return await self._c.tenants.find_one({"_id": tenant_id})

    async def set_password_hash(self, tenant_id: str, password_hash: str) -> bool:
        """Set the main account's password (and clear a login lock); False when the tenant does not exist."""
        result = await self._c.tenants.update_one(
            {"_id": tenant_id},
            {"$set": {"password_hash": password_hash, "failed_logins": 0, "locked_until": None}},
        )
        return result.matched_count == 1

    async def list_tenants(self) -> list[dict[str, Any]]:
        """Tenants with the main account's access keys (never the secret keys)."""
        tenants = await self._c.tenants.find({}).sort("created_at", 1).to_list(None)
        keys: dict[str, list[dict[str, Any]]] = {}
        async for cred in self._c.credentials.find({}, {"secret_key": 0}):
            if cred.get("user_id", cred["tenant_id"]) != cred["tenant_id"]:
                continue  # a sub-user's key
            keys.setdefault(cred["tenant_id"], []).append(
                {"access_key": cred["_id"], "enabled": bool(cred.get("enabled", True))}
            )
        return [
            {
                "tenant_id": t["_id"],
                "name": t["name"],
                "created_at": iso(t["created_at"]),
                "credentials": keys.get(t["_id"], []),
            }
            for t in tenants
        ]

    async def set_enabled(self, access_key: str, enabled: bool) -> bool:
        result = await self._c.credentials.update_one({"_id": access_key}, {"$set": {"enabled": enabled}})
        return result.matched_count == 1

    async def find_credential(self, access_key: str) -> Credential | None:
        doc = await self._c.credentials.find_one({"_id": access_key})
        if doc is None:
            return None
        return Credential(
            access_key=doc["_id"],
            secret_key=doc["secret_key"],
            tenant_id=doc["tenant_id"],
            user_id=doc.get("user_id") or doc["tenant_id"],
            user_name=doc.get("user_name"),
            enabled=bool(doc.get("enabled", True)),
        )


class CredentialCache:
    """The ``CredentialLookup`` of the signature middleware: access keys cached in memory for ``ttl_s``.

    Unknown keys are remembered too, for a shorter time, so a flood of bad keys does not reach the database.
    A disabled key therefore stops working within ``ttl_s``.
    """

    def __init__(
        self,
        store: TenantStore,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 2.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._negative_ttl = min(negative_ttl_s, ttl_s)
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Credential | None]] = {}

    async def __call__(self, access_key: str) -> Credential | None:
        now = self._clock()
        hit = self._entries.get(access_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        credential = await self._store.find_credential(access_key)
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[access_key] = (now + (self._ttl if credential else self._negative_ttl), credential)
        return credential

    def invalidate(self, access_key: str) -> None:
        self._entries.pop(access_key, None)
