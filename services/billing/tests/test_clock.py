"""Time conversions of the ledger and the usage events: exact at millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from magpie_billing.clock import floor_hour, from_ms, iso, to_ms, utcnow


@given(st.integers(-(10**13), 10**14))
def test_milliseconds_round_trip(ms: int) -> None:
    assert to_ms(from_ms(ms)) == ms


def test_now_is_at_millisecond_precision_and_formats_as_utc() -> None:
    now = utcnow()
    assert now.microsecond % 1000 == 0 and now.tzinfo is not None
    assert from_ms(to_ms(now)) == now
    at = datetime(2025, 3, 10, 8, 59, 59, 999000, tzinfo=UTC)
    assert iso(at) == "2025-03-10T08:59:59.999Z"
    assert floor_hour(at) == datetime(2025, 3, 10, 8, tzinfo=UTC)
