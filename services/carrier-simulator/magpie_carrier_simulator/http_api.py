"""A tiny HTTP/1.1 server on asyncio streams: the simulator's inspection endpoints and its VMS channel.

Inspection: GET /healthz, /stats, /submissions?destination=&limit=, /messages?destination=&limit=, /duplicates,
/metrics. VMS channel (``magpie_carrier_simulator.vms``): ``/vms/v1/...`` with JSON bodies, HTTP Basic
authentication with a simulator account.

One request per connection (``Connection: close``), bodies by ``Content-Length`` (at most 8 MiB: a registered
template carries its media in base64); enough for curl, httpx, tests, the dispatcher and a Prometheus scrape, with
no web framework. The listings (/submissions, /messages: up to a million rows) are serialised in slices of
``_LIST_SLICE`` rows, yielding to the event loop between slices, so a listing never stalls the SMPP sessions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import logging
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from magpie_carrier_simulator.metrics import build_registry, render
from magpie_carrier_simulator.vms import DEFAULT_LEASE_S, MAX_LEASE_S, VmsChannel, VmsError

if TYPE_CHECKING:
    from magpie_carrier_simulator.simulator import CarrierSimulator

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 16_384
_MAX_BODY_BYTES = 8 * 1024 * 1024
_READ_TIMEOUT = 10.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}
_VMS_PREFIX = "/vms/v1/"
_LIST_SLICE = 2_000

Response = tuple[int, str, bytes, str]


class HttpApi:
    def __init__(self, simulator: CarrierSimulator) -> None:
        self._simulator = simulator
        self._registry = build_registry(simulator)
        self._server: asyncio.Server | None = None
        self.vms = VmsChannel(simulator.config)

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEADER_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.vms.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                status, content_type, body, method = await self._respond(head, reader)
            headers = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(headers.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, head: bytes, reader: asyncio.StreamReader) -> Response:
        lines = head.split(b"\r\n")
        try:
            method, target, _ = lines[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return self._json(400, {"error": "malformed request line"}, "GET")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            if url.path.startswith(_VMS_PREFIX):
                body = await self._read_body(headers, reader, method)
                if isinstance(body, tuple):
                    return body
                return self._vms(method, url.path[len(_VMS_PREFIX) :], query, headers, body)
            if method not in ("GET", "HEAD"):
                return self._json(405, {"error": f"method {method} not allowed"}, method)
            return await self._route(url.path, query, method)
        except Exception as exc:  # an inspection bug must not kill the simulator
            logger.exception("http handler failed")
            return self._json(500, {"error": repr(exc)}, method)

    async def _read_body(self, headers: dict[str, str], reader: asyncio.StreamReader, method: str) -> bytes | Response:
        if method in ("GET", "HEAD", "DELETE"):
            return b""
        length_text = headers.get("content-length")
        if length_text is None:
            return self._json(411, {"code": "LENGTH_REQUIRED", "desc": "Content-Length is required"}, method)
        try:
            length = int(length_text)
        except ValueError:
            return self._json(400, {"code": "INVALID_REQUEST", "desc": "bad Content-Length"}, method)
        if length < 0 or length > _MAX_BODY_BYTES:
            return self._json(413, {"code": "TOO_LARGE", "desc": f"bodies of at most {_MAX_BODY_BYTES} bytes"}, method)
        return await reader.readexactly(length) if length else b""

    # --- inspection ----------------------------------------------------------------------------------------------
    async def _route(self, path: str, query: dict[str, str], method: str) -> Response:
        sim = self._simulator
        if path == "/healthz":
            return self._json(200, {"status": "ok"}, method)
        if path == "/stats":
            return self._json(200, sim.stats(), method)
        if path in ("/submissions", "/messages"):
            limit: int | None = None
            if "limit" in query:
                try:
                    limit = int(query["limit"])
                except ValueError:
                    return self._json(400, {"error": "limit must be an integer"}, method)
            if path == "/messages":
                body = await _sliced_listing("messages", sim.log.iter_messages(query.get("destination"), limit))
            else:
                rows = (row.to_json() for row in sim.log.iter_list(query.get("destination"), limit))
                body = await _sliced_listing("submissions", rows)
            return 200, "application/json", body, method
        if path == "/duplicates":
            rows = sim.duplicates()
            return self._json(200, {"count": len(rows), "duplicates": rows}, method)
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, render(self._registry), method
        return self._json(404, {"error": f"no route {path}"}, method)

    # --- the VMS channel -----------------------------------------------------------------------------------------
    def _account(self, headers: dict[str, str]) -> str | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        expected = self._simulator.config.accounts.get(user)
        if not sep or expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def _vms(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes) -> Response:
        vms = self.vms
        if path == "stats" and method == "GET":
            return self._json(200, vms.stats(), method)
        if path == "messages" and method == "GET":
            try:
                limit = int(query["limit"]) if "limit" in query else None
            except ValueError:
                return self._json(400, {"code": "INVALID_REQUEST", "desc": "limit must be an integer"}, method)
            rows = vms.delivered(query.get("mobile"), limit)
            return self._json(200, {"count": len(rows), "messages": rows}, method)
        try:
            body: Any = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return self._json(400, {"code": "INVALID_REQUEST", "desc": "the body is not JSON"}, method)
        if not isinstance(body, dict):
            return self._json(400, {"code": "INVALID_REQUEST", "desc": "the body must be a JSON object"}, method)
        try:
            if path == "mo" and method == "POST":
                return self._json(200, vms.reply(str(body.get("mobile", "")), str(body.get("content", ""))), method)
            account = self._account(headers)
            if account is None:
                return self._json(401, {"code": "UNAUTHORIZED", "desc": "HTTP Basic credentials of an account"}, method)
            if path.startswith("templates/") and method == "PUT":
                template_id = unquote(path[len("templates/") :])
                if not template_id or "/" in template_id:
                    return self._json(404, {"code": "NO_ROUTE", "desc": path}, method)
                return self._json(200, vms.register(account, template_id, body), method)
            if path == "submit" and method == "POST":
                return self._json(200, vms.submit(account, body), method)
            if path == "notifications" and method == "GET":
                try:
                    max_items = max(1, min(int(query.get("max", "500")), 5000))
                    lease_s = max(0.1, min(float(query.get("lease_s", DEFAULT_LEASE_S)), MAX_LEASE_S))
                except ValueError:
                    return self._json(400, {"code": "INVALID_REQUEST", "desc": "max and lease_s are numbers"}, method)
                return self._json(200, {"notifications": vms.poll(account, max_items, lease_s)}, method)
            if path == "notifications/ack" and method == "POST":
                ids = body.get("ids")
                if not isinstance(ids, list):
                    return self._json(400, {"code": "INVALID_REQUEST", "desc": "ids must be a list"}, method)
                return self._json(200, {"acked": vms.ack(account, [str(i) for i in ids])}, method)
        except VmsError as exc:
            return self._json(exc.status, {"code": exc.code, "desc": exc.desc}, method)
        return self._json(404, {"code": "NO_ROUTE", "desc": f"{method} /vms/v1/{path}"}, method)

    @staticmethod
    def _json(status: int, payload: Any, method: str) -> Response:
        return status, "application/json", orjson.dumps(payload), method


async def _sliced_listing(name: str, rows: Iterator[dict[str, Any]]) -> bytes:
    """``{"count": n, "<name>": [rows...]}``, serialised ``_LIST_SLICE`` rows at a time with a yield to the event
    loop after each slice."""
    pieces: list[bytes] = []
    count = 0
    while True:
        chunk = list(itertools.islice(rows, _LIST_SLICE))
        if not chunk:
            break
        count += len(chunk)
        pieces.append(orjson.dumps(chunk)[1:-1])
        await asyncio.sleep(0)
    return b'{"count":%d,"%s":[%s]}' % (count, name.encode(), b",".join(pieces))
