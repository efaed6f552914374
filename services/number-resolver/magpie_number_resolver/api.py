"""The internal HTTP API of the number resolver (called by the gateway and by operators, never by the public).

Errors answer ``{"error_code": "...", "error_msg": "..."}`` like the gateway: KM.00000400 invalid parameter,
KM.90016414 empty input, KM.90016301 too many mobiles (> 100), KM.00000404 no such record, KM.00000413 upload too
large, KM.00000415 not a CSV upload, KM.00000503 registry not loaded into Redis yet or MongoDB/Redis unreachable
(retry; ``Retry-After``), KM.00000500 anything else (logged, never detailed).

Routes
- ``POST /internal/devices/import``      CSV body (see ``importers``) -> {"imported", "rejected", ...}
- ``PUT /internal/devices/{mobile}``     JSON device fields -> the stored record
- ``GET /internal/devices/{mobile}``     -> the stored record | 404
- ``DELETE /internal/devices/{mobile}``  -> 204 | 404
- ``POST /internal/portability/import``  CSV ``mobile,carrier`` -> import report
- ``PUT /internal/portability/{mobile}`` {"carrier": "CUCC"} -> the override
- ``GET|DELETE /internal/portability/{mobile}``
- ``POST /internal/capabilities/check``  {"mobiles": [...<=100], "vendors": [...], "fallback": "SMS",
                                         "encryption_alg": "NONE" | "SHA1"}
                                         -> {"results": [{mobile, msisdn, supported, route, reason, vendor, carrier,
                                         buttons}]}; "vendors" omitted or null = any vendor, [] = none approved.
                                         With SHA1 each mobile is the hex SHA1 of the msisdn (``8613800138000``),
                                         looked up in the registry's SHA1 index; ``mobile`` echoes the hash as sent
                                         and a hash of no registered number is unsupported (UNKNOWN_DEVICE)
- ``POST /internal/registry/reload``     refill Redis from MongoDB (operator action) -> counts
- ``GET /metrics``, ``/healthz``, ``/readyz``
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from magpie.v1 import common_pb2
from magpie_common.kafka import is_transient
from magpie_common.service import ops_routes
from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.classifier import UNKNOWN_DEVICE, Capability, Classifier, NumberResult, vendor_set
from magpie_number_resolver.config import CHECK_MAX_MOBILES, ResolverConfig
from magpie_number_resolver.csv_import import CsvRows, UploadError, charset_of, decode, read_limited
from magpie_number_resolver.devices import ALL_FIELDS, FieldError, build_profile
from magpie_number_resolver.hotcache import HotCache, RegistryNotReady
from magpie_number_resolver.importers import (
    DEVICE_COLUMNS,
    DEVICE_OPTIONAL,
    PORT_COLUMNS,
    import_devices,
    import_portability,
    mobile_of,
)
from magpie_number_resolver.metrics import CAPABILITY_CHECKS
from magpie_number_resolver.portability import PortabilityStore, parse_carrier
from magpie_number_resolver.registry import DeviceRegistry
from magpie_number_resolver.worker import FALLBACK_ROUTES, ROUTE_NAMES

log = logging.getLogger(__name__)

FALLBACK_NAMES = {"SMS": common_pb2.FALLBACK_SMS, "SKIP": common_pb2.FALLBACK_SKIP, "VMS": common_pb2.FALLBACK_VMS}
SHA1_HEX = re.compile(r"[0-9a-f]{40}")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error_code": code, "error_msg": message}, status_code=status, headers=headers)


def invalid(message: str) -> ApiError:
    return ApiError(400, "KM.00000400", message)


def not_ready() -> ApiError:
    return ApiError(
        503, "KM.00000503", "the device registry is being loaded into Redis; retry shortly", {"Retry-After": "2"}
    )


async def json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        raise ApiError(400, "KM.90016414", "the request body is empty")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise invalid("the body must be a JSON object")
    return value


def create_app(
    *,
    config: ResolverConfig,
    registry: DeviceRegistry,
    portability: PortabilityStore,
    classifier: Classifier,
    hot: HotCache,
    segments: SegmentTable,
    readiness: Callable[[], Awaitable[dict[str, bool]]],
) -> FastAPI:
    app = FastAPI(title="magpie number-resolver (internal)", docs_url=None, redoc_url=None, openapi_url=None)
    for route in ops_routes(readiness):
        app.router.routes.append(route)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RegistryNotReady)
    async def registry_not_ready(_: Request, __: RegistryNotReady) -> Response:
        error = not_ready()
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return error_response(400, "KM.00000400", f"invalid request: {exc.errors()[:3]}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if is_transient(exc):
            log.warning("infrastructure unavailable", extra={"path": request.url.path, "error": repr(exc)})
            return error_response(503, "KM.00000503", "MongoDB or Redis is unavailable; retry", {"Retry-After": "5"})
        log.exception("internal error", extra={"path": request.url.path})
        return error_response(500, "KM.00000500", "internal error (logged)")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "KM.00000404", 405: "KM.00000405"}.get(exc.status_code, f"KM.00000{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    def msisdn_of(mobile: str) -> str:
        try:
            return mobile_of(mobile, segments)
        except FieldError as exc:
            raise invalid(str(exc)) from None

    async def csv_rows(request: Request, required: tuple[str, ...], optional: tuple[str, ...]) -> CsvRows:
        charset = charset_of(request.headers.get("content-type"))
        body = await read_limited(request.stream(), request.headers.get("content-length"), config.max_upload_bytes)
        if not body.strip():
            raise UploadError(400, "KM.90016414", "the upload is empty (expected a header row)")
        rows = CsvRows(decode(body, charset), required, optional)
        rows.header()
        return rows

    # --- devices ---------------------------------------------------------------------------------------------

    @app.post("/internal/devices/import")
    async def import_device_csv(request: Request) -> Response:
        rows = await csv_rows(request, DEVICE_COLUMNS, DEVICE_OPTIONAL)
        report = await import_devices(rows, registry, segments, chunk=config.import_chunk)
        log.info("device import", extra={"imported": report.imported, "rejected": report.rejected_count})
        return JSONResponse(report.as_json())

    @app.put("/internal/devices/{mobile}")
    async def put_device(mobile: str, request: Request) -> Response:
        msisdn = msisdn_of(mobile)
        body = await json_object(request)
        unknown = sorted(set(body) - set(ALL_FIELDS) - {"mobile", "msisdn"})
        if unknown:
            raise invalid(f"unknown field(s) {', '.join(unknown)}; fields are {', '.join(ALL_FIELDS)}")
        try:
            profile = build_profile(body)
        except FieldError as exc:
            raise invalid(str(exc)) from None
        await registry.upsert_many([(msisdn, profile)])
        record = await registry.get(msisdn)
        assert record is not None
        return JSONResponse(record.as_json())

    @app.get("/internal/devices/{mobile}")
    async def get_device(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        record = await registry.get(msisdn)
        if record is None:
            raise ApiError(404, "KM.00000404", f"no device record for {msisdn}")
        return JSONResponse(record.as_json())

    @app.delete("/internal/devices/{mobile}")
    async def delete_device(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        if not await registry.delete(msisdn):
            raise ApiError(404, "KM.00000404", f"no device record for {msisdn}")
        return Response(status_code=204)

    # --- portability -----------------------------------------------------------------------------------------

    @app.post("/internal/portability/import")
    async def import_portability_csv(request: Request) -> Response:
        rows = await csv_rows(request, PORT_COLUMNS, ())
        report = await import_portability(rows, portability, segments, chunk=config.import_chunk)
        log.info("portability import", extra={"imported": report.imported, "rejected": report.rejected_count})
        return JSONResponse(report.as_json())

    @app.put("/internal/portability/{mobile}")
    async def put_portability(mobile: str, request: Request) -> Response:
        msisdn = msisdn_of(mobile)
        body = await json_object(request)
        try:
            carrier = parse_carrier(body.get("carrier"), segments)
        except FieldError as exc:
            raise invalid(str(exc)) from None
        await portability.upsert_many([(msisdn, carrier)])
        return JSONResponse(await portability.get(msisdn))

    @app.get("/internal/portability/{mobile}")
    async def get_portability(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        found = await portability.get(msisdn)
        if found is None:
            raise ApiError(404, "KM.00000404", f"no portability override for {msisdn}")
        return JSONResponse(found)

    @app.delete("/internal/portability/{mobile}")
    async def delete_portability(mobile: str) -> Response:
        msisdn = msisdn_of(mobile)
        if not await portability.delete(msisdn):
            raise ApiError(404, "KM.00000404", f"no portability override for {msisdn}")
        return Response(status_code=204)

    # --- capability check ------------------------------------------------------------------------------------

    async def classify_hashed(hashes: list[str], approved: frozenset[str] | None) -> list[NumberResult]:
        """Results of SHA1-hashed numbers: each hash mapped to its registered msisdn, then classified as in the
        plain check; a hash of no registered number is an unknown device (valid shape, unsupported)."""
        keys = [h.strip().lower() for h in hashes]
        if not all(SHA1_HEX.fullmatch(k) for k in keys):
            raise invalid("with encryption_alg SHA1 every mobile must be a 40-character hex SHA1 digest")
        known = await registry.msisdns_of_sha1(keys)
        classified = await classifier.classify(list(dict.fromkeys(known.values())), approved) if known else []
        by_msisdn = dict(zip(dict.fromkeys(known.values()), classified, strict=True))
        unknown = NumberResult("", "", True, Capability(False, False, UNKNOWN_DEVICE, ""))
        return [by_msisdn[known[k]] if k in known else unknown for k in keys]

    @app.post("/internal/capabilities/check")
    async def check(request: Request) -> Response:
        body = await json_object(request)
        mobiles = body.get("mobiles")
        if mobiles is None or mobiles == []:
            raise ApiError(400, "KM.90016414", "mobiles is empty")
        if not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles):
            raise invalid("mobiles must be a list of strings")
        if len(mobiles) > CHECK_MAX_MOBILES:
            raise ApiError(
                400,
                "KM.90016301",
                f"{len(mobiles)} mobiles exceed the limit of {CHECK_MAX_MOBILES} per call; split them into batches",
            )
        vendors = body.get("vendors")
        if vendors is not None and (not isinstance(vendors, list) or not all(isinstance(v, str) for v in vendors)):
            raise invalid("vendors must be a list of vendor codes (HUAWEI, HONOR, XIAOMI, OPPO, VIVO, MEIZU, SAMSUNG)")
        fallback_name = body.get("fallback", "SMS")
        if not isinstance(fallback_name, str) or fallback_name.upper() not in FALLBACK_NAMES:
            raise invalid("fallback must be one of SMS, SKIP, VMS")
        fallback = FALLBACK_ROUTES[FALLBACK_NAMES[fallback_name.upper()]]
        approved = None if vendors is None else vendor_set(vendors)
        algorithm = body.get("encryption_alg") or "NONE"
        if not isinstance(algorithm, str) or algorithm.upper() not in ("NONE", "SHA1"):
            raise invalid("encryption_alg must be NONE or SHA1")
        if algorithm.upper() == "SHA1":
            results = await classify_hashed(mobiles, approved)
        else:
            results = await classifier.classify(mobiles, approved)
        CAPABILITY_CHECKS.inc(len(mobiles))
        answer = []
        for mobile, result in zip(mobiles, results, strict=True):
            capability = result.capability
            if not result.valid:
                route = common_pb2.ROUTE_INVALID
            elif capability.smart:
                route = common_pb2.ROUTE_SMART
            else:
                route = fallback
            answer.append(
                {
                    "mobile": mobile,
                    "msisdn": result.msisdn,
                    "supported": capability.smart,
                    "route": ROUTE_NAMES[route],
                    "reason": capability.reason,
                    "vendor": capability.vendor,
                    "carrier": result.carrier,
                    "buttons": capability.buttons,
                }
            )
        return JSONResponse({"results": answer})

    # --- operations ------------------------------------------------------------------------------------------

    @app.post("/internal/registry/reload")
    async def reload_registry() -> Response:
        counts = await hot.reload()
        return JSONResponse({"reloaded": counts})

    return app
