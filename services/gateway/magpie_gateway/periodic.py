"""The loop of a background worker that works in rounds: a round, then a wait of ``interval_s`` that ``wake()``
cuts short, until ``stop()``.

A worker has the ``run`` / ``stop`` / ``ready`` of a consumer loop, so the gateway runs it with its loops. A round
that fails is logged and the worker waits for the next one; a round that answers ``True`` (more work is waiting)
is followed at once by the next one. ``stop()`` during a round ends the loop when the round returns (the wake-up
it sets is cleared after the round, so the stop is checked again before waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod


class PeriodicWorker(ABC):
    """Subclasses implement ``round()`` and may set ``failure_message`` (logged with the traceback of a failed
    round, by the logger of the subclass's module); long rounds should look at ``stopping`` between steps."""

    failure_message = "periodic worker round failed"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.ready = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Start the next round now instead of after the interval."""
        self._wake.set()

    @abstractmethod
    async def round(self) -> bool:
        """One round of work; True when more work is waiting (the next round starts at once)."""

    async def run(self) -> None:
        self.ready = True
        try:
            while not self._stopping.is_set():
                try:
                    if await self.round():
                        continue
                except Exception:
                    logging.getLogger(type(self).__module__).exception(self.failure_message)
                self._wake.clear()
                if self._stopping.is_set():  # stop() during the round: its wake-up was just cleared
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
        finally:
            self.ready = False
