"""The capability table: every handset named in seed 001 chapter 5 is present, and the loader validates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from magpie_number_resolver.capability import DEFAULT_TABLE_PATH, TableError, load_table, parse_table
from magpie_number_resolver.capability.normalize import fold

# Hand transcription of 表5-1 (seeds/001_d2588e7de38961c4.txt lines ~120-960): (vendor, series prefix, cell).
# Each cell is the seed's model cell re-flowed onto one line (a PDF line break inside a name becomes a space or
# nothing; matching ignores spaces). Procedure: split the cell on "/", and write each model as
# "<prefix> <model>" -- unless the model already starts with the prefix's last word ("HUAWEI G" + "G700" ->
# "HUAWEI G700", "OPPO A" + "Ace2" -> "OPPO Ace2"). Two slashes lost in the extraction are restored and marked.
SEED_CELLS: list[tuple[str, str, str]] = [
    ("HUAWEI", "麦芒", "4/5/6/7/8/9 5G/10"),
    (
        "HUAWEI",
        "HUAWEI 畅享",
        "5/5S/6/6S/7/7S/7 PLUS/8/8 PLUS/8E/8E青春/9/9E/9S/9 PLUS/MAX/10/10E/10S/10 PLUS/20E/20 SE/20 PRO/20 PRO+/"
        "20 PLUS 5G/20 5G/Z 5G/50/50 PRO/50Z/60/60 PRO/60X",
    ),
    (
        "HUAWEI",
        "HUAWEI P",
        "P6/P7/P8/P9/P9 PLUS/P10/P10 PLUS/P20/P20 PRO/P30/P30 PRO/P40/P40 PRO/P40 LITE/P40 LITE 5G/P40 LITE E/"
        "P40 PRO+/P50 PRO 4G/P50 E/P50/P50 PRO/P60/P60 ART/P60 PRO",
    ),
    (
        "HUAWEI",
        "HUAWEI NOVA",
        "NOVA/2/2S/2 PLUS/3/3E/3I/4/4E/5/5 PRO/5I/5I PRO/LITE/6/6 （5G）/6 SE/7/7 5G/7 PRO 5G/7 SE/7 SE 2021/"
        "7 SE 5G/7 SE 5G活力版/7 SE 5G乐活版/8/8 SE/8 PRO/8 PRO 4G/8 SE 4G/8I/8 SE 5G/8 SE活力版/9/9 z/9SE/9 PRO/"
        "10/10 PRO/10Z/10 SE/10 青春版/11 PRO/11 ULTRA/Y60/Y70",
    ),
    (
        "HUAWEI",
        "HUAWEI MATE",
        "S/2/7/8/9/9 PRO/9保时捷设计/10/10 PRO/10保时捷设计/RS保时捷设计/20/20 PRO/20 PRO (UD)/20 RS保时捷设计/30/"
        "30 5G/30 PRO/30 PRO 5G/30 RS保时捷设计/30E PRO 5G/40/40 PRO/40 PRO +/40 PRO 4G/40 RS保时捷设计/"
        "40 RS保时捷设计典藏版/40E/40E 4G/40E PRO/40E PRO 5G/60/60 PRO/60 PRO +/20 X/20 X (5G)/50/50 PRO/"
        "50 RS保时捷设计/50E",
    ),
    ("HUAWEI", "HUAWEI G", "6/7/7 PLUS/9 PLUS/9青春版/G700/G730"),
    ("HUAWEI", "HUAWEI Y", "635/7P/8P/9A/9 PRIME 2019"),
    ("HONOR", "荣耀", "X1/X20/X20 SE/X30/X30I/X40/X40 GT/X40I/X50I/50 SE/60 SE/60/60 PRO/70/70 PRO/70 PRO+"),
    ("HONOR", "", "HONOR 麦芒 10"),
    ("HONOR", "荣耀畅玩", "20a/40 PLUS"),
    ("HONOR", "荣耀", "V10/V20/V30/V30 PRO/V8/V9 PLAY"),
    ("HONOR", "荣耀PLAY", "5活力版/6T PRO"),
    ("HONOR", "HONOR 畅玩", "5/5A/6/6A/6X/7/7A/7C/7X/8/8A/8C/9A/20/30/40"),
    ("HONOR", "HONOR V", "8/9/9 PLAY/10/20/30/30 PRO/V40/V40轻奢版"),
    ("HONOR", "HONOR PLAY", "PLAY/3/4/4T/4T PRO/4 PRO/7T/7T PRO"),
    ("HONOR", "HONOR NOTE", "8/10"),
    ("HONOR", "HONOR MAGIC", "MAGIC/2/3/3 PRO/3 至臻版/4/4 PRO/4 至臻版/5/5 PRO/5 至臻版"),
    (
        "HONOR",
        "HONOR",
        "3X/6/6 PLUS/7/7I/8/8青春版/8X/8X MAX/9/9青春版/9I/9X/9X PRO/10/10X/10青春版/X10/X10 MAX/20/20 PRO/20I/"
        "20S/20青春版/30/30S/30 PRO/30 PRO +/30I/30青春版/50/50 PRO/80/80 GT/80 PRO/80 PRO直屏版/80 SE/90/90 PRO",
    ),
    ("XIAOMI", "小米", "Play 1"),
    (
        "XIAOMI",
        "小米",
        "civi/2/2S/3/4/4C/4S/5/5C/5s/5s Plus/5X/6/6X/8/8 SE/8屏幕指纹版/8青春/9/9 Pro/9 SE/9透明版/10/10 Pro/10S/"
        "10青春版/10 至尊纪念版/11/11 Pro/11 Ultra/11青春版",
    ),
    ("XIAOMI", "小米 Note", "1/2/3"),
    ("XIAOMI", "小米 Mix", "1/2/2S/3/4"),
    ("XIAOMI", "小米 Max", "1/2/3"),
    ("XIAOMI", "小米 CC", "9/9e/9 PRO/9美图定制版"),
    ("XIAOMI", "红米", "Pro1/2/2A/3/3S/3X/4/4A/4X/5/5 Plus/5A/6/6A/6 Pro"),
    ("XIAOMI", "红米 Note", "2/3/4/4X/5/5A"),
    ("XIAOMI", "Redmi", "S2/7/7A/8/8A/9/9A"),
    ("XIAOMI", "Redmi Note", "7/7 Pro/8/8 Pro/9 4G版/9 5G版/10/10 Pro/11/11 Pro"),
    ("XIAOMI", "Redmi K", "20/20 Pro/20 Pro尊享版/30/30 5G/30 Pro/30至尊纪念版/40/40 Pro/40游戏增强版"),
    ("OPPO", "OPPO A", "Ace2/3/32/35/52/53/55/56/7/72/72n/73/9/91/92s/93/93s/94/95/97/9x/11/11X"),
    ("OPPO", "OPPO Find", "X/X2/X3/X3 Pro/X5/X5 Pro"),
    ("OPPO", "OPPO K", "1/3/5/7/7x5G"),
    ("OPPO", "OPPO R", "15/15x/15梦境版/17"),
    (
        "OPPO",
        "OPPO Reno",
        "Ace/Z/2/2 Z/3/4/4 Pro/4 SE/5/5 Pro/5 Pro+/5 K/6/6 Pro/6 Pro+/6 SE/7/7 Pro/8/8 Pro/8 5G/10倍变焦",
    ),
    # "16 th plus16X" in the seed: slash restored -> "16 th plus/16X"
    ("MEIZU", "魅族", "X8/16T/16th/16 th plus/16X/16s/16s pro/17/17 pro/18/18 pro/18s/18s pro/18X"),
    ("MEIZU", "魅族 Note", "8/9"),
    ("MEIZU", "魅族", "V8标准版/V8高配版"),
    ("MEIZU", "魅族 魅蓝", "3/S6/Note 6"),
    (
        "VIVO",
        "VIVO iQOO",
        "Z3/Z5x/U1/U1x/U5/U5x/Z1x/Z5/Z5 6000mAh/5/5 Pro/Neo5/Neo5 SE/Neo5S/Neo5活力版/Neo6/Neo6 SE/Neo6S/"
        "Neo6活力版/7/8/8 Pro/8 Monster/9/9 Pro/U3/U3x/U3x Standard",
    ),
    ("VIVO", "VIVO", "OriginOS/OriginOS Ocean"),
    ("VIVO", "VIVO S", "1/1 Pro/5/6/7/7e/7t/9/9e/10/10e/10 Pro/12/12 Pro"),
    ("VIVO", "VIVO T", "1/1x/1 Explorer/2"),
    (
        "VIVO",
        "VIVO X",
        "Fold/Note/9s/9s Plus/20/20王者荣耀/20Plus屏幕指纹版/21i/21s/21 FIFA世界杯非凡版/21屏幕指纹版/23/23幻彩版/27/"
        "27 8GB+128GB版/27 Pro/30 5G版/30 Pro 5G版/50/50 Pro/50 Pro+/60/60 Edge/60 Pro/60 Pro St/60 Pro +/"
        "60 Pro Standard/60t/60t Pro +/60曲屏版/70/70 Pro/70 Pro +/70T/80 Pro",
    ),
    (
        "VIVO",
        "VIVO Y",
        "Y/3s/10 (t1版)/10 (t2)/30/30 2021/30 Standard/30g/30标准版/31s/31s Standard/31s(t1)版/31s标准版/32/33s/50t/"
        "51s/52s/52s (t1版)/53/53s/53s (t1版)/53s (t2版)/54s/55s/70s/70t/71/71t/73/73s/74s/75/75s/76s/79/81/81s/"
        "83/83全面屏 4GB +64GB/85/93/93s/97",
    ),
    ("VIVO", "VIVO Z", "1/1i/1青春版/3x"),
    ("VIVO", "VIVO", "PD2186"),
    ("SAMSUNG", "三星 Z", "Fold/Flip/Flip 5G/Fold2 5G/Fold3 5G/Flip3 5G/Fold 4/Flip 4"),
    # "22+22 Ultra" in the seed: slash restored -> "22+/22 Ultra"
    ("SAMSUNG", "三星 S", "20 FE 5G/20 5G/20+ 5G/20 Ultra 5G/21/21+/21 Ultra/21 FE/22/22+/22 Ultra"),
    ("SAMSUNG", "三星 A", "53 5G/90 5G"),
    ("SAMSUNG", "三星 W", "20/21 5G/22 5G"),
    ("SAMSUNG", "三星 Note", "10/10+ 5G/20 5G/20 Ultra 5G"),
    ("SAMSUNG", "三星 Tab", "S6/S7 Lite/S8/S8+/S8 Ultra"),
]

# 荣耀V系列 and HONOR V系列 both list V8, V9 PLAY, V10, V20, V30, V30 PRO: 6 seed spellings name handsets twice.
SEED_DUPLICATES = 6


def seed_spellings() -> list[tuple[str, str]]:
    spellings: list[tuple[str, str]] = []
    for vendor, prefix, cell in SEED_CELLS:
        head, _, last_word = prefix.rpartition(" ")
        for model in (m.strip() for m in cell.split("/")):
            if not prefix:
                spellings.append((vendor, model))
            elif head and fold(model).startswith(fold(last_word)):
                spellings.append((vendor, f"{head} {model}"))
            else:
                spellings.append((vendor, f"{prefix} {model}"))
    return spellings


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return load_table()


@pytest.fixture(scope="module")
def pristine_document() -> dict[str, Any]:
    return yaml.load(
        DEFAULT_TABLE_PATH.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )


@pytest.fixture()
def document(pristine_document: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the packaged table document, for a test to break."""
    return copy.deepcopy(pristine_document)


# ---------------------------------------------------------------------------------------------- coverage


def test_every_seed_model_resolves_and_nothing_else_is_listed(table) -> None:  # type: ignore[no-untyped-def]
    spellings = seed_spellings()
    missing = [(vendor, name) for vendor, name in spellings if table.find_model(vendor, name) is None]
    assert missing == []
    resolved = {id(table.find_model(vendor, name)) for vendor, name in spellings}
    assert len(spellings) == len(resolved) + SEED_DUPLICATES
    # the table holds exactly the seed's handsets: no entry the seed does not name
    assert len(resolved) == len(table) == 609


def test_model_found_under_its_vendor_only(table) -> None:  # type: ignore[no-untyped-def]
    for vendor, name in seed_spellings():
        model = table.find_model(vendor, name)
        assert model is not None and model.vendor == vendor, (vendor, name)


@pytest.mark.parametrize(
    ("vendor", "count"),
    [
        ("HUAWEI", 162),
        ("HONOR", 106),
        ("XIAOMI", 95),
        ("OPPO", 60),
        ("MEIZU", 21),
        ("VIVO", 132),
        ("SAMSUNG", 33),
    ],
)
def test_models_per_brand(table, vendor: str, count: int) -> None:  # type: ignore[no-untyped-def]
    assert len(table.brands[vendor].models) == count


def test_brands_and_table_version(table) -> None:  # type: ignore[no-untyped-def]
    assert table.version == 1
    assert set(table.brands) == {"HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO", "MEIZU", "SAMSUNG"}


def test_numbered_conditions_as_in_seed(table) -> None:  # type: ignore[no-untyped-def]
    huawei = table.brands["HUAWEI"].conditions
    assert sorted(huawei) == list(range(1, 9))
    assert [huawei[n].gives.value for n in range(1, 9)] == ["render", "buttons"] * 4
    assert [huawei[n].family.name if huawei[n].family else None for n in range(1, 9)] == [
        None,
        None,
        "9.x",
        "9.x",
        "10.x",
        "10.x",
        "11.x",
        "11.x",
    ]
    honor = table.brands["HONOR"].conditions
    assert sorted(honor) == list(range(1, 16))
    assert [n for n in range(1, 15) if honor[n].gives.value == "render"] == [1, 3, 5, 7, 9, 11, 13]
    assert [n for n in range(1, 15) if honor[n].gives.value == "buttons"] == [2, 4, 6, 8, 10, 12, 14]
    assert honor[15].field == "plugin_version" and honor[15].bound.lower.text == "11.0.8.303"
    assert {n: honor[n].family.os for n in range(9, 15)} == {n: "Magic UI" for n in range(9, 15)}
    magic_os = next(r for r in table.brands["HONOR"].os_rules if r.os == frozenset({"Magic OS"}))
    assert [c.number for c in magic_os.conditions] == [15]
    assert table.brands["VIVO"].required_switches == {
        "smart_info_service": "智慧信息服务",
        "rich_media_display": "富媒体化展示内容",
    }
    samsung = table.brands["SAMSUNG"].conditions[1].bound
    assert samsung.strict and samsung.lower.text == "13.2.20.13"


# ---------------------------------------------------------------------------------------------- look-up


@pytest.mark.parametrize(
    ("brand", "model", "expected"),
    [
        ("HUAWEI", "Mate 40 Pro", "Mate 40 Pro"),
        ("华为", "HUAWEI MATE 40 PRO", "Mate 40 Pro"),
        ("huawei", "mate-40-pro", "Mate 40 Pro"),
        ("Huawei", "ＨＵＡＷＥＩ　ＭＡＴＥ　４０　ＰＲＯ", "Mate 40 Pro"),
        ("HUAWEI", "Mate 40 Pro+", "Mate 40 Pro+"),
        ("HUAWEI", "麦芒9 5G", "麦芒 9 5G"),
        ("HUAWEI", "nova 6 (5G)", "nova 6 (5G)"),
        ("HUAWEI", "NOVA 6（5G）", "nova 6 (5G)"),
        ("HONOR", "荣耀V10", "V10"),
        ("Honor", "HONOR V10", "V10"),
        ("荣耀", "X20", "X20"),
        ("HONOR", "HONOR 麦芒 10", "麦芒 10"),
        ("Xiaomi", "MI 9", "9"),
        ("小米", "小米9", "9"),
        ("Xiaomi", "Mi MIX 2S", "MIX 2S"),
        ("Xiaomi", "MIX 2S", "MIX 2S"),
        ("Xiaomi", "Redmi K40", "Redmi K40"),
        ("Redmi", "K40", "Redmi K40"),
        ("红米", "Note 4X", "Redmi Note 4X"),
        ("小米", "红米Note 4X", "Redmi Note 4X"),
        ("vivo", "iQOO Neo5", "iQOO Neo5"),
        ("iQOO", "Neo5", "iQOO Neo5"),
        ("Samsung", "Galaxy S21", "S21"),
        ("三星", "Galaxy Z Fold3 5G", "Z Fold3 5G"),
        ("Meizu", "魅族16th Plus", "16th Plus"),
        ("OPPO", "Reno 5 Pro+", "Reno5 Pro+"),
    ],
)
def test_lookup_normalisation(table, brand: str, model: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    found = table.find_model(brand, model)
    assert found is not None and found.name == expected


@pytest.mark.parametrize(
    ("brand", "model"),
    [
        ("HUAWEI", "Mate 70"),
        ("HUAWEI", "P70"),
        ("Apple", "iPhone 15"),
        ("HUAWEI", "HUAWEI"),
        ("Xiaomi", "Redmi 10"),  # 小米10 exists, Redmi 10 is not listed
        ("HUAWEI", "Redmi K40"),  # right model, wrong brand
    ],
)
def test_lookup_misses(table, brand: str, model: str) -> None:  # type: ignore[no-untyped-def]
    assert table.find_model(brand, model) is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("HUAWEI", "HUAWEI"),
        ("华为", "HUAWEI"),
        ("Honor", "HONOR"),
        ("荣耀", "HONOR"),
        ("Xiaomi", "XIAOMI"),
        ("小米", "XIAOMI"),
        ("Redmi", "XIAOMI"),
        ("红米", "XIAOMI"),
        ("oppo", "OPPO"),
        ("VIVO", "VIVO"),
        ("iQOO", "VIVO"),
        ("Meizu", "MEIZU"),
        ("魅族", "MEIZU"),
        ("Samsung", "SAMSUNG"),
        ("三星", "SAMSUNG"),
        ("Apple", None),
    ],
)
def test_vendor_codes(table, name: str, code: str | None) -> None:  # type: ignore[no-untyped-def]
    assert table.vendor_code(name) == code


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("HarmonyOS", "HarmonyOS"),
        ("鸿蒙", "HarmonyOS"),
        ("harmony os", "HarmonyOS"),
        ("MagicOS", "Magic OS"),
        ("Magic-UI", "Magic UI"),
        ("Color OS", "ColorOS"),
        ("OneUI", "One UI"),
        ("OriginOS Ocean", "OriginOS"),
        ("Funtouch OS", "Funtouch OS"),
        ("Windows", None),
    ],
)
def test_os_names(table, name: str, canonical: str | None) -> None:  # type: ignore[no-untyped-def]
    assert table.canonical_os(name) == canonical


# ---------------------------------------------------------------------------------------------- validation


def _brand(document: dict[str, Any], vendor: str = "HUAWEI") -> dict[str, Any]:
    return document["brands"][vendor]


def _expect_error(document: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(TableError) as info:
        parse_table(document)
    assert info.value.path == path
    assert fragment in str(info.value)
    assert str(info.value).startswith(path + ": ")


def test_valid_document_parses(document: dict[str, Any]) -> None:
    assert len(parse_table(copy.deepcopy(document))) == 609


def test_unknown_top_level_key(document: dict[str, Any]) -> None:
    document["colour"] = "red"
    _expect_error(document, "<table>", "unknown key(s) 'colour'")


def test_missing_version(document: dict[str, Any]) -> None:
    del document["version"]
    _expect_error(document, "<table>", "missing key(s) 'version'")


def test_unsupported_version(document: dict[str, Any]) -> None:
    document["version"] = 2
    _expect_error(document, "version", "unsupported table version 2")


def test_unknown_brand_key(document: dict[str, Any]) -> None:
    _brand(document)["colour"] = "red"
    _expect_error(document, "brands.HUAWEI", "unknown key(s) 'colour'")


def test_unknown_condition_key(document: dict[str, Any]) -> None:
    _brand(document)["conditions"][3]["max_major"] = 9
    _expect_error(document, "brands.HUAWEI.conditions[3]", "unknown key(s) 'max_major'")


def test_bad_version_string(document: dict[str, Any]) -> None:
    _brand(document)["conditions"][0]["gte"] = "11.1.0.x"
    _expect_error(document, "brands.HUAWEI.conditions[0].gte", "not a dotted numeric version: '11.1.0.x'")


def test_empty_version_component(document: dict[str, Any]) -> None:
    _brand(document, "OPPO")["conditions"][0]["gte"] = "5..17"
    _expect_error(document, "brands.OPPO.conditions[0].gte", "empty version component")


def test_unquoted_version(document: dict[str, Any]) -> None:
    _brand(document)["os_rules"][0]["os_version"]["gte"] = 2.0
    _expect_error(document, "brands.HUAWEI.os_rules[0].os_version.gte", "must be a quoted string")


def test_both_gte_and_gt(document: dict[str, Any]) -> None:
    _brand(document, "SAMSUNG")["conditions"][0]["gte"] = "13.2.20.13"
    _expect_error(document, "brands.SAMSUNG.conditions[0]", "exactly one of 'gte' and 'gt'")


def test_max_major_below_lower_bound(document: dict[str, Any]) -> None:
    _brand(document)["os_rules"][1]["os_version"]["max_major"] = 8
    _expect_error(document, "brands.HUAWEI.os_rules[1].os_version.max_major", "below the lower bound 9")


def test_bad_gives(document: dict[str, Any]) -> None:
    _brand(document)["conditions"][1]["gives"] = "colour"
    _expect_error(document, "brands.HUAWEI.conditions[1].gives", "'render' or 'buttons'")


def test_duplicate_condition_number(document: dict[str, Any]) -> None:
    _brand(document)["conditions"][1]["number"] = 1
    _expect_error(document, "brands.HUAWEI.conditions[1].number", "duplicate condition number 1")


def test_condition_with_unknown_family(document: dict[str, Any]) -> None:
    _brand(document)["conditions"][2]["family"] = "12.x"
    _expect_error(document, "brands.HUAWEI.conditions[2].family", "unknown family '12.x'")


def test_family_with_unknown_os(document: dict[str, Any]) -> None:
    _brand(document)["families"]["9.x"]["os"] = "EMUI Lite"
    _expect_error(document, "brands.HUAWEI.families.9.x.os", "unknown OS 'EMUI Lite'")


def test_rule_with_unknown_os(document: dict[str, Any]) -> None:
    _brand(document)["os_rules"][0]["os"] = "HarmonyOS NEXT"
    _expect_error(document, "brands.HUAWEI.os_rules[0].os", "unknown OS 'HarmonyOS NEXT'")


def test_rule_with_unknown_condition(document: dict[str, Any]) -> None:
    _brand(document)["os_rules"][0]["conditions"].append(9)
    _expect_error(document, "brands.HUAWEI.os_rules[0].conditions[8]", "unknown condition number 9")


def test_unused_condition(document: dict[str, Any]) -> None:
    for rule in _brand(document, "HONOR")["os_rules"]:
        rule["conditions"] = [n for n in rule["conditions"] if n != 15] or [1]
    _expect_error(document, "brands.HONOR.conditions", "condition(s) [15] not used")


def test_duplicate_rule_id(document: dict[str, Any]) -> None:
    _brand(document)["os_rules"][1]["id"] = "harmonyos"
    _expect_error(document, "brands.HUAWEI.os_rules[1].id", "duplicate rule id 'harmonyos'")


def test_duplicate_model(document: dict[str, Any]) -> None:
    mate = _brand(document)["series"][4]
    assert mate["name"] == "HUAWEI MATE系列"
    mate["models"].append("MATE 40 PRO")
    position = len(mate["models"]) - 1
    _expect_error(
        document,
        f"brands.HUAWEI.series[4].models[{position}]",
        "duplicate model 'MATE 40 PRO' (key 'mate40pro'), already at brands.HUAWEI.series[4].models[22]",
    )


def test_duplicate_model_through_an_alias_in_another_series(document: dict[str, Any]) -> None:
    _brand(document)["series"][6]["models"].append({"name": "Y11", "aliases": ["HUAWEI P40"]})
    _expect_error(document, "brands.HUAWEI.series[6].models[5]", "already at brands.HUAWEI.series[2].models[11]")


def test_same_model_name_under_two_vendors_is_fine(document: dict[str, Any]) -> None:
    # 麦芒 10 is listed under both 华为 and 荣耀 in the seed
    table = parse_table(document)
    assert table.find_model("HUAWEI", "麦芒10") is not table.find_model("HONOR", "麦芒10")


def test_model_that_is_only_a_brand_word(document: dict[str, Any]) -> None:
    _brand(document)["series"][0]["models"].append("HUAWEI")
    _expect_error(document, "brands.HUAWEI.series[0].models[7]", "empty once the brand word is removed")


def test_model_with_wrong_type(document: dict[str, Any]) -> None:
    _brand(document)["series"][0]["models"].append(7)
    _expect_error(document, "brands.HUAWEI.series[0].models[7]", "expected a mapping, got int")


def test_unknown_switch(document: dict[str, Any]) -> None:
    _brand(document, "VIVO")["required_switches"]["dark_mode"] = "深色模式"
    _expect_error(document, "brands.VIVO.required_switches", "unknown switch 'dark_mode'")


def test_brand_alias_claimed_twice(document: dict[str, Any]) -> None:
    _brand(document, "HONOR")["names"].append("华为")
    _expect_error(document, "brands.HONOR.names", "brand alias '华为' already belongs to HUAWEI")


def test_bad_vendor_code(document: dict[str, Any]) -> None:
    document["brands"]["apple"] = _brand(document, "SAMSUNG")
    _expect_error(document, "brands.apple", "upper-case identifiers")


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    text = DEFAULT_TABLE_PATH.read_text(encoding="utf-8").replace("version: 1\n", "version: 1\nversion: 1\n", 1)
    file = tmp_path / "handsets.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(TableError, match="duplicate key 'version'"):
        load_table(file)


def test_json_table_loads(tmp_path: Path, document: dict[str, Any]) -> None:
    file = tmp_path / "handsets.v1.json"
    file.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert len(load_table(file)) == 609
