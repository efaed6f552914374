"""Fixtures of the billing tests: the service's components built in-process on the real infrastructure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from magpie_billing.app import BillingComponents, build
from magpie_billing.clock import utcnow
from magpie_common.config import Settings


class FakeClock:
    """A settable clock for the charger, the settler and the API."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def billing(settings: Settings) -> AsyncIterator[BillingComponents]:
    components = await build(settings)
    try:
        yield components
    finally:
        await components.close()
