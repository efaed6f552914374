"""Authentication for the gateway: AK/SK (SDK-HMAC-SHA256) signature verification, replay protection, IAM tokens
(``X-Auth-Token``), and the ASGI middleware that puts the authenticated ``Principal`` on ``request.state``."""

from magpie_gateway.auth.middleware import SignatureAuthMiddleware
from magpie_gateway.auth.principal import Credential, CredentialLookup, Principal, get_principal
from magpie_gateway.auth.replay import MemoryReplayStore, RedisReplayStore, ReplayStore
from magpie_gateway.auth.signature import (
    AuthorizationHeader,
    ClockSkewError,
    InvalidDateError,
    MalformedAuthorizationError,
    MissingDateError,
    SignatureError,
    SignatureMismatchError,
    parse_authorization,
    verify,
)
from magpie_gateway.auth.tokens import TOKEN_TTL, TokenLookup, TokenSession, TokenStore

__all__ = [
    "TOKEN_TTL",
    "AuthorizationHeader",
    "ClockSkewError",
    "Credential",
    "CredentialLookup",
    "InvalidDateError",
    "MalformedAuthorizationError",
    "MemoryReplayStore",
    "MissingDateError",
    "Principal",
    "RedisReplayStore",
    "ReplayStore",
    "SignatureAuthMiddleware",
    "SignatureError",
    "SignatureMismatchError",
    "TokenLookup",
    "TokenSession",
    "TokenStore",
    "get_principal",
    "parse_authorization",
    "verify",
]
