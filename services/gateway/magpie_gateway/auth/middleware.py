"""ASGI middleware authenticating Huawei Cloud SDK AK/SK (``SDK-HMAC-SHA256``) signed requests.

On success the body has been spooled once as it arrived (``body_spool``: a temporary file, hashed incrementally for
the payload hash, never joined in memory), is replayed to the application unchanged (or read from the spool by a
route that parses it incrementally), and ``request.state.principal`` holds a ``Principal``. On failure the
middleware answers itself with the KooMessage error body and an ``X-Request-Id`` header:

====  =============  ================================================================================
HTTP  error_code     error_msg (after ``Incorrect IAM authentication information: ``)
====  =============  ================================================================================
401   APIGW.0301     ``Authorization header is missing`` / ``unsupported signing algorithm ...`` /
                     other malformed-header reasons (``MalformedAuthorizationError``)
401   APIGW.0301     ``X-Sdk-Date header is missing`` / ``X-Sdk-Date must look like ...``
401   APIGW.0301     ``X-Sdk-Date is more than 15 minutes away from the server time`` (clock skew)
401   APIGW.0301     ``verify aksk signature fail`` (wrong secret, tampered path/query/headers/body)
401   APIGW.0301     ``access key not found`` / ``access key is disabled``
401   APIGW.0301     ``request has already been used`` (replayed signature)
413   KM.00000413    ``Request body too large`` (body above ``max_body_bytes``, or its path's ``body_limits``)
====  =============  ================================================================================

All authentication failures share APIGW.0301, like Huawei Cloud's API gateway; the message tells which check
failed. Paths in ``exempt_paths`` (health checks) or under one of ``exempt_prefixes`` (``/internal/``) are passed
through unauthenticated. Paths in ``optional_paths`` (``POST /v3/auth/tokens`` with a password) are passed through
unauthenticated when the request carries neither ``Authorization`` nor ``X-Auth-Token``, and authenticated
otherwise.

Token authentication
--------------------
A request carrying ``X-Auth-Token`` and no ``Authorization`` is authenticated by the token instead of a
signature (see ``magpie_gateway.auth.tokens``); the principal then has ``auth_method="token"`` and no access key.
There is no date or replay check for tokens (they are bearer credentials: use TLS). A request with both headers
is authenticated by its signature alone (the token is ignored, valid or not): the signature is the stronger,
request-bound credential, and clients that always add a token header keep working when they also sign.

====  =============  ================================================================================
401   APIGW.0301     ``the token is invalid or has been revoked`` (unknown token)
401   APIGW.0301     ``the token has expired`` (older than 24 hours)
401   APIGW.0301     ``X-Auth-Token is repeated``
====  =============  ================================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from magpie_gateway.auth.body_spool import (
    BodySpool,
    BodyTooLarge,
    ClientDisconnected,
    attach,
    replaying_receive,
    spool_body,
)
from magpie_gateway.auth.principal import PRINCIPAL_STATE_KEY, Credential, CredentialLookup, Principal
from magpie_gateway.auth.replay import ReplayStore
from magpie_gateway.auth.signature import (
    DEFAULT_MAX_SKEW,
    AuthorizationHeader,
    BodyDigest,
    MalformedAuthorizationError,
    SignatureError,
    normalize_headers,
    parse_authorization,
    verify,
)
from magpie_gateway.auth.tokens import TokenLookup
from magpie_gateway.errors import AUTH_FAILED, REQUEST_TOO_LARGE, ensure_request_id, error_response

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
PROJECT_ID_HEADER = "x-project-id"
TOKEN_HEADER = "x-auth-token"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return quote(scope.get("root_path", "") + scope["path"], safe="/~")


class SignatureAuthMiddleware:
    """Authenticate every HTTP request against ``lookup`` (see module docstring for the error responses)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        lookup: CredentialLookup,
        replay_store: ReplayStore | None = None,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        exempt_paths: Collection[str] = (),
        exempt_prefixes: Collection[str] = (),
        optional_paths: Collection[str] = (),
        token_lookup: TokenLookup | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_limits: Mapping[str, int] | None = None,
        allow_unsigned_payload: bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.app = app
        self._lookup = lookup
        self._replay_store = replay_store
        self._max_skew = max_skew
        self._exempt_paths = frozenset(exempt_paths)
        self._exempt_prefixes = tuple(exempt_prefixes)
        self._optional_paths = frozenset(optional_paths)
        self._token_lookup = token_lookup
        self._max_body_bytes = max_body_bytes
        self._body_limits = dict(body_limits or {})
        self._allow_unsigned_payload = allow_unsigned_payload
        self._clock = clock

    def _exempt(self, path: str) -> bool:
        return path in self._exempt_paths or any(path.startswith(prefix) for prefix in self._exempt_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)

        async def reject(reason: str, access_key: str | None = None) -> None:
            logger.info("authentication failed request_id=%s access_key=%s reason=%s", request_id, access_key, reason)
            response = error_response(
                AUTH_FAILED.http_status, AUTH_FAILED.code, f"{AUTH_FAILED.message}: {reason}", request_id
            )
            await response(scope, receive, send)

        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        normalized = normalize_headers(headers)
        authorization_values = normalized.get("authorization", [])
        token_values = normalized.get(TOKEN_HEADER, [])
        if not authorization_values and not token_values and scope["path"] in self._optional_paths:
            await self.app(scope, receive, send)
            return
        if token_values and not authorization_values:
            await self._token(scope, receive, send, token_values, normalized, reject, request_id)
            return
        try:
            if len(authorization_values) > 1:
                raise MalformedAuthorizationError("Authorization header is repeated")
            authorization = parse_authorization(authorization_values[0] if authorization_values else None)
        except SignatureError as exc:
            await reject(exc.reason)
            return

        credential = await self._lookup(authorization.access_key)
        if credential is None:
            await reject("access key not found", authorization.access_key)
            return
        if not credential.enabled:
            await reject("access key is disabled", authorization.access_key)
            return

        declared_length = normalized.get("content-length", ["0"])[0]
        try:
            spool = await self._read_limited_body(scope, declared_length, receive)
        except BodyTooLarge:
            await self._too_large(scope, receive, send, request_id)
            return
        except ClientDisconnected:
            return
        try:
            await self._signed(scope, receive, send, spool, authorization, credential, headers, normalized, reject)
        finally:
            spool.close()

    async def _signed(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        spool: BodySpool,
        authorization: AuthorizationHeader,
        credential: Credential,
        headers: list[tuple[bytes, bytes]],
        normalized: dict[str, list[str]],
        reject: Callable[[str, str | None], Awaitable[None]],
    ) -> None:
        try:
            verify(
                scope["method"],
                _raw_path(scope),
                scope.get("query_string", b"").decode("latin-1"),
                headers,
                BodyDigest(spool.size, spool.sha256_hex()),
                credential.secret_key,
                authorization=authorization,
                now=self._clock(),
                max_skew=self._max_skew,
                allow_unsigned_payload=self._allow_unsigned_payload,
            )
        except SignatureError as exc:
            await reject(exc.reason, authorization.access_key)
            return

        if self._replay_store is not None and not await self._replay_store.claim(
            authorization.access_key, authorization.signature
        ):
            await reject("request has already been used", authorization.access_key)
            return

        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = Principal(
            access_key=credential.access_key,
            tenant_id=credential.tenant_id,
            user_id=credential.user_id,
            user_name=credential.user_name,
            project_id=_signed_project_id(normalized, authorization),
        )
        attach(scope, spool)
        await self.app(scope, replaying_receive(spool, receive), send)

    async def _token(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        token_values: list[str],
        normalized: dict[str, list[str]],
        reject: Callable[[str], Awaitable[None]],
        request_id: str,
    ) -> None:
        if len(token_values) > 1:
            await reject("X-Auth-Token is repeated")
            return
        if self._token_lookup is None:
            await reject("token authentication is not enabled; sign the request with AK/SK")
            return
        session = await self._token_lookup(token_values[0].strip())
        if session is None:
            await reject("the token is invalid or has been revoked")
            return
        if session.expires_at <= self._clock():
            await reject("the token has expired")
            return
        try:
            spool = await self._read_limited_body(scope, normalized.get("content-length", ["0"])[0], receive)
        except BodyTooLarge:
            await self._too_large(scope, receive, send, request_id)
            return
        except ClientDisconnected:
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = Principal(
            access_key="",
            tenant_id=session.tenant_id,
            user_id=session.user_id,
            user_name=None if session.is_root else session.user_name,
            project_id=None,
            auth_method="token",
        )
        attach(scope, spool)
        try:
            await self.app(scope, replaying_receive(spool, receive), send)
        finally:
            spool.close()

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        response = error_response(
            REQUEST_TOO_LARGE.http_status,
            REQUEST_TOO_LARGE.code,
            f"{REQUEST_TOO_LARGE.message}: at most {self._limit(scope)} bytes",
            request_id,
        )
        await response(scope, receive, send)

    def _limit(self, scope: Scope) -> int:
        return self._body_limits.get(scope["path"], self._max_body_bytes)

    async def _read_limited_body(self, scope: Scope, declared_length: str, receive: Receive) -> BodySpool:
        limit = self._limit(scope)
        if declared_length.strip().isdigit() and int(declared_length) > limit:
            raise BodyTooLarge
        return await spool_body(receive, limit)


def _signed_project_id(headers: dict[str, list[str]], authorization: AuthorizationHeader) -> str | None:
    values = headers.get(PROJECT_ID_HEADER)
    if PROJECT_ID_HEADER not in authorization.signed_headers or not values:
        return None
    return values[0].strip() or None
