"""Who is calling: the stored AK/SK credential and the authenticated principal put on ``request.state``.

The main account of a tenant has ``user_id == tenant_id``; a sub-user (IAM user) has its own ``user_id`` and
``user_name``. ``auth_method`` is ``"aksk"`` (a signed request) or ``"token"`` (``X-Auth-Token``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from magpie_gateway.errors import AUTH_FAILED, ApiError

PRINCIPAL_STATE_KEY = "principal"


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key pair as stored by the platform. ``user_name`` is the IAM sub-user name, if any."""

    access_key: str
    secret_key: str
    tenant_id: str
    user_id: str
    user_name: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``project_id`` is the signed ``X-Project-Id`` header, when the SDK sent one
    (``BasicCredentials(ak, sk, project_id)``); None otherwise. ``access_key`` is empty for token callers."""

    access_key: str
    tenant_id: str
    user_id: str
    user_name: str | None
    project_id: str | None
    auth_method: str = "aksk"

    @property
    def is_root(self) -> bool:
        """True for the tenant's main account (allowed every operation), False for a sub-user."""
        return self.user_id == self.tenant_id


CredentialLookup = Callable[[str], Awaitable[Credential | None]]
"""``async def lookup(access_key) -> Credential | None``"""


def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the principal set by ``SignatureAuthMiddleware`` (401 if there is none)."""
    principal = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if not isinstance(principal, Principal):
        raise ApiError.of(AUTH_FAILED, f"{AUTH_FAILED.message}: request is not authenticated")
    return principal
