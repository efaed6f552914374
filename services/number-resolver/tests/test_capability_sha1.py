"""The capability check with SHA1-hashed numbers (KooMessage ``encryption_alg`` SHA1): the registry's SHA1 index
answers exactly what the plain check answers, records stored before the index existed are backfilled once."""

from __future__ import annotations

import hashlib

import pytest

from magpie_number_resolver.devices import build_profile, sha1_of
from magpie_number_resolver.registry import SHA1_BACKFILL_DONE
from magpie_number_resolver.testing import (
    APP_TOO_OLD,
    CAPABLE_BUTTONS,
    CAPABLE_RENDER,
    UNKNOWN_MODEL,
    VIVO_CAPABLE,
    VIVO_SWITCH_OFF,
    Running,
    device_csv,
)

pytestmark = pytest.mark.integration

ROWS = {
    "13800138000": CAPABLE_BUTTONS,
    "13800138001": CAPABLE_RENDER,
    "13800138002": APP_TOO_OLD,
    "13800138003": UNKNOWN_MODEL,
    "13800138004": VIVO_SWITCH_OFF,
    "13800138005": VIVO_CAPABLE,
}
FIELDS = ("supported", "route", "reason", "vendor", "carrier", "buttons", "msisdn")


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def test_sha1_of_is_the_digest_of_the_msisdn() -> None:
    assert sha1_of("8613800138000") == sha1("8613800138000")
    assert len(sha1_of("8613800138000")) == 40


async def check(api: Running, body: dict[str, object]) -> list[dict[str, object]]:
    response = await api.client.post("/internal/capabilities/check", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_sha1_check_answers_like_the_plain_check(api: Running) -> None:
    imported = await api.client.post(
        "/internal/devices/import", content=device_csv(ROWS), headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200 and imported.json()["imported"] == len(ROWS)
    registered = [*ROWS, "13900139999"]  # the last one is a valid number the registry does not know
    for vendors in (None, ["HUAWEI", "HONOR"], []):
        body: dict[str, object] = {"vendors": vendors} if vendors is not None else {}
        plain = await check(api, {**body, "mobiles": registered})
        hashes = [sha1("86" + mobile) for mobile in registered]
        hashed = await check(api, {**body, "mobiles": hashes, "encryption_alg": "SHA1"})
        assert [r["mobile"] for r in hashed] == hashes  # echoed as sent
        for mobile, p, h in zip(registered, plain, hashed, strict=True):
            if mobile in ROWS:
                assert {f: h[f] for f in FIELDS} == {f: p[f] for f in FIELDS}, mobile
            else:  # unknown to the registry: unsupported both ways, for the same reason
                assert (h["supported"], h["reason"]) == (p["supported"], p["reason"]) == (False, "UNKNOWN_DEVICE")
        assert any(r["supported"] for r in plain) == (vendors != [])
    # upper-case digests are accepted too; a deleted record no longer resolves by hash
    upper = await check(api, {"mobiles": [sha1("8613800138000").upper()], "encryption_alg": "sha1"})
    assert upper[0]["supported"] is True and upper[0]["msisdn"] == "8613800138000"
    assert (await api.client.delete("/internal/devices/13800138000")).status_code == 204
    gone = await check(api, {"mobiles": [sha1("8613800138000")], "encryption_alg": "SHA1"})
    assert (gone[0]["supported"], gone[0]["reason"]) == (False, "UNKNOWN_DEVICE")


async def test_sha1_check_errors(api: Running) -> None:
    async def error(body: dict[str, object]) -> tuple[int, str]:
        response = await api.client.post("/internal/capabilities/check", json=body)
        return response.status_code, response.json()["error_code"]

    assert await error({"mobiles": ["13800138000"], "encryption_alg": "MD5"}) == (400, "KM.00000400")
    assert await error({"mobiles": ["13800138000"], "encryption_alg": "SHA1"}) == (400, "KM.00000400")
    assert await error({"mobiles": ["g" * 40], "encryption_alg": "SHA1"}) == (400, "KM.00000400")
    assert await error({"mobiles": [sha1(str(i)) for i in range(101)], "encryption_alg": "SHA1"}) == (
        400,
        "KM.90016301",
    )
    assert await error({"mobiles": [], "encryption_alg": "SHA1"}) == (400, "KM.90016414")


async def test_records_stored_before_the_index_are_backfilled(api: Running) -> None:
    registry = api.components.registry
    profile = build_profile(dict(zip(FIELD_NAMES, CAPABLE_RENDER.split(","), strict=True)))
    await registry.upsert_many([("8613800138001", profile)])
    # As an older version stored it: no sha1 field, and no backfill marker yet.
    await registry.collection.update_one({"_id": "8613800138001"}, {"$unset": {"sha1": ""}})
    await registry.meta.delete_one({"_id": SHA1_BACKFILL_DONE})
    missing = await check(api, {"mobiles": [sha1("8613800138001")], "encryption_alg": "SHA1"})
    assert missing[0]["supported"] is False
    assert await registry.backfill_sha1() == 1
    assert await registry.backfill_sha1() == 0  # once: the marker is set
    found = await check(api, {"mobiles": [sha1("8613800138001")], "encryption_alg": "SHA1"})
    assert found[0]["supported"] is True and found[0]["msisdn"] == "8613800138001"


FIELD_NAMES = (
    "brand",
    "model",
    "os_name",
    "os_version",
    "app_version",
    "android_version",
    "plugin_version",
    "quick_app_engine_version",
    "smart_service_switch",
    "rich_media_switch",
)
