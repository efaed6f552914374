"""The request body spooled while it arrives: bytes to a temporary file (in memory up to ``MEMORY_BYTES``, on disk
beyond), SHA-256 computed incrementally, size limited while streaming.

The signature middleware verifies the payload hash from the spool's digest (the body is never joined in memory),
then hands the spool to the application in ``scope["state"]`` (``of_scope``): a route that parses a big body
incrementally (``create_aim_send_task``) reads the file; every other route gets the body replayed through
``receive`` in chunks (``replaying_receive``), as if it came from the client.
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO, Any

from starlette.types import Message, Receive, Scope

STATE_KEY = "magpie.body_spool"
MEMORY_BYTES = 1024 * 1024  # bodies up to this size never touch the disk
REPLAY_CHUNK = 1024 * 1024


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


class BodySpool:
    """A request body: its bytes in ``file`` (a temporary file), its ``size`` and incremental SHA-256."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)  # noqa: SIM115 (closed by close())
        self.size = 0
        self._sha256 = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        if chunk:
            self.file.write(chunk)
            self._sha256.update(chunk)
            self.size += len(chunk)

    def sha256_hex(self) -> str:
        return self._sha256.hexdigest()

    def fingerprint(self, *extras: str) -> str:
        """``idempotency.fingerprint(body, *extras)`` of the spooled body, without reading it again."""
        digest = self._sha256.copy()
        for extra in extras:
            digest.update(b"\x1f" + extra.encode())
        return digest.hexdigest()

    def rewind(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def read_all(self) -> bytes:
        return self.rewind().read()

    def close(self) -> None:
        self.file.close()


async def spool_body(receive: Receive, limit: int) -> BodySpool:
    """Read the request body into a new spool; ``BodyTooLarge`` beyond ``limit`` bytes (nothing kept)."""
    spool = BodySpool()
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            if spool.size + len(chunk) > limit:
                raise BodyTooLarge
            spool.write(chunk)
            if not message.get("more_body", False):
                spool.rewind()
                return spool
    except BaseException:
        spool.close()
        raise


def replaying_receive(spool: BodySpool, receive: Receive) -> Receive:
    """``receive`` replaying the spooled body in chunks, then the client's own messages (disconnect)."""
    spool.rewind()
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            chunk = spool.file.read(REPLAY_CHUNK)
            more = spool.file.tell() < spool.size
            done = not more
            return {"type": "http.request", "body": chunk, "more_body": more}
        return await receive()

    return replay


def attach(scope: Scope, spool: BodySpool) -> None:
    scope.setdefault("state", {})[STATE_KEY] = spool


def of_scope(scope: Scope | Any) -> BodySpool | None:
    """The spool of an authenticated request (None for a request the middleware passed through)."""
    state = scope.get("state") if isinstance(scope, dict) else None
    spool = (state or {}).get(STATE_KEY)
    return spool if isinstance(spool, BodySpool) else None
