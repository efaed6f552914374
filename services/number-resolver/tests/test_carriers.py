"""The carrier segment table (pure): packaged data and loader validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from magpie_number_resolver.carriers import DEFAULT_CARRIERS_PATH, CarrierTableError, default_table, parse_table

TABLE = default_table()


@pytest.mark.parametrize(
    ("national", "carrier"),
    [
        # China Mobile
        ("13400000000", "CMCC"),
        ("13481234567", "CMCC"),
        ("13512345678", "CMCC"),
        ("13900000000", "CMCC"),
        ("14712345678", "CMCC"),
        ("15012345678", "CMCC"),
        ("17212345678", "CMCC"),
        ("18812345678", "CMCC"),
        ("19512345678", "CMCC"),
        ("19712345678", "CMCC"),
        ("19812345678", "CMCC"),
        # China Unicom
        ("13012345678", "CUCC"),
        ("14512345678", "CUCC"),
        ("16612345678", "CUCC"),
        ("17512345678", "CUCC"),
        ("18612345678", "CUCC"),
        ("19612345678", "CUCC"),
        # China Telecom
        ("13312345678", "CTCC"),
        ("13491234567", "CTCC"),  # 1349 inside the CMCC 134 block
        ("14912345678", "CTCC"),
        ("17312345678", "CTCC"),
        ("17400123456", "CTCC"),
        ("17405999999", "CTCC"),
        ("18912345678", "CTCC"),
        ("19012345678", "CTCC"),
        ("19112345678", "CTCC"),
        ("19312345678", "CTCC"),
        ("19912345678", "CTCC"),
        # China Broadcast Network
        ("19212345678", "CBN"),
        # virtual operators, by host carrier
        ("17001234567", "CTCC"),
        ("17011234567", "CTCC"),
        ("17021234567", "CTCC"),
        ("17031234567", "CMCC"),
        ("17041234567", "CUCC"),
        ("17051234567", "CMCC"),
        ("17061234567", "CMCC"),
        ("17071234567", "CUCC"),
        ("17081234567", "CUCC"),
        ("17091234567", "CUCC"),
        ("17112345678", "CUCC"),
        ("16212345678", "CTCC"),
        ("16512345678", "CMCC"),
        ("16712345678", "CUCC"),
        # not allocated / not routable
        ("15412345678", None),
        ("14012345678", None),
        ("14812345678", None),
        ("17406123456", None),
        ("17412123456", None),
        ("17490000000", None),
        ("17912345678", None),
        ("19412345678", None),
        ("12012345678", None),
    ],
)
def test_segment_carrier(national: str, carrier: str | None) -> None:
    assert TABLE.carrier(national) == carrier


def test_segment_kind_and_carriers() -> None:
    assert TABLE.version == 1
    assert set(TABLE.carriers) == {"CMCC", "CUCC", "CTCC", "CBN"}
    assert TABLE.segment("17031234567").kind == "mvno"  # type: ignore[union-attr]
    assert TABLE.segment("13491234567").kind == "satellite"  # type: ignore[union-attr]
    assert TABLE.segment("14712345678").kind == "data"  # type: ignore[union-attr]
    assert TABLE.segment("13812345678").kind == "mno"  # type: ignore[union-attr]
    assert TABLE.segment("15412345678") is None


def _data() -> dict[str, Any]:
    with DEFAULT_CARRIERS_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "unsupported version"),
        (lambda d: d["segments"]["CMCC"]["mno"].append("138"), "already listed"),
        (lambda d: d["segments"]["CUCC"]["mno"].append(130), "quoted strings"),
        (lambda d: d["segments"]["CUCC"]["mno"].append("2301"), "starting with 1"),
        (lambda d: d["segments"]["CUCC"]["mno"].append("130123"), "3-5 ASCII digits"),
        (lambda d: d["segments"].update(XX={"mno": ["154"]}), "carrier not declared"),
        (lambda d: d["segments"]["CBN"].update(iot=["1440"]), "unknown kind"),
        (lambda d: d["not_routable"].update({"17405": "x"}), "also listed as a segment"),
        (lambda d: d["not_routable"].update({"13812": "x"}), "covered by a listed segment"),
        (lambda d: d.update(extra=1), "unknown key"),
    ],
)
def test_loader_rejects_malformed_data(mutate: Any, message: str) -> None:
    data = copy.deepcopy(_data())
    mutate(data)
    with pytest.raises(CarrierTableError, match=message):
        parse_table(data)
