"""The batches of one partition run concurrently, share one bound on chunks in flight, and a failure is raised only
once every batch finished (no infrastructure)."""

from __future__ import annotations

import asyncio

import pytest

from magpie.v1 import dispatch_pb2
from magpie_dispatcher.sender import run_batches
from magpie_dispatcher.testing import context, dispatch_batch, recipient


def batches(*numbers: int) -> list[dispatch_pb2.DispatchBatch]:
    ctx = context("task-batches")
    return [dispatch_batch(ctx, n, [recipient(n)]) for n in numbers]


async def test_batches_overlap_and_share_the_gate() -> None:
    gate = asyncio.Semaphore(4)
    running: set[int] = set()
    overlapped = asyncio.Event()
    gates: list[asyncio.Semaphore] = []

    async def process(batch: dispatch_pb2.DispatchBatch, shared: asyncio.Semaphore) -> None:
        gates.append(shared)
        running.add(batch.batch_no)
        if len(running) == 3:
            overlapped.set()
        await overlapped.wait()  # would never return if the batches ran one after the other

    await asyncio.wait_for(run_batches(batches(0, 1, 2), process, gate), 5)
    assert running == {0, 1, 2} and all(g is gate for g in gates)


async def test_a_failure_is_raised_after_every_batch_finished() -> None:
    finished: list[int] = []
    release = asyncio.Event()

    async def process(batch: dispatch_pb2.DispatchBatch, gate: asyncio.Semaphore) -> None:
        if batch.batch_no == 0:
            raise ConnectionError("redis down")
        await release.wait()
        finished.append(batch.batch_no)

    task = asyncio.create_task(run_batches(batches(0, 1, 2), process, asyncio.Semaphore(1)))
    await asyncio.sleep(0.05)
    assert not task.done()  # batch 0 failed, but 1 and 2 are still submitting: no retry may start yet
    release.set()
    with pytest.raises(ConnectionError):
        await task
    assert sorted(finished) == [1, 2]


async def test_a_copy_of_a_batch_runs_after_the_original() -> None:
    order: list[tuple[int, str]] = []

    async def process(batch: dispatch_pb2.DispatchBatch, gate: asyncio.Semaphore) -> None:
        order.append((batch.batch_no, "start"))
        await asyncio.sleep(0)
        order.append((batch.batch_no, "end"))

    copy = batches(5)
    await run_batches([*copy, *batches(6), *copy], process, asyncio.Semaphore(1))
    assert order.count((5, "start")) == 2
    first_end = order.index((5, "end"))
    assert order.index((5, "start"), first_end) > first_end  # the copy starts once the original ended
