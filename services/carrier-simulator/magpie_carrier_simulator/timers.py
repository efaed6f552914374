"""A fixed-delay queue driven by one timer: items pushed with the same delay fall due in push order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Items falling due within this slack of the timer are handled in the same batch.
_SLACK = 0.001


class DelayQueue(Generic[T]):
    """Calls ``callback(item)`` ``delay`` seconds after ``push(item)``.

    The delay is the same for every item, so the queue is a FIFO and a single ``call_at`` timer (re-armed for
    the head) serves all of them: no task or timer per item. ``delay <= 0`` calls back at once.
    """

    def __init__(self, delay: float, callback: Callable[[T], None]) -> None:
        self.delay = delay
        self._callback = callback
        self._items: deque[tuple[float, T]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        if self.delay <= 0:
            self._call(item)
            return
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        self._items.append((loop.time() + self.delay, item))
        if self._timer is None:
            self._timer = loop.call_at(self._items[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        items = self._items
        horizon = loop.time() + _SLACK
        while items and items[0][0] <= horizon:
            self._call(items.popleft()[1])
        if items and self._timer is None:
            self._timer = loop.call_at(items[0][0], self._fire)

    def _call(self, item: T) -> None:
        try:
            self._callback(item)
        except Exception:
            logger.exception("delay queue callback failed")

    def drain(self) -> list[T]:
        """Remove and return every waiting item, without calling back."""
        items = [item for _, item in self._items]
        self._items.clear()
        self.close()
        return items

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
