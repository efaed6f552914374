"""HTTP client of the VMS channel (the carrier side; the simulator's ``/vms/v1`` interface documents the wire).

Every failure that is not the request's fault (connection refused or reset, timeout, HTTP 5xx, 429) raises
:class:`CarrierUnavailable`, a ``ConnectionError``: the consumer loop treats it as transient and retries the batch
(without end, shutdown-aware) instead of dead-lettering good data. Submits are idempotent per ``client_msg_id``
at the channel, so retrying a submit whose answer was lost sends nothing twice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from magpie.v1 import vms_pb2


class CarrierUnavailable(ConnectionError):
    """The channel could not be reached or failed; retry later."""


class CarrierRefused(Exception):
    """The channel refused a request as malformed (HTTP 4xx): a bug on one side, not worth retrying."""


class UnknownTemplate(Exception):
    """The channel does not know the template (or this revision of it): register it, then submit again."""


@dataclass(frozen=True)
class SubmitResult:
    client_msg_id: str
    accepted: bool
    msg_id: str = ""
    carrier: str = ""
    code: str = ""
    desc: str = ""


class VmsCarrierClient:
    def __init__(self, base_url: str, account: str, password: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url + "/vms/v1",
            auth=(account, password),
            timeout=httpx.Timeout(timeout_s),
            trust_env=False,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = await self.http.request(
                method,
                path,
                content=orjson.dumps(body) if body is not None else None,
                params=params,
                headers={"content-type": "application/json"} if body is not None else None,
            )
        except httpx.TransportError as exc:
            raise CarrierUnavailable(f"VMS channel {method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise CarrierUnavailable(f"VMS channel {method} {path}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code == 404 and payload.get("code") == "UNKNOWN_TEMPLATE":
            raise UnknownTemplate(payload.get("desc", ""))
        if response.status_code >= 400:
            raise CarrierRefused(f"VMS channel {method} {path}: HTTP {response.status_code} {payload}")
        return payload

    async def register(self, released: vms_pb2.VmsTemplateReleased, media: dict[str, bytes]) -> None:
        elements = []
        for e in released.elements:
            element: dict[str, Any] = {"frame": e.frame, "position": e.position, "type": e.type, "name": e.name}
            if e.type == "txt":
                element["text"] = e.text
            else:
                element["data"] = base64.b64encode(media[e.media_sha256]).decode()
            elements.append(element)
        body = {
            "revision": released.revision,
            "subject": released.title,
            "sign": released.sign,
            "carriers": list(released.carriers),
            "params": list(released.params),
            "elements": elements,
        }
        await self._call("PUT", f"/templates/{released.tpl_id}", body)

    async def submit(
        self, template_id: str, revision: int, expire_s: int, recipients: list[dict[str, Any]]
    ) -> list[SubmitResult]:
        body = {"template_id": template_id, "revision": revision, "expire_s": expire_s, "recipients": recipients}
        payload = await self._call("POST", "/submit", body)
        results = []
        for row in payload.get("results", []):
            results.append(
                SubmitResult(
                    client_msg_id=str(row.get("client_msg_id", "")),
                    accepted=row.get("status") == "accepted",
                    msg_id=str(row.get("msg_id", "")),
                    carrier=str(row.get("carrier", "") or ""),
                    code=str(row.get("code", "")),
                    desc=str(row.get("desc", "")),
                )
            )
        return results

    async def poll(self, max_items: int, lease_s: float) -> list[dict[str, Any]]:
        payload = await self._call("GET", "/notifications", params={"max": max_items, "lease_s": lease_s})
        notifications: list[dict[str, Any]] = payload.get("notifications", [])
        return notifications

    async def ack(self, ids: list[str]) -> None:
        if ids:
            await self._call("POST", "/notifications/ack", {"ids": ids})
