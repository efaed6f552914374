"""Where a send task's recipients come from, read in chunks so that a million never sit in memory at once.

``InlineRecipients``: ``resolve_task.params`` of the request body, from the body's spool (``send_task_recipients``:
pass 1 at construction, pass 2 each time ``chunks`` runs, in a worker thread for big bodies so the event loop keeps
serving). ``magpie_gateway.recipient_files.FileRecipients``: an uploaded recipient file.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import IO, Any

from magpie_gateway.send_task_recipients import ECHO_MAX, BuildSettings, Chunk, RecipientScan, recipient_batches
from magpie_gateway.task_models import CreateResolveTaskParam

THREAD_BYTES = 256 * 1024  # bodies above this size are parsed in a worker thread
CHUNK_BATCHES = 20  # batches (of 500) per chunk: one insert_many and one produce per 10,000 recipients
_DONE = object()


class RecipientSource(ABC):
    submitted: int  # recipients given (before de-duplication)
    unique: int
    duplicates: int
    file_id: str | None = None  # the recipient file they come from, if any

    @property
    def custom_codes(self) -> dict[str, int]:
        """Custom short codes of the recipients kept, with the position of each (generation_type 2)."""
        return {}

    def echo(self) -> list[dict[str, Any]] | None:
        """The recipients as the answer echoes them (up to 100), or None."""
        return None

    @abstractmethod
    def chunks(self, settings: BuildSettings) -> AsyncIterator[Chunk]:
        """The kept recipients, in order, as chunks of ``RecipientBatch`` messages with their mobiles."""


class _Stopped(Exception):
    pass


class InlineRecipients(RecipientSource):
    def __init__(self, file: IO[bytes], size: int, scan: RecipientScan) -> None:
        self.file = file
        self.size = size
        self.scan = scan
        self.submitted = scan.submitted
        self.unique = scan.unique
        self.duplicates = scan.duplicates

    @property
    def custom_codes(self) -> dict[str, int]:
        return self.scan.codes

    def echo(self) -> list[dict[str, Any]] | None:
        if self.submitted > ECHO_MAX:
            return None
        return [CreateResolveTaskParam.model_validate(p).model_dump(exclude_none=True) for p in self.scan.echo]

    async def chunks(self, settings: BuildSettings) -> AsyncIterator[Chunk]:
        self.file.seek(0)
        if self.size <= THREAD_BYTES:
            collected: list[Chunk] = []
            recipient_batches(self.file, self.scan, settings, collected.append)
            for chunk in collected:
                yield chunk
            return
        async for chunk in self._threaded(settings):
            yield chunk

    async def _threaded(self, settings: BuildSettings) -> AsyncIterator[Chunk]:
        """Pass 2 in a worker thread, at most two chunks ahead of the consumer (back-pressure)."""
        handoff: queue.Queue[Any] = queue.Queue(maxsize=2)
        stopped = threading.Event()

        def put(item: Any) -> None:
            while not stopped.is_set():
                try:
                    handoff.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        def work() -> None:
            try:
                recipient_batches(self.file, self.scan, settings, put)
                put(_DONE)
            except _Stopped:
                pass
            except BaseException as exc:  # handed to the consumer, raised there
                try:
                    put(exc)
                except _Stopped:
                    pass

        def take() -> Any:
            while not stopped.is_set():  # never blocks for good: a cancelled consumer must not leak this thread
                try:
                    return handoff.get(timeout=0.1)
                except queue.Empty:
                    continue
            return _DONE

        worker = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            while True:
                item = await asyncio.to_thread(take)
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stopped.set()
            await asyncio.shield(worker)
