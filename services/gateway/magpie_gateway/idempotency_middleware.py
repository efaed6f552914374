"""``Idempotency-Key`` on every create (every signed ``POST``): the same key with the same request answers the
stored response again (header ``Idempotent-Replayed: true``) without running the operation a second time; the same
key with a different request (another body, path or query) answers 409 ``KM.00000409``; a second request while the
first is still running answers 409 too (retry later).

Keys are per tenant and share the ``idempotency`` collection (and its TTL, ``MAGPIE_IDEMPOTENCY_TTL_S``) with
``create_aim_send_task``, which keeps its own handling (it resumes a half-created task with the same task id) and
is listed in ``exempt_paths``. Responses with a 5xx status are not stored: the client may retry with the same key.
A 4xx is stored like a success (the same request would fail the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from magpie_gateway import codes
from magpie_gateway.auth.principal import PRINCIPAL_STATE_KEY, Principal
from magpie_gateway.errors import ApiError, ensure_request_id, error_response
from magpie_gateway.idempotency import DONE, HEADER, LEASE, PENDING, IdempotencyStore, fingerprint
from magpie_gateway.timefmt import utc_now

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = (b"content-type",)


async def _buffer(receive: Receive) -> tuple[bytes, list[Message]]:
    """The request body (already bounded by the signature middleware) and the messages that carried it."""
    chunks: list[bytes] = []
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return b"".join(chunks), messages
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, collection: AsyncCollection, exempt_paths: Collection[str] = ()) -> None:
        self.app = app
        self._c = collection
        self._exempt = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope.get("headers", []) if k == HEADER.lower().encode()), None)
        principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
        if raw_key is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        try:
            key = IdempotencyStore.check_key(raw_key.decode("utf-8", "replace"))
        except ApiError as exc:
            await error_response(exc.http_status, exc.error_code, exc.error_msg, request_id)(scope, receive, send)
            return
        body, messages = await _buffer(receive)
        request_hash = fingerprint(body, scope["method"], scope["path"], scope.get("query_string", b"").decode())
        doc_id = f"{principal.tenant_id}:{key}"

        try:
            stored = await self._claim(doc_id, key, request_hash)
        except ApiError as exc:
            await error_response(exc.http_status, exc.error_code, exc.error_msg, request_id)(scope, receive, send)
            return
        if stored is not None:
            await self._replay(stored, send)
            return

        pending = list(messages)

        async def replay_receive() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                    if k.lower() in _KEPT_HEADERS
                ]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await self._c.delete_one({"_id": doc_id, "state": PENDING})
            raise
        if captured["status"] >= 500:
            await self._c.delete_one({"_id": doc_id, "state": PENDING})
            return
        response = {
            "status": captured["status"],
            "headers": captured["headers"],
            "body": b"".join(captured["body"]),
        }
        await self._c.update_one(
            {"_id": doc_id}, {"$set": {"state": DONE, "http_response": response, "updated_at": utc_now()}}
        )

    async def _claim(self, doc_id: str, key: str, request_hash: str) -> dict[str, Any] | None:
        """None when this request may run (the key is now ours); the stored response when it ran before."""
        now = utc_now()
        for _ in range(3):
            try:
                await self._c.insert_one(
                    {
                        "_id": doc_id,
                        "request_hash": request_hash,
                        "state": PENDING,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                return None
            except DuplicateKeyError:
                pass
            doc = await self._c.find_one({"_id": doc_id})
            if doc is None:
                continue  # expired in between
            if doc["request_hash"] != request_hash:
                raise ApiError.of(
                    codes.IDEMPOTENCY_CONFLICT,
                    f"{codes.IDEMPOTENCY_CONFLICT.message}: {HEADER} {key!r} was used for a different request",
                )
            if doc["state"] == DONE and doc.get("http_response") is not None:
                return dict(doc["http_response"])
            if doc["state"] == PENDING and utc_now() - doc["updated_at"] < LEASE:
                raise ApiError.of(
                    codes.IDEMPOTENCY_CONFLICT,
                    f"{codes.IDEMPOTENCY_CONFLICT.message}: a request with {HEADER} {key!r} is still in progress",
                )
            taken = await self._c.update_one(
                {"_id": doc_id, "updated_at": doc["updated_at"]},
                {"$set": {"state": PENDING, "updated_at": utc_now()}},
            )
            if taken.modified_count == 1:
                return None
        raise ApiError.of(
            codes.IDEMPOTENCY_CONFLICT, f"{codes.IDEMPOTENCY_CONFLICT.message}: {HEADER} {key!r} is contended"
        )

    @staticmethod
    async def _replay(stored: dict[str, Any], send: Send) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.get("headers", [])]
        body = bytes(stored["body"])
        headers += [
            (b"content-length", str(len(body)).encode()),
            (REPLAYED_HEADER.lower().encode(), b"true"),
        ]
        await send({"type": "http.response.start", "status": int(stored["status"]), "headers": headers})
        await send({"type": "http.response.body", "body": body})
