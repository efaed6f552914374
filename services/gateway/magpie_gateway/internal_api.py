"""Internal operator endpoints (not part of the KooMessage API, not AK/SK signed).

Guarded by the ``X-Admin-Token`` header, which must equal ``MAGPIE_ADMIN_TOKEN``; when that variable is unset the
endpoints do not exist (404). Keep them off the public network in production.

- ``POST /internal/tenants`` ``{"name": "..."}`` -> 201 ``{"tenant_id", "name", "access_key", "secret_key"}``
  (the only time the secret key is shown)
- ``GET /internal/tenants`` -> ``{"tenants": [{"tenant_id", "name", "created_at", "credentials":
  [{"access_key", "enabled"}]}]}`` (never secrets)
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.errors import ACCESS_DENIED, API_NOT_FOUND, ApiError
from magpie_gateway.validation import invalid

router = APIRouter(prefix="/internal", tags=["Internal (operators)"])

ADMIN_HEADER = "X-Admin-Token"
INTERNAL_PATHS = frozenset({"/internal/tenants"})


class CreateTenantBody(BaseModel):
    name: str = Field(description="display name of the tenant (1-64 characters)")


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


@router.post("/tenants", status_code=201, response_model=CreatedTenant, dependencies=[Depends(require_admin)])
async def create_tenant(body: CreateTenantBody, context: GatewayContext = Depends(get_context)) -> dict[str, Any]:
    try:
        tenant = await context.tenants.create_tenant(body.name)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    context.credentials.invalidate(tenant.access_key)
    return tenant.as_json()


@router.get("/tenants", dependencies=[Depends(require_admin)])
async def list_tenants(context: GatewayContext = Depends(get_context)) -> dict[str, Any]:
    return {"tenants": await context.tenants.list_tenants()}
