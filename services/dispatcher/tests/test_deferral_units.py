"""The marketing send window and the due time of a batch (no infrastructure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from magpie.v1 import task_pb2
from magpie_common.send_window import SendWindow
from magpie_dispatcher.config import DispatcherConfig
from magpie_dispatcher.deferral import REASON_SCHEDULED, REASON_WINDOW, due_time

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW = SendWindow.parse("08:00-21:00", "Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0, second: int = 0, tz: ZoneInfo = SHANGHAI) -> int:
    return int(datetime(2030, 1, day, hour, minute, second, tzinfo=tz).timestamp() * 1000)


def test_window_contains_its_start_but_not_its_end() -> None:
    assert not WINDOW.contains(at(1, 7, 59, 59))
    assert WINDOW.contains(at(1, 8))
    assert WINDOW.contains(at(1, 20, 59, 59))
    assert not WINDOW.contains(at(1, 21))
    assert not WINDOW.contains(at(1, 23, 30))


def test_next_opening_is_the_same_morning_or_the_next() -> None:
    assert WINDOW.next_open_ms(at(1, 12)) == at(1, 12)  # inside: now
    assert WINDOW.next_open_ms(at(1, 6, 30)) == at(1, 8)
    assert WINDOW.next_open_ms(at(1, 21)) == at(2, 8)
    assert WINDOW.next_open_ms(at(1, 23, 59, 59)) == at(2, 8)


def test_window_uses_its_time_zone_not_the_hosts() -> None:
    # 01:00 UTC is 09:00 in Shanghai (inside) and 02:00 in Paris (outside the same local window).
    one_am_utc = at(1, 1, tz=ZoneInfo("UTC"))
    assert WINDOW.contains(one_am_utc)
    paris = SendWindow.parse("08:00-21:00", "Europe/Paris")
    assert not paris.contains(one_am_utc)
    assert paris.next_open_ms(one_am_utc) == at(1, 8, tz=ZoneInfo("Europe/Paris"))


def test_window_across_midnight_and_unrestricted_window() -> None:
    night = SendWindow.parse("22:00-06:00", "Asia/Shanghai")
    assert night.contains(at(1, 23)) and night.contains(at(2, 5, 59))
    assert not night.contains(at(1, 12))
    assert night.next_open_ms(at(1, 12)) == at(1, 22)
    always = SendWindow.parse("00:00-00:00", "Asia/Shanghai")
    assert always.unrestricted and always.contains(at(1, 3)) and always.next_open_ms(at(1, 3)) == at(1, 3)


def test_daylight_saving_zone_opens_after_the_gap() -> None:
    # 2030-03-10: New York skips 02:00-03:00; a window opening at 02:30 opens at 03:30 EDT (07:30 UTC).
    window = SendWindow.parse("02:30-20:00", "America/New_York")
    before = int(datetime(2030, 3, 10, 1, 0, tzinfo=ZoneInfo("America/New_York")).timestamp() * 1000)
    opening = window.next_open_ms(before)
    assert opening == int(datetime(2030, 3, 10, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    assert window.contains(opening)


@pytest.mark.parametrize("spec", ["8-21", "08:00", "24:00-21:00", "08:60-21:00", ""])
def test_malformed_window_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="MAGPIE_MARKETING_WINDOW"):
        SendWindow.parse(spec, "Asia/Shanghai")


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="MAGPIE_MARKETING_TZ"):
        SendWindow.parse("08:00-21:00", "Mars/Olympus")


def test_config_reads_the_window_and_deferral_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_MARKETING_WINDOW", "09:30-20:00")
    monkeypatch.setenv("MAGPIE_MARKETING_TZ", "Asia/Tokyo")
    monkeypatch.setenv("MAGPIE_DEFERRAL_INTERVAL_S", "0.5")
    monkeypatch.setenv("MAGPIE_DEFERRAL_LEASE_S", "30")
    config = DispatcherConfig.from_env()
    assert config.marketing_window.describe() == "09:30-20:00 Asia/Tokyo"
    assert config.deferral_interval_s == 0.5 and config.deferral_lease_s == 30
    assert DispatcherConfig().marketing_window.describe() == "08:00-21:00 Asia/Shanghai"


def test_due_time_of_notifications_marketing_and_scheduled_batches() -> None:
    noon, night = at(1, 12), at(1, 22)
    notification = task_pb2.TaskContext(task_id="t")
    marketing = task_pb2.TaskContext(task_id="t", marketing=True)
    assert due_time(notification, night, WINDOW) == (night, "")  # notifications are never held
    assert due_time(marketing, noon, WINDOW) == (noon, "")
    assert due_time(marketing, night, WINDOW) == (at(2, 8), REASON_WINDOW)
    scheduled = task_pb2.TaskContext(task_id="t", send_at_ms=at(1, 15))
    assert due_time(scheduled, noon, WINDOW) == (at(1, 15), REASON_SCHEDULED)
    assert due_time(scheduled, at(1, 16), WINDOW) == (at(1, 16), "")  # past its time: now
    late_marketing = task_pb2.TaskContext(task_id="t", marketing=True, send_at_ms=at(1, 21, 30))
    assert due_time(late_marketing, noon, WINDOW) == (at(2, 8), REASON_WINDOW)
    early_notification = task_pb2.TaskContext(task_id="t", send_at_ms=at(1, 6))
    assert due_time(early_notification, at(1, 5), WINDOW) == (at(1, 6), REASON_SCHEDULED)
