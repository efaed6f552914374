"""A whole Magpie deployment as real processes on the embedded infrastructure, one per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from magpie_devstack.stack import Stack

ADMIN_TOKEN = secrets.token_urlsafe(12)


def start_stack(simulator_options: dict[str, str] | None = None) -> Stack:
    stack = Stack(
        profile="test",
        extra_env={
            "MAGPIE_ADMIN_TOKEN": ADMIN_TOKEN,
            "MAGPIE_RECEIPT_BATCH_WINDOW_MS": "200",
            # A message claimed but never confirmed by the carrier waits this long for a receipt before it is
            # failed as IN_DOUBT (72 h in production).
            "MAGPIE_IN_DOUBT_GRACE_S": "8",
        },
        simulator_options=simulator_options,
    )
    try:
        stack.up(timeout_s=120)
    except Exception:
        for name in stack.procs:
            print(f"--- {name} log ---\n{stack.logs(name)[-3000:]}")
        stack.down()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(infra_env: dict[str, str]) -> Iterator[Stack]:
    stack = start_stack({"MAGPIE_SIM_FAILURE_RATE": "0.05", "MAGPIE_SIM_DLR_DELAY": "0.05", "MAGPIE_SIM_SEED": "3"})
    yield stack
    codes = stack.down()
    stack.purge()
    # Every service drains and exits cleanly on SIGTERM.
    assert all(code == 0 for code in codes.values()), codes
