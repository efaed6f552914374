"""Device field validation and the packed profile form (pure)."""

from __future__ import annotations

import pytest

from magpie_number_resolver.capability import Device
from magpie_number_resolver.devices import DeviceProfile, FieldError, build_profile, pack, unpack

BASE = {
    "brand": "HUAWEI",
    "model": "Mate 40 Pro",
    "os_name": "HarmonyOS",
    "os_version": "3.0",
    "app_version": "11.1.1.400",
}


def test_minimal_profile_and_engine_device() -> None:
    profile = build_profile(BASE)
    assert profile.android_version is None
    assert profile.smart_service_switch is None
    assert profile.to_device() == Device(
        brand="HUAWEI", model="Mate 40 Pro", os_name="HarmonyOS", os_version="3.0", app_version="11.1.1.400"
    )


def test_full_profile_roundtrips_through_the_packed_form() -> None:
    profile = build_profile(
        {
            "brand": " vivo ",
            "model": "X60",
            "os_name": "OriginOS",
            "os_version": "1.0",
            "app_version": "V7.0.0",
            "android_version": "11",
            "plugin_version": "",
            "quick_app_engine_version": "10950000",
            "smart_service_switch": "ON",
            "rich_media_switch": "关",
        }
    )
    assert profile.brand == "vivo"
    assert profile.app_version == "V7.0.0"  # kept as reported; the engine parses it leniently
    assert profile.plugin_version is None
    assert profile.smart_service_switch is True
    assert profile.rich_media_switch is False
    assert unpack(profile.packed) == profile
    assert unpack(profile.packed).packed == profile.packed == pack(profile)
    device = profile.to_device()
    assert device.smart_info_service is True
    assert device.rich_media_display is False
    assert device.quick_app_engine_version == "10950000"


def test_same_fields_same_identity() -> None:
    a = build_profile(BASE)
    b = build_profile({**BASE, "brand": "HUAWEI "})
    assert a == b and hash(a) == hash(b) and a.packed == b.packed
    assert build_profile({**BASE, "app_version": "11.1.1.401"}).packed != a.packed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"brand": ""}, "brand is required"),
        ({"brand": None}, "brand is required"),
        ({"model": "x" * 81}, "model is longer than 80"),
        ({"os_name": "Harmony\x1fOS"}, "os_name contains a control character"),
        ({"os_version": ""}, "os_version is required"),
        ({"app_version": "latest"}, "app_version 'latest' is not a version"),
        ({"app_version": 11.1}, "app_version must be a string"),
        ({"android_version": "abc"}, "android_version 'abc' is not a version"),
        ({"plugin_version": "1" * 41}, "plugin_version is longer than 40"),
        ({"smart_service_switch": "maybe"}, "smart_service_switch 'maybe' is not a switch state"),
        ({"rich_media_switch": 2}, "rich_media_switch must be a boolean"),
    ],
)
def test_invalid_fields_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(FieldError, match=message):
        build_profile({**BASE, **changes})


def test_json_booleans_and_nulls_for_switches() -> None:
    profile = build_profile({**BASE, "smart_service_switch": True, "rich_media_switch": None})
    assert profile.smart_service_switch is True and profile.rich_media_switch is None
    assert isinstance(profile, DeviceProfile)


def test_unpack_rejects_a_foreign_value() -> None:
    with pytest.raises(ValueError, match="10 fields"):
        unpack("HUAWEI\x1fMate 40")
