"""The capability rule engine: can this handset render a smart message of this template?

Evaluation order for one device (the first failing step decides the reason):

1. no device record -> UNKNOWN_DEVICE / NO_DEVICE_RECORD; brand or model missing -> UNKNOWN_DEVICE /
   MISSING_BRAND_OR_MODEL;
2. brand not in the table -> UNSUPPORTED / UNKNOWN_BRAND; model not in the table (and no os_wildcard series
   covers its OS) -> UNSUPPORTED / UNKNOWN_MODEL;
3. OS first: the brand's OS rules are alternatives; the first that passes selects the numbered conditions. When
   none passes, the reason comes from the rule that got furthest (OS name, then OS version, then Android version,
   then quick-app engine version), preferring a missing value over "too old" over "unsupported" at equal depth:
   MISSING_OS_INFO / MISSING_QUICK_APP_ENGINE_VERSION (UNKNOWN_DEVICE), OS_TOO_OLD, QUICK_APP_ENGINE_TOO_OLD,
   OS_UNSUPPORTED (wrong OS, or above a max_major range) (UNSUPPORTED);
4. then the messaging-app (or Honor's smart-SMS plugin) version against the selected conditions whose family
   matches the device's OS: any satisfied "buttons" condition -> RENDER_BUTTONS, else any satisfied "render"
   condition -> RENDER, else APP_TOO_OLD / PLUGIN_TOO_OLD, or MISSING_APP_VERSION / MISSING_PLUGIN_VERSION
   (UNKNOWN_DEVICE) when the version needed is not known;
5. then the brand's required switches (vivo): unknown -> UNKNOWN_DEVICE / MISSING_SWITCH_STATE, off ->
   UNSUPPORTED / SWITCH_OFF;
6. last, the template's vendor filter: a handset that would render but whose vendor is not among the template's
   approved vendors -> UNSUPPORTED / VENDOR_NOT_APPROVED. It is applied last so that the reason always names
   what would have to change (a vendor approval does not help a handset whose app is too old).

A version string that cannot be parsed (``Version.parse`` rules) counts as missing.

Verdicts are cached per Device value (``Device`` is a frozen, hashable dataclass); version strings, brand and
model look-ups are cached too, and every table version is a precompiled integer tuple: a cached evaluation is a
dict look-up plus the vendor check.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .loader import load_table
from .msisdn import normalize_msisdn
from .table import Bound, BoundCheck, CapabilityTable, Grant, Model, OsRule
from .version import version_key

__all__ = [
    "CapabilityEngine",
    "Device",
    "Outcome",
    "Reason",
    "Verdict",
    "classify",
    "default_engine",
    "evaluate",
]


class Outcome(enum.Enum):
    RENDER_BUTTONS = "render_buttons"  # renders the card, buttons change colour
    RENDER = "render"  # renders the card
    UNSUPPORTED = "unsupported"  # known not to render (see reason)
    UNKNOWN_DEVICE = "unknown_device"  # no device record, or the record lacks what the rules need
    INVALID_NUMBER = "invalid_number"  # only from classify(): not a valid mobile number


class Reason(enum.Enum):
    NO_DEVICE_RECORD = "no_device_record"
    MISSING_BRAND_OR_MODEL = "missing_brand_or_model"
    MISSING_OS_INFO = "missing_os_info"
    MISSING_QUICK_APP_ENGINE_VERSION = "missing_quick_app_engine_version"
    MISSING_APP_VERSION = "missing_app_version"
    MISSING_PLUGIN_VERSION = "missing_plugin_version"
    MISSING_SWITCH_STATE = "missing_switch_state"
    UNKNOWN_BRAND = "unknown_brand"
    UNKNOWN_MODEL = "unknown_model"
    OS_UNSUPPORTED = "os_unsupported"
    OS_TOO_OLD = "os_too_old"
    QUICK_APP_ENGINE_TOO_OLD = "quick_app_engine_too_old"
    APP_TOO_OLD = "app_too_old"
    PLUGIN_TOO_OLD = "plugin_too_old"
    SWITCH_OFF = "switch_off"
    VENDOR_NOT_APPROVED = "vendor_not_approved"
    INVALID_NUMBER = "invalid_number"


_MISSING = frozenset(
    {
        Reason.NO_DEVICE_RECORD,
        Reason.MISSING_BRAND_OR_MODEL,
        Reason.MISSING_OS_INFO,
        Reason.MISSING_QUICK_APP_ENGINE_VERSION,
        Reason.MISSING_APP_VERSION,
        Reason.MISSING_PLUGIN_VERSION,
        Reason.MISSING_SWITCH_STATE,
    }
)
# at equal depth of an OS rule, which failure explains more
_OS_FAILURE_PRIORITY = {
    Reason.MISSING_OS_INFO: 3,
    Reason.MISSING_QUICK_APP_ENGINE_VERSION: 3,
    Reason.OS_TOO_OLD: 2,
    Reason.QUICK_APP_ENGINE_TOO_OLD: 2,
    Reason.OS_UNSUPPORTED: 1,
}


@dataclass(frozen=True, slots=True)
class Device:
    """What the device registry knows about the handset behind a number; every field is optional.

    Versions are the strings the handset reports (parsed leniently, see ``Version.parse``).
    ``smart_info_service`` / ``rich_media_display`` are vivo's 短信 settings 智慧信息服务 and 富媒体化展示内容.
    """

    brand: str | None = None
    model: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    android_version: str | None = None
    app_version: str | None = None
    plugin_version: str | None = None
    quick_app_engine_version: str | None = None
    smart_info_service: bool | None = None
    rich_media_display: bool | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one number/device. ``reason`` is None when the card renders."""

    outcome: Outcome
    reason: Reason | None = None
    vendor: str | None = None  # HUAWEI HONOR XIAOMI OPPO VIVO MEIZU SAMSUNG
    model: str | None = None  # canonical model name from the table
    condition: int | None = None  # the numbered condition that granted rendering

    @property
    def resolvable(self) -> bool:
        return self.outcome is Outcome.RENDER_BUTTONS or self.outcome is Outcome.RENDER


def _failure(reason: Reason, vendor: str | None = None, model: str | None = None) -> Verdict:
    outcome = Outcome.UNKNOWN_DEVICE if reason in _MISSING else Outcome.UNSUPPORTED
    return Verdict(outcome, reason, vendor, model)


_NO_DEVICE = Verdict(Outcome.UNKNOWN_DEVICE, Reason.NO_DEVICE_RECORD)
_INVALID_NUMBER = Verdict(Outcome.INVALID_NUMBER, Reason.INVALID_NUMBER)


def _version_key(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else version_key(text)


# (depth, bound, Device attribute, reason when missing, reason when below the bound)
_Check = tuple[int, Bound, str, Reason, Reason]


def _compile_checks(rule: OsRule) -> tuple[_Check, ...]:
    checks: list[_Check] = []
    if rule.os_version is not None:
        checks.append((1, rule.os_version, "os_version", Reason.MISSING_OS_INFO, Reason.OS_TOO_OLD))
    if rule.android_version is not None:
        checks.append((2, rule.android_version, "android_version", Reason.MISSING_OS_INFO, Reason.OS_TOO_OLD))
    if rule.quick_app_engine_version is not None:
        checks.append(
            (
                3,
                rule.quick_app_engine_version,
                "quick_app_engine_version",
                Reason.MISSING_QUICK_APP_ENGINE_VERSION,
                Reason.QUICK_APP_ENGINE_TOO_OLD,
            )
        )
    return tuple(checks)


class CapabilityEngine:
    """Evaluates devices against one :class:`CapabilityTable`."""

    __slots__ = (
        "_blocked",
        "_brand_cache",
        "_cache",
        "_cache_size",
        "_model_cache",
        "_os_cache",
        "_plans",
        "table",
    )

    def __init__(self, table: CapabilityTable, cache_size: int = 100_000) -> None:
        self.table = table
        self._cache_size = cache_size
        self._cache: dict[Device, Verdict] = {}
        self._blocked: dict[Verdict, Verdict] = {}
        self._brand_cache: dict[str, tuple[str, str | None] | None] = {}
        self._model_cache: dict[tuple[str, str, str | None], Model | None] = {}
        self._os_cache: dict[str, str | None] = {}
        # per vendor: (rule, its version checks in evaluation order) with the depth each check reaches
        self._plans: dict[str, tuple[tuple[OsRule, tuple[_Check, ...]], ...]] = {
            vendor: tuple((rule, _compile_checks(rule)) for rule in brand.os_rules)
            for vendor, brand in table.brands.items()
        }

    # ------------------------------------------------------------------------------------------ public API

    def evaluate(self, device: Device | None, approved_vendors: frozenset[str] | None = None) -> Verdict:
        """Verdict for one device; ``approved_vendors`` = vendor codes the template is approved for (None = all)."""
        if device is None:
            return _NO_DEVICE
        if self._cache_size:
            verdict = self._cache.get(device)
            if verdict is None:
                verdict = self.evaluate_device(device)
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
                self._cache[device] = verdict
        else:
            verdict = self.evaluate_device(device)
        if approved_vendors is not None:
            outcome = verdict.outcome
            if (outcome is Outcome.RENDER_BUTTONS or outcome is Outcome.RENDER) and (
                verdict.vendor not in approved_vendors
            ):
                blocked = self._blocked.get(verdict)
                if blocked is None:
                    blocked = Verdict(
                        Outcome.UNSUPPORTED,
                        Reason.VENDOR_NOT_APPROVED,
                        verdict.vendor,
                        verdict.model,
                        verdict.condition,
                    )
                    if len(self._blocked) >= 4096:
                        self._blocked.clear()
                    self._blocked[verdict] = blocked
                return blocked
        return verdict

    def classify(self, number: str, device: Device | None, approved_vendors: frozenset[str] | None = None) -> Verdict:
        """Like :meth:`evaluate`, but first rejects a number that is not a valid mainland-China mobile number."""
        if normalize_msisdn(number) is None:
            return _INVALID_NUMBER
        return self.evaluate(device, approved_vendors)

    def evaluate_device(self, device: Device) -> Verdict:
        """The template-independent verdict of one device (uncached)."""
        if not device.brand or not device.model:
            return _failure(Reason.MISSING_BRAND_OR_MODEL)
        resolved = self._resolve_brand(device.brand)
        if resolved is None:
            return _failure(Reason.UNKNOWN_BRAND)
        vendor, sub_brand = resolved
        brand = self.table.brands[vendor]
        os_name = self._canonical_os(device.os_name)
        model = self._find_model(vendor, device.model, sub_brand)
        model_name: str | None
        if model is not None:
            model_name = model.name
        elif self.table.wildcard_series(vendor, os_name) is not None:
            model_name = None
        else:
            return _failure(Reason.UNKNOWN_MODEL, vendor)

        rule = self._select_os_rule(vendor, device, os_name)
        if not isinstance(rule, OsRule):
            return _failure(rule, vendor, model_name)

        grant, number, failure = self._check_conditions(rule, device, os_name)
        if grant is None:
            return _failure(failure, vendor, model_name)

        for switch in brand.required_switches:
            state = getattr(device, switch)
            if state is None:
                return _failure(Reason.MISSING_SWITCH_STATE, vendor, model_name)
            if not state:
                return _failure(Reason.SWITCH_OFF, vendor, model_name)

        outcome = Outcome.RENDER_BUTTONS if grant is Grant.BUTTONS else Outcome.RENDER
        return Verdict(outcome, None, vendor, model_name, number)

    def clear_caches(self) -> None:
        self._cache.clear()
        self._blocked.clear()
        self._brand_cache.clear()
        self._model_cache.clear()
        self._os_cache.clear()

    # ------------------------------------------------------------------------------------------ internals

    def _resolve_brand(self, brand: str) -> tuple[str, str | None] | None:
        try:
            return self._brand_cache[brand]
        except KeyError:
            resolved = self._brand_cache[brand] = self.table.resolve_brand(brand)
            return resolved

    def _canonical_os(self, os_name: str | None) -> str | None:
        if os_name is None:
            return None
        try:
            return self._os_cache[os_name]
        except KeyError:
            canonical = self._os_cache[os_name] = self.table.canonical_os(os_name)
            return canonical

    def _find_model(self, vendor: str, model: str, sub_brand: str | None) -> Model | None:
        key = (vendor, model, sub_brand)
        try:
            return self._model_cache[key]
        except KeyError:
            if len(self._model_cache) >= 65536:
                self._model_cache.clear()
            found = self._model_cache[key] = self.table.find_vendor_model(vendor, model, sub_brand)
            return found

    def _select_os_rule(self, vendor: str, device: Device, os_name: str | None) -> OsRule | Reason:
        """The first OS rule the device passes, or the most telling failure (see the module docstring)."""
        best_depth = -1
        best_reason = Reason.OS_UNSUPPORTED
        for rule, checks in self._plans[vendor]:
            depth = 0
            reason: Reason | None = None
            if rule.os is not None:
                if os_name is None:
                    reason = Reason.MISSING_OS_INFO if device.os_name is None else Reason.OS_UNSUPPORTED
                elif os_name not in rule.os:
                    reason = Reason.OS_UNSUPPORTED
            if reason is None:
                for check_depth, bound, attribute, missing, too_old in checks:
                    text = getattr(device, attribute)
                    key = None if text is None else version_key(text)
                    if key is None:
                        depth, reason = check_depth, missing
                        break
                    check = bound.check(key)
                    if check is not BoundCheck.OK:
                        depth = check_depth
                        reason = too_old if check is BoundCheck.TOO_LOW else Reason.OS_UNSUPPORTED
                        break
                else:
                    return rule
            if depth > best_depth or (
                depth == best_depth and _OS_FAILURE_PRIORITY[reason] > _OS_FAILURE_PRIORITY[best_reason]
            ):
                best_depth, best_reason = depth, reason
        return best_reason

    @staticmethod
    def _check_conditions(rule: OsRule, device: Device, os_name: str | None) -> tuple[Grant | None, int | None, Reason]:
        os_key = _version_key(device.os_version)
        os_major = (os_key[0] if os_key else 0) if os_key is not None else None
        app_key = _version_key(device.app_version)
        plugin_key = _version_key(device.plugin_version)
        grant: Grant | None = None
        number: int | None = None
        missing_field: str | None = None
        last_field = "app_version"
        for condition in rule.conditions:
            family = condition.family
            if family is not None and (family.os != os_name or family.major != os_major):
                continue
            last_field = condition.field
            key = app_key if condition.field == "app_version" else plugin_key
            if key is None:
                missing_field = condition.field
                continue
            if condition.bound.check(key) is BoundCheck.OK and (
                grant is None or (grant is Grant.RENDER and condition.gives is Grant.BUTTONS)
            ):
                grant, number = condition.gives, condition.number
        if grant is not None:
            return grant, number, Reason.APP_TOO_OLD
        if missing_field is not None:
            field = missing_field
            return (
                None,
                None,
                Reason.MISSING_APP_VERSION if field == "app_version" else Reason.MISSING_PLUGIN_VERSION,
            )
        return None, None, Reason.APP_TOO_OLD if last_field == "app_version" else Reason.PLUGIN_TOO_OLD


# ---------------------------------------------------------------------------------------------- module API


@lru_cache(maxsize=4)
def _engine_for(path: str | None) -> CapabilityEngine:
    return CapabilityEngine(load_table(path))


def default_engine(path: str | Path | None = None) -> CapabilityEngine:
    """The engine over the packaged table (or ``path``), loaded once per path."""
    return _engine_for(None if path is None else str(path))


def evaluate(device: Device | None, approved_vendors: frozenset[str] | None = None) -> Verdict:
    """Evaluate ``device`` against the packaged table; see :meth:`CapabilityEngine.evaluate`."""
    return _engine_for(None).evaluate(device, approved_vendors)


def classify(number: str, device: Device | None, approved_vendors: frozenset[str] | None = None) -> Verdict:
    """Validate ``number`` then evaluate ``device``; see :meth:`CapabilityEngine.classify`."""
    return _engine_for(None).classify(number, device, approved_vendors)
