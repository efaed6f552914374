"""Time helpers: the billing clock is injectable so tests can charge and settle at chosen instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB stores (so stored and in-memory values compare equal)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch, in integer arithmetic (no float rounding: ``from_ms`` round-trips)."""
    return (at - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + ms * _MS


def iso(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2025-01-31T08:00:00.000Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
