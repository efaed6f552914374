"""Load and validate the handset capability table (``data/handsets.v1.yaml``; schema in that file's header).

Every structural problem raises :class:`TableError` whose message starts with the path of the offending
entry, e.g. ``brands.HUAWEI.series[4].models[22]: duplicate model 'Mate 40 Pro' (key 'mate40pro'), already at
brands.HUAWEI.series[4].models[21]``. Checked: unknown and missing keys, value types (versions must be quoted
strings of digits and dots), duplicate YAML keys, duplicate models after normalisation, duplicate condition
numbers and rule ids, references to undeclared OS names, families and condition numbers, unused conditions,
brand aliases claimed by two vendors, switch names the engine does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .normalize import ModelKeyer, fold
from .table import Bound, Brand, CapabilityTable, Condition, Family, Grant, Model, OsRule, Series
from .version import Version, VersionError

__all__ = [
    "DEFAULT_TABLE_PATH",
    "SUPPORTED_VERSIONS",
    "SWITCH_FIELDS",
    "TableError",
    "load_table",
    "parse_table",
]

DEFAULT_TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "handsets.v1.yaml"
SUPPORTED_VERSIONS = frozenset({1})
# Device fields a brand may require to be on (see engine.Device)
SWITCH_FIELDS = frozenset({"smart_info_service", "rich_media_display"})
CONDITION_FIELDS = frozenset({"app_version", "plugin_version"})
_VENDOR_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9-]*")


class TableError(ValueError):
    """The capability table is malformed; ``path`` locates the offending entry."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """(C)SafeLoader that rejects duplicate mapping keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


# ---------------------------------------------------------------------------------------------- primitives


def _type_name(value: object) -> str:
    return type(value).__name__


def _mapping(value: object, path: str, required: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TableError(path, f"expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise TableError(path, f"keys must be strings, got {key!r}")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise TableError(path, f"unknown key(s) {', '.join(map(repr, unknown))}")
    missing = sorted(required - set(value))
    if missing:
        raise TableError(path, f"missing key(s) {', '.join(map(repr, missing))}")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TableError(path, f"expected a non-empty string, got {_type_name(value)} {value!r}")
    return value


def _int(value: object, path: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TableError(path, f"expected an integer >= {minimum}, got {_type_name(value)} {value!r}")
    return value


def _list(value: object, path: str, non_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise TableError(path, f"expected a list, got {_type_name(value)}")
    if non_empty and not value:
        raise TableError(path, "must not be empty")
    return value


def _str_list(value: object, path: str, non_empty: bool = True) -> tuple[str, ...]:
    items = _list(value, path, non_empty)
    return tuple(_str(item, f"{path}[{i}]") for i, item in enumerate(items))


def _version(value: object, path: str) -> Version:
    if not isinstance(value, str):
        raise TableError(path, f"a version must be a quoted string, got {_type_name(value)} {value!r}")
    try:
        return Version.parse_strict(value)
    except VersionError as exc:
        raise TableError(path, str(exc)) from None


def _os_name(value: object, path: str, os_names: Mapping[str, object]) -> str:
    name = _str(value, path)
    if name not in os_names:
        raise TableError(path, f"unknown OS {name!r} (declare it under os_names)")
    return name


def _bound(value: object, path: str) -> Bound:
    data = _mapping(value, path, set(), {"gte", "gt", "max_major"})
    if ("gte" in data) == ("gt" in data):
        raise TableError(path, "exactly one of 'gte' and 'gt' is required")
    strict = "gt" in data
    lower = _version(data["gt" if strict else "gte"], f"{path}.{'gt' if strict else 'gte'}")
    max_major = None
    if "max_major" in data:
        max_major = _int(data["max_major"], f"{path}.max_major")
        if max_major < lower.major:
            raise TableError(f"{path}.max_major", f"{max_major} is below the lower bound {lower.text}")
    return Bound(lower, strict, max_major)


# ---------------------------------------------------------------------------------------------- sections


def _os_names(value: object, path: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise TableError(path, f"expected a non-empty mapping of OS name -> aliases, got {_type_name(value)}")
    data: dict[str, Any] = value
    names: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for canonical, aliases in data.items():
        alias_path = f"{path}.{canonical}"
        _str(canonical, alias_path)
        spellings = (canonical, *_str_list(aliases, alias_path, non_empty=False))
        for spelling in spellings:
            key = fold(spelling)
            if key in seen and seen[key] != canonical:
                raise TableError(alias_path, f"OS alias {spelling!r} already names {seen[key]!r}")
            seen[key] = canonical
        names[canonical] = spellings[1:]
    return names


def _families(value: object, path: str, os_names: Mapping[str, object]) -> dict[str, Family]:
    if not isinstance(value, dict):
        raise TableError(path, f"expected a mapping, got {_type_name(value)}")
    families: dict[str, Family] = {}
    for name, spec in value.items():
        fpath = f"{path}.{name}"
        _str(name, fpath)
        data = _mapping(spec, fpath, {"os", "major"})
        families[name] = Family(
            name, _os_name(data["os"], f"{fpath}.os", os_names), _int(data["major"], f"{fpath}.major")
        )
    return families


def _conditions(value: object, path: str, families: Mapping[str, Family]) -> dict[int, Condition]:
    conditions: dict[int, Condition] = {}
    for i, item in enumerate(_list(value, path)):
        cpath = f"{path}[{i}]"
        data = _mapping(item, cpath, {"number", "seed", "gives"}, {"field", "family", "gte", "gt"})
        number = _int(data["number"], f"{cpath}.number", minimum=1)
        if number in conditions:
            raise TableError(f"{cpath}.number", f"duplicate condition number {number}")
        field_name = data.get("field", "app_version")
        if field_name not in CONDITION_FIELDS:
            raise TableError(f"{cpath}.field", f"must be one of {sorted(CONDITION_FIELDS)}, got {field_name!r}")
        family = None
        if "family" in data:
            family_name = _str(data["family"], f"{cpath}.family")
            family = families.get(family_name)
            if family is None:
                raise TableError(f"{cpath}.family", f"unknown family {family_name!r} (declare it under families)")
        gives_text = data["gives"]
        try:
            gives = Grant(gives_text)
        except ValueError:
            raise TableError(f"{cpath}.gives", f"must be 'render' or 'buttons', got {gives_text!r}") from None
        bound = _bound({k: data[k] for k in ("gte", "gt") if k in data}, cpath)
        conditions[number] = Condition(number, _str(data["seed"], f"{cpath}.seed"), field_name, bound, gives, family)
    return conditions


def _os_rules(
    value: object, path: str, os_names: Mapping[str, object], conditions: Mapping[int, Condition]
) -> tuple[OsRule, ...]:
    rules: list[OsRule] = []
    ids: set[str] = set()
    for i, item in enumerate(_list(value, path)):
        rpath = f"{path}[{i}]"
        data = _mapping(
            item,
            rpath,
            {"id", "seed", "conditions"},
            {"os", "os_version", "android_version", "quick_app_engine_version"},
        )
        rule_id = _str(data["id"], f"{rpath}.id")
        if not _RULE_ID.fullmatch(rule_id):
            raise TableError(f"{rpath}.id", f"rule ids are lower-case words with hyphens, got {rule_id!r}")
        if rule_id in ids:
            raise TableError(f"{rpath}.id", f"duplicate rule id {rule_id!r}")
        ids.add(rule_id)
        os_set = None
        if "os" in data:
            raw = data["os"]
            names = [raw] if isinstance(raw, str) else _list(raw, f"{rpath}.os")
            os_set = frozenset(_os_name(n, f"{rpath}.os", os_names) for n in names)
        bounds = {
            key: _bound(data[key], f"{rpath}.{key}") if key in data else None
            for key in ("os_version", "android_version", "quick_app_engine_version")
        }
        if bounds["os_version"] is not None and os_set is None:
            raise TableError(f"{rpath}.os_version", "an os_version bound needs 'os' (whose version is it?)")
        selected: list[Condition] = []
        for j, number in enumerate(_list(data["conditions"], f"{rpath}.conditions")):
            npath = f"{rpath}.conditions[{j}]"
            _int(number, npath, minimum=1)
            if number not in conditions:
                raise TableError(npath, f"unknown condition number {number}")
            if conditions[number] in selected:
                raise TableError(npath, f"condition {number} listed twice")
            selected.append(conditions[number])
        rules.append(
            OsRule(
                rule_id,
                _str(data["seed"], f"{rpath}.seed"),
                os_set,
                bounds["os_version"],
                bounds["android_version"],
                bounds["quick_app_engine_version"],
                tuple(selected),
            )
        )
    return tuple(rules)


def _series(
    value: object,
    path: str,
    vendor: str,
    keyer: ModelKeyer,
    os_names: Mapping[str, object],
    index: dict[tuple[str, str], Model],
    where: dict[tuple[str, str], str],
) -> tuple[Series, ...]:
    result: list[Series] = []
    for i, item in enumerate(_list(value, path)):
        spath = f"{path}[{i}]"
        data = _mapping(item, spath, {"name", "models"}, {"os_wildcard"})
        series_name = _str(data["name"], f"{spath}.name")
        wildcard = frozenset(
            _os_name(n, f"{spath}.os_wildcard[{k}]", os_names)
            for k, n in enumerate(_list(data.get("os_wildcard", []), f"{spath}.os_wildcard", non_empty=False))
        )
        models: list[Model] = []
        for j, entry in enumerate(_list(data["models"], f"{spath}.models")):
            mpath = f"{spath}.models[{j}]"
            if isinstance(entry, str):
                name, aliases = _str(entry, mpath), ()
            else:
                mdata = _mapping(entry, mpath, {"name"}, {"aliases"})
                name = _str(mdata["name"], f"{mpath}.name")
                aliases = _str_list(mdata.get("aliases", []), f"{mpath}.aliases", non_empty=False)
            model = Model(vendor, series_name, name, aliases)
            own_keys: set[str] = set()
            for spelling in (name, *aliases):
                key = keyer.key(spelling)
                if not key:
                    raise TableError(mpath, f"spelling {spelling!r} is empty once the brand word is removed")
                if key in own_keys:
                    continue
                own_keys.add(key)
                existing = index.get((vendor, key))
                if existing is not None:
                    raise TableError(
                        mpath,
                        f"duplicate model {spelling!r} (key {key!r}), already at {where[(vendor, key)]}"
                        f" as {existing.name!r}",
                    )
                index[(vendor, key)] = model
                where[(vendor, key)] = mpath
            models.append(model)
        result.append(Series(series_name, tuple(models), wildcard))
    return tuple(result)


def _brand(
    vendor: str,
    value: object,
    path: str,
    os_names: Mapping[str, object],
    index: dict[tuple[str, str], Model],
    where: dict[tuple[str, str], str],
) -> Brand:
    data = _mapping(
        value,
        path,
        {"seed", "names", "conditions", "os_rules", "series"},
        {"sub_brands", "families", "required_switches"},
    )
    names = _str_list(data["names"], f"{path}.names")
    sub_brands: dict[str, tuple[str, ...]] = {}
    raw_subs = data.get("sub_brands", {})
    if not isinstance(raw_subs, dict):
        raise TableError(f"{path}.sub_brands", f"expected a mapping, got {_type_name(raw_subs)}")
    for canonical, aliases in raw_subs.items():
        _str(canonical, f"{path}.sub_brands")
        sub_brands[canonical] = _str_list(aliases, f"{path}.sub_brands.{canonical}", non_empty=False)
    families = _families(data.get("families", {}), f"{path}.families", os_names)
    conditions = _conditions(data["conditions"], f"{path}.conditions", families)
    os_rules = _os_rules(data["os_rules"], f"{path}.os_rules", os_names, conditions)
    used = {c.number for rule in os_rules for c in rule.conditions}
    unused = sorted(set(conditions) - used)
    if unused:
        raise TableError(f"{path}.conditions", f"condition(s) {unused} not used by any os_rule")
    switches: dict[str, str] = {}
    raw_switches = data.get("required_switches", {})
    if not isinstance(raw_switches, dict):
        raise TableError(f"{path}.required_switches", f"expected a mapping, got {_type_name(raw_switches)}")
    for switch, label in raw_switches.items():
        if switch not in SWITCH_FIELDS:
            raise TableError(f"{path}.required_switches", f"unknown switch {switch!r}, known: {sorted(SWITCH_FIELDS)}")
        switches[switch] = _str(label, f"{path}.required_switches.{switch}")
    keyer = ModelKeyer((vendor, *names), sub_brands)
    series = _series(data["series"], f"{path}.series", vendor, keyer, os_names, index, where)
    return Brand(
        vendor=vendor,
        seed=_str(data["seed"], f"{path}.seed"),
        names=names,
        sub_brands=sub_brands,
        families=families,
        conditions=conditions,
        os_rules=os_rules,
        required_switches=switches,
        series=series,
        keyer=keyer,
    )


def parse_table(document: object, source: str = "<table>") -> CapabilityTable:
    """Validate an already-decoded table document and build the in-memory table and index."""
    data = _mapping(document, source, {"version", "os_names", "brands"})
    version = _int(data["version"], "version", minimum=1)
    if version not in SUPPORTED_VERSIONS:
        raise TableError("version", f"unsupported table version {version}, supported {sorted(SUPPORTED_VERSIONS)}")
    os_names = _os_names(data["os_names"], "os_names")
    raw_brands = data["brands"]
    if not isinstance(raw_brands, dict) or not raw_brands:
        raise TableError("brands", "expected a non-empty mapping of vendor code -> brand")
    brands: dict[str, Brand] = {}
    index: dict[tuple[str, str], Model] = {}
    where: dict[tuple[str, str], str] = {}
    brand_alias_owner: dict[str, str] = {}
    for vendor, spec in raw_brands.items():
        path = f"brands.{vendor}"
        if not isinstance(vendor, str) or not _VENDOR_CODE.fullmatch(vendor):
            raise TableError(path, f"vendor codes are upper-case identifiers, got {vendor!r}")
        brand = _brand(vendor, spec, path, os_names, index, where)
        aliases = (vendor, *brand.names, *(a for c, al in brand.sub_brands.items() for a in (c, *al)))
        for alias in aliases:
            key = fold(alias)
            owner = brand_alias_owner.get(key)
            if owner is not None and owner != vendor:
                raise TableError(f"{path}.names", f"brand alias {alias!r} already belongs to {owner}")
            brand_alias_owner[key] = vendor
        brands[vendor] = brand
    return CapabilityTable(version, os_names, brands, index)


def load_table(path: str | Path | None = None) -> CapabilityTable:
    """Load, validate and index a table file (YAML, or JSON when the name ends in .json)."""
    file = Path(path) if path is not None else DEFAULT_TABLE_PATH
    text = file.read_text(encoding="utf-8")
    try:
        is_json = file.suffix == ".json"
        document = json.loads(text) if is_json else yaml.load(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TableError(str(file), f"not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_table(document, str(file))
