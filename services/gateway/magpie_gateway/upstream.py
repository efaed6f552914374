"""Calls from the gateway to the internal HTTP APIs of other Magpie services (number-resolver, shortlink).

The architecture's "small internal HTTP call" for the few questions that need an answer within the request
(a capability check, links minted for a resolution task). One JSON POST per call, a bounded timeout
(``MAGPIE_UPSTREAM_TIMEOUT_S``). Failures are told apart so the endpoints can answer precisely:

- the service is unreachable, times out, answers 5xx or something that is not JSON: :class:`UpstreamUnavailable`
  (the endpoint answers 503 ``KM.00000460``, the client retries);
- the service refuses the request with a 4xx ``{error_code, error_msg}``: :class:`UpstreamRefused` (a request the
  gateway should have refused itself; passed on as a 400 with the same code).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from magpie_gateway import codes
from magpie_gateway.errors import ApiError

log = logging.getLogger(__name__)


class UpstreamUnavailable(Exception):
    """The internal service could not give an answer (transport error, timeout, 5xx, malformed body)."""


class UpstreamRefused(Exception):
    """The internal service answered 4xx with a KooMessage-style error."""

    def __init__(self, status: int, error_code: str, error_msg: str) -> None:
        super().__init__(f"{status} {error_code}: {error_msg}")
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg

    def as_api_error(self) -> ApiError:
        return ApiError(400, self.error_code or "KM.00000400", self.error_msg)


async def post_json(
    base_url: str,
    path: str,
    body: dict[str, Any],
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    service: str,
) -> dict[str, Any]:
    """POST ``body`` to ``base_url + path`` and return the JSON object of a 2xx answer."""
    url = base_url.rstrip("/") + path
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json=body, headers=headers or {})
    except httpx.HTTPError as exc:
        log.warning("internal service unreachable", extra={"service": service, "url": url, "error": repr(exc)})
        raise UpstreamUnavailable(f"{service} unreachable: {exc!r}") from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 500 or not isinstance(payload, dict):
        log.warning(
            "internal service failed",
            extra={"service": service, "url": url, "status": response.status_code, "body": response.text[:300]},
        )
        raise UpstreamUnavailable(f"{service} answered {response.status_code}")
    if response.status_code >= 400:
        raise UpstreamRefused(
            response.status_code, str(payload.get("error_code", "")), str(payload.get("error_msg", response.text))
        )
    return payload


def unavailable(service: str) -> ApiError:
    return codes.fail(codes.UPSTREAM_UNAVAILABLE, f"the {service} service did not answer")
