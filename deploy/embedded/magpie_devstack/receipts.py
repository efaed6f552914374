"""A customer's callback endpoint: an HTTP server that records every receipt Magpie posts to it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ReceiptCollector:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receipts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                with collector.lock:
                    collector.receipts.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"result":"ok"}')

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/receipts"

    def __enter__(self) -> ReceiptCollector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def items(self) -> list[dict[str, Any]]:
        """Every receipt, flattened: a batch receipt's body (a JSON array) becomes one item per recipient."""
        with self.lock:
            received = list(self.receipts)
        flat: list[dict[str, Any]] = []
        for receipt in received:
            body = receipt.get("body")
            parsed = json.loads(body) if isinstance(body, str) else body
            entries = parsed if isinstance(parsed, list) else [parsed]
            for entry in entries:
                flat.append({"callback_type": receipt.get("callback_type"), **(entry or {})})
        return flat

    def count(self, callback_type: str) -> int:
        return sum(1 for item in self.items() if item.get("callback_type") == callback_type)
