"""The periodic worker's idle back-off: idle rounds double the wait up to its ceiling; work or ``wake()`` bring it
back to the base interval, and a wake-up starts a round at once whatever the wait has grown to."""

from __future__ import annotations

import asyncio

from magpie_gateway.periodic import PeriodicWorker

from .conftest import eventually


class Worker(PeriodicWorker):
    def __init__(self) -> None:
        super().__init__(0.01, max_interval_s=0.08)
        self.rounds = 0
        self.work = 0  # rounds that will find work

    async def round(self) -> bool:
        self.rounds += 1
        if self.work:
            self.work -= 1
            return True
        return False


async def test_idle_rounds_back_off_and_work_resets_the_wait() -> None:
    worker = Worker()
    running = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.wait_s == 0.08, timeout_s=5, interval_s=0.005)  # 0.01, 0.02, 0.04, 0.08
        before = worker.rounds
        await asyncio.sleep(0.4)
        assert worker.rounds - before <= 6  # ~0.4 s / 0.08 s, not 0.4 s / 0.01 s
        worker.work = 3
        woken = worker.rounds
        worker.wake()
        await eventually(lambda: worker.rounds >= woken + 4, timeout_s=1, interval_s=0.002)
        assert worker.wait_s < 0.08
    finally:
        worker.stop()
        await asyncio.wait_for(running, 1)


async def test_without_a_ceiling_the_interval_stays() -> None:
    class Plain(Worker):
        def __init__(self) -> None:
            PeriodicWorker.__init__(self, 0.01)
            self.rounds, self.work = 0, 0

    worker = Plain()
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)
    worker.stop()
    await asyncio.wait_for(running, 1)
    assert worker.wait_s == 0.01 and worker.rounds >= 5
