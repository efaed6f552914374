"""A tiny HTTP/1.1 responder on asyncio streams for the simulator's inspection endpoints.

GET /healthz, /stats, /submissions?destination=&limit=, /messages?destination=&limit=, /duplicates, /metrics.
One request per connection (``Connection: close``); enough for curl, httpx, tests and a Prometheus scrape, with
no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from magpie_carrier_simulator.metrics import build_registry, render

if TYPE_CHECKING:
    from magpie_carrier_simulator.simulator import CarrierSimulator

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 16_384
_READ_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class HttpApi:
    def __init__(self, simulator: CarrierSimulator) -> None:
        self._simulator = simulator
        self._registry = build_registry(simulator)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEADER_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body, method = self._respond(head)
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

    def _respond(self, head: bytes) -> tuple[int, str, bytes, str]:
        try:
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = request_line.split(" ", 2)
        except ValueError:
            return self._json(400, {"error": "malformed request line"}, "GET")
        if method not in ("GET", "HEAD"):
            return self._json(405, {"error": f"method {method} not allowed"}, method)
        url = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            return self._route(url.path, query, method)
        except Exception as exc:  # an inspection bug must not kill the simulator
            logger.exception("http handler failed")
            return self._json(500, {"error": repr(exc)}, method)

    def _route(self, path: str, query: dict[str, str], method: str) -> tuple[int, str, bytes, str]:
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
                rows = sim.messages(query.get("destination"), limit)
                return self._json(200, {"count": len(rows), "messages": rows}, method)
            rows = sim.submissions(query.get("destination"), limit)
            return self._json(200, {"count": len(rows), "submissions": rows}, method)
        if path == "/duplicates":
            rows = sim.duplicates()
            return self._json(200, {"count": len(rows), "duplicates": rows}, method)
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, render(self._registry), method
        return self._json(404, {"error": f"no route {path}"}, method)

    @staticmethod
    def _json(status: int, payload: Any, method: str) -> tuple[int, str, bytes, str]:
        return status, "application/json", orjson.dumps(payload), method
