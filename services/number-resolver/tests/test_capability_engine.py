"""The capability rule engine, table-driven per brand: OS rules, every numbered condition's boundary versions,
OS-first ordering, Honor's Magic OS plugin rule, vivo's switches, the vendor filter, unknown models/devices."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from magpie_number_resolver.capability import (
    CapabilityEngine,
    Device,
    Outcome,
    Reason,
    Verdict,
    bench,
    classify,
    evaluate,
    load_table,
    normalize_msisdn,
)
from magpie_number_resolver.capability.bench import make_workload

B, R, U, K = Outcome.RENDER_BUTTONS, Outcome.RENDER, Outcome.UNSUPPORTED, Outcome.UNKNOWN_DEVICE

# A capable handset of every brand; cases override single fields.
BASE: dict[str, dict[str, Any]] = {
    "HUAWEI": dict(brand="HUAWEI", model="Mate 40 Pro", os_name="HarmonyOS", os_version="3.0.0"),
    "HONOR": dict(brand="HONOR", model="Magic 4 Pro", os_name="Magic OS", os_version="7.0"),
    "XIAOMI": dict(brand="Xiaomi", model="小米11", os_name="MIUI", os_version="13.0.1"),
    "OPPO": dict(brand="OPPO", model="Find X5 Pro", os_name="ColorOS", os_version="12.1", android_version="12"),
    "MEIZU": dict(brand="Meizu", model="18 Pro", os_name="Flyme", os_version="9.2"),
    "VIVO": dict(
        brand="vivo",
        model="X70 Pro+",
        os_name="OriginOS",
        os_version="2.0",
        android_version="11",
        smart_info_service=True,
        rich_media_display=True,
    ),
    "SAMSUNG": dict(brand="Samsung", model="Galaxy S22 Ultra", os_name="One UI", os_version="5.1"),
}


def device(vendor: str, **fields: Any) -> Device:
    return Device(**{**BASE[vendor], **fields})


@pytest.fixture(scope="module")
def engine() -> CapabilityEngine:
    return CapabilityEngine(load_table())


def check(
    engine: CapabilityEngine, dev: Device | None, outcome: Outcome, reason: Reason | None, **extra: Any
) -> Verdict:
    verdict = engine.evaluate(dev)
    assert (verdict.outcome, verdict.reason) == (outcome, reason), verdict
    for name, value in extra.items():
        assert getattr(verdict, name) == value, verdict
    return verdict


# ---------------------------------------------------------------------------------------------- numbered conditions


class Boundary(NamedTuple):
    vendor: str
    number: int  # the seed's condition number
    context: dict[str, Any]  # OS (family) on which the condition applies
    field: str  # app_version | plugin_version
    below: str
    exact: str
    above: str
    gives: Outcome
    strict: bool  # ">" (大于) rather than ">=" (及以上 / 以上)
    below_verdict: tuple[Outcome, Reason | None, int | None]


HARMONY = dict(os_name="HarmonyOS", os_version="2.0")
EMUI9, EMUI10, EMUI11 = (dict(os_name="EMUI", os_version=v) for v in ("9.1.0", "10.1.0", "11.0.1"))
MUI2, MUI3, MUI4 = (dict(os_name="Magic UI", os_version=v) for v in ("2.1", "3.0.1", "4.2"))
TOO_OLD = (U, Reason.APP_TOO_OLD, None)

BOUNDARIES: list[Boundary] = [
    # Huawei 1-8: render 1/3/5/7, buttons 2/4/6/8; "N.x" = EMUI N.x
    Boundary("HUAWEI", 1, HARMONY, "app_version", "11.1.0.550", "11.1.0.551", "11.1.0.552", R, False, TOO_OLD),
    Boundary("HUAWEI", 2, HARMONY, "app_version", "11.1.1.399", "11.1.1.400", "11.1.1.401", B, False, (R, None, 1)),
    Boundary("HUAWEI", 3, EMUI9, "app_version", "9.1.7.389", "9.1.7.390", "9.1.7.391", R, False, TOO_OLD),
    Boundary("HUAWEI", 4, EMUI9, "app_version", "9.1.7.419", "9.1.7.420", "9.1.7.421", B, False, (R, None, 3)),
    Boundary("HUAWEI", 5, EMUI10, "app_version", "10.1.1.679", "10.1.1.680", "10.1.1.681", R, False, TOO_OLD),
    Boundary("HUAWEI", 6, EMUI10, "app_version", "10.1.1.769", "10.1.1.770", "10.1.1.771", B, False, (R, None, 5)),
    Boundary("HUAWEI", 7, EMUI11, "app_version", "11.0.1.429", "11.0.1.430", "11.0.1.431", R, False, TOO_OLD),
    Boundary("HUAWEI", 8, EMUI11, "app_version", "11.0.1.630", "11.0.1.631", "11.0.1.632", B, False, (R, None, 7)),
    # Honor 1-8 as Huawei, 9-14 on Magic UI 2.x/3.x/4.x, 15 = smart-SMS plugin on Magic OS
    Boundary("HONOR", 1, HARMONY, "app_version", "11.1.0.550", "11.1.0.551", "11.1.0.552", R, False, TOO_OLD),
    Boundary("HONOR", 2, HARMONY, "app_version", "11.1.1.399", "11.1.1.400", "11.1.1.401", B, False, (R, None, 1)),
    Boundary("HONOR", 3, EMUI9, "app_version", "9.1.7.389", "9.1.7.390", "9.1.7.391", R, False, TOO_OLD),
    Boundary("HONOR", 4, EMUI9, "app_version", "9.1.7.419", "9.1.7.420", "9.1.7.421", B, False, (R, None, 3)),
    Boundary("HONOR", 5, EMUI10, "app_version", "10.1.1.679", "10.1.1.680", "10.1.1.681", R, False, TOO_OLD),
    Boundary("HONOR", 6, EMUI10, "app_version", "10.1.1.769", "10.1.1.770", "10.1.1.771", B, False, (R, None, 5)),
    Boundary("HONOR", 7, EMUI11, "app_version", "11.0.1.429", "11.0.1.430", "11.0.1.431", R, False, TOO_OLD),
    Boundary("HONOR", 8, EMUI11, "app_version", "11.0.1.630", "11.0.1.631", "11.0.1.632", B, False, (R, None, 7)),
    Boundary("HONOR", 9, MUI2, "app_version", "9.1.7.389", "9.1.7.390", "9.1.7.391", R, False, TOO_OLD),
    Boundary("HONOR", 10, MUI2, "app_version", "9.1.7.419", "9.1.7.420", "9.1.7.421", B, False, (R, None, 9)),
    Boundary("HONOR", 11, MUI3, "app_version", "10.1.1.679", "10.1.1.680", "10.1.1.681", R, False, TOO_OLD),
    Boundary("HONOR", 12, MUI3, "app_version", "10.1.1.769", "10.1.1.770", "10.1.1.771", B, False, (R, None, 11)),
    Boundary("HONOR", 13, MUI4, "app_version", "11.0.1.429", "11.0.1.430", "11.0.1.431", R, False, TOO_OLD),
    Boundary("HONOR", 14, MUI4, "app_version", "11.0.1.630", "11.0.1.631", "11.0.1.632", B, False, (R, None, 13)),
    Boundary(
        "HONOR",
        15,
        dict(os_name="Magic OS", os_version="6.1"),
        "plugin_version",
        "11.0.8.302",
        "11.0.8.303",
        "11.0.8.304",
        B,
        False,
        (U, Reason.PLUGIN_TOO_OLD, None),
    ),
    # the other brands: one condition each, plain rendering
    Boundary("XIAOMI", 1, {}, "app_version", "12.3.2.6", "12.3.2.7", "12.3.2.8", R, False, TOO_OLD),
    Boundary("OPPO", 1, {}, "app_version", "5.16", "5.17", "5.18", R, False, TOO_OLD),
    Boundary("MEIZU", 1, {}, "app_version", "7.2.1", "7.2.2", "7.2.3", R, False, TOO_OLD),
    Boundary("VIVO", 1, {}, "app_version", "5.9.99", "6.0.0", "6.0.1", R, False, TOO_OLD),
    Boundary("SAMSUNG", 1, {}, "app_version", "13.2.20.12", "13.2.20.13", "13.2.20.14", R, True, TOO_OLD),
]


def _boundary_cases() -> list[Any]:
    cases = []
    for b in BOUNDARIES:
        passed = (b.gives, None, b.number)
        for where, version, expected in (
            ("below", b.below, b.below_verdict),
            ("exact", b.exact, b.below_verdict if b.strict else passed),
            ("above", b.above, passed),
        ):
            cases.append(pytest.param(b, version, expected, id=f"{b.vendor}-{b.number}-{where}-{version}"))
    return cases


@pytest.mark.parametrize(("boundary", "version", "expected"), _boundary_cases())
def test_numbered_condition_boundaries(
    engine: CapabilityEngine,
    boundary: Boundary,
    version: str,
    expected: tuple[Outcome, Reason | None, int | None],
) -> None:
    dev = device(boundary.vendor, **boundary.context, **{boundary.field: version})
    verdict = engine.evaluate(dev)
    assert (verdict.outcome, verdict.reason, verdict.condition) == expected, verdict
    assert verdict.vendor == boundary.vendor


def test_every_numbered_condition_has_boundary_cases(engine: CapabilityEngine) -> None:
    covered = {(b.vendor, b.number) for b in BOUNDARIES}
    table = {(vendor, n) for vendor, brand in engine.table.brands.items() for n in brand.conditions}
    assert covered == table
    for b in BOUNDARIES:
        bound = engine.table.brands[b.vendor].conditions[b.number].bound
        assert bound.lower.text == b.exact and bound.strict == b.strict, b


# ---------------------------------------------------------------------------------------------- families


@pytest.mark.parametrize(
    ("vendor", "context", "app", "expected"),
    [
        # the same app version means different things on different OS families
        ("HUAWEI", EMUI9, "9.1.7.420", (B, None, 4)),
        ("HUAWEI", EMUI10, "9.1.7.420", (U, Reason.APP_TOO_OLD, None)),
        ("HUAWEI", EMUI11, "9.1.7.420", (U, Reason.APP_TOO_OLD, None)),
        ("HUAWEI", HARMONY, "9.1.7.420", (U, Reason.APP_TOO_OLD, None)),
        ("HUAWEI", HARMONY, "11.0.1.631", (U, Reason.APP_TOO_OLD, None)),  # 11.x family is EMUI 11 only
        ("HUAWEI", EMUI11, "11.0.1.631", (B, None, 8)),
        ("HUAWEI", EMUI9, "11.1.1.400", (B, None, 2)),  # conditions 1-2 have no family: apply on EMUI too
        ("HONOR", MUI2, "9.1.7.420", (B, None, 10)),
        ("HONOR", MUI3, "9.1.7.420", (U, Reason.APP_TOO_OLD, None)),
        ("HONOR", dict(os_name="HarmonyOS", os_version="2.0"), "9.1.7.420", (U, Reason.APP_TOO_OLD, None)),
        ("HONOR", dict(os_name="Magic UI", os_version="4.0"), "11.0.1.631", (B, None, 14)),
        ("HONOR", dict(os_name="EMUI", os_version="9.0"), "9.1.7.390", (R, None, 3)),
    ],
)
def test_family_selects_the_condition(
    engine: CapabilityEngine, vendor: str, context: dict[str, Any], app: str, expected: tuple[Any, ...]
) -> None:
    verdict = engine.evaluate(device(vendor, **context, app_version=app))
    assert (verdict.outcome, verdict.reason, verdict.condition) == expected, verdict


# ---------------------------------------------------------------------------------------------- OS rules per brand


class OsCase(NamedTuple):
    vendor: str
    fields: dict[str, Any]
    outcome: Outcome
    reason: Reason | None


GOOD_APP = {
    "HUAWEI": "11.1.1.400",
    "HONOR": "11.1.1.400",
    "XIAOMI": "12.3.2.7",
    "OPPO": "5.17",
    "MEIZU": "7.2.2",
    "VIVO": "6.0.0",
    "SAMSUNG": "13.2.20.14",
}

OS_CASES: list[Any] = [
    # Huawei: 鸿蒙2.0以上 (>=) or EMUI 9-11 (whole major lines)
    pytest.param(OsCase("HUAWEI", dict(os_version="1.9"), U, Reason.OS_TOO_OLD), id="huawei-harmony-1.9"),
    pytest.param(OsCase("HUAWEI", dict(os_version="2.0"), B, None), id="huawei-harmony-2.0"),
    pytest.param(OsCase("HUAWEI", dict(os_version="2"), B, None), id="huawei-harmony-2"),
    pytest.param(OsCase("HUAWEI", dict(os_version="4.2.0"), B, None), id="huawei-harmony-4.2"),
    pytest.param(OsCase("HUAWEI", dict(os_name="鸿蒙", os_version="3.0"), B, None), id="huawei-harmony-cn-name"),
    pytest.param(
        OsCase("HUAWEI", dict(os_name="EMUI", os_version="8.2.0"), U, Reason.OS_TOO_OLD), id="huawei-emui-8.2"
    ),
    pytest.param(OsCase("HUAWEI", dict(os_name="EMUI", os_version="9"), B, None), id="huawei-emui-9"),
    pytest.param(OsCase("HUAWEI", dict(os_name="EMUI", os_version="11.0.1"), B, None), id="huawei-emui-11.0.1"),
    pytest.param(OsCase("HUAWEI", dict(os_name="EMUI", os_version="11.1"), B, None), id="huawei-emui-11.1"),
    pytest.param(
        OsCase("HUAWEI", dict(os_name="EMUI", os_version="12.0"), U, Reason.OS_UNSUPPORTED),
        id="huawei-emui-12",
    ),
    pytest.param(
        OsCase("HUAWEI", dict(os_name="Android", os_version="12"), U, Reason.OS_UNSUPPORTED),
        id="huawei-android",
    ),
    pytest.param(OsCase("HUAWEI", dict(os_name="Windows"), U, Reason.OS_UNSUPPORTED), id="huawei-unknown-os"),
    pytest.param(OsCase("HUAWEI", dict(os_name=None), K, Reason.MISSING_OS_INFO), id="huawei-no-os"),
    pytest.param(OsCase("HUAWEI", dict(os_version=None), K, Reason.MISSING_OS_INFO), id="huawei-no-os-version"),
    pytest.param(OsCase("HUAWEI", dict(os_version="unknown"), K, Reason.MISSING_OS_INFO), id="huawei-bad-os-version"),
    # Honor: HarmonyOS 2.0以上, Magic OS 6.1以上, EMUI 9.0-11.0, Magic UI 2.0-4.0
    pytest.param(
        OsCase("HONOR", dict(os_name="HarmonyOS", os_version="1.0"), U, Reason.OS_TOO_OLD),
        id="honor-harmony-1.0",
    ),
    pytest.param(OsCase("HONOR", dict(os_name="HarmonyOS", os_version="2.0"), B, None), id="honor-harmony-2.0"),
    pytest.param(
        OsCase(
            "HONOR",
            dict(os_name="Magic OS", os_version="6.0", plugin_version="11.0.8.303"),
            U,
            Reason.OS_TOO_OLD,
        ),
        id="honor-magicos-6.0",
    ),
    pytest.param(
        OsCase("HONOR", dict(os_name="MagicOS", os_version="6.1", plugin_version="11.0.8.303"), B, None),
        id="honor-magicos-6.1",
    ),
    pytest.param(OsCase("HONOR", dict(os_name="EMUI", os_version="8.0"), U, Reason.OS_TOO_OLD), id="honor-emui-8"),
    pytest.param(OsCase("HONOR", dict(os_name="EMUI", os_version="9.0"), B, None), id="honor-emui-9.0"),
    pytest.param(OsCase("HONOR", dict(os_name="EMUI", os_version="11.0"), B, None), id="honor-emui-11.0"),
    pytest.param(
        OsCase("HONOR", dict(os_name="EMUI", os_version="12.0"), U, Reason.OS_UNSUPPORTED), id="honor-emui-12"
    ),
    pytest.param(
        OsCase("HONOR", dict(os_name="Magic UI", os_version="1.0"), U, Reason.OS_TOO_OLD),
        id="honor-magicui-1",
    ),
    pytest.param(OsCase("HONOR", dict(os_name="Magic UI", os_version="2.0"), B, None), id="honor-magicui-2.0"),
    pytest.param(OsCase("HONOR", dict(os_name="Magic UI", os_version="4.2"), B, None), id="honor-magicui-4.2"),
    pytest.param(
        OsCase("HONOR", dict(os_name="Magic UI", os_version="5.0"), U, Reason.OS_UNSUPPORTED),
        id="honor-magicui-5",
    ),
    # Xiaomi: no OS rule
    pytest.param(OsCase("XIAOMI", dict(os_name=None, os_version=None), R, None), id="xiaomi-no-os"),
    pytest.param(OsCase("XIAOMI", dict(os_name="HyperOS", os_version="1.0"), R, None), id="xiaomi-hyperos"),
    pytest.param(OsCase("XIAOMI", dict(os_name="Android", os_version="5"), R, None), id="xiaomi-anything"),
    # OPPO: ColorOS 11以上, or ColorOS 7.0以上 with Android 10/11
    pytest.param(OsCase("OPPO", dict(os_version="11", android_version="12"), R, None), id="oppo-coloros-11"),
    pytest.param(OsCase("OPPO", dict(os_version="11", android_version=None), R, None), id="oppo-coloros-11-no-android"),
    pytest.param(OsCase("OPPO", dict(os_version="7.0", android_version="10"), R, None), id="oppo-coloros-7.0-a10"),
    pytest.param(OsCase("OPPO", dict(os_version="7.2", android_version="11.0.1"), R, None), id="oppo-coloros-7.2-a11"),
    pytest.param(
        OsCase("OPPO", dict(os_version="7.0", android_version="9"), U, Reason.OS_TOO_OLD),
        id="oppo-coloros-7-a9",
    ),
    pytest.param(
        OsCase("OPPO", dict(os_version="6.9", android_version="10"), U, Reason.OS_TOO_OLD),
        id="oppo-coloros-6.9-a10",
    ),
    pytest.param(
        OsCase("OPPO", dict(os_version="7.2", android_version="12"), U, Reason.OS_UNSUPPORTED),
        id="oppo-coloros-7.2-a12",
    ),
    pytest.param(
        OsCase("OPPO", dict(os_version="8", android_version=None), K, Reason.MISSING_OS_INFO),
        id="oppo-coloros-8-no-android",
    ),
    pytest.param(
        OsCase("OPPO", dict(os_name="Color OS", os_version="V7.1", android_version="Android 10"), R, None),
        id="oppo-decorated-versions",
    ),
    # Meizu: Flyme 9.0以上
    pytest.param(OsCase("MEIZU", dict(os_version="8.9"), U, Reason.OS_TOO_OLD), id="meizu-flyme-8.9"),
    pytest.param(OsCase("MEIZU", dict(os_version="9.0"), R, None), id="meizu-flyme-9.0"),
    pytest.param(OsCase("MEIZU", dict(os_version="10"), R, None), id="meizu-flyme-10"),
    # vivo: Android 10+, or Android 7.0-9.x with quick-app engine > 10940900
    pytest.param(OsCase("VIVO", dict(android_version="10"), R, None), id="vivo-android-10"),
    pytest.param(OsCase("VIVO", dict(android_version="14", os_name="Funtouch OS"), R, None), id="vivo-funtouch-14"),
    pytest.param(
        OsCase("VIVO", dict(android_version="9", quick_app_engine_version="10940901"), R, None),
        id="vivo-android-9-engine-above",
    ),
    pytest.param(
        OsCase(
            "VIVO",
            dict(android_version="9", quick_app_engine_version="10940900"),
            U,
            Reason.QUICK_APP_ENGINE_TOO_OLD,
        ),
        id="vivo-android-9-engine-exact",
    ),
    pytest.param(
        OsCase(
            "VIVO",
            dict(android_version="7.0", quick_app_engine_version="10940899"),
            U,
            Reason.QUICK_APP_ENGINE_TOO_OLD,
        ),
        id="vivo-android-7-engine-below",
    ),
    pytest.param(
        OsCase("VIVO", dict(android_version="7.0", quick_app_engine_version="10950000"), R, None),
        id="vivo-android-7.0-engine-ok",
    ),
    pytest.param(
        OsCase("VIVO", dict(android_version="8.1"), K, Reason.MISSING_QUICK_APP_ENGINE_VERSION),
        id="vivo-android-8-no-engine",
    ),
    pytest.param(
        OsCase("VIVO", dict(android_version="6.0", quick_app_engine_version="10950000"), U, Reason.OS_TOO_OLD),
        id="vivo-android-6",
    ),
    pytest.param(OsCase("VIVO", dict(android_version=None), K, Reason.MISSING_OS_INFO), id="vivo-no-android"),
    # Samsung: One UI 4.1以上
    pytest.param(OsCase("SAMSUNG", dict(os_version="4.0"), U, Reason.OS_TOO_OLD), id="samsung-oneui-4.0"),
    pytest.param(OsCase("SAMSUNG", dict(os_version="4.1"), R, None), id="samsung-oneui-4.1"),
    pytest.param(OsCase("SAMSUNG", dict(os_name="OneUI", os_version="6.0"), R, None), id="samsung-oneui-6"),
    pytest.param(
        OsCase("SAMSUNG", dict(os_name="Android", os_version="13"), U, Reason.OS_UNSUPPORTED),
        id="samsung-android",
    ),
]


@pytest.mark.parametrize("case", OS_CASES)
def test_os_rules(engine: CapabilityEngine, case: OsCase) -> None:
    fields = {"app_version": GOOD_APP[case.vendor], **case.fields}
    check(engine, device(case.vendor, **fields), case.outcome, case.reason, vendor=case.vendor)


# ---------------------------------------------------------------------------------------------- OS first


@pytest.mark.parametrize(
    ("vendor", "fields", "reason"),
    [
        ("HUAWEI", dict(os_name="EMUI", os_version="8.0", app_version="11.1.1.400"), Reason.OS_TOO_OLD),
        ("HUAWEI", dict(os_name="EMUI", os_version="8.0", app_version=None), Reason.OS_TOO_OLD),
        ("HONOR", dict(os_name="Magic UI", os_version="1.0", app_version="11.1.1.400"), Reason.OS_TOO_OLD),
        ("OPPO", dict(os_version="6.0", android_version="10", app_version="9.9"), Reason.OS_TOO_OLD),
        ("MEIZU", dict(os_version="8.0", app_version="9.0.0"), Reason.OS_TOO_OLD),
        (
            "VIVO",
            dict(android_version="6.0", app_version="9.0.0", smart_info_service=False, rich_media_display=False),
            Reason.OS_TOO_OLD,
        ),
        ("SAMSUNG", dict(os_version="3.1", app_version="14.0"), Reason.OS_TOO_OLD),
        ("HONOR", dict(os_name="Magic OS", os_version="6.0", plugin_version="12.0"), Reason.OS_TOO_OLD),
    ],
)
def test_os_is_checked_before_the_app(
    engine: CapabilityEngine, vendor: str, fields: dict[str, Any], reason: Reason
) -> None:
    check(engine, device(vendor, **fields), U, reason)


def test_app_is_checked_before_switches(engine: CapabilityEngine) -> None:
    check(engine, device("VIVO", app_version="5.0", smart_info_service=False), U, Reason.APP_TOO_OLD)


# ---------------------------------------------------------------------------------------------- Honor Magic OS


@pytest.mark.parametrize(
    ("fields", "outcome", "reason"),
    [
        (dict(plugin_version="11.0.8.303", app_version=None), B, None),  # the messaging app is not consulted
        (dict(plugin_version="11.0.8.303", app_version="1.0"), B, None),
        (dict(plugin_version="12.0.1.100"), B, None),
        (dict(plugin_version="11.0.8.302", app_version="11.1.1.400"), U, Reason.PLUGIN_TOO_OLD),
        (dict(plugin_version=None, app_version="11.1.1.400"), K, Reason.MISSING_PLUGIN_VERSION),
        (dict(plugin_version="n/a"), K, Reason.MISSING_PLUGIN_VERSION),
        (dict(plugin_version="V11.0.8.303(SP2)"), B, None),
    ],
)
def test_honor_magic_os_plugin_rule(
    engine: CapabilityEngine, fields: dict[str, Any], outcome: Outcome, reason: Reason | None
) -> None:
    verdict = check(engine, device("HONOR", **fields), outcome, reason)
    if outcome is B:
        assert verdict.condition == 15


def test_plugin_is_ignored_on_magic_ui(engine: CapabilityEngine) -> None:
    check(
        engine,
        device(
            "HONOR",
            os_name="Magic UI",
            os_version="4.0",
            app_version="11.0.1.429",
            plugin_version="11.0.8.303",
        ),
        U,
        Reason.APP_TOO_OLD,
    )


# ---------------------------------------------------------------------------------------------- vivo switches


@pytest.mark.parametrize(
    ("smart", "rich", "outcome", "reason"),
    [
        (True, True, R, None),
        (False, True, U, Reason.SWITCH_OFF),
        (True, False, U, Reason.SWITCH_OFF),
        (False, False, U, Reason.SWITCH_OFF),
        (None, True, K, Reason.MISSING_SWITCH_STATE),
        (True, None, K, Reason.MISSING_SWITCH_STATE),
    ],
)
def test_vivo_switches(
    engine: CapabilityEngine, smart: bool | None, rich: bool | None, outcome: Outcome, reason: Reason | None
) -> None:
    dev = device("VIVO", app_version="6.0.0", smart_info_service=smart, rich_media_display=rich)
    check(engine, dev, outcome, reason)


def test_switches_only_matter_for_vivo(engine: CapabilityEngine) -> None:
    dev = device("HUAWEI", app_version="11.1.1.400", smart_info_service=False, rich_media_display=False)
    check(engine, dev, B, None)


# ---------------------------------------------------------------------------------------------- vendor filter


@pytest.mark.parametrize(
    ("vendor", "approved", "outcome", "reason"),
    [
        ("HUAWEI", None, B, None),
        ("HUAWEI", frozenset({"HUAWEI"}), B, None),
        ("HONOR", frozenset({"HUAWEI"}), U, Reason.VENDOR_NOT_APPROVED),
        ("HONOR", frozenset({"HUAWEI", "HONOR"}), B, None),
        ("XIAOMI", frozenset(), U, Reason.VENDOR_NOT_APPROVED),
        ("OPPO", frozenset({"XIAOMI", "VIVO"}), U, Reason.VENDOR_NOT_APPROVED),
        ("SAMSUNG", frozenset({"SAMSUNG"}), R, None),
    ],
)
def test_vendor_filter(
    engine: CapabilityEngine,
    vendor: str,
    approved: frozenset[str] | None,
    outcome: Outcome,
    reason: Reason | None,
) -> None:
    verdict = engine.evaluate(device(vendor, app_version=GOOD_APP[vendor], plugin_version="11.0.8.303"), approved)
    assert (verdict.outcome, verdict.reason, verdict.vendor) == (outcome, reason, vendor)


def test_vendor_filter_keeps_model_and_does_not_hide_capability_reasons(engine: CapabilityEngine) -> None:
    blocked = engine.evaluate(device("HUAWEI", app_version="11.1.1.400"), frozenset({"OPPO"}))
    assert blocked == Verdict(U, Reason.VENDOR_NOT_APPROVED, "HUAWEI", "Mate 40 Pro", 2)
    too_old = engine.evaluate(device("HUAWEI", app_version="1.0"), frozenset({"OPPO"}))
    assert too_old.reason is Reason.APP_TOO_OLD
    unknown = engine.evaluate(device("HUAWEI", model="Mate 70", app_version="11.1.1.400"), frozenset({"OPPO"}))
    assert unknown.reason is Reason.UNKNOWN_MODEL


@pytest.mark.parametrize(
    ("brand", "model", "code"),
    [
        ("Redmi", "K40", "XIAOMI"),
        ("红米", "Note 4X", "XIAOMI"),
        ("iQOO", "Neo5", "VIVO"),
        ("荣耀", "X20", "HONOR"),
    ],
)
def test_sub_brands_map_to_vendor_codes(engine: CapabilityEngine, brand: str, model: str, code: str) -> None:
    base = {"XIAOMI": "XIAOMI", "VIVO": "VIVO", "HONOR": "HONOR"}[code]
    dev = device(base, brand=brand, model=model, app_version=GOOD_APP[base], plugin_version="11.0.8.303")
    assert engine.evaluate(dev, frozenset({code})).resolvable
    assert engine.evaluate(dev, frozenset({"HUAWEI"})).reason is Reason.VENDOR_NOT_APPROVED


# ---------------------------------------------------------------------------------------------- unknowns


def test_unknown_device(engine: CapabilityEngine) -> None:
    check(engine, None, K, Reason.NO_DEVICE_RECORD)
    assert engine.evaluate(None, frozenset({"HUAWEI"})) == Verdict(K, Reason.NO_DEVICE_RECORD)


@pytest.mark.parametrize(
    ("fields", "outcome", "reason", "vendor"),
    [
        (dict(), K, Reason.MISSING_BRAND_OR_MODEL, None),
        (dict(brand="HUAWEI"), K, Reason.MISSING_BRAND_OR_MODEL, None),
        (dict(model="Mate 40 Pro"), K, Reason.MISSING_BRAND_OR_MODEL, None),
        (dict(brand="Apple", model="iPhone 15"), U, Reason.UNKNOWN_BRAND, None),
        (dict(brand="HUAWEI", model="Mate 70 Pro"), U, Reason.UNKNOWN_MODEL, "HUAWEI"),
        (dict(brand="HUAWEI", model="Redmi K40"), U, Reason.UNKNOWN_MODEL, "HUAWEI"),
    ],
)
def test_unknown_brand_or_model(
    engine: CapabilityEngine, fields: dict[str, Any], outcome: Outcome, reason: Reason, vendor: str | None
) -> None:
    full = dict(os_name="HarmonyOS", os_version="4.0", app_version="12.0") | fields
    check(engine, Device(**full), outcome, reason, vendor=vendor)


def test_unknown_model_is_decided_before_the_os(engine: CapabilityEngine) -> None:
    check(engine, device("HUAWEI", model="Mate 70", os_name="EMUI", os_version="5.0"), U, Reason.UNKNOWN_MODEL)


def test_vivo_originos_wildcard(engine: CapabilityEngine) -> None:
    unlisted = device("VIVO", model="X100 Pro", os_name="OriginOS", os_version="4.0", app_version="6.1.0")
    verdict = check(engine, unlisted, R, None, vendor="VIVO")
    assert verdict.model is None
    check(engine, replace(unlisted, os_name="OriginOS Ocean"), R, None)
    check(engine, replace(unlisted, os_name="Funtouch OS"), U, Reason.UNKNOWN_MODEL)
    check(engine, replace(unlisted, os_name=None), U, Reason.UNKNOWN_MODEL)
    # the wildcard lists the handset; the rules still apply
    check(engine, replace(unlisted, android_version="6.0"), U, Reason.OS_TOO_OLD)


@pytest.mark.parametrize(
    ("vendor", "app", "reason"),
    [
        ("HUAWEI", None, Reason.MISSING_APP_VERSION),
        ("XIAOMI", None, Reason.MISSING_APP_VERSION),
        ("SAMSUNG", "", Reason.MISSING_APP_VERSION),
        ("OPPO", "unknown", Reason.MISSING_APP_VERSION),
    ],
)
def test_missing_app_version(engine: CapabilityEngine, vendor: str, app: str | None, reason: Reason) -> None:
    check(engine, device(vendor, app_version=app), K, reason)


def test_decorated_app_versions(engine: CapabilityEngine) -> None:
    check(engine, device("SAMSUNG", app_version="V13.2.20.13"), U, Reason.APP_TOO_OLD)
    check(engine, device("SAMSUNG", app_version="13.2.20.13(SP1)"), U, Reason.APP_TOO_OLD)
    check(engine, device("SAMSUNG", app_version="V13.2.20.14"), R, None)
    check(
        engine,
        device("HUAWEI", os_name="HarmonyOS", os_version="2.0", app_version="11.1.0.551(SP1)"),
        R,
        None,
    )


@pytest.mark.parametrize(
    ("brand", "model"),
    [
        ("huawei", "HUAWEI MATE 40 PRO"),
        ("华为", "mate-40-pro"),
        ("ＨＵＡＷＥＩ", "ＭＡＴＥ　４０　ＰＲＯ"),
    ],
)
def test_brand_and_model_spellings(engine: CapabilityEngine, brand: str, model: str) -> None:
    check(
        engine,
        device("HUAWEI", brand=brand, model=model, app_version="11.1.1.400"),
        B,
        None,
        model="Mate 40 Pro",
    )


# ---------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("number", "normal"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        (" 19912345678 ", "19912345678"),
        ("12800138000", None),  # 12x is not a mobile range
        ("1380013800", None),
        ("138001380001", None),
        ("23800138000", None),
        ("1380013800a", None),
        ("１３８００１３８０００", None),  # full-width digits are not accepted
        ("", None),
        ("+1 415 555 0100", None),
    ],
)
def test_msisdn(number: str, normal: str | None) -> None:
    assert normalize_msisdn(number) == normal


def test_classify(engine: CapabilityEngine) -> None:
    good = device("HUAWEI", app_version="11.1.1.400")
    assert engine.classify("13800138000", good, frozenset({"HUAWEI"})).outcome is B
    assert engine.classify("1380013800", good, frozenset({"HUAWEI"})) == Verdict(
        Outcome.INVALID_NUMBER, Reason.INVALID_NUMBER
    )
    assert engine.classify("13800138000", None).reason is Reason.NO_DEVICE_RECORD
    assert engine.classify("13800138000", good, frozenset({"OPPO"})).reason is Reason.VENDOR_NOT_APPROVED


def test_module_level_functions_use_the_packaged_table() -> None:
    good = device("HONOR", plugin_version="11.0.8.303")
    assert evaluate(good, frozenset({"HONOR"})) == Verdict(B, None, "HONOR", "Magic 4 Pro", 15)
    assert classify("abc", good, None).outcome is Outcome.INVALID_NUMBER


# ---------------------------------------------------------------------------------------------- caching, speed


def test_cached_and_uncached_engines_agree() -> None:
    table = load_table()
    cached, uncached = CapabilityEngine(table), CapabilityEngine(table, cache_size=0)
    tiny = CapabilityEngine(table, cache_size=7)  # evicts constantly
    approved = frozenset({"HUAWEI", "HONOR", "VIVO"})
    workload = make_workload(table, 20_000, distinct_devices=2_000, seed=3)
    outcomes = set()
    for number, dev in workload:
        expected = uncached.classify(number, dev, approved)
        assert cached.classify(number, dev, approved) == expected
        assert tiny.classify(number, dev, approved) == expected
        outcomes.add((expected.outcome, expected.reason))
    # the workload exercises every outcome and most reasons
    assert {o for o, _ in outcomes} == set(Outcome)
    assert len(outcomes) >= 12


def test_verdict_is_stable_for_equal_devices(engine: CapabilityEngine) -> None:
    a = device("OPPO", app_version="5.17")
    b = Device(**{**BASE["OPPO"], "app_version": "5.17"})
    assert a is not b and a == b
    assert engine.evaluate(a) is engine.evaluate(b)


def test_bench_reports_throughput() -> None:
    rate = bench(20_000)
    assert rate > 0
    with pytest.raises(ValueError):
        bench(0)
