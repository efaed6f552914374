"""Sub-users, their access keys, custom policies and attachments, password logins, and authorization decisions.

Every method takes the tenant id first and filters on it: another tenant's user, key or policy is "not found"
(``KM.00000404``), never its data. Both the tenant-facing endpoints (``/v1/magpie/iam/...``, signed by the main
account or by a sub-user allowed ``iam:*`` actions) and the operator endpoints (``/internal/tenants/{id}/...``)
use this class.

Documents:

- ``users``: ``_id`` (``US...``), ``tenant_id``, ``name``, ``name_key`` (lowercase, unique per tenant),
  ``description``, ``enabled``, ``password_hash`` (absent: the user cannot log in with a password),
  ``policies`` (attached policy ids: system ids such as ``KooMessageReadOnlyAccess`` or custom ``PL...``),
  ``created_at``, ``updated_at``, ``last_login_at``, ``failed_logins``, ``locked_until``.
- ``policies`` (custom only; system policies are code, see ``policies.py``): ``_id`` (``PL...``), ``tenant_id``,
  ``name``, ``name_key``, ``description``, ``document``, ``created_at``, ``updated_at``.
- access keys are ``credentials`` documents with the sub-user's ``user_id`` / ``user_name``.

Limits: ``MAX_USERS`` sub-users per tenant, ``MAX_KEYS_PER_USER`` access keys per sub-user (as on Huawei Cloud),
``MAX_CUSTOM_POLICIES`` custom policies per tenant, ``MAX_POLICIES_PER_USER`` attached policies per sub-user.
The user and policy counts are checked before inserting, so two concurrent creations may pass one over the limit.

Disabling, deleting or changing the password of a sub-user revokes its tokens at once. Its access keys are checked
against the user on every request by the authorization step (``authorize``), so a disabled user's keys stop working
at once too; a disabled or deleted key stops working in this gateway process at once and in other gateway
processes within ``MAGPIE_CREDENTIAL_CACHE_TTL_S``.

Password logins lock the account (main account or sub-user) for ``LOCK_MINUTES`` after ``MAX_FAILED_LOGINS``
consecutive wrong passwords; while locked even the right password is refused. An unknown user, an unknown domain
and a wrong password give the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.auth.principal import Principal
from magpie_gateway.auth.tokens import TokenStore
from magpie_gateway.codes import fail, not_found
from magpie_gateway.db import Collections
from magpie_gateway.errors import AUTH_FAILED, ApiError
from magpie_gateway.iam import passwords
from magpie_gateway.iam.evaluation import Decision, NamedDocument, evaluate
from magpie_gateway.iam.policies import SYSTEM_POLICIES, PolicyDocument, PolicyError, parse_document, system_policy
from magpie_gateway.pagination import Page, fetch_page
from magpie_gateway.tenants import CredentialCache, TenantStore
from magpie_gateway.timefmt import iso, utc_now
from magpie_gateway.validation import invalid

MAX_USERS = 1000
MAX_KEYS_PER_USER = 2
MAX_CUSTOM_POLICIES = 200
MAX_POLICIES_PER_USER = 20
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
DESCRIPTION_MAX_CHARS = 255
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,31}")
POLICY_NAME = re.compile(r"[\w.\-]([\w.\- ]{0,62}[\w.\-])?")
WRONG_CREDENTIALS = "the user name or password is wrong"


def auth_failed(reason: str) -> ApiError:
    return ApiError.of(AUTH_FAILED, f"{AUTH_FAILED.message}: {reason}")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who logged in: the main account (``user_id == tenant_id``) or a sub-user."""

    tenant_id: str
    domain_name: str
    user_id: str
    user_name: str

    @property
    def is_root(self) -> bool:
        return self.user_id == self.tenant_id


def _description(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > DESCRIPTION_MAX_CHARS:
        raise invalid(f"description must have at most {DESCRIPTION_MAX_CHARS} characters")
    return text


def user_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "description": doc.get("description", ""),
        "enabled": bool(doc.get("enabled", True)),
        "password_set": bool(doc.get("password_hash")),
        "policies": list(doc.get("policies", [])),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
        "last_login_at": iso(doc.get("last_login_at")),
    }


def key_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_key": doc["_id"],
        "user_id": doc["user_id"],
        "description": doc.get("description", ""),
        "enabled": bool(doc.get("enabled", True)),
        "created_at": iso(doc.get("created_at")),
    }


def policy_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "type": "custom",
        "description": doc.get("description", ""),
        "policy": doc["document"],
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
    }


def system_view(policy_id: str) -> dict[str, Any]:
    policy = SYSTEM_POLICIES[policy_id]
    return {
        "id": policy.id,
        "name": policy.name,
        "type": "system",
        "description": policy.description,
        "policy": policy.document.as_json(),
        "created_at": None,
        "updated_at": None,
    }


def _document(raw: Any) -> PolicyDocument:
    try:
        return parse_document(raw)
    except PolicyError as exc:
        raise fail(codes.POLICY_INVALID, str(exc)) from None


class IamStore:
    def __init__(self, collections: Collections, credentials: CredentialCache, tokens: TokenStore) -> None:
        self._c = collections
        self._cache = credentials
        self._tokens = tokens
        self._tenants = TenantStore(collections)

    # --- tenants (main accounts) ------------------------------------------------------------------------------

    async def require_tenant(self, tenant_id: str) -> dict[str, Any]:
        tenant = await self._tenants.get_tenant(tenant_id)
        if tenant is None:
            raise not_found(f"tenant {tenant_id}")
        return tenant

    async def set_account_password(self, tenant_id: str, password: str) -> None:
        tenant = await self.require_tenant(tenant_id)
        await self._check_password(password, tenant["name"])
        await self._tenants.set_password_hash(tenant_id, await passwords.hash_password(password))
        await self._tokens.revoke_user(tenant_id, tenant_id)

    async def _check_password(self, password: str, user_name: str) -> None:
        try:
            passwords.check_rules(password, user_name)
        except passwords.WeakPassword as exc:
            raise fail(codes.WEAK_PASSWORD, str(exc)) from None

    # --- sub-users ---------------------------------------------------------------------------------------------

    async def create_user(
        self,
        tenant_id: str,
        *,
        name: str,
        password: str | None,
        enabled: bool,
        description: str | None,
    ) -> dict[str, Any]:
        tenant = await self.require_tenant(tenant_id)
        name = (name or "").strip()
        if not USER_NAME.fullmatch(name):
            raise invalid("name must be 1-32 letters, digits, '_', '-' or '.', starting with a letter or '_'")
        if name.lower() == str(tenant["name"]).strip().lower():
            raise fail(codes.NAME_TAKEN, f"name {name} is the main account's name")
        text = _description(description)
        password_hash = None
        if password is not None:
            await self._check_password(password, name)
            password_hash = await passwords.hash_password(password)
        if await self._c.users.count_documents({"tenant_id": tenant_id}) >= MAX_USERS:
            raise fail(codes.IAM_LIMIT, f"at most {MAX_USERS} sub-users per tenant")
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": new_id("US"),
            "tenant_id": tenant_id,
            "name": name,
            "name_key": name.lower(),
            "description": text,
            "enabled": enabled,
            "policies": [],
            "created_at": now,
            "updated_at": now,
            "last_login_at": None,
            "failed_logins": 0,
            "locked_until": None,
        }
        if password_hash is not None:
            doc["password_hash"] = password_hash
        try:
            await self._c.users.insert_one(doc)
        except DuplicateKeyError:
            raise fail(codes.NAME_TAKEN, f"sub-user {name}") from None
        return doc

    async def list_users(self, tenant_id: str, paging: Page, name: str | None) -> tuple[list[dict[str, Any]], int]:
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if name:
            query["name_key"] = {"$regex": re.escape(name.lower())}
        return await fetch_page(self._c.users, query, paging, sort=(("name_key", 1), ("_id", 1)))

    async def get_user(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        doc = await self._c.users.find_one({"_id": user_id, "tenant_id": tenant_id})
        if doc is None:
            raise not_found(f"sub-user {user_id}")
        return doc

    async def update_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        enabled: bool | None,
        password: str | None,
        description: str | None,
    ) -> dict[str, Any]:
        user = await self.get_user(tenant_id, user_id)
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = _description(description)
        if enabled is not None:
            changes["enabled"] = enabled
        if password is not None:
            await self._check_password(password, user["name"])
            changes["password_hash"] = await passwords.hash_password(password)
            changes["failed_logins"] = 0
            changes["locked_until"] = None
        if not changes:
            raise invalid("nothing to change: give enabled, password or description")
        changes["updated_at"] = utc_now()
        doc = await self._c.users.find_one_and_update(
            {"_id": user_id, "tenant_id": tenant_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise not_found(f"sub-user {user_id}")
        if enabled is False or password is not None:
            await self._tokens.revoke_user(tenant_id, user_id)
        return doc

    async def delete_user(self, tenant_id: str, user_id: str) -> None:
        await self.get_user(tenant_id, user_id)
        keys = await self._c.credentials.find({"tenant_id": tenant_id, "user_id": user_id}, {"_id": 1}).to_list(None)
        await self._c.users.delete_one({"_id": user_id, "tenant_id": tenant_id})
        await self._c.credentials.delete_many({"tenant_id": tenant_id, "user_id": user_id})
        await self._tokens.revoke_user(tenant_id, user_id)
        for key in keys:
            self._cache.invalidate(key["_id"])

    # --- access keys of sub-users ------------------------------------------------------------------------------

    async def create_access_key(
        self, tenant_id: str, user_id: str, description: str | None
    ) -> tuple[dict[str, Any], str]:
        user = await self.get_user(tenant_id, user_id)
        text = _description(description)
        if await self._c.credentials.count_documents({"tenant_id": tenant_id, "user_id": user_id}) >= MAX_KEYS_PER_USER:
            raise fail(codes.IAM_LIMIT, f"at most {MAX_KEYS_PER_USER} access keys per sub-user")
        access_key, secret_key = await self._tenants.create_credential(
            tenant_id, user_id, user["name"], description=text
        )
        self._cache.invalidate(access_key)
        doc = await self._c.credentials.find_one({"_id": access_key}, {"secret_key": 0})
        assert doc is not None
        return doc, secret_key

    async def list_access_keys(self, tenant_id: str, user_id: str) -> list[dict[str, Any]]:
        await self.get_user(tenant_id, user_id)
        cursor = self._c.credentials.find({"tenant_id": tenant_id, "user_id": user_id}, {"secret_key": 0})
        return await cursor.sort("created_at", 1).to_list(None)

    async def set_access_key_enabled(
        self, tenant_id: str, user_id: str, access_key: str, enabled: bool
    ) -> dict[str, Any]:
        doc = await self._c.credentials.find_one_and_update(
            {"_id": access_key, "tenant_id": tenant_id, "user_id": user_id},
            {"$set": {"enabled": enabled}},
            projection={"secret_key": 0},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise not_found(f"access key {access_key} of sub-user {user_id}")
        self._cache.invalidate(access_key)
        return doc

    async def delete_access_key(self, tenant_id: str, user_id: str, access_key: str) -> None:
        result = await self._c.credentials.delete_one({"_id": access_key, "tenant_id": tenant_id, "user_id": user_id})
        if result.deleted_count != 1:
            raise not_found(f"access key {access_key} of sub-user {user_id}")
        self._cache.invalidate(access_key)

    # --- policies ----------------------------------------------------------------------------------------------

    async def list_policies(self, tenant_id: str, policy_type: str | None) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = []
        if policy_type in (None, "system"):
            views.extend(system_view(policy_id) for policy_id in SYSTEM_POLICIES)
        if policy_type in (None, "custom"):
            docs = await self._c.policies.find({"tenant_id": tenant_id}).sort("name_key", 1).to_list(None)
            views.extend(policy_view(doc) for doc in docs)
        return views

    async def get_policy(self, tenant_id: str, policy_id: str) -> dict[str, Any]:
        system = system_policy(policy_id)
        if system is not None:
            return system_view(system.id)
        doc = await self._c.policies.find_one({"_id": policy_id, "tenant_id": tenant_id})
        if doc is None:
            raise not_found(f"policy {policy_id}")
        return policy_view(doc)

    def _policy_name(self, name: str | None) -> str:
        text = (name or "").strip()
        if not POLICY_NAME.fullmatch(text):
            raise invalid("name must be 1-64 letters, digits, spaces, '_', '-' or '.'")
        if system_policy(text) is not None:
            raise fail(codes.NAME_TAKEN, f"{text} is the name of a system policy")
        return text

    async def create_policy(
        self, tenant_id: str, *, name: str, description: str | None, document: Any
    ) -> dict[str, Any]:
        await self.require_tenant(tenant_id)
        text = self._policy_name(name)
        parsed = _document(document)
        if await self._c.policies.count_documents({"tenant_id": tenant_id}) >= MAX_CUSTOM_POLICIES:
            raise fail(codes.IAM_LIMIT, f"at most {MAX_CUSTOM_POLICIES} custom policies per tenant")
        now = utc_now()
        doc = {
            "_id": new_id("PL"),
            "tenant_id": tenant_id,
            "name": text,
            "name_key": text.lower(),
            "description": _description(description),
            "document": parsed.as_json(),
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._c.policies.insert_one(doc)
        except DuplicateKeyError:
            raise fail(codes.NAME_TAKEN, f"policy {text}") from None
        return policy_view(doc)

    async def update_policy(
        self,
        tenant_id: str,
        policy_id: str,
        *,
        name: str | None,
        description: str | None,
        document: Any | None,
    ) -> dict[str, Any]:
        if system_policy(policy_id) is not None:
            raise fail(codes.SYSTEM_POLICY_READ_ONLY, policy_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = self._policy_name(name)
            changes["name_key"] = changes["name"].lower()
        if description is not None:
            changes["description"] = _description(description)
        if document is not None:
            changes["document"] = _document(document).as_json()
        if not changes:
            raise invalid("nothing to change: give name, description or policy")
        changes["updated_at"] = utc_now()
        try:
            doc = await self._c.policies.find_one_and_update(
                {"_id": policy_id, "tenant_id": tenant_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            raise fail(codes.NAME_TAKEN, f"policy {changes.get('name')}") from None
        if doc is None:
            raise not_found(f"policy {policy_id}")
        return policy_view(doc)

    async def delete_policy(self, tenant_id: str, policy_id: str) -> None:
        if system_policy(policy_id) is not None:
            raise fail(codes.SYSTEM_POLICY_READ_ONLY, policy_id)
        if await self._c.policies.count_documents({"_id": policy_id, "tenant_id": tenant_id}) == 0:
            raise not_found(f"policy {policy_id}")
        users = await self._c.users.count_documents({"tenant_id": tenant_id, "policies": policy_id})
        if users:
            raise fail(codes.POLICY_IN_USE, f"policy {policy_id} is attached to {users} sub-user(s)")
        await self._c.policies.delete_one({"_id": policy_id, "tenant_id": tenant_id})

    # --- attachments -------------------------------------------------------------------------------------------

    async def _policy_id(self, tenant_id: str, policy_id: str) -> str:
        system = system_policy(policy_id)
        if system is not None:
            return system.id
        if await self._c.policies.count_documents({"_id": policy_id, "tenant_id": tenant_id}) == 0:
            raise not_found(f"policy {policy_id}")
        return policy_id

    async def attach_policy(self, tenant_id: str, user_id: str, policy_id: str) -> dict[str, Any]:
        user = await self.get_user(tenant_id, user_id)
        canonical = await self._policy_id(tenant_id, policy_id)
        if canonical in user.get("policies", []):
            return user
        doc = await self._c.users.find_one_and_update(
            {"_id": user_id, "tenant_id": tenant_id, f"policies.{MAX_POLICIES_PER_USER - 1}": {"$exists": False}},
            {"$addToSet": {"policies": canonical}, "$set": {"updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            await self.get_user(tenant_id, user_id)  # deleted meanwhile -> 404
            raise fail(codes.IAM_LIMIT, f"at most {MAX_POLICIES_PER_USER} policies per sub-user")
        return doc

    async def detach_policy(self, tenant_id: str, user_id: str, policy_id: str) -> dict[str, Any]:
        user = await self.get_user(tenant_id, user_id)
        system = system_policy(policy_id)
        canonical = system.id if system is not None else policy_id
        if canonical not in user.get("policies", []):
            raise not_found(f"policy {policy_id} attached to sub-user {user_id}")
        doc = await self._c.users.find_one_and_update(
            {"_id": user_id, "tenant_id": tenant_id},
            {"$pull": {"policies": canonical}, "$set": {"updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise not_found(f"sub-user {user_id}")
        return doc

    async def user_policies(self, tenant_id: str, user_id: str) -> list[dict[str, Any]]:
        user = await self.get_user(tenant_id, user_id)
        return [view for _, view in await self._attached(tenant_id, user.get("policies", []))]

    async def _attached(self, tenant_id: str, policy_ids: list[str]) -> list[tuple[PolicyDocument, dict[str, Any]]]:
        """The attached policies in attachment order (a custom policy deleted meanwhile is skipped)."""
        custom_ids = [p for p in policy_ids if p not in SYSTEM_POLICIES]
        custom: dict[str, dict[str, Any]] = {}
        if custom_ids:
            async for doc in self._c.policies.find({"_id": {"$in": custom_ids}, "tenant_id": tenant_id}):
                custom[doc["_id"]] = doc
        attached: list[tuple[PolicyDocument, dict[str, Any]]] = []
        for policy_id in policy_ids:
            if policy_id in SYSTEM_POLICIES:
                attached.append((SYSTEM_POLICIES[policy_id].document, system_view(policy_id)))
            elif policy_id in custom:
                doc = custom[policy_id]
                attached.append((parse_document(doc["document"]), policy_view(doc)))
        return attached

    # --- authorization -----------------------------------------------------------------------------------------

    async def active_user(self, principal: Principal) -> dict[str, Any]:
        """The sub-user document of ``principal``; 401 when it was deleted or is disabled."""
        user = await self._c.users.find_one({"_id": principal.user_id, "tenant_id": principal.tenant_id})
        if user is None:
            raise auth_failed("the user no longer exists")
        if not user.get("enabled", True):
            raise auth_failed("the user is disabled")
        return user

    async def authorize(self, principal: Principal, action: str) -> Decision:
        """Evaluate ``action`` for a sub-user (the main account is allowed everything before calling this)."""
        user = await self.active_user(principal)
        attached = await self._attached(principal.tenant_id, list(user.get("policies", [])))
        documents = [NamedDocument(view["id"], view["name"], document) for document, view in attached]
        return evaluate(action, documents)

    # --- password login ----------------------------------------------------------------------------------------

    async def _tenant_for_domain(self, domain_id: str | None, domain_name: str | None) -> dict[str, Any] | None:
        if domain_id:
            tenant = await self._c.tenants.find_one({"_id": domain_id})
            if tenant is not None and domain_name and tenant["name"] != domain_name:
                return None
            return tenant
        matches = await self._c.tenants.find({"name": domain_name}).limit(2).to_list(None)
        if len(matches) > 1:
            raise auth_failed("the domain name is not unique: identify the domain by auth.identity...domain.id")
        return matches[0] if matches else None

    async def login(self, *, domain_id: str | None, domain_name: str | None, user_name: str, password: str) -> Identity:
        """Check a password of the main account (user name = domain name) or of a sub-user; 401 otherwise."""
        tenant = await self._tenant_for_domain(domain_id, domain_name)
        if tenant is None:
            await passwords.verify_password(password, None)
            raise auth_failed(WRONG_CREDENTIALS)
        root = user_name == tenant["name"]
        collection: AsyncCollection = self._c.tenants if root else self._c.users
        key = user_name.lower()
        doc = tenant if root else await self._c.users.find_one({"tenant_id": tenant["_id"], "name_key": key})
        if doc is None:
            await passwords.verify_password(password, None)
            raise auth_failed(WRONG_CREDENTIALS)
        now = utc_now()
        locked_until: datetime | None = doc.get("locked_until")
        if locked_until is not None and locked_until > now:
            raise auth_failed(f"the user is locked after {MAX_FAILED_LOGINS} wrong passwords until {iso(locked_until)}")
        if not await passwords.verify_password(password, doc.get("password_hash")):
            await self._login_failed(collection, doc["_id"], now)
            raise auth_failed(WRONG_CREDENTIALS)
        if not root and not doc.get("enabled", True):
            raise auth_failed("the user is disabled")
        await collection.update_one(
            {"_id": doc["_id"]}, {"$set": {"failed_logins": 0, "locked_until": None, "last_login_at": now}}
        )
        if root:
            return Identity(tenant["_id"], tenant["name"], tenant["_id"], tenant["name"])
        return Identity(tenant["_id"], tenant["name"], doc["_id"], doc["name"])

    async def _login_failed(self, collection: AsyncCollection, doc_id: str, now: datetime) -> None:
        doc = await collection.find_one_and_update(
            {"_id": doc_id}, {"$inc": {"failed_logins": 1}}, return_document=ReturnDocument.AFTER
        )
        if doc is not None and int(doc.get("failed_logins", 0)) >= MAX_FAILED_LOGINS:
            await collection.update_one(
                {"_id": doc_id},
                {"$set": {"failed_logins": 0, "locked_until": now + timedelta(minutes=LOCK_MINUTES)}},
            )

    async def identity_of(self, principal: Principal) -> Identity:
        """The identity behind an authenticated request (for a token obtained with an AK/SK signature)."""
        tenant = await self.require_tenant(principal.tenant_id)
        if principal.is_root:
            return Identity(tenant["_id"], tenant["name"], tenant["_id"], tenant["name"])
        user = await self.active_user(principal)
        return Identity(tenant["_id"], tenant["name"], user["_id"], user["name"])
