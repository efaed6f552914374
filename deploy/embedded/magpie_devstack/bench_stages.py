"""Exact per-recipient stage counts of one send task, from the events the pipeline published (pure, no I/O).

A recipient is its ``index`` in the task (0-based, the same in every topic). Each stage is a ``bytearray`` indexed by
it, so a million recipients cost a few MB and a redelivered event never counts twice:

- ``classified``: in a ClassifiedBatch (number-resolver); INVALID and SKIPPED recipients are final right there
- ``minted``: in a DispatchBatch (shortlink minted its code)
- ``submitted``: a SUBMITTED DeliveryEvent (the carrier answered submit_sm_resp OK)
- ``receipts``: a final DeliveryEvent (DELIVERED / FAILED / TIMEOUT)
- ``final``: ``receipts`` plus the INVALID / SKIPPED classified ones
- ``resolved``: distinct codes of billable RESOLVED LinkEvents
- ``billed``: the quantity of distinct UsageEvents (SMS segments and resolutions)

Finals are checked as they come: a second final event of a recipient (another event id, by CRC32) is a
``duplicate_final``, a final with another status a ``conflict``; the same event again is only a ``redelivery``.
Counts are also kept per time bucket of the producer's record timestamp, so the rate series does not depend on
how far the tap lags behind.
"""

from __future__ import annotations

import zlib
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

STAGES = ("classified", "minted", "submitted", "receipts", "final", "resolved", "billed")

# final status codes kept per recipient (0 = not final)
DELIVERED, FAILED, TIMEOUT, INVALID, SKIPPED = 1, 2, 3, 4, 5
FINAL_NAMES = {DELIVERED: "delivered", FAILED: "failed", TIMEOUT: "timeout", INVALID: "invalid", SKIPPED: "skipped"}

_GROW = 1 << 16


def _ensure(arr: bytearray, index: int) -> None:
    if index >= len(arr):
        arr.extend(bytes(index - len(arr) + _GROW))


def _ensure_ids(arr: array[int], index: int) -> None:
    if index >= len(arr):
        arr.frombytes(bytes((index - len(arr) + _GROW) * arr.itemsize))


def event_hash(event_id: str) -> int:
    """A non-zero 32-bit fingerprint of an event id (0 marks 'no event yet')."""
    return zlib.crc32(event_id.encode()) or 1


@dataclass
class TaskStages:
    bucket_s: float = 5.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    last_at_ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    buckets: dict[str, dict[int, int]] = field(default_factory=lambda: {s: defaultdict(int) for s in STAGES})
    finals_by_status: dict[int, int] = field(default_factory=lambda: dict.fromkeys(FINAL_NAMES, 0))
    segments_histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    delivered_segments: int = 0
    billed_by_product: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate_finals: int = 0
    conflicts: int = 0
    redeliveries: int = 0
    _seen: dict[str, bytearray] = field(default_factory=lambda: {s: bytearray() for s in STAGES[:3]})
    _final: bytearray = field(default_factory=bytearray)
    _final_ids: array[int] = field(default_factory=lambda: array("I"))
    _codes: set[str] = field(default_factory=set)
    _usage_ids: set[int] = field(default_factory=set)

    # --- recording ---------------------------------------------------------------------------------------------
    def _count(self, stage: str, at_ms: int, n: int = 1) -> None:
        self.counts[stage] += n
        if at_ms > self.last_at_ms[stage]:
            self.last_at_ms[stage] = at_ms
        self.buckets[stage][int(at_ms / 1000 // self.bucket_s)] += n

    def mark(self, stage: str, index: int, at_ms: int) -> bool:
        """Recipient ``index`` reached ``stage`` (classified, minted, submitted); False when it had already."""
        seen = self._seen[stage]
        _ensure(seen, index)
        if seen[index]:
            return False
        seen[index] = 1
        self._count(stage, at_ms)
        return True

    def final(self, index: int, status: int, event_id: str, at_ms: int, segments: int = 0) -> None:
        """A final event of recipient ``index``: carrier finals come with their DeliveryEvent, INVALID / SKIPPED
        with the classification (``event_id`` then names the classified batch)."""
        _ensure(self._final, index)
        _ensure_ids(self._final_ids, index)
        fingerprint = event_hash(event_id)
        previous = self._final[index]
        if previous:
            if previous != status:
                self.conflicts += 1
            elif self._final_ids[index] != fingerprint:
                self.duplicate_finals += 1
            else:
                self.redeliveries += 1
            return
        self._final[index] = status
        self._final_ids[index] = fingerprint
        self.finals_by_status[status] += 1
        if status in (DELIVERED, FAILED, TIMEOUT):
            self._count("receipts", at_ms)
            self.segments_histogram[segments] += 1
            if status == DELIVERED:
                self.delivered_segments += segments
        self._count("final", at_ms)

    def resolved(self, code: str, at_ms: int) -> None:
        if code in self._codes:
            return
        self._codes.add(code)
        self._count("resolved", at_ms)

    def billed(self, event_id: str, product: str, quantity: int, at_ms: int) -> None:
        fingerprint = hash(event_id)
        if fingerprint in self._usage_ids:
            return
        self._usage_ids.add(fingerprint)
        self.billed_by_product[product] += quantity
        self._count("billed", at_ms, quantity)

    # --- reading -----------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "last_at_ms": dict(self.last_at_ms),
            "finals": {FINAL_NAMES[k]: v for k, v in self.finals_by_status.items()},
            "segments": {str(k): v for k, v in sorted(self.segments_histogram.items())},
            "delivered_segments": self.delivered_segments,
            "billed_by_product": dict(self.billed_by_product),
            "duplicate_finals": self.duplicate_finals,
            "conflicts": self.conflicts,
            "redeliveries": self.redeliveries,
        }

    def report(self) -> dict[str, Any]:
        """The status plus the per-bucket counts (bucket number = record time // bucket_s)."""
        return {
            **self.status(),
            "bucket_s": self.bucket_s,
            "buckets": {stage: {str(k): v for k, v in sorted(b.items())} for stage, b in self.buckets.items()},
        }
