"""Coalesce the PDUs written during one event-loop iteration into a single transport write (one syscall)."""

from __future__ import annotations

import asyncio


class CoalescingWriter:
    """``write()`` buffers; the buffer goes to the transport at the end of the current loop iteration.

    Many small PDUs (responses to a burst of requests, a burst of submits from many tasks) then cost one
    ``send`` instead of one each. ``flush()`` writes at once; ``discard()`` drops what is buffered.
    """

    __slots__ = ("_chunks", "_loop", "_scheduled", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport) -> None:
        self._loop = loop
        self.transport = transport
        self._chunks: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._chunks:
            return
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def discard(self) -> None:
        self._chunks.clear()

    @property
    def is_closing(self) -> bool:
        return self.transport.is_closing()
