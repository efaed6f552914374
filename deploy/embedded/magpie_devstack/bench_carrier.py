"""What the carrier simulator was asked to send, read from its submissions log (``MAGPIE_SIM_SUBMISSIONS_LOG``, one
JSON line per accepted submit_sm) instead of downloading a million rows over HTTP.

- ``SubmissionLogReader`` tails the file: parts are reassembled into messages (concatenation reference, total,
  sequence), every (destination, part) is checked for uniqueness, and a reservoir of complete message texts is
  kept (the SMPP baseline replays them)
- ``HandsetPlayer`` plays the capable handsets' messaging apps: a thread that reads the new messages and a few
  workers that resolve the short link of a share of those to capable handsets at the shortlink edge
  (``POST /v1/resolve``), timing each call
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from magpie_devstack.campaign import LINK


@dataclass(frozen=True, slots=True)
class Message:
    system_id: str
    destination: str
    text: str
    parts: int


def part_key(destination: str, seq: int) -> int | str:
    """A compact uniqueness key of one SMS part to one destination (an int for digit-only destinations)."""
    return int(destination) * 256 + seq if destination.isdigit() else f"{destination}#{seq}"


@dataclass
class SubmissionLogReader:
    path: Path
    system_id: str | None = None  # only this account's submissions (None: all)
    text_samples: int = 2000
    offset: int = 0
    submits: int = 0
    messages: int = 0
    duplicate_parts: int = 0
    parts_histogram: dict[int, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    _seen: set[int | str] = field(default_factory=set)
    _partials: dict[tuple[str, int, int], dict[int, str]] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=lambda: random.Random(3))
    _rest: bytes = b""

    def read_new(self) -> list[Message]:
        """The messages completed by the lines appended since the last call."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                chunk = log.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._rest + chunk
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        completed: list[Message] = []
        for line in data[:cut].splitlines():
            if line:
                message = self.add(orjson.loads(line))
                if message is not None:
                    completed.append(message)
        return completed

    def add(self, row: dict[str, object]) -> Message | None:
        system_id = str(row.get("system_id", ""))
        if self.system_id is not None and system_id != self.system_id:
            return None
        destination = str(row.get("destination_addr", ""))
        text = str(row.get("text", ""))
        concat = row.get("concat")
        self.submits += 1
        if not isinstance(concat, dict):
            self._unique(destination, 1)
            return self._complete(system_id, destination, text, 1)
        seq, total = int(concat.get("seq") or 1), int(concat.get("total") or 1)
        self._unique(destination, seq)
        key = (destination, int(concat.get("ref") or 0), total)
        parts = self._partials.setdefault(key, {})
        parts[seq] = text
        if len(parts) < total:
            return None
        del self._partials[key]
        return self._complete(system_id, destination, "".join(parts[s] for s in sorted(parts)), total)

    def _unique(self, destination: str, seq: int) -> None:
        key = part_key(destination, seq)
        if key in self._seen:
            self.duplicate_parts += 1
        else:
            self._seen.add(key)

    def _complete(self, system_id: str, destination: str, text: str, parts: int) -> Message:
        self.messages += 1
        self.parts_histogram[parts] = self.parts_histogram.get(parts, 0) + 1
        if len(self.samples) < self.text_samples:
            self.samples.append(text)
        else:
            slot = self._rng.randrange(self.messages)
            if slot < self.text_samples:
                self.samples[slot] = text
        return Message(system_id, destination, text, parts)

    @property
    def incomplete(self) -> int:
        return len(self._partials)

    def summary(self) -> dict[str, object]:
        return {
            "submits": self.submits,
            "messages": self.messages,
            "parts": {str(k): v for k, v in sorted(self.parts_histogram.items())},
            "duplicate_parts": self.duplicate_parts,
            "incomplete_messages": self.incomplete,
        }


class HandsetPlayer(threading.Thread):
    """Resolves the links of a share of the messages delivered to capable handsets, as their messaging apps do:
    this thread reads the log, ``concurrency`` workers (each with its own keep-alive connection) make the calls."""

    def __init__(
        self,
        reader: SubmissionLogReader,
        shortlink_url: str,
        is_capable: Callable[[str], bool],
        *,
        share: float,
        concurrency: int = 4,
        seed: int = 11,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(name="bench-handsets", daemon=True)
        self.reader = reader
        self.shortlink_url = shortlink_url.rstrip("/")
        self.is_capable = is_capable
        self.share = share
        self.rng = random.Random(seed)
        self.poll_s = poll_s
        self.resolved = 0
        self.refused = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self._codes: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
        self._workers = [
            threading.Thread(target=self._work, name=f"bench-handset-{n}", daemon=True) for n in range(concurrency)
        ]
        self._finishing = threading.Event()

    def run(self) -> None:
        for worker in self._workers:
            worker.start()
        while True:
            finishing = self._finishing.is_set()
            messages = self.reader.read_new()
            for message in messages:
                code = self._pick(message)
                if code is not None:
                    self._codes.put(code)
            if not messages:
                if finishing:
                    break
                time.sleep(self.poll_s)
        for _ in self._workers:
            self._codes.put(None)
        for worker in self._workers:
            worker.join()

    def _pick(self, message: Message) -> str | None:
        if not self.is_capable(message.destination[-11:]) or self.rng.random() >= self.share:
            return None
        match = LINK.search(message.text)
        return match.group(1) if match else None

    def _work(self) -> None:
        with httpx.Client(timeout=30) as http:
            while (code := self._codes.get()) is not None:
                started = time.perf_counter()
                try:
                    response = http.post(f"{self.shortlink_url}/v1/resolve", json={"code": code})
                except httpx.HTTPError:
                    with self.lock:
                        self.refused += 1
                    continue
                elapsed = time.perf_counter() - started
                with self.lock:
                    if response.status_code == 200:
                        self.resolved += 1
                        self.latencies.append(elapsed)
                    else:
                        self.refused += 1

    def finish(self, timeout_s: float) -> bool:
        """Read the log to its end, resolve what is left, stop; False when that took longer than ``timeout_s``."""
        self._finishing.set()
        self.join(timeout_s)
        return not self.is_alive()


def wait_file_quiet(path: Path, quiet_s: float, limit_s: float) -> None:
    """Wait until ``path`` has not grown for ``quiet_s`` (the simulator flushes its log every 0.25 s)."""
    deadline = time.monotonic() + limit_s
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            now = path.stat().st_size
            if now != size:
                size, since = now, time.monotonic()
        if time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)
