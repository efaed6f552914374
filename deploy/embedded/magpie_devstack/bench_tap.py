"""The bench's tap: one process reading a namespace's recipient-level topics from the start and counting recipients
per stage exactly (``bench_stages``).

Run as ``python -m magpie_devstack.bench_tap`` with the stack's environment (``KAFKA_BOOTSTRAP``,
``MAGPIE_TOPIC_PREFIX``, ...). It assigns every partition of classified, dispatch, delivery, link and usage to itself
(no consumer group: nothing to join, nothing to commit), decodes only the fields it counts, and writes one JSON line
per ``--interval`` to stdout (``{"t", "tasks": {task_id: status}, "topics"}``). Commands on stdin: ``report`` writes
a line with ``"report": true``, the per-bucket counts and samples of the record sizes; ``stop`` (or end of input)
writes the report and exits.

When a fetch comes back empty the tap pauses its partitions for ``--idle-backoff`` seconds, so an idle tap costs
next to nothing whether the broker long-polls fetches or answers them at once. ``TapClient`` is the bench's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2, link_pb2, resolve_pb2
from magpie_common.config import Settings
from magpie_common.topics import CLASSIFIED, DELIVERY, DISPATCH, LINK, USAGE, Topic, topic_name
from magpie_devstack.bench_stages import DELIVERED, FAILED, INVALID, SKIPPED, TIMEOUT, TaskStages

TAPPED: tuple[Topic, ...] = (CLASSIFIED, DISPATCH, DELIVERY, LINK, USAGE)
SIZE_SAMPLES = 1000

_FINAL = {
    dispatch_pb2.DELIVERY_STATUS_DELIVERED: DELIVERED,
    dispatch_pb2.DELIVERY_STATUS_FAILED: FAILED,
    dispatch_pb2.DELIVERY_STATUS_TIMEOUT: TIMEOUT,
}
_SUBMITTED = dispatch_pb2.DELIVERY_STATUS_SUBMITTED
_CLASSIFIED_FINAL = {common_pb2.ROUTE_INVALID: INVALID, common_pb2.ROUTE_SKIPPED: SKIPPED}
_RESOLVED = link_pb2.LINK_EVENT_TYPE_RESOLVED


@dataclass
class TopicStats:
    records: int = 0
    bytes: int = 0
    samples: list[int] = field(default_factory=list)

    def add(self, size: int, rng: random.Random) -> None:
        self.records += 1
        self.bytes += size
        if len(self.samples) < SIZE_SAMPLES:
            self.samples.append(size)
        else:
            slot = rng.randrange(self.records)
            if slot < SIZE_SAMPLES:
                self.samples[slot] = size


class Tap:
    def __init__(self, settings: Settings, bucket_s: float) -> None:
        self.settings = settings
        self.bucket_s = bucket_s
        self.tasks: dict[str, TaskStages] = {}
        self.rng = random.Random(5)
        self.names = {topic_name(settings, t): t.name for t in TAPPED}
        self.topics = {t.name: TopicStats() for t in TAPPED}
        self.handlers: dict[str, Callable[[bytes, int], None]] = {
            CLASSIFIED.name: self._classified,
            DISPATCH.name: self._dispatch,
            DELIVERY.name: self._delivery,
            LINK.name: self._link,
            USAGE.name: self._usage,
        }
        self.last_record_ms = 0

    def task(self, task_id: str) -> TaskStages:
        stages = self.tasks.get(task_id)
        if stages is None:
            stages = self.tasks[task_id] = TaskStages(bucket_s=self.bucket_s)
        return stages

    def record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        name = self.names[record.topic]
        value = record.value or b""
        self.topics[name].add(len(value), self.rng)
        at_ms = int(record.timestamp)
        self.last_record_ms = max(self.last_record_ms, at_ms)
        self.handlers[name](value, at_ms)

    def _classified(self, value: bytes, at_ms: int) -> None:
        batch = resolve_pb2.ClassifiedBatch.FromString(value)
        stages = self.task(batch.ctx.task_id)
        source = f"classified:{batch.batch_no}"
        for r in batch.recipients:
            stages.mark("classified", r.index, at_ms)
            status = _CLASSIFIED_FINAL.get(r.route)
            if status:
                stages.final(r.index, status, source, at_ms)

    def _dispatch(self, value: bytes, at_ms: int) -> None:
        batch = dispatch_pb2.DispatchBatch.FromString(value)
        stages = self.task(batch.ctx.task_id)
        for r in batch.recipients:
            stages.mark("minted", r.index, at_ms)

    def _delivery(self, value: bytes, at_ms: int) -> None:
        batch = dispatch_pb2.DeliveryBatch.FromString(value)
        stages: TaskStages | None = None
        task_id = ""
        for e in batch.events:
            if e.task_id != task_id or stages is None:
                task_id = e.task_id
                stages = self.task(task_id)
            status = e.status
            if status == _SUBMITTED:
                stages.mark("submitted", e.index, at_ms)
            else:
                final = _FINAL.get(status)
                if final:
                    stages.final(e.index, final, e.event_id, at_ms, e.segments)

    def _link(self, value: bytes, at_ms: int) -> None:
        event = link_pb2.LinkEvent.FromString(value)
        if event.type == _RESOLVED and event.billable and not event.group:
            self.task(event.task_id).resolved(event.code, at_ms)

    def _usage(self, value: bytes, at_ms: int) -> None:
        event = billing_pb2.UsageEvent.FromString(value)
        product = billing_pb2.UsageProduct.Name(event.product).removeprefix("USAGE_PRODUCT_")
        self.task(event.task_id).billed(event.meta.event_id, product, event.quantity, at_ms)

    def status(self) -> dict[str, Any]:
        return {
            "t": time.time(),
            "last_record_ms": self.last_record_ms,
            "tasks": {task_id: s.status() for task_id, s in self.tasks.items()},
            "topics": {name: {"records": s.records, "bytes": s.bytes} for name, s in self.topics.items()},
        }

    def report(self) -> dict[str, Any]:
        return {
            "report": True,
            "t": time.time(),
            "tasks": {task_id: s.report() for task_id, s in self.tasks.items()},
            "topics": {
                name: {"records": s.records, "bytes": s.bytes, "size_samples": s.samples}
                for name, s in self.topics.items()
            },
        }


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _stdin_commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "stop")


async def run(settings: Settings, *, interval_s: float, bucket_s: float, idle_backoff_s: float) -> None:
    tap = Tap(settings, bucket_s)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),  # type: ignore[arg-type]
        client_id="magpie-bench-tap",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=500,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    await consumer.start()
    partitions = [TopicPartition(topic_name(settings, t), p) for t in TAPPED for p in range(t.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_commands, args=(loop, commands), daemon=True).start()
    next_status = 0.0
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=int(interval_s * 1000), max_records=20_000)
            for records in batches.values():
                for record in records:
                    tap.record(record)
            if time.monotonic() >= next_status:
                _emit(tap.status())
                next_status = time.monotonic() + interval_s
            stop = False
            while not commands.empty():
                command = commands.get_nowait()
                if command in ("report", "stop"):
                    _emit(tap.report())
                stop = stop or command == "stop"
            if stop:
                return
            if not batches:
                consumer.pause(*partitions)
                await asyncio.sleep(idle_backoff_s)
                consumer.resume(*partitions)
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between status lines")
    parser.add_argument("--bucket", type=float, default=5.0, help="seconds per bucket of the rate series")
    parser.add_argument("--idle-backoff", type=float, default=0.5, help="pause after an empty fetch")
    args = parser.parse_args(argv)
    asyncio.run(run(Settings(), interval_s=args.interval, bucket_s=args.bucket, idle_backoff_s=args.idle_backoff))


# --- the bench's side ------------------------------------------------------------------------------------------
class TapClient:
    """Starts the tap process, keeps its latest status line, asks for its report."""

    def __init__(self, env: Mapping[str, str], *, bucket_s: float, interval_s: float = 1.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magpie_devstack.bench_tap",
                "--bucket",
                str(bucket_s),
                "--interval",
                str(interval_s),
            ],
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.latest: dict[str, Any] = {}
        self.reports: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            payload = json.loads(line)
            with self._changed:
                if payload.get("report"):
                    self.reports.append(payload)
                else:
                    self.latest = payload
                self._changed.notify_all()

    def task(self, task_id: str) -> dict[str, Any]:
        with self._changed:
            return dict(self.latest.get("tasks", {}).get(task_id, {}))

    def status(self) -> dict[str, Any]:
        with self._changed:
            return dict(self.latest)

    def wait_update(self, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait(timeout_s)

    def report(self, timeout_s: float = 60) -> dict[str, Any]:
        if self.process.poll() is not None:
            raise RuntimeError(f"the tap exited with {self.process.returncode}")
        with self._changed:
            wanted = len(self.reports) + 1
        self._send("report")
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.reports) < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no report from the tap within {timeout_s}s")
                self._changed.wait(left)
            return self.reports[-1]

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._send("stop")
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    main()
