"""A simulated vendor capability service over HTTP: :class:`providers.SimulatedProvider` on a real socket.

``python -m magpie_number_resolver.vendor_sim`` serves it (``MAGPIE_NR_SIM_HOST`` / ``MAGPIE_NR_SIM_PORT``, default
127.0.0.1:18093; hit rate, latency and seed from ``MAGPIE_NR_SIM_HIT_RATE``, ``MAGPIE_NR_SIM_LATENCY_MS``,
``MAGPIE_NR_SIM_SEED``). Point the resolver at it with ``MAGPIE_NR_PROVIDER=http`` and
``MAGPIE_NR_PROVIDER_URL=http://127.0.0.1:18093/v1/devices/lookup``.

- ``POST /v1/devices/lookup`` ``{"numbers": ["8613800138000", ...]}`` (1..1000 msisdns) -> 200
  ``{"devices": {"8613800138000": {brand, model, os_name, os_version, app_version, android_version,
  plugin_version, quick_app_engine_version, smart_service_switch, rich_media_switch} | null}}``; the latency is
  applied once per call. Bad input -> 400 ``{"error_code": "KM.00000400", "error_msg"}``.
- ``GET /v1/stats`` -> ``{"calls", "numbers"}`` (what it was asked, for tests and demos); ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from magpie_common.config import env_float, env_int, env_str
from magpie_common.logs import configure_logging
from magpie_common.service import http_server
from magpie_number_resolver.providers import MAX_LOOKUP_NUMBERS, SimulatedProvider, profile_json

log = logging.getLogger(__name__)

DEFAULT_PORT = 18093


def bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error_code": "KM.00000400", "error_msg": message}, status_code=400)


def create_app(provider: SimulatedProvider) -> FastAPI:
    app = FastAPI(title="magpie simulated vendor capability service", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/devices/lookup")
    async def lookup(request: Request) -> Response:
        try:
            body: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return bad_request(f"the body is not valid JSON: {exc}")
        numbers = body.get("numbers") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) and n for n in numbers):
            return bad_request("numbers must be a non-empty list of msisdns")
        if len(numbers) > MAX_LOOKUP_NUMBERS:
            return bad_request(f"at most {MAX_LOOKUP_NUMBERS} numbers per call")
        answer = await provider.lookup(numbers)
        devices = {number: None if profile is None else profile_json(profile) for number, profile in answer.items()}
        return JSONResponse({"devices": devices})

    @app.get("/v1/stats")
    async def stats() -> Response:
        return JSONResponse({"calls": provider.calls, "numbers": provider.numbers_asked})

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    return app


def provider_from_env() -> SimulatedProvider:
    return SimulatedProvider(
        hit_rate=env_float("MAGPIE_NR_SIM_HIT_RATE", 0.5),
        latency_ms=env_float("MAGPIE_NR_SIM_LATENCY_MS", 20.0),
        seed=env_str("MAGPIE_NR_SIM_SEED", "magpie"),
    )


def main() -> None:
    configure_logging("vendor-sim", env_str("LOG_LEVEL", "INFO"))
    host = env_str("MAGPIE_NR_SIM_HOST", "127.0.0.1")
    port = env_int("MAGPIE_NR_SIM_PORT", DEFAULT_PORT)
    server = http_server(create_app(provider_from_env()), host, port)
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
