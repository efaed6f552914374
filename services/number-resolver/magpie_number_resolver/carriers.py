"""Carrier of a mobile number from its segment (号段), loaded from ``data/carriers.v1.yaml``.

The table is expanded once into a dict keyed by the first five digits of the national number, so a look-up is one
dict access whatever the length (3, 4 or 5 digits) of the listed prefix: the longest listed prefix wins.

Number portability overrides the segment carrier: see ``portability.PortabilityStore`` (MongoDB + Redis); the
worker asks it first and falls back to :meth:`SegmentTable.carrier`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CARRIERS_PATH = Path(__file__).resolve().parent / "data" / "carriers.v1.yaml"
SUPPORTED_VERSIONS = frozenset({1})
KINDS = frozenset({"mno", "mvno", "data", "satellite"})
PREFIX_LENGTH = 5

CMCC = "CMCC"
CUCC = "CUCC"
CTCC = "CTCC"
CBN = "CBN"


class CarrierTableError(ValueError):
    """The carrier data file is malformed; the message names the offending entry."""


@dataclass(frozen=True, slots=True)
class Segment:
    prefix: str
    carrier: str
    kind: str


class SegmentTable:
    """Number segments of one data-file version, expanded to 5-digit prefixes for O(1) look-ups."""

    __slots__ = ("_by5", "_by_prefix", "carriers", "segments", "version")

    def __init__(self, version: int, carriers: Mapping[str, str], segments: list[Segment]) -> None:
        self.version = version
        self.carriers: dict[str, str] = dict(carriers)
        self.segments: tuple[Segment, ...] = tuple(sorted(segments, key=lambda s: s.prefix))
        self._by_prefix = {s.prefix: s for s in segments}
        by5: dict[str, str] = {}
        # Shorter prefixes first so that longer (more specific) ones overwrite them.
        for segment in sorted(segments, key=lambda s: len(s.prefix)):
            width = PREFIX_LENGTH - len(segment.prefix)
            for suffix in range(10**width):
                by5[segment.prefix + (str(suffix).zfill(width) if width else "")] = segment.carrier
        self._by5 = by5

    @property
    def prefix_carriers(self) -> Mapping[str, str]:
        """The expanded table: first five digits of a national number -> carrier (read-only use; the hot path)."""
        return self._by5

    def carrier(self, national: str) -> str | None:
        """Carrier code (CMCC, CUCC, CTCC, CBN) of an 11-digit national number, or None when not allocated."""
        return self._by5.get(national[:PREFIX_LENGTH])

    def segment(self, national: str) -> Segment | None:
        """The most specific listed segment of a national number (with its kind; slower than :meth:`carrier`)."""
        for length in (5, 4, 3):
            segment = self._by_prefix.get(national[:length])
            if segment is not None:
                return segment
        return None

    def is_carrier(self, code: str) -> bool:
        return code in self.carriers


def _fail(path: str, message: str) -> CarrierTableError:
    return CarrierTableError(f"{path}: {message}")


def _check_prefix(prefix: object, path: str) -> str:
    if not isinstance(prefix, str):
        raise _fail(path, f"prefixes must be quoted strings, got {prefix!r}")
    if not (3 <= len(prefix) <= PREFIX_LENGTH and prefix.isascii() and prefix.isdigit() and prefix[0] == "1"):
        raise _fail(path, f"prefix {prefix!r} must be 3-{PREFIX_LENGTH} ASCII digits starting with 1")
    return prefix


def parse_table(data: Any) -> SegmentTable:
    """Validate the parsed YAML document and build the table."""
    if not isinstance(data, dict):
        raise _fail("<root>", "expected a mapping")
    unknown = set(data) - {"version", "carriers", "segments", "not_routable"}
    if unknown:
        raise _fail("<root>", f"unknown key(s) {sorted(unknown)}")
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise _fail("version", f"unsupported version {version!r} (supported: {sorted(SUPPORTED_VERSIONS)})")
    carriers = data.get("carriers")
    if not isinstance(carriers, dict) or not carriers:
        raise _fail("carriers", "expected a non-empty mapping of carrier code to name")
    for code, name in carriers.items():
        if not isinstance(code, str) or not code.isupper() or not isinstance(name, str):
            raise _fail(f"carriers.{code}", "carrier codes are upper-case strings mapped to a name")
    raw_segments = data.get("segments")
    if not isinstance(raw_segments, dict):
        raise _fail("segments", "expected a mapping of carrier code to {kind: [prefix]}")
    segments: list[Segment] = []
    seen: dict[str, str] = {}
    for code, kinds in raw_segments.items():
        if code not in carriers:
            raise _fail(f"segments.{code}", "carrier not declared under carriers")
        if not isinstance(kinds, dict):
            raise _fail(f"segments.{code}", "expected a mapping of kind to a list of prefixes")
        for kind, prefixes in kinds.items():
            path = f"segments.{code}.{kind}"
            if kind not in KINDS:
                raise _fail(path, f"unknown kind (known: {sorted(KINDS)})")
            if not isinstance(prefixes, list) or not prefixes:
                raise _fail(path, "expected a non-empty list of prefixes")
            for index, raw in enumerate(prefixes):
                prefix = _check_prefix(raw, f"{path}[{index}]")
                if prefix in seen:
                    raise _fail(f"{path}[{index}]", f"prefix {prefix} already listed at {seen[prefix]}")
                seen[prefix] = f"{path}[{index}]"
                segments.append(Segment(prefix, code, kind))
    not_routable = data.get("not_routable") or {}
    if not isinstance(not_routable, dict):
        raise _fail("not_routable", "expected a mapping of prefix to reason")
    for raw in not_routable:
        prefix = _check_prefix(raw, f"not_routable.{raw}")
        if prefix in seen:
            raise _fail(f"not_routable.{prefix}", f"also listed as a segment at {seen[prefix]}")
    table = SegmentTable(version, carriers, segments)
    for raw in not_routable:
        probe = (raw + "0" * 11)[:11]
        if table.carrier(probe) is not None:
            raise _fail(f"not_routable.{raw}", "covered by a listed segment")
    return table


def load_table(path: str | Path | None = None) -> SegmentTable:
    """Load and validate a carrier data file (default: the packaged ``carriers.v1.yaml``)."""
    source = Path(path) if path is not None else DEFAULT_CARRIERS_PATH
    with source.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return parse_table(data)


@lru_cache(maxsize=1)
def default_table() -> SegmentTable:
    """The packaged table, loaded once per process."""
    return load_table()
