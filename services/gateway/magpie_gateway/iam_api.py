"""IAM and tokens: Huawei-style token endpoints and the tenant-facing IAM endpoints (Magpie extensions).

Tokens (``/v3/auth/tokens``, like Huawei Cloud IAM; see docs/iam.md)
-------------------------------------------------------------------
- ``POST /v3/auth/tokens`` (``create_token``), body
  ``{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name", "password",
  "domain": {"name"} | {"id"}}}}, "scope": {"project": {"name"}}}}`` (``scope`` optional). The domain is the
  tenant (its name or ``tenant_id``); the user is the main account (user name = domain name) or a sub-user.
  No signature is needed. Magpie extension: ``"methods": ["hw_ak_sk"]`` (no ``password``) in a request signed
  with an AK/SK obtains a token for the key's user. Answers 201 with the token in ``X-Subject-Token`` and
  ``{"token": {"methods", "issued_at", "expires_at", "user": {"id", "name", "domain": {"id", "name"}},
  "project"?, "roles": [{"id", "name"}], "catalog": []}}``; ``expires_at`` is 24 hours later. Wrong
  credentials: 401 ``APIGW.0301`` (``the user name or password is wrong``; locked after 5 wrong passwords).
- ``GET /v3/auth/tokens`` (``show_token``) with ``X-Subject-Token``: the token's body (200), 404 when unknown,
  expired or not the caller's to see (a sub-user sees its own tokens, the main account every token of its tenant).
- ``DELETE /v3/auth/tokens`` (``revoke_token``) with ``X-Subject-Token``: 204, same visibility rules.

Send the token as ``X-Auth-Token`` instead of an AK/SK signature on any other request.

IAM (``/v1/magpie/iam/...``, signed by the main account or a sub-user allowed the ``iam:*`` action)
--------------------------------------------------------------------------------------------------
Sub-users ``users``, their access keys ``users/{user_id}/access-keys``, policies ``policies`` (system + custom),
attachments ``users/{user_id}/policies/{policy_id}`` (PUT attaches, DELETE detaches), the action table
``actions``, and ``PUT account/password`` (the main account's own password; main account only). Creates answer 201,
deletes 204. The operator has the same operations under ``/internal/tenants/{tenant_id}/...`` (``internal_api``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.auth.principal import PRINCIPAL_STATE_KEY
from magpie_gateway.auth.tokens import TokenSession, TokenStore
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.iam.actions import ACTIONS
from magpie_gateway.iam.authorization import iam_store
from magpie_gateway.iam.store import IamStore, Identity, auth_failed, key_view, user_view
from magpie_gateway.pagination import page
from magpie_gateway.timefmt import utc_now
from magpie_gateway.validation import invalid

router = APIRouter(tags=["IAM (Magpie)"])

TOKEN_PATH = "/v3/auth/tokens"
SUBJECT_TOKEN_HEADER = "X-Subject-Token"
METHOD_PASSWORD = "password"
METHOD_AKSK = "hw_ak_sk"


EXAMPLE_POLICY = {
    "Version": "1.1",
    "Statement": [
        {"Effect": "Allow", "Action": ["KooMessage:*:*"]},
        {"Effect": "Deny", "Action": ["KooMessage:devSendTask:create"]},
    ],
}

# --- models ------------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DomainRef(_Lenient):
    name: str | None = Field(None, description="the tenant's name", examples=["acme"])
    id: str | None = Field(None, description="or the tenant's id (when two tenants share a name)")


class PasswordUser(_Lenient):
    name: str = Field(description="a sub-user's name, or the domain name for the main account", examples=["ops-bob"])
    password: str = Field(examples=["Sub-user-pass-1"])
    domain: DomainRef


class PasswordIdentity(_Lenient):
    user: PasswordUser


class TokenIdentity(_Lenient):
    methods: list[str] = Field(description='["password"] or ["hw_ak_sk"] (signed request)', examples=[["password"]])
    password: PasswordIdentity | None = None


class ProjectRef(_Lenient):
    name: str | None = Field(None, examples=["cn-north-4"])
    id: str | None = None


class TokenScope(_Lenient):
    project: ProjectRef | None = None
    domain: DomainRef | None = None


class TokenAuth(_Lenient):
    identity: TokenIdentity
    scope: TokenScope | None = None


class CreateTokenBody(_Lenient):
    auth: TokenAuth


class CreateUserBody(_Body):
    name: str = Field(
        description="1-32 letters, digits, '_', '-', '.'; unique in the tenant (any case)", examples=["ops-bob"]
    )
    password: str | None = Field(
        None, description="optional; needed to obtain tokens with a password", examples=["Sub-user-pass-1"]
    )
    enabled: bool = True
    description: str | None = Field(None, description="at most 255 characters", examples=["support desk"])


class UpdateUserBody(_Body):
    enabled: bool | None = Field(None, examples=[False])
    password: str | None = Field(None, examples=["New-pass-2"])
    description: str | None = Field(None, examples=["on leave"])


class CreateAccessKeyBody(_Body):
    description: str | None = None


class UpdateAccessKeyBody(_Body):
    enabled: bool


class CreatePolicyBody(_Body):
    name: str = Field(
        description="1-64 characters; unique in the tenant (any case); not a system policy name",
        examples=["no-sending"],
    )
    description: str | None = Field(None, examples=["everything but sending"])
    policy: Any = Field(
        description="the policy document (an object, or a string holding its JSON)", examples=[EXAMPLE_POLICY]
    )


class UpdatePolicyBody(_Body):
    name: str | None = Field(None, examples=["no-sending"])
    description: str | None = Field(None, examples=["everything but sending"])
    policy: Any | None = Field(None, examples=[EXAMPLE_POLICY])


class PasswordBody(_Body):
    password: str = Field(examples=["Main-account-1"])


class UserOut(BaseModel):
    id: str
    name: str
    description: str
    enabled: bool
    password_set: bool
    policies: list[str]
    created_at: str | None
    updated_at: str | None
    last_login_at: str | None


class PageInfo(BaseModel):
    offset: int
    limit: int
    total: int


class UserList(BaseModel):
    users: list[UserOut]
    page_info: PageInfo


class AccessKeyOut(BaseModel):
    access_key: str
    user_id: str
    description: str
    enabled: bool
    created_at: str | None


class NewAccessKey(AccessKeyOut):
    secret_key: str = Field(description="shown only in this answer")


class AccessKeyList(BaseModel):
    access_keys: list[AccessKeyOut]


class PolicyOut(BaseModel):
    id: str
    name: str
    type: str = Field(description="system | custom")
    description: str
    policy: dict[str, Any]
    created_at: str | None
    updated_at: str | None


class PolicyList(BaseModel):
    policies: list[PolicyOut]
    total: int


class ActionOut(BaseModel):
    operation: str
    action: str
    product: str
    kind: str
    description: str


class ActionList(BaseModel):
    actions: list[ActionOut]


# --- operations shared with the operator endpoints ---------------------------------------------------------------


def store_of(context: GatewayContext = Depends(get_context)) -> IamStore:
    return iam_store(context)


async def create_user(store: IamStore, tenant_id: str, body: CreateUserBody) -> dict[str, Any]:
    doc = await store.create_user(
        tenant_id, name=body.name, password=body.password, enabled=body.enabled, description=body.description
    )
    return user_view(doc)


async def list_users(
    store: IamStore, tenant_id: str, offset: int | None, limit: int | None, name: str | None
) -> dict[str, Any]:
    paging = page(offset, limit)
    docs, total = await store.list_users(tenant_id, paging, name)
    return {"users": [user_view(d) for d in docs], "page_info": paging.info(total)}


async def update_user(store: IamStore, tenant_id: str, user_id: str, body: UpdateUserBody) -> dict[str, Any]:
    doc = await store.update_user(
        tenant_id, user_id, enabled=body.enabled, password=body.password, description=body.description
    )
    return user_view(doc)


async def create_access_key(
    store: IamStore, tenant_id: str, user_id: str, body: CreateAccessKeyBody | None
) -> dict[str, Any]:
    doc, secret_key = await store.create_access_key(tenant_id, user_id, body.description if body else None)
    return {**key_view(doc), "secret_key": secret_key}


async def list_access_keys(store: IamStore, tenant_id: str, user_id: str) -> dict[str, Any]:
    return {"access_keys": [key_view(d) for d in await store.list_access_keys(tenant_id, user_id)]}


async def list_policies(store: IamStore, tenant_id: str, policy_type: str | None) -> dict[str, Any]:
    if policy_type not in (None, "", "system", "custom"):
        raise invalid("type must be system or custom")
    policies = await store.list_policies(tenant_id, policy_type or None)
    return {"policies": policies, "total": len(policies)}


async def create_policy(store: IamStore, tenant_id: str, body: CreatePolicyBody) -> dict[str, Any]:
    return await store.create_policy(tenant_id, name=body.name, description=body.description, document=body.policy)


async def update_policy(store: IamStore, tenant_id: str, policy_id: str, body: UpdatePolicyBody) -> dict[str, Any]:
    return await store.update_policy(
        tenant_id, policy_id, name=body.name, description=body.description, document=body.policy
    )


# --- tokens ------------------------------------------------------------------------------------------------------


def _token_time(value: Any) -> str:
    return str(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


async def _roles(store: IamStore, session: TokenSession) -> list[dict[str, str]]:
    if session.is_root:
        return [{"id": "0", "name": "te_admin"}]
    policies = await store.user_policies(session.tenant_id, session.user_id)
    return [{"id": p["id"], "name": p["name"]} for p in policies]


async def token_body(store: IamStore, session: TokenSession) -> dict[str, Any]:
    token: dict[str, Any] = {
        "methods": list(session.methods),
        "issued_at": _token_time(session.issued_at),
        "expires_at": _token_time(session.expires_at),
        "user": {
            "id": session.user_id,
            "name": session.user_name,
            "domain": {"id": session.tenant_id, "name": session.domain_name},
            "password_expires_at": "",
        },
        "roles": await _roles(store, session),
        "catalog": [],
    }
    if session.project is not None:
        token["project"] = session.project
    return {"token": token}


async def _identity(request: Request, store: IamStore, identity: TokenIdentity) -> Identity:
    if identity.methods == [METHOD_PASSWORD]:
        if identity.password is None:
            raise invalid("auth.identity.password is required with the password method")
        user = identity.password.user
        if not (user.domain.name or user.domain.id):
            raise invalid("auth.identity.password.user.domain needs a name or an id")
        if not user.name:
            raise invalid("auth.identity.password.user.name is required")
        return await store.login(
            domain_id=user.domain.id, domain_name=user.domain.name, user_name=user.name, password=user.password
        )
    if identity.methods == [METHOD_AKSK]:
        principal = getattr(request.state, PRINCIPAL_STATE_KEY, None)
        if not isinstance(principal, Principal) or principal.auth_method != "aksk":
            raise auth_failed("the hw_ak_sk method needs a request signed with an access key (SDK-HMAC-SHA256)")
        return await store.identity_of(principal)
    raise invalid(f'auth.identity.methods must be ["{METHOD_PASSWORD}"] or ["{METHOD_AKSK}"]')


@router.post(TOKEN_PATH, status_code=201, summary="create_token", tags=["Tokens"])
async def create_token(
    body: CreateTokenBody,
    request: Request,
    response: Response,
    nocatalog: str | None = None,
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    store = iam_store(context)
    identity = await _identity(request, store, body.auth.identity)
    project: dict[str, str] | None = None
    if body.auth.scope is not None and body.auth.scope.project is not None:
        ref = body.auth.scope.project
        project = {"id": ref.id or identity.tenant_id, "name": ref.name or context.config.region}
    token, session = await TokenStore(context.collections.tokens).issue(
        tenant_id=identity.tenant_id,
        user_id=identity.user_id,
        user_name=identity.user_name,
        domain_name=identity.domain_name,
        methods=tuple(body.auth.identity.methods),
        project=project,
    )
    response.headers[SUBJECT_TOKEN_HEADER] = token
    response.headers["Cache-Control"] = "no-store"
    return await token_body(store, session)


async def _subject(context: GatewayContext, principal: Principal, subject: str | None) -> TokenSession:
    if not subject:
        raise invalid(f"the {SUBJECT_TOKEN_HEADER} header is required")
    session = await TokenStore(context.collections.tokens).lookup(subject.strip())
    visible = (
        session is not None
        and session.tenant_id == principal.tenant_id
        and (principal.is_root or session.user_id == principal.user_id)
        and session.expires_at > utc_now()
    )
    if not visible or session is None:
        raise not_found("token")
    return session


@router.get(TOKEN_PATH, summary="show_token", tags=["Tokens"])
async def show_token(
    response: Response,
    subject: str | None = Header(None, alias=SUBJECT_TOKEN_HEADER),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    session = await _subject(context, principal, subject)
    response.headers["Cache-Control"] = "no-store"
    return await token_body(iam_store(context), session)


@router.delete(TOKEN_PATH, status_code=204, summary="revoke_token", tags=["Tokens"])
async def revoke_token(
    subject: str | None = Header(None, alias=SUBJECT_TOKEN_HEADER),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> Response:
    await _subject(context, principal, subject)
    await TokenStore(context.collections.tokens).revoke((subject or "").strip())
    return Response(status_code=204)


# --- tenant-facing IAM -------------------------------------------------------------------------------------------

IAM = "/v1/magpie/iam"


@router.post(f"{IAM}/users", status_code=201, response_model=UserOut, summary="create_iam_user")
async def create_iam_user(
    body: CreateUserBody, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await create_user(store, principal.tenant_id, body)


@router.get(f"{IAM}/users", response_model=UserList, summary="list_iam_users")
async def list_iam_users(
    offset: int | None = None,
    limit: int | None = None,
    name: str | None = None,
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return await list_users(store, principal.tenant_id, offset, limit, name)


@router.get(f"{IAM}/users/{{user_id}}", response_model=UserOut, summary="show_iam_user")
async def show_iam_user(
    user_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return user_view(await store.get_user(principal.tenant_id, user_id))


@router.put(f"{IAM}/users/{{user_id}}", response_model=UserOut, summary="update_iam_user")
async def update_iam_user(
    user_id: str,
    body: UpdateUserBody,
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return await update_user(store, principal.tenant_id, user_id, body)


@router.delete(f"{IAM}/users/{{user_id}}", status_code=204, summary="delete_iam_user")
async def delete_iam_user(
    user_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> Response:
    await store.delete_user(principal.tenant_id, user_id)
    return Response(status_code=204)


@router.post(
    f"{IAM}/users/{{user_id}}/access-keys",
    status_code=201,
    response_model=NewAccessKey,
    summary="create_iam_access_key",
)
async def create_iam_access_key(
    user_id: str,
    body: CreateAccessKeyBody | None = None,
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return await create_access_key(store, principal.tenant_id, user_id, body)


@router.get(f"{IAM}/users/{{user_id}}/access-keys", response_model=AccessKeyList, summary="list_iam_access_keys")
async def list_iam_access_keys(
    user_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await list_access_keys(store, principal.tenant_id, user_id)


@router.put(
    f"{IAM}/users/{{user_id}}/access-keys/{{access_key}}", response_model=AccessKeyOut, summary="update_iam_access_key"
)
async def update_iam_access_key(
    user_id: str,
    access_key: str,
    body: UpdateAccessKeyBody,
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return key_view(await store.set_access_key_enabled(principal.tenant_id, user_id, access_key, body.enabled))


@router.delete(f"{IAM}/users/{{user_id}}/access-keys/{{access_key}}", status_code=204, summary="delete_iam_access_key")
async def delete_iam_access_key(
    user_id: str, access_key: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> Response:
    await store.delete_access_key(principal.tenant_id, user_id, access_key)
    return Response(status_code=204)


@router.get(f"{IAM}/users/{{user_id}}/policies", response_model=PolicyList, summary="list_iam_user_policies")
async def list_iam_user_policies(
    user_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    policies = await store.user_policies(principal.tenant_id, user_id)
    return {"policies": policies, "total": len(policies)}


@router.put(f"{IAM}/users/{{user_id}}/policies/{{policy_id}}", response_model=UserOut, summary="attach_iam_user_policy")
async def attach_iam_user_policy(
    user_id: str, policy_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return user_view(await store.attach_policy(principal.tenant_id, user_id, policy_id))


@router.delete(
    f"{IAM}/users/{{user_id}}/policies/{{policy_id}}", response_model=UserOut, summary="detach_iam_user_policy"
)
async def detach_iam_user_policy(
    user_id: str, policy_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return user_view(await store.detach_policy(principal.tenant_id, user_id, policy_id))


@router.get(f"{IAM}/policies", response_model=PolicyList, summary="list_iam_policies")
async def list_iam_policies(
    policy_type: str | None = Query(None, alias="type", description="system | custom (default: both)"),
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return await list_policies(store, principal.tenant_id, policy_type)


@router.post(f"{IAM}/policies", status_code=201, response_model=PolicyOut, summary="create_iam_policy")
async def create_iam_policy(
    body: CreatePolicyBody, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await create_policy(store, principal.tenant_id, body)


@router.get(f"{IAM}/policies/{{policy_id}}", response_model=PolicyOut, summary="show_iam_policy")
async def show_iam_policy(
    policy_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> dict[str, Any]:
    return await store.get_policy(principal.tenant_id, policy_id)


@router.put(f"{IAM}/policies/{{policy_id}}", response_model=PolicyOut, summary="update_iam_policy")
async def update_iam_policy(
    policy_id: str,
    body: UpdatePolicyBody,
    principal: Principal = Depends(get_principal),
    store: IamStore = Depends(store_of),
) -> dict[str, Any]:
    return await update_policy(store, principal.tenant_id, policy_id, body)


@router.delete(f"{IAM}/policies/{{policy_id}}", status_code=204, summary="delete_iam_policy")
async def delete_iam_policy(
    policy_id: str, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> Response:
    await store.delete_policy(principal.tenant_id, policy_id)
    return Response(status_code=204)


@router.get(f"{IAM}/actions", response_model=ActionList, summary="list_iam_actions")
async def list_iam_actions() -> dict[str, Any]:
    return {
        "actions": [
            {
                "operation": e.operation,
                "action": e.action,
                "product": e.product.value,
                "kind": e.kind.value,
                "description": e.description,
            }
            for e in ACTIONS.values()
        ]
    }


@router.put(f"{IAM}/account/password", status_code=204, summary="update_iam_account_password")
async def update_iam_account_password(
    body: PasswordBody, principal: Principal = Depends(get_principal), store: IamStore = Depends(store_of)
) -> Response:
    if not principal.is_root:  # also refused by the authorization step (ROOT_ONLY_OPERATIONS)
        raise fail(codes.FORBIDDEN, "only the main account may change its password")
    await store.set_account_password(principal.tenant_id, body.password)
    return Response(status_code=204)
