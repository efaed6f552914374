"""The public edge (FastAPI): redirect, H5 landing page and the handset's resolve call.

HTTP contract
-------------
``GET /{code}``       302 to the landing page (the recipient's http(s) custom URL, else ``/h5/{code}`` on this edge);
                      emits LinkEvent CLICKED. ``HEAD`` answers the same without an event. 404 unknown, 410 expired
                      (HTML when the client accepts text/html, else JSON).
``GET /h5/{code}``    200 HTML card page (template name, the recipient's params); 404 / 410 HTML pages.
``POST /v1/resolve``  body ``{"code": str, "handset": {"brand", "model", "os_name", "os_version", "app_version"}?}``
                      (all optional strings) -> 200
                      ``{"code", "tpl_id", "tpl_name", "params": {...}, "expires_at", "expires_at_ms"}``; emits
                      LinkEvent RESOLVED (billable only for the link's first resolution) and answers only once the
                      event is acknowledged by Kafka. 400 malformed body, 404 unknown, 410 expired, 503 when the
                      event could not be made durable (retry: the billable event keeps its id). A group link
                      (resolution task) answers 410 once its resolution budget is spent (until the budget is raised:
                      ``/internal/resolution-links/update``). The event carries the
                      handset (``handsets``: the body's fields first, then what the User-Agent says).
Errors are ``{"error_code", "error_msg"}`` (codes below). Ops routes: ``/metrics``, ``/healthz``, ``/readyz``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from magpie_common.ids import new_id, now_ms
from magpie_common.kafka import EventProducer
from magpie_common.service import ops_routes
from magpie_common.topics import LINK
from magpie_shortlink.codes import looks_like_code
from magpie_shortlink.events import clicked_event, event_key, resolved_event
from magpie_shortlink.handsets import describe as describe_handset
from magpie_shortlink.handsets import warm_up as warm_up_handsets
from magpie_shortlink.links import LinkRecord, iso_utc
from magpie_shortlink.metrics import CLICKS, EDGE_SECONDS, RESOLUTIONS
from magpie_shortlink.pages import PAGE_HEADERS, card_page, error_page
from magpie_shortlink.resolution_links import COUNTED_RESOLUTIONS, counted_resolution_event_id
from magpie_shortlink.store import LinkStore

log = logging.getLogger(__name__)

ERR_BAD_REQUEST = "KM.00000400"
ERR_NOT_FOUND = "KM.00000404"
ERR_METHOD = "KM.00000405"
ERR_GONE = "KM.00000410"
ERR_INTERNAL = "KM.00000500"
ERR_UNAVAILABLE = "KM.00000503"

MAX_RESOLVE_BODY = 16 * 1024
HANDSET_FIELDS = ("brand", "model", "os_name", "os_version", "app_version")
NO_STORE = {"Cache-Control": "no-store"}

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class EdgeError(Exception):
    def __init__(self, status: int, error_code: str, error_msg: str) -> None:
        super().__init__(error_msg)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg


def json_error(status: int, error_code: str, error_msg: str) -> JSONResponse:
    return JSONResponse({"error_code": error_code, "error_msg": error_msg}, status_code=status, headers=NO_STORE)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def negotiated_error(request: Request, error: EdgeError) -> Response:
    if wants_html(request):
        return HTMLResponse(error_page(error.status, error.error_msg), status_code=error.status, headers=PAGE_HEADERS)
    return json_error(error.status, error.error_code, error.error_msg)


def trace_id_of(request: Request) -> str:
    return request.headers.get("x-trace-id") or request.headers.get("x-request-id") or new_id("tr")


def parse_resolve_body(body: bytes) -> tuple[str, dict[str, str]]:
    """The code and the optional handset description of a resolve call, or EdgeError 400."""
    if len(body) > MAX_RESOLVE_BODY:
        raise EdgeError(400, ERR_BAD_REQUEST, f"request body larger than {MAX_RESOLVE_BODY} bytes")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EdgeError(400, ERR_BAD_REQUEST, f"malformed JSON body: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise EdgeError(400, ERR_BAD_REQUEST, "the body must be a JSON object")
    code = data.get("code")
    if not isinstance(code, str) or not code:
        raise EdgeError(400, ERR_BAD_REQUEST, "code is required and must be a non-empty string")
    handset = data.get("handset")
    if handset is None:
        return code, {}
    if not isinstance(handset, dict):
        raise EdgeError(400, ERR_BAD_REQUEST, "handset must be an object")
    described: dict[str, str] = {}
    for name in HANDSET_FIELDS:
        value = handset.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise EdgeError(400, ERR_BAD_REQUEST, f"handset.{name} must be a string")
        described[name] = value
    return code, described


def card_json(record: LinkRecord) -> dict[str, Any]:
    return {
        "code": record.code,
        "tpl_id": record.tpl_id,
        "tpl_name": record.tpl_name,
        "params": record.params,
        "expires_at": iso_utc(record.expires_at_ms),
        "expires_at_ms": record.expires_at_ms,
    }


class Edge:
    """The edge's behaviour, independent of the HTTP framework."""

    def __init__(self, store: LinkStore, producer: EventProducer) -> None:
        self.store = store
        self.producer = producer
        warm_up_handsets()  # load the User-Agent rules in the background before the first resolve call

    async def live_link(self, code: str) -> LinkRecord:
        """The link of ``code`` if it exists and has not expired, else EdgeError 404 / 410."""
        if not looks_like_code(code):
            raise EdgeError(404, ERR_NOT_FOUND, "unknown link")
        try:
            found = await self.store.lookup(code)
        except Exception as exc:
            log.exception("link lookup failed", extra={"code": code})
            raise EdgeError(503, ERR_UNAVAILABLE, "link storage unavailable, retry later") from exc
        if found.record is None:
            raise EdgeError(404, ERR_NOT_FOUND, "unknown link")
        if found.record.expired(now_ms()):
            raise EdgeError(410, ERR_GONE, "this link has expired")
        return found.record

    async def counted_resolution(self, record: LinkRecord) -> int:
        """The ordinal of this resolution of a group link, or EdgeError 410 (budget spent) / 503 (no counter)."""
        try:
            ordinal = await self.store.claim_counted_resolution(record)
        except RedisError as exc:
            log.warning("group resolution counter unavailable", extra={"code": record.code, "error": repr(exc)})
            raise EdgeError(503, ERR_UNAVAILABLE, "resolution could not be counted, retry later") from exc
        if ordinal is None:
            COUNTED_RESOLUTIONS.labels("refused").inc()
            raise EdgeError(410, ERR_GONE, "this link has reached its maximum number of resolutions")
        COUNTED_RESOLUTIONS.labels("counted").inc()
        return ordinal

    async def click(self, record: LinkRecord, *, user_agent: str, trace_id: str) -> None:
        """Record a browser click; a broker failure is logged but never keeps the user from the landing page."""
        CLICKS.inc()
        try:
            await self.producer.send(
                LINK, event_key(record), clicked_event(record, user_agent=user_agent, trace_id=trace_id)
            )
        except Exception:
            log.exception("click event not produced", extra={"code": record.code})

    async def resolve(
        self, code: str, *, user_agent: str, trace_id: str, handset: Mapping[str, str] | None = None
    ) -> LinkRecord:
        """Resolve a link for a handset: the billable event (first time) or a repeat event, durable before return.

        A group link (resolution task) counts its resolutions instead: each is billable, with its ordinal in the
        event id, until ``max_resolutions`` is reached (then 410)."""
        record = await self.live_link(code)
        described = await describe_handset(user_agent, handset or {})
        ordinal = await self.counted_resolution(record) if record.group else None
        first = True if ordinal is not None else await self.store.claim_resolution(record)
        event = resolved_event(record, first=first, user_agent=user_agent, trace_id=trace_id, handset=described)
        if ordinal is not None:
            event.meta.event_id = counted_resolution_event_id(code, ordinal)
        try:
            await self.producer.send(LINK, event_key(record), event)
        except Exception as exc:
            log.exception("resolution event not produced", extra={"code": code, "billable": first})
            if ordinal is not None:
                await self.store.return_counted_resolution(record, ordinal)
            raise EdgeError(503, ERR_UNAVAILABLE, "resolution could not be recorded, retry later") from exc
        if first and ordinal is None:
            await self.store.confirm_resolution(code)
        RESOLUTIONS.labels("first" if first else "repeat").inc()
        return record


def _endpoint_of(path: str) -> str | None:
    if path in ("/metrics", "/healthz", "/readyz") or path.startswith("/internal/"):
        return None
    if path == "/v1/resolve":
        return "resolve"
    if path.startswith("/h5/"):
        return "h5"
    if path.startswith("/v1/sa/"):  # service numbers (sa_edge)
        part = path[len("/v1/sa/") :].split("/", 1)[0]
        return "sa_" + part if part in ("profile", "clicks", "media") else "sa_other"
    return "redirect"


class LatencyMiddleware:
    """Observes every edge request (not the ops routes) in the latency histogram, by endpoint and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _endpoint_of(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            EDGE_SECONDS.labels(endpoint, str(status)).observe(time.perf_counter() - started)


def create_app(edge: Edge, readiness: Readiness) -> FastAPI:
    app = FastAPI(title="Magpie shortlink edge", docs_url=None, redoc_url=None, openapi_url=None)
    # The ops routes first: they must win over the catch-all /{code}.
    app.router.routes.extend(ops_routes(readiness))
    app.add_middleware(LatencyMiddleware)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return json_error(405, ERR_METHOD, "method not allowed")
        if exc.status_code == 404:
            return negotiated_error(request, EdgeError(404, ERR_NOT_FOUND, "not found"))
        return json_error(exc.status_code, ERR_BAD_REQUEST, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled edge error", extra={"path": request.url.path})
        return json_error(500, ERR_INTERNAL, "internal error")

    @app.post("/v1/resolve")
    async def resolve(request: Request) -> Response:
        try:
            code, handset = parse_resolve_body(await request.body())
            record = await edge.resolve(
                code, user_agent=request.headers.get("user-agent", ""), trace_id=trace_id_of(request), handset=handset
            )
        except EdgeError as error:
            return json_error(error.status, error.error_code, error.error_msg)
        return JSONResponse(card_json(record), headers=NO_STORE)

    @app.get("/h5/{code}")
    async def h5(request: Request, code: str) -> Response:
        try:
            record = await edge.live_link(code)
        except EdgeError as error:
            return HTMLResponse(
                error_page(error.status, error.error_msg), status_code=error.status, headers=PAGE_HEADERS
            )
        return HTMLResponse(card_page(record), headers=PAGE_HEADERS)

    @app.api_route("/{code}", methods=["GET", "HEAD"])
    async def follow(request: Request, code: str) -> Response:
        try:
            record = await edge.live_link(code)
        except EdgeError as error:
            return negotiated_error(request, error)
        if request.method == "GET":
            await edge.click(record, user_agent=request.headers.get("user-agent", ""), trace_id=trace_id_of(request))
        return RedirectResponse(record.target_url, status_code=302, headers=NO_STORE)

    return app
