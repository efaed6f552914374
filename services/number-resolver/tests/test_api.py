"""The internal HTTP API on a real socket, against the real MongoDB and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from magpie_number_resolver.testing import (
    APP_TOO_OLD,
    CAPABLE_BUTTONS,
    CAPABLE_RENDER,
    DEVICE_HEADER,
    OS_TOO_OLD,
    UNKNOWN_MODEL,
    VIVO_CAPABLE,
    VIVO_SWITCH_OFF,
    Running,
    free_port,
)

pytestmark = pytest.mark.integration

CSV = {"Content-Type": "text/csv"}


async def import_devices(api: Running, rows: list[str], header: str = DEVICE_HEADER) -> dict:
    body = "\n".join([header, *rows]) + "\n"
    response = await api.client.post("/internal/devices/import", content=body.encode(), headers=CSV)
    assert response.status_code == 200, response.text
    return response.json()


async def test_csv_import_reports_bad_rows_by_line_and_imports_the_good_ones(api: Running) -> None:
    report = await import_devices(
        api,
        [
            f"13800138000,{CAPABLE_BUTTONS}",  # line 2
            "12345678901,HUAWEI,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400,,,,,",  # 3: not a mobile number
            f"+86 139-0013-9000,{CAPABLE_BUTTONS}",  # 4: same profile as line 2
            "15412345678,HUAWEI,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400,,,,,",  # 5: unallocated segment
            "13800138002,HUAWEI,Mate 40 Pro,HarmonyOS,3.0,latest,,,,,",  # 6: bad version
            "13800138003,HUAWEI,Mate 40 Pro",  # 7: too few fields
            "13800138004,,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400,,,,,",  # 8: brand missing
            "",  # 9: blank line, skipped
            "13800138005,vivo,X60,OriginOS,1.0,7.0.0,11,,,sometimes,on",  # 10: bad switch
            "13800138006,HUA\x00WEI,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400,,,,,",  # 11: control character
            f"13800138007,{VIVO_CAPABLE}",  # 12
        ],
    )
    assert report["imported"] == 3
    assert report["rejected_count"] == 7 and report["rejected_truncated"] is False
    assert [r["line"] for r in report["rejected"]] == [3, 5, 6, 7, 8, 10, 11]
    errors = {r["line"]: r["error"] for r in report["rejected"]}
    assert "not a mainland-China mobile number" in errors[3]
    assert "not in an allocated mobile segment" in errors[5]
    assert "app_version 'latest' is not a version" in errors[6]
    assert errors[7] == "expected 11 fields, got 3"
    assert errors[8] == "brand is required"
    assert "smart_service_switch 'sometimes'" in errors[10]
    assert "brand contains a control character" in errors[11]

    got = await api.client.get("/internal/devices/+8613900139000")
    assert got.status_code == 200
    body = got.json()
    assert body["msisdn"] == "8613900139000"
    assert (body["brand"], body["model"], body["os_name"], body["os_version"], body["app_version"]) == (
        "HUAWEI",
        "Mate 40 Pro",
        "HarmonyOS",
        "3.0",
        "11.1.1.400",
    )
    assert body["android_version"] is None and body["smart_service_switch"] is None
    vivo = (await api.client.get("/internal/devices/13800138007")).json()
    assert (vivo["android_version"], vivo["smart_service_switch"], vivo["rich_media_switch"]) == ("11", True, True)
    assert (await api.client.get("/internal/devices/13800138002")).status_code == 404

    # Redis holds one small integer per number: the interned profile id, shared by equal profiles.
    components = api.components
    redis = components.redis
    first = await redis.get(components.settings.rkey("dev", "8613800138000"))
    second = await redis.get(components.settings.rkey("dev", "8613900139000"))
    third = await redis.get(components.settings.rkey("dev", "8613800138007"))
    assert first == second and first != third and first is not None and first.isdigit()
    assert await redis.object("encoding", components.settings.rkey("dev", "8613800138000")) == b"int"
    doc = await components.registry.collection.find_one({"_id": "8613800138000"})
    assert doc is not None and doc["profile"] == int(first)


async def test_reimport_overwrites_and_keeps_the_last_duplicate(api: Running) -> None:
    await import_devices(api, [f"13800138000,{CAPABLE_BUTTONS}"])
    report = await import_devices(api, [f"13800138000,{APP_TOO_OLD}", f"8613800138000,{CAPABLE_RENDER}"])
    assert report == {"imported": 2, "rejected": [], "rejected_count": 0, "rejected_truncated": False}
    body = (await api.client.get("/internal/devices/13800138000")).json()
    assert body["app_version"] == "11.1.0.551"
    assert await api.components.registry.collection.count_documents({}) == 1


async def test_optional_columns_may_be_left_out_and_header_is_case_insensitive(api: Running) -> None:
    header = "Mobile, Brand ,Model,OS_Name,OS_Version,App_Version"
    report = await import_devices(api, ["13800138000,HUAWEI,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400"], header=header)
    assert report["imported"] == 1


async def test_oversized_uploads_get_413(api: Running) -> None:
    big = (DEVICE_HEADER + "\n" + f"13800138000,{CAPABLE_BUTTONS}\n" * 2000).encode()
    assert len(big) > 64 * 1024
    response = await api.client.post("/internal/devices/import", content=big, headers=CSV)
    assert response.status_code == 413
    assert response.json()["error_code"] == "KM.00000413"
    assert "larger than 65536 bytes" in response.json()["error_msg"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    response = await api.client.post("/internal/devices/import", content=chunked(), headers=CSV)
    assert response.status_code == 413
    assert await api.components.registry.collection.count_documents({}) == 0


async def test_broken_encodings_get_400_and_declared_charsets_work(api: Running) -> None:
    gbk = (DEVICE_HEADER + "\n13800138000,华为,Mate 40 Pro,鸿蒙,3.0,11.1.1.400,,,,,\n").encode("gbk")
    response = await api.client.post("/internal/devices/import", content=gbk, headers=CSV)
    assert response.status_code == 400
    assert response.json()["error_code"] == "KM.00000400"
    assert "not valid utf-8" in response.json()["error_msg"] and "line 2" in response.json()["error_msg"]

    response = await api.client.post(
        "/internal/devices/import", content=gbk, headers={"Content-Type": "text/csv; charset=gbk"}
    )
    assert response.status_code == 200 and response.json()["imported"] == 1
    assert (await api.client.get("/internal/devices/13800138000")).json()["brand"] == "华为"

    bom = ("\ufeff" + DEVICE_HEADER + f"\n13800138001,{CAPABLE_BUTTONS}\n").encode()
    response = await api.client.post("/internal/devices/import", content=bom, headers=CSV)
    assert response.json()["imported"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"", CSV, 400, "KM.90016414"),
        (b"mobile,brand\n", CSV, 400, "KM.00000400"),  # required columns missing
        (b'{"mobile": "13800138000"}', {"Content-Type": "application/json"}, 415, "KM.00000415"),
        (b"mobile,brand\n", {"Content-Type": "text/csv; charset=nope"}, 400, "KM.00000400"),
    ],
)
async def test_unusable_uploads(api: Running, body: bytes, headers: dict[str, str], status: int, code: str) -> None:
    response = await api.client.post("/internal/devices/import", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code


async def test_put_get_delete_one_device(api: Running) -> None:
    response = await api.client.put(
        "/internal/devices/86 138-0013-8000",
        json={
            "brand": "vivo",
            "model": "X60",
            "os_name": "OriginOS",
            "os_version": "1.0",
            "app_version": "7.0.0",
            "android_version": "11",
            "smart_service_switch": True,
            "rich_media_switch": "off",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["msisdn"] == "8613800138000" and response.json()["rich_media_switch"] is False
    assert response.json()["updated_at"]
    check = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    assert check.json()["results"][0]["reason"] == "SWITCH_OFF"

    bad = await api.client.put("/internal/devices/13800138000", json={"brand": "vivo", "colour": "red"})
    assert bad.status_code == 400 and "colour" in bad.json()["error_msg"]
    bad = await api.client.put("/internal/devices/13800138000", json={"brand": "vivo"})
    assert bad.status_code == 400 and bad.json()["error_msg"] == "model is required"
    bad = await api.client.put("/internal/devices/12345", json={})
    assert bad.status_code == 400
    assert (await api.client.put("/internal/devices/13800138000", content=b"[1]")).status_code == 400

    assert (await api.client.delete("/internal/devices/13800138000")).status_code == 204
    missing = await api.client.get("/internal/devices/13800138000")
    assert missing.status_code == 404 and missing.json()["error_code"] == "KM.00000404"
    assert (await api.client.delete("/internal/devices/13800138000")).status_code == 404
    assert await api.components.redis.get(api.components.settings.rkey("dev", "8613800138000")) is None
    check = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    assert check.json()["results"][0]["reason"] == "UNKNOWN_DEVICE"


async def test_capability_check(api: Running) -> None:
    await import_devices(
        api,
        [
            f"13800138000,{CAPABLE_BUTTONS}",
            f"13800138001,{CAPABLE_RENDER}",
            f"13800138002,{APP_TOO_OLD}",
            f"13800138003,{OS_TOO_OLD}",
            f"13800138004,{UNKNOWN_MODEL}",
            f"13800138005,{VIVO_SWITCH_OFF}",
            f"13800138006,{VIVO_CAPABLE}",
        ],
    )
    mobiles = [f"1380013800{i}" for i in range(8)] + ["12345", "+86 138-0013-8000"]
    response = await api.client.post(
        "/internal/capabilities/check", json={"mobiles": mobiles, "vendors": ["huawei", "HONOR"]}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["mobile"] for r in results] == mobiles
    summary = [(r["supported"], r["route"], r["reason"], r["vendor"], r["buttons"]) for r in results]
    assert summary == [
        (True, "SMART", "", "HUAWEI", True),
        (True, "SMART", "", "HUAWEI", False),
        (False, "DEGRADED", "APP_TOO_OLD", "HUAWEI", False),
        (False, "DEGRADED", "OS_TOO_OLD", "HUAWEI", False),
        (False, "DEGRADED", "UNKNOWN_MODEL", "HUAWEI", False),
        (False, "DEGRADED", "SWITCH_OFF", "VIVO", False),
        (False, "DEGRADED", "VENDOR_NOT_APPROVED", "VIVO", False),  # renders, but vivo is not approved
        (False, "DEGRADED", "UNKNOWN_DEVICE", "", False),  # not in the registry
        (False, "INVALID", "INVALID_NUMBER", "", False),
        (True, "SMART", "", "HUAWEI", True),
    ]
    assert results[0]["carrier"] == "CMCC" and results[0]["msisdn"] == "8613800138000"
    assert results[8]["msisdn"] == "" and results[8]["carrier"] == ""

    # vendors omitted = any vendor; fallback picks the route of the unsupported ones
    response = await api.client.post(
        "/internal/capabilities/check", json={"mobiles": ["13800138006", "13800138002"], "fallback": "skip"}
    )
    assert [(r["route"], r["reason"]) for r in response.json()["results"]] == [
        ("SMART", ""),
        ("SKIPPED", "APP_TOO_OLD"),
    ]
    # an empty vendor list approves nobody
    response = await api.client.post(
        "/internal/capabilities/check", json={"mobiles": ["13800138000"], "vendors": [], "fallback": "VMS"}
    )
    assert [(r["route"], r["reason"]) for r in response.json()["results"]] == [("VMS", "VENDOR_NOT_APPROVED")]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"mobiles": [f"138001{i:05d}" for i in range(101)], "vendors": ["HUAWEI"]}, "KM.90016301"),
        ({"mobiles": [], "vendors": ["HUAWEI"]}, "KM.90016414"),
        ({"vendors": ["HUAWEI"]}, "KM.90016414"),
        ({"mobiles": "13800138000"}, "KM.00000400"),
        ({"mobiles": [13800138000]}, "KM.00000400"),
        ({"mobiles": ["13800138000"], "vendors": "HUAWEI"}, "KM.00000400"),
        ({"mobiles": ["13800138000"], "fallback": "FAX"}, "KM.00000400"),
    ],
)
async def test_capability_check_limits(api: Running, body: dict, code: str) -> None:
    response = await api.client.post("/internal/capabilities/check", json=body)
    assert response.status_code == 400
    assert response.json()["error_code"] == code
    assert response.json()["error_msg"]


async def test_capability_check_accepts_exactly_100(api: Running) -> None:
    response = await api.client.post(
        "/internal/capabilities/check", json={"mobiles": [f"138001{i:05d}" for i in range(100)], "vendors": []}
    )
    assert response.status_code == 200 and len(response.json()["results"]) == 100


async def test_portability_override_takes_precedence(api: Running) -> None:
    await import_devices(api, [f"13800138000,{CAPABLE_BUTTONS}"])
    response = await api.client.post(
        "/internal/portability/import",
        content=b"mobile,carrier\n13800138000,cucc\n13800138001,CTCC\n13800138002,ATT\n123,CMCC\n",
        headers=CSV,
    )
    assert response.status_code == 200
    report = response.json()
    assert report["imported"] == 2
    assert [r["line"] for r in report["rejected"]] == [4, 5]
    assert "not one of CBN, CMCC, CTCC, CUCC" in report["rejected"][0]["error"]

    check = await api.client.post(
        "/internal/capabilities/check", json={"mobiles": ["13800138000", "13800138001", "13900139000"]}
    )
    assert [r["carrier"] for r in check.json()["results"]] == ["CUCC", "CTCC", "CMCC"]
    assert (await api.client.get("/internal/portability/13800138000")).json()["carrier"] == "CUCC"

    put = await api.client.put("/internal/portability/13900139000", json={"carrier": "CBN"})
    assert put.status_code == 200 and put.json()["carrier"] == "CBN"
    assert (await api.client.put("/internal/portability/13900139000", json={"carrier": "X"})).status_code == 400
    assert (await api.client.delete("/internal/portability/13800138000")).status_code == 204
    assert (await api.client.get("/internal/portability/13800138000")).status_code == 404
    check = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000", "13900139000"]})
    assert [r["carrier"] for r in check.json()["results"]] == ["CMCC", "CBN"]


async def test_ops_routes(api: Running) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": True, "registry_loaded": True, "mongodb": True}
    await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    metrics = (await api.client.get("/metrics")).text
    assert "magpie_number_resolver_capability_checks_total" in metrics
    assert (await api.client.get("/nope")).json()["error_code"] == "KM.00000404"


async def test_redis_loss_is_refilled_from_mongodb(api: Running) -> None:
    await import_devices(api, [f"13800138000,{CAPABLE_BUTTONS}", f"13800138001,{APP_TOO_OLD}"])
    await api.client.put("/internal/portability/13800138000", json={"carrier": "CTCC"})
    components = api.components
    keys = [k async for k in components.redis.scan_iter(match=components.settings.topic_prefix + "*")]
    assert keys
    await components.redis.delete(*keys)  # what a restarted, empty Redis looks like to this namespace
    assert not (await api.client.get("/readyz")).json()["checks"]["registry_loaded"]

    response = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    # Either the fill already finished or the caller is told to retry; never a wrong "unknown device".
    if response.status_code == 503:
        assert response.json()["error_code"] == "KM.00000503" and response.headers["Retry-After"]
        await components.hot.ensure()
        response = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert (result["supported"], result["carrier"]) == (True, "CTCC")

    reload = await api.client.post("/internal/registry/reload")
    assert reload.json() == {"reloaded": {"profiles": 2, "devices": 2, "ported": 1, "downgrades": 0}}


async def test_unreachable_redis_is_503_in_the_api_format(api: Running) -> None:
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    classifier = api.components.classifier
    healthy, classifier.redis = classifier.redis, dead
    try:
        response = await api.client.post("/internal/capabilities/check", json={"mobiles": ["13800138000"]})
    finally:
        classifier.redis = healthy
        await dead.aclose()
    assert response.status_code == 503
    assert response.json()["error_code"] == "KM.00000503" and response.headers["Retry-After"] == "5"
