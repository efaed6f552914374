"""The loop of a background worker that works in rounds: a round, then a wait of ``interval_s`` that ``wake()``
cuts short, until ``stop()``.

A worker has the ``run`` / ``stop`` / ``ready`` of a consumer loop, so the gateway runs it with its loops. A round
that fails is logged and the worker waits for the next one; a round that answers ``True`` (more work is waiting)
is followed at once by the next one. ``stop()`` during a round ends the loop when the round returns (the wake-up
it sets is cleared after the round, so the stop is checked again before waiting).

Idle back-off (``max_interval_s`` above ``interval_s``): each round that found nothing to do doubles the wait, up to
``max_interval_s``; a round with work, or ``wake()``, brings it back to ``interval_s``. An idle process then looks
rarely, and work announced by ``wake()`` still starts at once.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod


class PeriodicWorker(ABC):
    """Subclasses implement ``round()`` and may set ``failure_message`` (logged with the traceback of a failed
    round, by the logger of the subclass's module); long rounds should look at ``stopping`` between steps."""

    failure_message = "periodic worker round failed"

    def __init__(self, interval_s: float, *, max_interval_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.max_interval_s = max(interval_s, max_interval_s if max_interval_s is not None else interval_s)
        self.wait_s = interval_s  # the next wait (grows while idle, see the module's docstring)
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
                idle = False
                try:
                    if await self.round():
                        self.wait_s = self.interval_s
                        continue
                    idle = True
                except Exception:
                    logging.getLogger(type(self).__module__).exception(self.failure_message)
                self._wake.clear()
                if self._stopping.is_set():  # stop() during the round: its wake-up was just cleared
                    break
                wait_s = self.wait_s
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait_s)
                    self.wait_s = self.interval_s  # woken: work was announced
                except TimeoutError:
                    if idle:
                        self.wait_s = min(self.max_interval_s, wait_s * 2)
        finally:
            self.ready = False
