"""What the simulator was asked to send: every accepted submit_sm, messages reassembled from their parts, and
the duplicates among them (same destination, same full text, submitted more than once).

Kept cheap for a million submissions: the common case (a single-part message, sent once, the only one to its
destination) costs the :class:`Submission` itself and two dict entries pointing at it; lists and :class:`_Message`
records exist only for destinations with several submissions, concatenated messages and duplicates. Listings are
produced in slices (``iter_list`` / ``iter_messages``) so the HTTP layer can yield to the event loop between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

logger = logging.getLogger(__name__)

_LOG_FLUSH_INTERVAL = 0.25
_LOG_FLUSH_LINES = 2_000


@dataclass(slots=True)
class Submission:
    """One accepted submit_sm."""

    message_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    text: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    submitted_at: float  # epoch seconds
    stat: str  # the outcome the receipt will report
    err: str
    concat_ref: int | None = None
    concat_total: int | None = None
    concat_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "system_id": self.system_id,
            "source_addr": self.source_addr,
            "destination_addr": self.destination_addr,
            "text": self.text,
            "data_coding": self.data_coding,
            "esm_class": self.esm_class,
            "registered_delivery": self.registered_delivery,
            "concat": None
            if self.concat_total is None
            else {"ref": self.concat_ref, "total": self.concat_total, "seq": self.concat_seq},
            "submitted_at": datetime.fromtimestamp(self.submitted_at, UTC).isoformat(timespec="milliseconds"),
            "stat": self.stat,
            "err": self.err,
        }


@dataclass(slots=True)
class _Message:
    source_addr: str
    first_submitted_at: float
    parts: int
    count: int = 0
    message_ids: list[str] = field(default_factory=list)


_PartialKey = tuple[str, str, str, int, int]  # system_id, source, destination, reference, total


class SubmissionLog:
    """In-memory record of accepted submissions (at most ``max_records`` kept for listing; counting and
    duplicate detection never stop), plus an optional JSONL file appended in batches."""

    def __init__(self, max_records: int, jsonl_path: str | None = None) -> None:
        self.max_records = max_records
        self.records: list[Submission] = []
        # destination -> its submission, or the list of them when there are several
        self.by_destination: dict[str, Submission | list[Submission]] = {}
        self.records_dropped = 0
        self.messages_total = 0
        # (destination, text) -> the submission of a single-part message sent once, else its _Message;
        # insertion-ordered: first submission first
        self._messages: dict[tuple[str, str], Submission | _Message] = {}
        self._strings: dict[str, str] = {}  # one copy of each source address / system id
        self._duplicate_keys: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._partials: dict[_PartialKey, dict[int, Submission]] = {}
        self._jsonl_path = jsonl_path
        self._jsonl: BinaryIO | None = None
        self._jsonl_buffer: list[bytes] = []
        self._flush_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ recording

    def open(self) -> None:
        if self._jsonl_path:
            self._jsonl = open(self._jsonl_path, "ab")  # noqa: SIM115 - kept open for the simulator's lifetime

    def close(self) -> None:
        self.flush()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None

    def shared(self, value: str) -> str:
        """One copy of a value repeated in every submission (source address, system id)."""
        known = self._strings.get(value)
        if known is None:
            if len(self._strings) > 65_536:
                self._strings.clear()
            known = self._strings[value] = value
        return known

    def add(self, submission: Submission) -> None:
        if len(self.records) < self.max_records:
            self.records.append(submission)
            destination = submission.destination_addr
            existing = self.by_destination.get(destination)
            if existing is None:
                self.by_destination[destination] = submission
            elif isinstance(existing, list):
                existing.append(submission)
            else:
                self.by_destination[destination] = [existing, submission]
        else:
            self.records_dropped += 1
        if self._jsonl is not None:
            self._append_jsonl(submission)
        if submission.concat_total is None or submission.concat_total <= 1:
            self._count_single(submission)
            return
        key = (
            submission.system_id,
            submission.source_addr,
            submission.destination_addr,
            submission.concat_ref or 0,
            submission.concat_total,
        )
        parts = self._partials.get(key)
        if parts is None or submission.concat_seq in parts:
            # A part number seen twice starts a new message: the previous one stays incomplete.
            parts = self._partials[key] = {}
        parts[submission.concat_seq or 0] = submission
        if len(parts) == submission.concat_total:
            del self._partials[key]
            ordered = [parts[seq] for seq in sorted(parts)]
            self._count_message(ordered[0], "".join(p.text for p in ordered), [p.message_id for p in ordered])

    def _count_single(self, submission: Submission) -> None:
        key = (submission.destination_addr, submission.text)
        if key not in self._messages:
            self.messages_total += 1
            self._messages[key] = submission
            return
        self._count_message(submission, submission.text, [submission.message_id])

    def _count_message(self, first: Submission, text: str, message_ids: list[str]) -> None:
        self.messages_total += 1
        key = (first.destination_addr, text)
        entry = self._messages.get(key)
        if isinstance(entry, Submission):  # a second time: now it needs its own record
            entry = self._messages[key] = _Message(
                source_addr=entry.source_addr,
                first_submitted_at=entry.submitted_at,
                parts=1,
                count=1,
                message_ids=[entry.message_id],
            )
        elif entry is None:
            entry = self._messages[key] = _Message(
                source_addr=first.source_addr, first_submitted_at=first.submitted_at, parts=len(message_ids)
            )
        entry.count += 1
        entry.message_ids.extend(message_ids)
        if entry.count == 2:
            self._duplicate_keys[key] = None

    def _append_jsonl(self, submission: Submission) -> None:
        self._jsonl_buffer.append(orjson.dumps(submission.to_json()) + b"\n")
        if len(self._jsonl_buffer) >= _LOG_FLUSH_LINES:
            self.flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(_LOG_FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        self._flush_timer = None
        if self._jsonl is not None and self._jsonl_buffer:
            try:
                self._jsonl.write(b"".join(self._jsonl_buffer))
                self._jsonl.flush()
            except OSError:
                logger.exception("cannot append to the submissions log %s", self._jsonl_path)
        self._jsonl_buffer.clear()

    # ------------------------------------------------------------------ queries

    @property
    def incomplete_concatenated(self) -> int:
        """Concatenated messages of which some parts have not (yet) been submitted."""
        return len(self._partials)

    @property
    def duplicate_count(self) -> int:
        return len(self._duplicate_keys)

    def iter_list(self, destination: str | None = None, limit: int | None = None) -> Iterator[Submission]:
        """Recorded submissions, oldest first (the last ``limit`` when given)."""
        rows: list[Submission]
        if destination is not None:
            found = self.by_destination.get(destination)
            rows = [] if found is None else found if isinstance(found, list) else [found]
        else:
            rows = self.records
        start = 0
        if limit is not None:
            start = max(0, len(rows) - limit) if limit > 0 else len(rows)
        for index in range(start, len(rows)):
            yield rows[index]

    def list(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded submissions, oldest first (the last ``limit`` when given)."""
        return [row.to_json() for row in self.iter_list(destination, limit)]

    def iter_messages(self, destination: str | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Complete messages, concatenated parts joined into one text, each distinct (destination, text) once
        with the number of times it was submitted; oldest first (the last ``limit`` when given)."""
        if limit is not None and limit <= 0:
            return
        keys: Iterator[tuple[str, str]] | list[tuple[str, str]]
        if destination is None:
            keys = list(self._messages)[-limit:] if limit is not None else iter(list(self._messages))
        else:
            keys = [key for key in self._messages if key[0] == destination]
            if limit is not None:
                keys = keys[-limit:]
        for key in keys:
            entry = self._messages.get(key)
            if entry is not None:
                yield _message_row(key, entry)

    def messages(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Complete messages, concatenated parts joined into one text, each distinct (destination, text) once
        with the number of times it was submitted; oldest first (the last ``limit`` when given)."""
        return list(self.iter_messages(destination, limit))

    def duplicates(self) -> list[dict[str, Any]]:
        """Messages (concatenated parts counted as one) sent more than once to the same destination."""
        result = []
        for destination, text in self._duplicate_keys:
            entry = self._messages[(destination, text)]
            assert isinstance(entry, _Message)
            result.append(
                {"destination": destination, "text": text, "count": entry.count, "message_ids": entry.message_ids}
            )
        return result


def _message_row(key: tuple[str, str], entry: Submission | _Message) -> dict[str, Any]:
    destination, text = key
    if isinstance(entry, Submission):
        source, first_at, parts, count, ids = entry.source_addr, entry.submitted_at, 1, 1, [entry.message_id]
    else:
        source, first_at, parts, count, ids = (
            entry.source_addr,
            entry.first_submitted_at,
            entry.parts,
            entry.count,
            entry.message_ids,
        )
    return {
        "destination": destination,
        "source": source,
        "text": text,
        "parts": parts,
        "count": count,
        "message_ids": ids,
        "first_submitted_at": datetime.fromtimestamp(first_at, UTC).isoformat(timespec="milliseconds"),
    }
