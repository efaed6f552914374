"""Authorization of every authenticated request: ``AuthorizationMiddleware`` (installed by ``create_app`` between
the signature check and the ``Idempotency-Key`` handling) backed by the FastAPI dependency ``authorize`` (installed
on the whole application).

The middleware resolves the route the router will choose (the first route that fully matches, in the router's
order) and decides before the request goes further, so a refused request is never remembered under its
``Idempotency-Key`` and can never be answered from another caller's stored answer; its body is not even parsed.
The dependency runs after routing with ``request.scope["route"]`` and re-checks any route the middleware did not
authorize (fail closed should the two ever disagree); normally it returns at once.

The decision (``check``):

1. No principal on the request: the route is one the signature middleware lets through unauthenticated (ops,
   docs, ``/internal/...`` with its own admin token, ``POST /v3/auth/tokens`` with a password): nothing to do.
2. The route's ``summary`` is in ``PUBLIC_OPERATIONS``: allowed to every authenticated caller.
3. The main account (``principal.is_root``): allowed everything.
4. A sub-user: the action of the summary (``magpie_gateway.iam.actions.ACTIONS``) is evaluated against the
   policies attached to the user; a summary without an action (or in ``ROOT_ONLY_OPERATIONS``) is denied (fail
   closed). A deleted or disabled sub-user is refused with 401 ``APIGW.0301`` (its access keys and tokens stop
   working at once).

A denial is 403 ``KM.00000403`` whose message names the action and why (``... is denied by policy 'no-send'`` /
``... is not allowed by any policy attached to the user``). ``request.state.iam_action`` holds the action of the
request (None when the operation has none) for logs and handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from magpie_gateway import codes
from magpie_gateway.auth.principal import PRINCIPAL_STATE_KEY, Principal
from magpie_gateway.auth.tokens import TokenStore
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import ApiError, api_error_response
from magpie_gateway.iam.actions import PUBLIC_OPERATIONS, action_for
from magpie_gateway.iam.store import IamStore

try:  # FastAPI >= 0.16x keeps included routers nested; older versions flatten them into router.routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover
    iter_route_contexts = None

logger = logging.getLogger(__name__)

AUTHORIZED_ROUTE_KEY = "iam_route"
ACTION_KEY = "iam_action"


def iam_store(context: GatewayContext) -> IamStore:
    return IamStore(context.collections, context.credentials, TokenStore(context.collections.tokens))


async def check(context: GatewayContext, principal: Principal, summary: str | None, path: str) -> str | None:
    """Allow (returning the action, if the operation has one) or raise the 401/403 ``ApiError``."""
    entry = action_for(summary)
    if summary in PUBLIC_OPERATIONS or principal.is_root:
        return entry.action if entry is not None else None
    store = iam_store(context)
    if entry is None:
        await store.active_user(principal)
        logger.info(
            "iam denied tenant=%s user=%s operation=%s: no action", principal.tenant_id, principal.user_id, summary
        )
        raise fail(codes.FORBIDDEN, f"the operation {summary or path} is reserved to the main account")
    decision = await store.authorize(principal, entry.action)
    if not decision.allowed:
        logger.info(
            "iam denied tenant=%s user=%s action=%s: %s",
            principal.tenant_id,
            principal.user_id,
            entry.action,
            decision.reason,
        )
        raise fail(codes.FORBIDDEN, decision.reason)
    return entry.action


def _flat_routes(routes: Sequence[BaseRoute]) -> list[tuple[Any, BaseRoute]]:
    """(matcher, original route) for every route, in the router's order."""
    if iter_route_contexts is None:  # pragma: no cover
        return [(route, route) for route in routes]
    return [(context, context.original_route) for context in iter_route_contexts(routes)]


class AuthorizationMiddleware:
    def __init__(self, app: ASGIApp, *, router: Router, context: GatewayContext) -> None:
        self.app = app
        self._router = router
        self._context = context
        self._routes: list[tuple[Any, BaseRoute]] = []
        self._routes_of: list[BaseRoute] | None = None
        self._route_count = -1

    def _match(self, scope: Scope) -> BaseRoute | None:
        routes = self._router.routes
        if routes is not self._routes_of or len(routes) != self._route_count:
            self._routes = _flat_routes(routes)
            self._routes_of = routes
            self._route_count = len(routes)
        for matcher, original in self._routes:
            match, _ = matcher.matches(scope)
            if match == Match.FULL:
                return original
        return None  # no route, or only another method's (the router answers 404 / 405)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state", {}) if scope["type"] == "http" else {}
        principal = state.get(PRINCIPAL_STATE_KEY)
        if isinstance(principal, Principal):
            route = self._match(scope)
            if route is not None:
                try:
                    action = await check(self._context, principal, getattr(route, "summary", None), scope["path"])
                except ApiError as exc:
                    await api_error_response(exc, scope)(scope, receive, send)
                    return
                state[AUTHORIZED_ROUTE_KEY] = route
                state[ACTION_KEY] = action
        await self.app(scope, receive, send)


async def authorize(request: Request) -> None:
    """The dependency: authorizes what the middleware did not (normally nothing)."""
    principal = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if not isinstance(principal, Principal):
        return
    route = request.scope.get("route")
    if route is not None and getattr(request.state, AUTHORIZED_ROUTE_KEY, None) is route:
        return
    context: GatewayContext = request.app.state.gateway
    action = await check(context, principal, getattr(route, "summary", None), request.url.path)
    setattr(request.state, AUTHORIZED_ROUTE_KEY, route)
    setattr(request.state, ACTION_KEY, action)
