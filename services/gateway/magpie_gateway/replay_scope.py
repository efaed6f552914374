"""Which requests the replay check covers.

The SDK's ``X-Sdk-Date`` has one-second resolution and no nonce, so a client that polls (``list_aim_send_tasks``
every half second, say) sends byte-identical signed GETs; a replay store that claims every signature would
refuse the second one. Replaying a read gains an eavesdropper nothing it has not already seen, while replaying
a write (a send task) is what the check exists for. So by default only unsafe methods (POST, PUT, PATCH,
DELETE) are checked; ``MAGPIE_AUTH_REPLAY_CHECK_READS=1`` checks reads too.

``RequestMethodMiddleware`` (outside the signature middleware) records the method in a context variable that
``UnsafeMethodsReplayStore`` reads: the signature middleware's ``ReplayStore`` interface only sees the access
key and the signature.
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

from magpie_gateway.auth import ReplayStore

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_method: ContextVar[str] = ContextVar("magpie_gateway_request_method", default="")


class RequestMethodMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _method.set(str(scope.get("method", "")).upper())
        try:
            await self.app(scope, receive, send)
        finally:
            _method.reset(token)


class UnsafeMethodsReplayStore:
    """A ``ReplayStore`` that claims signatures of unsafe requests only (safe ones always pass)."""

    def __init__(self, inner: ReplayStore) -> None:
        self.inner = inner

    async def claim(self, access_key: str, signature: str) -> bool:
        if _method.get() in SAFE_METHODS:
            return True
        return await self.inner.claim(access_key, signature)
