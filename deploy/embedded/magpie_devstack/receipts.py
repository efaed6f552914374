"""A customer's callback endpoint: an HTTP server that records every receipt Magpie posts to it.

Counting is incremental and cheap (a million receipts must not cost the bench more than the system it measures):
per callback type, the distinct receipts (``msg_id`` for sms, ``aim_code`` for shortchain, the envelope's
``request_id`` otherwise), the re-posted ones, the POSTs, the first and last arrival, and arrivals per time bucket
for the bench's rate series. With ``keep=True`` (the default, for the demo and the tests) the bodies are kept too
and ``items()`` lists them. HTTP/1.1 keep-alive, so a sender that reuses its connections pays no handshake per POST.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

_KEYS = {"sms": "msg_id", "shortchain": "aim_code"}


class ReceiptCollector:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keep: bool = True, bucket_s: float = 5.0) -> None:
        self.keep = keep
        self.bucket_s = bucket_s
        self.receipts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.posts = 0
        self.reposted = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self._distinct: dict[str, int] = defaultdict(int)
        self._seen: set[int] = set()
        self._buckets: dict[int, int] = defaultdict(int)
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are two writes: without TCP_NODELAY a keep-alive client waits for the delayed ACK
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                collector.record(self.rfile.read(length))
                reply = b'{"result":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
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

    # --- recording ---------------------------------------------------------------------------------------------
    def record(self, raw: bytes) -> None:
        """One POST: its receipts counted (and kept when ``keep``)."""
        now = time.time()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = {"unparsable": raw.decode(errors="replace")}
        entries = _entries(body) if isinstance(body, dict) else []
        callback_type = str(body.get("callback_type")) if isinstance(body, dict) else "None"
        key_field = _KEYS.get(callback_type)
        with self.lock:
            self.posts += 1
            if self.keep:
                self.receipts.append(body)
            for entry in entries:
                key = entry.get(key_field) if key_field else None
                if key is None:  # no per-receipt id: the envelope's, or the bytes themselves
                    key = body.get("request_id") if isinstance(body, dict) else None
                fingerprint = hash((callback_type, key if key is not None else raw))
                if fingerprint in self._seen:
                    self.reposted += 1
                    continue
                self._seen.add(fingerprint)
                self._distinct[callback_type] += 1
                self._buckets[int(now // self.bucket_s)] += 1
                self.first_at = now if self.first_at is None else self.first_at
                self.last_at = now

    # --- reading -----------------------------------------------------------------------------------------------
    def items(self) -> list[dict[str, Any]]:
        """Every kept receipt, flattened: a batch receipt's body (a JSON array) becomes one item per recipient."""
        with self.lock:
            received = list(self.receipts)
        return [
            {"callback_type": receipt.get("callback_type"), **entry}
            for receipt in received
            if isinstance(receipt, dict)
            for entry in _entries(receipt)
        ]

    def count(self, callback_type: str) -> int:
        """Distinct receipts of ``callback_type`` received."""
        with self.lock:
            return self._distinct.get(callback_type, 0)

    def total(self) -> int:
        with self.lock:
            return sum(self._distinct.values())

    def buckets(self) -> dict[int, int]:
        """Distinct receipts per arrival bucket (bucket number = epoch seconds // bucket_s)."""
        with self.lock:
            return dict(self._buckets)

    def reset_window(self) -> None:
        """Forget first / last arrival (counts stay): the next receipts start a new measurement window."""
        with self.lock:
            self.first_at = self.last_at = None


def _entries(receipt: dict[str, Any]) -> list[dict[str, Any]]:
    body = receipt.get("body")
    if isinstance(body, str):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    else:
        parsed = body
    entries = parsed if isinstance(parsed, list) else [parsed]
    return [entry if isinstance(entry, dict) else {} for entry in entries]
