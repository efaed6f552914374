"""Times on the wire: UTC ISO-8601 with a ``Z`` (``2019-10-12T07:20:50Z``, tasks with milliseconds)."""

from __future__ import annotations

from datetime import UTC, datetime

from magpie_gateway.errors import INVALID_PARAMETER, ApiError


def utc_now() -> datetime:
    return datetime.now(UTC)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def iso(value: datetime | None) -> str | None:
    """``2019-10-12T07:20:50Z`` (second precision), None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(value: datetime | None) -> str | None:
    """``2019-10-12T07:20:50.522Z`` (millisecond precision), None for None."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_from_ms(ms: int) -> str | None:
    """Second-precision ISO time of epoch milliseconds; 0 (unknown) gives None."""
    return iso(from_ms(ms)) if ms else None


def parse_time(name: str, value: str | None) -> datetime | None:
    """Parse an ISO-8601 query parameter (``Z`` or an offset; no offset means UTC); 400 when malformed."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError.of(
            INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: {name} must look like 2019-10-12T07:20:50Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_window(
    begin_name: str, begin: str | None, end_name: str, end: str | None
) -> tuple[datetime, datetime] | None:
    """A ``begin``/``end`` pair; as in KooMessage, the window applies only when both are given."""
    begin_at = parse_time(begin_name, begin)
    end_at = parse_time(end_name, end)
    if begin_at is None or end_at is None:
        return None
    if begin_at > end_at:
        raise ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: {begin_name} must not be after {end_name}")
    return begin_at, end_at
