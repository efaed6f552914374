"""Internal operator endpoints (not part of the KooMessage API, not AK/SK signed).

Guarded by the ``X-Admin-Token`` header, which must equal ``MAGPIE_ADMIN_TOKEN``; when that variable is unset the
endpoints do not exist (404). Keep them off the public network in production. Every path under ``/internal/`` is
exempt from the signature check (``INTERNAL_PREFIX``).

Tenants:

- ``POST /internal/tenants`` ``{"name": "...", "password"?: "..."}`` -> 201 ``{"tenant_id", "name", "access_key",
  "secret_key"}`` (the only time the secret key is shown; ``password`` is the main account's password for
  ``POST /v3/auth/tokens``, optional)
- ``GET /internal/tenants`` -> ``{"tenants": [{"tenant_id", "name", "created_at", "credentials":
  [{"access_key", "enabled"}]}]}`` (the main account's keys, never secrets)
- ``PUT /internal/tenants/{tenant_id}/password`` ``{"password"}`` -> 204 (sets the main account's password,
  clears a login lock, revokes the main account's tokens)

IAM of a tenant (the same operations, bodies and answers as ``/v1/magpie/iam/...``, see ``iam_api`` and
docs/iam.md; an unknown ``tenant_id`` is 404):

- ``POST|GET /internal/tenants/{tenant_id}/users``; ``GET|PUT|DELETE .../users/{user_id}``
- ``POST|GET .../users/{user_id}/access-keys``; ``PUT|DELETE .../users/{user_id}/access-keys/{access_key}``
- ``GET .../users/{user_id}/policies``; ``PUT|DELETE .../users/{user_id}/policies/{policy_id}``
- ``POST|GET /internal/tenants/{tenant_id}/policies``; ``GET|PUT|DELETE .../policies/{policy_id}``
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from magpie_gateway import codes, iam_api
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.errors import ACCESS_DENIED, API_NOT_FOUND, ApiError
from magpie_gateway.iam import passwords
from magpie_gateway.iam.store import IamStore, key_view, user_view
from magpie_gateway.iam_api import (
    AccessKeyList,
    AccessKeyOut,
    CreateAccessKeyBody,
    CreatePolicyBody,
    CreateUserBody,
    NewAccessKey,
    PasswordBody,
    PolicyList,
    PolicyOut,
    UpdateAccessKeyBody,
    UpdatePolicyBody,
    UpdateUserBody,
    UserList,
    UserOut,
    store_of,
)
from magpie_gateway.validation import invalid

router = APIRouter(prefix="/internal", tags=["Internal (operators)"])

ADMIN_HEADER = "X-Admin-Token"
INTERNAL_PREFIX = "/internal/"
INTERNAL_PATHS = frozenset({"/internal/tenants"})


class CreateTenantBody(BaseModel):
    name: str = Field(description="display name of the tenant (1-64 characters); also its IAM domain name")
    password: str | None = Field(None, description="the main account's password (optional)")


class CreatedTenant(BaseModel):
    tenant_id: str
    name: str
    access_key: str
    secret_key: str


def require_admin(
    context: GatewayContext = Depends(get_context),
    token: str | None = Header(None, alias=ADMIN_HEADER),
) -> None:
    expected = context.config.admin_token
    if not expected:
        raise ApiError.of(API_NOT_FOUND)
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError.of(ACCESS_DENIED, f"{ACCESS_DENIED.message}: a valid {ADMIN_HEADER} is required")


ADMIN = [Depends(require_admin)]


@router.post("/tenants", status_code=201, response_model=CreatedTenant, dependencies=ADMIN)
async def create_tenant(body: CreateTenantBody, context: GatewayContext = Depends(get_context)) -> dict[str, Any]:
    password_hash = None
    if body.password is not None:
        try:
            passwords.check_rules(body.password, body.name.strip())
        except passwords.WeakPassword as exc:
            raise fail(codes.WEAK_PASSWORD, str(exc)) from None
        password_hash = await passwords.hash_password(body.password)
    try:
        tenant = await context.tenants.create_tenant(body.name, password_hash)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    context.credentials.invalidate(tenant.access_key)
    return tenant.as_json()


@router.get("/tenants", dependencies=ADMIN)
async def list_tenants(context: GatewayContext = Depends(get_context)) -> dict[str, Any]:
    return {"tenants": await context.tenants.list_tenants()}


@router.put("/tenants/{tenant_id}/password", status_code=204, dependencies=ADMIN, summary="internal_set_password")
async def set_tenant_password(tenant_id: str, body: PasswordBody, store: IamStore = Depends(store_of)) -> Response:
    await store.set_account_password(tenant_id, body.password)
    return Response(status_code=204)


# --- sub-users -----------------------------------------------------------------------------------------------

USERS = "/tenants/{tenant_id}/users"


@router.post(USERS, status_code=201, response_model=UserOut, dependencies=ADMIN, summary="internal_create_user")
async def create_user(tenant_id: str, body: CreateUserBody, store: IamStore = Depends(store_of)) -> dict[str, Any]:
    return await iam_api.create_user(store, tenant_id, body)


@router.get(USERS, response_model=UserList, dependencies=ADMIN, summary="internal_list_users")
async def list_users(
    tenant_id: str,
    offset: int | None = None,
    limit: int | None = None,
    name: str | None = None,
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    await store.require_tenant(tenant_id)
    return await iam_api.list_users(store, tenant_id, offset, limit, name)


@router.get(USERS + "/{user_id}", response_model=UserOut, dependencies=ADMIN, summary="internal_show_user")
async def show_user(tenant_id: str, user_id: str, store: IamStore = Depends(store_of)) -> dict[str, Any]:
    return user_view(await store.get_user(tenant_id, user_id))


@router.put(USERS + "/{user_id}", response_model=UserOut, dependencies=ADMIN, summary="internal_update_user")
async def update_user(
    tenant_id: str, user_id: str, body: UpdateUserBody, store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await iam_api.update_user(store, tenant_id, user_id, body)


@router.delete(USERS + "/{user_id}", status_code=204, dependencies=ADMIN, summary="internal_delete_user")
async def delete_user(tenant_id: str, user_id: str, store: IamStore = Depends(store_of)) -> Response:
    await store.delete_user(tenant_id, user_id)
    return Response(status_code=204)


@router.post(
    USERS + "/{user_id}/access-keys",
    status_code=201,
    response_model=NewAccessKey,
    dependencies=ADMIN,
    summary="internal_create_access_key",
)
async def create_access_key(
    tenant_id: str, user_id: str, body: CreateAccessKeyBody | None = None, store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await iam_api.create_access_key(store, tenant_id, user_id, body)


@router.get(
    USERS + "/{user_id}/access-keys",
    response_model=AccessKeyList,
    dependencies=ADMIN,
    summary="internal_list_access_keys",
)
async def list_access_keys(tenant_id: str, user_id: str, store: IamStore = Depends(store_of)) -> dict[str, Any]:
    return await iam_api.list_access_keys(store, tenant_id, user_id)


@router.put(
    USERS + "/{user_id}/access-keys/{access_key}",
    response_model=AccessKeyOut,
    dependencies=ADMIN,
    summary="internal_update_access_key",
)
async def update_access_key(
    tenant_id: str, user_id: str, access_key: str, body: UpdateAccessKeyBody, store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return key_view(await store.set_access_key_enabled(tenant_id, user_id, access_key, body.enabled))


@router.delete(
    USERS + "/{user_id}/access-keys/{access_key}",
    status_code=204,
    dependencies=ADMIN,
    summary="internal_delete_access_key",
)
async def delete_access_key(
    tenant_id: str, user_id: str, access_key: str, store: IamStore = Depends(store_of)
) -> Response:
    await store.delete_access_key(tenant_id, user_id, access_key)
    return Response(status_code=204)


@router.get(
    USERS + "/{user_id}/policies", response_model=PolicyList, dependencies=ADMIN, summary="internal_user_policies"
)
async def user_policies(tenant_id: str, user_id: str, store: IamStore = Depends(store_of)) -> dict[str, Any]:
    policies = await store.user_policies(tenant_id, user_id)
    return {"policies": policies, "total": len(policies)}


@router.put(
    USERS + "/{user_id}/policies/{policy_id}", response_model=UserOut, dependencies=ADMIN, summary="internal_attach"
)
async def attach_policy(tenant_id: str, user_id: str, policy_id: str, store: IamStore = Depends(store_of)) -> Any:
    return user_view(await store.attach_policy(tenant_id, user_id, policy_id))


@router.delete(
    USERS + "/{user_id}/policies/{policy_id}", response_model=UserOut, dependencies=ADMIN, summary="internal_detach"
)
async def detach_policy(tenant_id: str, user_id: str, policy_id: str, store: IamStore = Depends(store_of)) -> Any:
    return user_view(await store.detach_policy(tenant_id, user_id, policy_id))


# --- policies ------------------------------------------------------------------------------------------------

POLICIES = "/tenants/{tenant_id}/policies"


@router.get(POLICIES, response_model=PolicyList, dependencies=ADMIN, summary="internal_list_policies")
async def list_policies(
    tenant_id: str,
    policy_type: str | None = Query(None, alias="type"),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    await store.require_tenant(tenant_id)
    return await iam_api.list_policies(store, tenant_id, policy_type)


@router.post(POLICIES, status_code=201, response_model=PolicyOut, dependencies=ADMIN, summary="internal_create_policy")
async def create_policy(tenant_id: str, body: CreatePolicyBody, store: IamStore = Depends(store_of)) -> Any:
    return await iam_api.create_policy(store, tenant_id, body)


@router.get(POLICIES + "/{policy_id}", response_model=PolicyOut, dependencies=ADMIN, summary="internal_show_policy")
async def show_policy(tenant_id: str, policy_id: str, store: IamStore = Depends(store_of)) -> Any:
    await store.require_tenant(tenant_id)
    return await store.get_policy(tenant_id, policy_id)


@router.put(POLICIES + "/{policy_id}", response_model=PolicyOut, dependencies=ADMIN, summary="internal_update_policy")
async def update_policy(
    tenant_id: str, policy_id: str, body: UpdatePolicyBody, store: IamStore = Depends(store_of)
) -> Any:
    return await iam_api.update_policy(store, tenant_id, policy_id, body)


@router.delete(POLICIES + "/{policy_id}", status_code=204, dependencies=ADMIN, summary="internal_delete_policy")
async def delete_policy(tenant_id: str, policy_id: str, store: IamStore = Depends(store_of)) -> Response:
    await store.delete_policy(tenant_id, policy_id)
    return Response(status_code=204)
