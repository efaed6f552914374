"""What the registry knows about the handset behind a number, and the validation of incoming device data.

A :class:`DeviceProfile` is everything about a handset except the number: brand, model, OS, versions and the
two vivo switches. Many numbers share a profile (same model, same OS and app versions), which is what the Redis
encoding exploits (see ``profiles``). Its packed form (fields joined by U+001F) is the profile's identity.

The same field rules apply to CSV rows and JSON bodies (:func:`build_profile`):

- ``brand``, ``model``, ``os_name``: required text (brand/OS ≤ 40, model ≤ 80 characters), no control characters;
- ``os_version``, ``app_version``: required versions; ``android_version``, ``plugin_version``,
  ``quick_app_engine_version``: optional versions. A version is the string the handset reports ("11.1.0.551",
  "V13.2.20.13", "EMUI 11.0.1"), kept as written, and must contain a dotted number the capability engine can read
  (``capability.Version.parse``); ≤ 40 characters;
- ``smart_service_switch`` (vivo 智慧信息服务), ``rich_media_switch`` (vivo 富媒体化展示内容): optional booleans;
  text forms 1/0, true/false, on/off, yes/no, y/n, 开/关, 是/否 (any case); empty = unknown.

``observed``: the profile was learned from a handset that resolved a smart-message link (``learning``): the
handset is known to render cards whatever the table says about its (possibly incomplete) fields; the fields the
edge could not tell are empty strings. Packed as an optional 11th field ("1"), absent for imported profiles, so
profiles packed before the field existed keep their identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from magpie_number_resolver.capability import Device, Version, VersionError

SEP = "\x1f"
PACK_FIELDS = 10
PACKED_OBSERVED = "1"  # the optional 11th packed field of an observed profile

TEXT_FIELDS: dict[str, int] = {"brand": 40, "model": 80, "os_name": 40}
REQUIRED_VERSIONS = ("os_version", "app_version")
OPTIONAL_VERSIONS = ("android_version", "plugin_version", "quick_app_engine_version")
VERSION_MAX = 40
SWITCH_FIELDS = ("smart_service_switch", "rich_media_switch")
REQUIRED_FIELDS = ("brand", "model", "os_name", "os_version", "app_version")
OPTIONAL_FIELDS = (*OPTIONAL_VERSIONS, *SWITCH_FIELDS)
ALL_FIELDS = (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)

_TRUE = frozenset({"1", "true", "on", "yes", "y", "开", "是", "打开", "开启"})
_FALSE = frozenset({"0", "false", "off", "no", "n", "关", "否", "关闭"})


class FieldError(ValueError):
    """A device field that fails validation; the message names the field."""


def sha1_of(msisdn: str) -> str:
    """The lower-case hex SHA1 of a msisdn (``8613800138000``: country code without "+" or leading zeros, then the
    number), as KooMessage's capability check sends hashed numbers (``encryption_alg`` SHA1)."""
    return hashlib.sha1(msisdn.encode("ascii"), usedforsecurity=False).hexdigest()


def _has_control(text: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in text)


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A handset description shared by every number that carries it (hashable; the packed form is its identity)."""

    brand: str
    model: str
    os_name: str
    os_version: str
    app_version: str
    android_version: str | None = None
    plugin_version: str | None = None
    quick_app_engine_version: str | None = None
    smart_service_switch: bool | None = None
    rich_media_switch: bool | None = None
    observed: bool = False
    packed: str = field(default="", compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not self.packed:
            object.__setattr__(self, "packed", pack(self))

    def to_device(self) -> Device:
        """The capability engine's view of this profile."""
        return Device(
            brand=self.brand or None,
            model=self.model or None,
            os_name=self.os_name or None,
            os_version=self.os_version or None,
            android_version=self.android_version,
            app_version=self.app_version or None,
            plugin_version=self.plugin_version,
            quick_app_engine_version=self.quick_app_engine_version,
            smart_info_service=self.smart_service_switch,
            rich_media_display=self.rich_media_switch,
        )

    def as_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in ALL_FIELDS}, "observed": self.observed}


def _switch_char(value: bool | None) -> str:
    return "" if value is None else ("1" if value else "0")


def pack(profile: DeviceProfile) -> str:
    """The compact text form: the ten fields joined by U+001F (no field may contain a control character), plus
    an 11th field "1" for an observed profile."""
    packed = SEP.join(
        (
            profile.brand,
            profile.model,
            profile.os_name,
            profile.os_version,
            profile.app_version,
            profile.android_version or "",
            profile.plugin_version or "",
            profile.quick_app_engine_version or "",
            _switch_char(profile.smart_service_switch),
            _switch_char(profile.rich_media_switch),
        )
    )
    return packed + SEP + PACKED_OBSERVED if profile.observed else packed


def unpack(packed: str) -> DeviceProfile:
    parts = packed.split(SEP)
    observed = len(parts) == PACK_FIELDS + 1 and parts[-1] == PACKED_OBSERVED
    if observed:
        parts.pop()
    if len(parts) != PACK_FIELDS:
        raise ValueError(f"a packed profile has {PACK_FIELDS} fields (11 when observed), got {len(parts)}")
    brand, model, os_name, os_version, app_version, android, plugin, engine, smart, rich = parts
    return DeviceProfile(
        brand=brand,
        model=model,
        os_name=os_name,
        os_version=os_version,
        app_version=app_version,
        android_version=android or None,
        plugin_version=plugin or None,
        quick_app_engine_version=engine or None,
        smart_service_switch=None if smart == "" else smart == "1",
        rich_media_switch=None if rich == "" else rich == "1",
        observed=observed,
        packed=packed,
    )


def _text(name: str, value: object, limit: int) -> str:
    if value is None:
        raise FieldError(f"{name} is required")
    if not isinstance(value, str):
        raise FieldError(f"{name} must be a string")
    text = value.strip()
    if not text:
        raise FieldError(f"{name} is required")
    if len(text) > limit:
        raise FieldError(f"{name} is longer than {limit} characters")
    if _has_control(text):
        raise FieldError(f"{name} contains a control character")
    return text


def _version(name: str, value: object, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise FieldError(f'{name} must be a string such as "11.1.0.551"')
    text = value.strip()
    if len(text) > VERSION_MAX:
        raise FieldError(f"{name} is longer than {VERSION_MAX} characters")
    if _has_control(text):
        raise FieldError(f"{name} contains a control character")
    try:
        Version.parse(text)
    except VersionError:
        raise FieldError(f"{name} {text!r} is not a version (expected digits and dots, e.g. 11.1.0.551)") from None
    return text


def parse_switch(name: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if not isinstance(value, str):
        raise FieldError(f"{name} must be a boolean")
    text = value.strip().casefold()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldError(f"{name} {value!r} is not a switch state (use on/off, 1/0, true/false)")


def build_profile(values: Mapping[str, object]) -> DeviceProfile:
    """Validate device fields (CSV cells or JSON values) into a profile; raises :class:`FieldError`."""
    return DeviceProfile(
        brand=_text("brand", values.get("brand"), TEXT_FIELDS["brand"]),
        model=_text("model", values.get("model"), TEXT_FIELDS["model"]),
        os_name=_text("os_name", values.get("os_name"), TEXT_FIELDS["os_name"]),
        os_version=_version("os_version", values.get("os_version"), True) or "",
        app_version=_version("app_version", values.get("app_version"), True) or "",
        android_version=_version("android_version", values.get("android_version"), False),
        plugin_version=_version("plugin_version", values.get("plugin_version"), False),
        quick_app_engine_version=_version("quick_app_engine_version", values.get("quick_app_engine_version"), False),
        smart_service_switch=parse_switch("smart_service_switch", values.get("smart_service_switch")),
        rich_media_switch=parse_switch("rich_media_switch", values.get("rich_media_switch")),
    )
