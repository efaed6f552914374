"""Bulk imports: validate every CSV row, report the bad ones by line, write the good ones in chunks.

Device CSV columns: ``mobile,brand,model,os_name,os_version,app_version`` and optionally ``android_version,
plugin_version,quick_app_engine_version,smart_service_switch,rich_media_switch`` (rules in ``devices``).
Portability CSV columns: ``mobile,carrier``.

Answer: ``{"imported": n, "rejected": [{"line": 3, "error": "..."}], "rejected_count": m,
"rejected_truncated": bool}`` — ``imported`` counts the valid rows written (a number repeated in the file is
written once, last row wins, and counted per row); at most ``MAX_REPORTED`` rejections are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from magpie_number_resolver.carriers import SegmentTable
from magpie_number_resolver.csv_import import CsvRows, Rejection
from magpie_number_resolver.devices import OPTIONAL_FIELDS, REQUIRED_FIELDS, DeviceProfile, FieldError, build_profile
from magpie_number_resolver.metrics import IMPORTED
from magpie_number_resolver.numbers import national, parse
from magpie_number_resolver.portability import PortabilityStore, parse_carrier
from magpie_number_resolver.registry import DeviceRegistry

MAX_REPORTED = 1000
IMPORT_CHUNK = 5000
DEVICE_COLUMNS = ("mobile", *REQUIRED_FIELDS)
DEVICE_OPTIONAL = OPTIONAL_FIELDS
PORT_COLUMNS = ("mobile", "carrier")


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, rejection: Rejection) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED:
            self.rejected.append(rejection)

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": [r.as_json() for r in self.rejected],
            "rejected_count": self.rejected_count,
            "rejected_truncated": self.rejected_count > len(self.rejected),
        }


def mobile_of(value: object, table: SegmentTable) -> str:
    """The msisdn of a mobile cell, or :class:`FieldError` saying whether the format or the segment is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("mobile is required")
    parsed = parse(value, table)
    if parsed is not None:
        return parsed[0]
    if national(value) is None:
        raise FieldError(f"mobile {value!r} is not a mainland-China mobile number (11 digits, optional +86)")
    raise FieldError(f"mobile {value!r} is not in an allocated mobile segment")


async def import_devices(
    rows: CsvRows, registry: DeviceRegistry, table: SegmentTable, chunk: int = IMPORT_CHUNK
) -> ImportReport:
    report = ImportReport()
    pending: list[tuple[str, DeviceProfile]] = []
    for item in rows:
        if isinstance(item, Rejection):
            report.reject(item)
            continue
        try:
            msisdn = mobile_of(item.values.get("mobile"), table)
            profile = build_profile(item.values)
        except FieldError as exc:
            report.reject(Rejection(item.line, str(exc)))
            continue
        pending.append((msisdn, profile))
        if len(pending) >= chunk:
            await registry.upsert_many(pending)
            report.imported += len(pending)
            pending = []
    if pending:
        await registry.upsert_many(pending)
        report.imported += len(pending)
    IMPORTED.labels("devices", "imported").inc(report.imported)
    IMPORTED.labels("devices", "rejected").inc(report.rejected_count)
    return report


async def import_portability(
    rows: CsvRows, store: PortabilityStore, table: SegmentTable, chunk: int = IMPORT_CHUNK
) -> ImportReport:
    report = ImportReport()
    pending: list[tuple[str, str]] = []
    for item in rows:
        if isinstance(item, Rejection):
            report.reject(item)
            continue
        try:
            msisdn = mobile_of(item.values.get("mobile"), table)
            carrier = parse_carrier(item.values.get("carrier"), table)
        except FieldError as exc:
            report.reject(Rejection(item.line, str(exc)))
            continue
        pending.append((msisdn, carrier))
        if len(pending) >= chunk:
            await store.upsert_many(pending)
            report.imported += len(pending)
            pending = []
    if pending:
        await store.upsert_many(pending)
        report.imported += len(pending)
    IMPORTED.labels("portability", "imported").inc(report.imported)
    IMPORTED.labels("portability", "rejected").inc(report.rejected_count)
    return report
