"""The gateway's client of billing's internal HTTP API (the gateway never imports billing code).

``MAGPIE_BILLING_URL`` (default ``http://127.0.0.1:18095``, billing's default port) is read on every call, so a
deployment can point the gateway at billing without rebuilding it. Transport errors, timeouts (10 s) and 5xx
answers are KM.00000513 (503: retry); billing's 409 (a package id reused with other terms) is KM.00000409.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from magpie_common.config import env_str
from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.errors import ApiError

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:18095"
TIMEOUT_S = 10.0


def billing_url() -> str:
    return (env_str("MAGPIE_BILLING_URL", DEFAULT_URL) or DEFAULT_URL).rstrip("/")


class BillingClient:
    def __init__(self, base_url: str | None = None) -> None:
        self._base = (base_url or billing_url()).rstrip("/")

    async def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> Any:
        url = f"{self._base}{path}"
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
                response = await client.request(method, url, json=json)
        except httpx.HTTPError as exc:
            log.warning("billing unreachable", extra={"url": url, "error": repr(exc)})
            raise fail(codes.BILLING_UNAVAILABLE, f"billing did not answer ({type(exc).__name__})") from None
        if response.status_code == 409:
            raise ApiError.of(codes.IDEMPOTENCY_CONFLICT, f"{codes.IDEMPOTENCY_CONFLICT.message}: {_message(response)}")
        if response.status_code >= 300:
            log.error(
                "billing refused a request",
                extra={"url": url, "status": response.status_code, "body": response.text[:500]},
            )
            raise fail(codes.BILLING_UNAVAILABLE, f"billing answered {response.status_code}: {_message(response)}")
        return response.json()

    @staticmethod
    def _tenant(tenant_id: str) -> str:
        return f"/internal/tenants/{quote(tenant_id, safe='')}"

    async def buy(
        self, tenant_id: str, *, product: str, quantity: int, validity_days: int, package_id: str
    ) -> dict[str, Any]:
        """Create a package (idempotent with ``package_id``): billing's package JSON."""
        body = {"product": product, "quantity": quantity, "validity_days": validity_days, "package_id": package_id}
        result: dict[str, Any] = await self._call("POST", f"{self._tenant(tenant_id)}/packages", json=body)
        return result

    async def packages(self, tenant_id: str) -> list[dict[str, Any]]:
        result = await self._call("GET", f"{self._tenant(tenant_id)}/packages")
        return list(result.get("packages", []))

    async def summary(self, tenant_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{self._tenant(tenant_id)}/summary")
        return result


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error_msg") or response.text[:200])
    except ValueError:
        return response.text[:200]
