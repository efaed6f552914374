"""The loaded capability table: immutable rule objects and the O(1) model index.

Versions are precompiled to comparison keys (integer tuples with trailing zeros stripped, see ``version``) at
load time, so evaluating a rule is a handful of tuple comparisons.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .normalize import ModelKeyer, fold
from .version import Version

__all__ = [
    "VENDOR_CODES",
    "Bound",
    "BoundCheck",
    "Brand",
    "CapabilityTable",
    "Condition",
    "Family",
    "Grant",
    "Model",
    "OsRule",
    "Series",
]

VENDOR_CODES = frozenset({"HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO", "MEIZU", "SAMSUNG"})


class Grant(enum.Enum):
    """What a satisfied numbered condition gives."""

    RENDER = "render"
    BUTTONS = "buttons"  # render, and the card's buttons change colour


class BoundCheck(enum.IntEnum):
    OK = 0
    TOO_LOW = -1
    TOO_HIGH = 1


@dataclass(frozen=True, slots=True)
class Bound:
    """A version constraint: ``>= lower`` (or ``> lower`` when ``strict``), optionally major <= ``max_major``."""

    lower: Version
    strict: bool = False
    max_major: int | None = None

    def check(self, key: tuple[int, ...]) -> BoundCheck:
        lower = self.lower.key
        if key < lower or (self.strict and key == lower):
            return BoundCheck.TOO_LOW
        if self.max_major is not None and (key[0] if key else 0) > self.max_major:
            return BoundCheck.TOO_HIGH
        return BoundCheck.OK

    def describe(self) -> str:
        text = (">" if self.strict else ">=") + " " + self.lower.text
        if self.max_major is not None:
            text += f", <= {self.max_major}.x"
        return text


@dataclass(frozen=True, slots=True)
class Family:
    """An "N.x" qualifier: the device runs ``os`` with major version ``major``."""

    name: str
    os: str
    major: int


@dataclass(frozen=True, slots=True)
class Condition:
    number: int
    seed: str
    field: str  # "app_version" | "plugin_version"
    bound: Bound
    gives: Grant
    family: Family | None = None


@dataclass(frozen=True, slots=True)
class OsRule:
    id: str
    seed: str
    os: frozenset[str] | None  # canonical OS names; None = any
    os_version: Bound | None
    android_version: Bound | None
    quick_app_engine_version: Bound | None
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Model:
    vendor: str
    series: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    models: tuple[Model, ...]
    os_wildcard: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Brand:
    vendor: str
    seed: str
    names: tuple[str, ...]
    sub_brands: dict[str, tuple[str, ...]]
    families: dict[str, Family]
    conditions: dict[int, Condition]
    os_rules: tuple[OsRule, ...]
    required_switches: dict[str, str]
    series: tuple[Series, ...]
    keyer: ModelKeyer = field(compare=False, repr=False)

    @property
    def models(self) -> tuple[Model, ...]:
        return tuple(m for s in self.series for m in s.models)


class CapabilityTable:
    """Brands, rules and the model index of one table version."""

    __slots__ = ("_brand_aliases", "_index", "_os_aliases", "_wildcards", "brands", "os_names", "version")

    def __init__(
        self,
        version: int,
        os_names: dict[str, tuple[str, ...]],
        brands: dict[str, Brand],
        index: dict[tuple[str, str], Model],
    ) -> None:
        self.version = version
        self.os_names = os_names
        self.brands = brands
        self._index = index
        self._os_aliases: dict[str, str] = {}
        for canonical, aliases in os_names.items():
            for alias in (canonical, *aliases):
                self._os_aliases[fold(alias)] = canonical
        # folded brand alias -> (vendor, sub-brand canonical fold or None)
        self._brand_aliases: dict[str, tuple[str, str | None]] = {}
        for brand in brands.values():
            for alias in (brand.vendor, *brand.names):
                self._brand_aliases[fold(alias)] = (brand.vendor, None)
            for canonical, aliases in brand.sub_brands.items():
                for alias in (canonical, *aliases):
                    self._brand_aliases[fold(alias)] = (brand.vendor, fold(canonical))
        self._wildcards: dict[tuple[str, str], Series] = {}
        for brand in brands.values():
            for series in brand.series:
                for os_name in series.os_wildcard:
                    self._wildcards[(brand.vendor, os_name)] = series

    def __len__(self) -> int:
        """Number of distinct models."""
        return len({id(m) for m in self._index.values()})

    def resolve_brand(self, brand: str) -> tuple[str, str | None] | None:
        """(vendor code, sub-brand key or None) for a brand name or alias, or None when not in the table."""
        return self._brand_aliases.get(fold(brand))

    def vendor_code(self, brand: str) -> str | None:
        """Vendor code (HUAWEI, HONOR, XIAOMI, OPPO, VIVO, MEIZU, SAMSUNG) for a brand name or alias."""
        found = self._brand_aliases.get(fold(brand))
        return found[0] if found else None

    def canonical_os(self, os_name: str) -> str | None:
        """Canonical OS name for an OS name or alias, or None when unknown."""
        return self._os_aliases.get(fold(os_name))

    def find_model(self, brand: str, model: str) -> Model | None:
        """Look a handset up by brand (name, alias or vendor code) and model name (any listed spelling)."""
        resolved = self.resolve_brand(brand)
        if resolved is None:
            return None
        return self.find_vendor_model(resolved[0], model, resolved[1])

    def find_vendor_model(self, vendor: str, model: str, sub_brand: str | None = None) -> Model | None:
        brand = self.brands.get(vendor)
        if brand is None:
            return None
        key = brand.keyer.key(model)
        found = self._index.get((vendor, key))
        if found is None and sub_brand is not None and not key.startswith(sub_brand):
            found = self._index.get((vendor, sub_brand + key))
        return found

    def wildcard_series(self, vendor: str, os_name: str | None) -> Series | None:
        """The series that covers every handset of ``vendor`` running ``os_name`` (vivo's OriginOS), if any."""
        if os_name is None:
            return None
        return self._wildcards.get((vendor, os_name))
