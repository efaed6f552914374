"""The internal HTTP API of billing (used by the gateway and the demo; not exposed to tenants directly).

- ``POST /internal/tenants/{tenant_id}/packages``   buy a quota package (idempotent with ``package_id``)
- ``GET  /internal/tenants/{tenant_id}/packages``   the tenant's packages
- ``GET  /internal/tenants/{tenant_id}/summary``    per product: charged, from packages, on demand, quota left
- ``GET  /internal/tenants/{tenant_id}/ledger``     charged units (``task_id``, ``product``, ``offset``, ``limit``)
- ``GET  /internal/tenants/{tenant_id}/settlements`` hourly settlements (``from``, ``to``: ISO 8601)

plus the ops routes ``/metrics``, ``/healthz``, ``/readyz``. Errors are ``{"error_code", "error_msg"}``:
``KM.00000400`` (400, invalid input), ``KM.00000404`` (404), ``KM.00000409`` (409, package id reused with other
terms), ``KM.00000500`` (500).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from magpie_billing.clock import Clock, floor_hour, iso, utcnow
from magpie_billing.products import Product
from magpie_billing.store import BillingStore, PackageConflict, ledger_entry_json, settlement_json
from magpie_common.ids import new_id
from magpie_common.service import ops_routes

log = logging.getLogger(__name__)

INVALID = "KM.00000400"
NOT_FOUND = "KM.00000404"
CONFLICT = "KM.00000409"
INTERNAL = "KM.00000500"

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
MAX_QUANTITY = 1_000_000_000
MAX_VALIDITY_DAYS = 3650
MAX_LEDGER_LIMIT = 1000
MAX_SETTLEMENT_SPAN = timedelta(days=31)

TenantId = Annotated[str, Path(pattern=ID_PATTERN, description="the tenant (project) id")]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PackagePurchase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: Product
    quantity: int = Field(strict=True, gt=0, le=MAX_QUANTITY)
    validity_days: int = Field(default=365, strict=True, gt=0, le=MAX_VALIDITY_DAYS)
    package_id: str | None = Field(default=None, pattern=ID_PATTERN)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "error_msg": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, INVALID, f"{name}: not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def create_app(
    store: BillingStore,
    *,
    readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    app = FastAPI(title="Magpie billing (internal)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, INVALID, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: INVALID, 404: NOT_FOUND, 409: CONFLICT}.get(exc.status_code, f"KM.00000{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
        return error_response(500, INTERNAL, "internal error")

    @app.post("/internal/tenants/{tenant_id}/packages")
    async def buy_package(tenant_id: TenantId, purchase: PackagePurchase) -> JSONResponse:
        now = clock()
        try:
            package, created = await store.add_package(
                tenant_id,
                purchase.product,
                purchase.quantity,
                package_id=purchase.package_id or new_id("pkg_"),
                valid_from=now,
                validity=timedelta(days=purchase.validity_days),
                created_at=now,
            )
        except PackageConflict as exc:
            raise ApiError(409, CONFLICT, str(exc)) from None
        return JSONResponse(package.to_json(now), status_code=201 if created else 200)

    @app.get("/internal/tenants/{tenant_id}/packages")
    async def list_packages(tenant_id: TenantId) -> dict[str, Any]:
        now = clock()
        packages = await store.list_packages(tenant_id)
        return {"tenant_id": tenant_id, "packages": [p.to_json(now) for p in packages]}

    @app.get("/internal/tenants/{tenant_id}/summary")
    async def summary(tenant_id: TenantId) -> dict[str, Any]:
        now = clock()
        rows = await store.summary(tenant_id, now)
        return {"tenant_id": tenant_id, "as_of": iso(now), "products": [row.to_json() for row in rows]}

    @app.get("/internal/tenants/{tenant_id}/ledger")
    async def ledger(
        tenant_id: TenantId,
        task_id: Annotated[str | None, Query(max_length=128)] = None,
        product: Product | None = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LEDGER_LIMIT)] = 100,
    ) -> dict[str, Any]:
        total, docs = await store.ledger_page(tenant_id, task_id=task_id, product=product, offset=offset, limit=limit)
        return {
            "tenant_id": tenant_id,
            "total": total,
            "offset": offset,
            "limit": limit,
            "entries": [ledger_entry_json(doc) for doc in docs],
        }

    @app.get("/internal/tenants/{tenant_id}/settlements")
    async def settlements(
        tenant_id: TenantId,
        start: Annotated[str | None, Query(alias="from")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
    ) -> dict[str, Any]:
        now = clock()
        end_at = _parse_time("to", end) if end else floor_hour(now) + timedelta(hours=1)
        start_at = _parse_time("from", start) if start else end_at - timedelta(days=1)
        if start_at >= end_at:
            raise ApiError(400, INVALID, "from must be before to")
        if end_at - start_at > MAX_SETTLEMENT_SPAN:
            raise ApiError(400, INVALID, f"at most {MAX_SETTLEMENT_SPAN.days} days per query")
        rows = await store.settlement_rows(tenant_id, start_at, end_at)
        watermark = await store.watermark()
        return {
            "tenant_id": tenant_id,
            "from": iso(start_at),
            "to": iso(end_at),
            "settled_through": iso(watermark) if watermark else None,
            "settlements": [settlement_json(row) for row in rows],
        }

    if readiness is not None:
        app.router.routes.extend(ops_routes(readiness))
    return app
