"""Where the sender looks for due receipts: cursors over ``next_at`` that read the outbox in bounded slices.

SecantusDB evaluates a range query by decoding every document in the index range before applying ``limit``, so
"the 500 oldest due items" costs as much as the whole due backlog. The sender therefore reads one time slice
``[cursor, cursor + slice)`` per query: the slice halves when it was full and grows when it was sparse, so a
query decodes about one ``limit`` of documents whatever the backlog.

- The main sweep walks the ``(state, next_at)`` index forward, up to a little before the present. A claimed
  receipt's ``next_at`` is the end of its lease and a failed one's its retry time, so receipts in flight are ahead
  of it, and a crashed instance's receipts come due again, in order, when their lease ends. It starts at the
  beginning of time (one full pass when the process starts) and every ``RESCAN_EVERY_S`` looks back
  ``RESCAN_LOOKBACK`` (receipts inserted by another instance whose clock is a little behind).
- Receipts the main sweep reads but cannot take (their URL holds its full quota of POSTs) are that URL's backlog:
  a per-URL cursor over the ``(state, url, next_at)`` index, read a slice at a time whenever the URL has room,
  from its oldest waiting receipt up to the main sweep's horizon. A busy URL thus never makes the main sweep re-read its
  receipts, and another URL's receipts never wait behind them. The sender also opens a URL's backlog at the
  ``next_at`` of every receipt it writes without holding it (queued without room, retried, released), once the
  write is acknowledged, since a slow write may land behind the main sweep.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MARGIN = timedelta(seconds=1)  # the main sweep stays this far behind the present (writes in progress)
MIN_SLICE = timedelta(milliseconds=1)  # BSON dates have millisecond precision
MAX_SLICE = timedelta(days=3650)
RESCAN_EVERY_S = 60.0
RESCAN_LOOKBACK = timedelta(minutes=5)


class SliceCursor:
    """A position in ``next_at`` and an adaptive slice width."""

    def __init__(self, start: datetime = EPOCH, width: timedelta = timedelta(seconds=1)) -> None:
        self.cursor = start
        self.slice = width

    def next_range(self, upto: datetime) -> tuple[datetime, datetime] | None:
        """The next slice ``[lo, hi)`` before ``upto``, or None when the cursor has reached it."""
        if self.cursor >= upto:
            return None
        return self.cursor, min(upto, self.cursor + self.slice)

    def advance(self, lo: datetime, hi: datetime, read: int, limit: int, last: datetime | None) -> None:
        """Move past the slice ``[lo, hi)`` of which ``read`` receipts were read (``last``: the last one's time)."""
        if read >= limit and last is not None:
            # The rest of the slice starts at the last receipt read (read again if it was not taken).
            self.slice = max(self.slice / 2, MIN_SLICE)
            self.cursor = last
        else:
            self.cursor = hi
            if read < limit // 4:
                self.slice = min(self.slice * 4, MAX_SLICE)

    def back_to(self, when: datetime) -> None:
        if when < self.cursor:
            self.cursor = when


class MainSweep(SliceCursor):
    def __init__(self) -> None:
        super().__init__(EPOCH)
        self._last_rescan = time.monotonic()

    def horizon(self, now: datetime) -> datetime:
        return now - MARGIN

    def range_for(self, now: datetime) -> tuple[datetime, datetime] | None:
        horizon = self.horizon(now)
        if self.cursor >= horizon and time.monotonic() - self._last_rescan >= RESCAN_EVERY_S:
            self._last_rescan = time.monotonic()
            self.cursor = max(EPOCH, self.cursor - RESCAN_LOOKBACK)
        return self.next_range(horizon)
