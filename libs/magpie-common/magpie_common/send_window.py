"""The marketing send window: marketing messages (promotion SMS templates) go out only between two local times of
day (product-spec §7, "marketing send window 08:00-21:00"). The gateway checks scheduled times against it and the
dispatcher holds marketing batches that reach it outside it, so both read the same settings:

=============================  =================  ==================================================================
variable                       default            meaning
=============================  =================  ==================================================================
``MAGPIE_MARKETING_WINDOW``    ``08:00-21:00``    ``HH:MM-HH:MM`` local time of day; the start is inside the window,
                                                  the end is not (a send at 21:00:00 waits for the next morning). A
                                                  start after the end spans midnight (``22:00-06:00``); equal times
                                                  mean no restriction
``MAGPIE_MARKETING_TZ``        ``Asia/Shanghai``  IANA time zone of those local times (``zoneinfo``)
=============================  =================  ==================================================================

Tenants have no time zone of their own (KooMessage serves mainland China), so the configured zone is every
tenant's. Daylight-saving zones work: a window start that falls into a skipped hour opens at the first instant
after the gap, the way ``zoneinfo`` resolves the non-existent local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from magpie_common.config import env_str

DEFAULT_WINDOW = "08:00-21:00"
DEFAULT_TZ = "Asia/Shanghai"
_SPEC = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _clock(hours: str, minutes: str, spec: str) -> time:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"MAGPIE_MARKETING_WINDOW must be HH:MM-HH:MM (00:00 to 23:59), got {spec!r}")
    return time(h, m)


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time
    tz_name: str = DEFAULT_TZ
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"MAGPIE_MARKETING_TZ: unknown time zone {self.tz_name!r}") from exc
        object.__setattr__(self, "tz", zone)

    @classmethod
    def parse(cls, spec: str = DEFAULT_WINDOW, tz_name: str = DEFAULT_TZ) -> SendWindow:
        match = _SPEC.match(spec or "")
        if match is None:
            raise ValueError(f"MAGPIE_MARKETING_WINDOW must be HH:MM-HH:MM, got {spec!r}")
        return cls(_clock(match[1], match[2], spec), _clock(match[3], match[4], spec), tz_name.strip())

    @classmethod
    def from_env(cls) -> SendWindow:
        return cls.parse(env_str("MAGPIE_MARKETING_WINDOW", DEFAULT_WINDOW), env_str("MAGPIE_MARKETING_TZ", DEFAULT_TZ))

    @property
    def unrestricted(self) -> bool:
        return self.start == self.end

    def describe(self) -> str:
        """``08:00-21:00 Asia/Shanghai``"""
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz_name}"

    def local(self, at_ms: int) -> datetime:
        return datetime.fromtimestamp(at_ms / 1000, self.tz)

    def contains(self, at_ms: int) -> bool:
        """Whether a message may go out at ``at_ms`` (epoch milliseconds)."""
        if self.unrestricted:
            return True
        moment = self.local(at_ms).time()
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def next_open_ms(self, at_ms: int) -> int:
        """The first instant at or after ``at_ms`` inside the window (``at_ms`` itself when it is inside)."""
        if self.contains(at_ms):
            return at_ms
        day = self.local(at_ms).date()
        for offset in range(3):
            opening = datetime.combine(day + timedelta(days=offset), self.start, tzinfo=self.tz)
            opening_ms = int(opening.timestamp() * 1000)
            if opening_ms >= at_ms:
                return opening_ms
        raise AssertionError("a daily window opens within two days")  # pragma: no cover
