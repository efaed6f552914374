"""Fixtures of the number-resolver tests: the service on the real embedded Kafka, MongoDB and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from magpie_common.config import Settings
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.testing import Running, serve


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Running]:
    """HTTP API on a real port (upload limit lowered to 64 KiB so the 413 path is cheap), no consumer."""
    async with serve(settings, ResolverConfig(max_upload_bytes=64 * 1024), worker=False) as running:
        yield running


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Running]:
    """The whole service: HTTP API and the RECIPIENTS consumer loop."""
    async with serve(settings, ResolverConfig(), worker=True) as running:
        yield running
