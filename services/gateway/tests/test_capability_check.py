"""``check_mobile_capability`` through the official SDK against the gateway, which asks the real number-resolver
(built in-process, served on its own port, with a device registry imported over its internal API)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkkoomessage.v1 import CheckMobileCapabilityRequest, CheckMobileCapabilityRequestBody

from magpie_common.config import Settings
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.testing import (
    APP_TOO_OLD,
    CAPABLE_BUTTONS,
    CAPABLE_RENDER,
    VIVO_CAPABLE,
    Running,
    device_csv,
    free_port,
    serve,
)

from .conftest import Harness, call, gateway_config, sdk_client, served_gateway

pytestmark = pytest.mark.integration

DEVICES = {
    "13800138000": CAPABLE_BUTTONS,  # Huawei: smart
    "13800138001": CAPABLE_RENDER,  # Huawei: smart
    "13800138002": APP_TOO_OLD,  # Huawei: messaging app too old
    "13800138003": VIVO_CAPABLE,  # vivo: smart when vivo is approved
}
UNKNOWN = "13900139999"  # a valid number the registry does not know
INVALID = "12345"


def sha1(mobile: str) -> str:
    return hashlib.sha1(("86" + mobile[-11:]).encode()).hexdigest()


@pytest.fixture
async def resolver(settings: Settings) -> AsyncIterator[Running]:
    async with serve(settings, ResolverConfig(), worker=False) as running:
        imported = await running.client.post(
            "/internal/devices/import", content=device_csv(DEVICES), headers={"Content-Type": "text/csv"}
        )
        assert imported.status_code == 200 and imported.json()["imported"] == len(DEVICES), imported.text
        yield running


@pytest.fixture
async def stack(settings: Settings, resolver: Running) -> AsyncIterator[tuple[str, Harness]]:
    config = gateway_config(replay_check=True, resolver_url=resolver.base_url)
    async with served_gateway(settings, config) as value:
        yield value


def check(client: Any, mobiles: list[str], tpl_id: str | None = None, alg: str | None = None) -> Any:
    body = CheckMobileCapabilityRequestBody(mobiles=mobiles, tpl_id=tpl_id, encryption_alg=alg)
    return client.check_mobile_capability(CheckMobileCapabilityRequest(body=body))


async def test_check_through_the_sdk_plain_and_sha1(stack: tuple[str, Harness]) -> None:
    url, harness = stack
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        # The template is approved by HUAWEI and HONOR (OPPO rejected): vivo handsets do not count.
        setup = await harness.prerequisites(client)
    sdk = sdk_client(url, tenant)
    mobiles = [*DEVICES, UNKNOWN, INVALID]

    every_vendor = await call(lambda: check(sdk, mobiles))
    assert every_vendor.supported_mobiles == ["13800138000", "13800138001", "13800138003"]
    assert every_vendor.unsupported_mobiles == ["13800138002", UNKNOWN, INVALID]
    assert every_vendor.tpl_id is None

    for_template = await call(lambda: check(sdk, mobiles, setup.tpl_id, "NONE"))
    assert for_template.supported_mobiles == ["13800138000", "13800138001"]
    assert for_template.unsupported_mobiles == ["13800138002", "13800138003", UNKNOWN, INVALID]
    assert for_template.tpl_id == setup.tpl_id

    # SHA1 of 86 + number: the same answers, echoed as hashes (upper case accepted).
    hashes = [sha1(m) for m in [*DEVICES, UNKNOWN]]
    hashes[0] = hashes[0].upper()
    hashed = await call(lambda: check(sdk, hashes, setup.tpl_id, "SHA1"))
    assert hashed.supported_mobiles == hashes[:2]
    assert hashed.unsupported_mobiles == hashes[2:]
    plain_of = dict(zip(hashes, [*DEVICES, UNKNOWN], strict=True))
    assert [plain_of[h] for h in hashed.supported_mobiles] == for_template.supported_mobiles
    every_hashed = await call(lambda: check(sdk, hashes, None, "SHA1"))
    assert [plain_of[h] for h in every_hashed.supported_mobiles] == every_vendor.supported_mobiles

    # Magpie extension: why a number is unsupported; duplicates answered once.
    async with harness.client(tenant) as client:
        raw = await client.post(
            "/v1/aim/mobile-capabilities/check",
            json={"mobiles": ["13800138002", "13800138003", "13800138002", INVALID], "tpl_id": setup.tpl_id},
        )
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["unsupported_mobiles"] == ["13800138002", "13800138003", INVALID]
    reasons = {d["mobile"]: (d["reason"], d["vendor"]) for d in body["magpie_details"]}
    assert reasons == {
        "13800138002": ("APP_TOO_OLD", "HUAWEI"),
        "13800138003": ("VENDOR_NOT_APPROVED", "VIVO"),
        INVALID: ("INVALID_NUMBER", None),
    }


async def test_a_template_without_approved_vendors_supports_nothing(stack: tuple[str, Harness]) -> None:
    _, harness = stack
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)  # still under review
        response = await client.post(
            "/v1/aim/mobile-capabilities/check", json={"mobiles": ["13800138000"], "tpl_id": setup.tpl_id}
        )
    assert response.status_code == 200, response.text
    assert response.json()["supported_mobiles"] == [] and response.json()["unsupported_mobiles"] == ["13800138000"]


async def test_check_errors(stack: tuple[str, Harness]) -> None:
    url, harness = stack
    tenant = await harness.tenant()
    other = await harness.tenant("other")
    async with harness.client(other) as client:
        others_template = (await harness.prerequisites(client)).tpl_id

    async with harness.client(tenant) as client:

        async def error(body: dict[str, Any]) -> tuple[int, str]:
            response = await client.post("/v1/aim/mobile-capabilities/check", json=body)
            return response.status_code, response.json()["error_code"]

        assert await error({}) == (400, "KM.90016414")
        assert await error({"mobiles": []}) == (400, "KM.90016414")
        assert await error({"mobiles": [f"1380013{i:04d}" for i in range(101)]}) == (400, "KM.90016301")
        assert await error({"mobiles": ["13800138000"], "encryption_alg": "MD5"}) == (400, "KM.00000400")
        assert await error({"mobiles": ["13800138000"], "encryption_alg": "SHA1"}) == (400, "KM.00000400")
        assert await error({"mobiles": [1380013800]}) == (400, "KM.00000400")
        assert await error({"mobiles": [" "]}) == (400, "KM.00000400")
        assert await error({"mobiles": ["1" * 21]}) == (400, "KM.00000400")
        assert await error({"mobiles": ["13800138000"], "tpl_id": "999999999"}) == (400, "KM.00000426")
        # another tenant's template is unknown to this tenant
        assert await error({"mobiles": ["13800138000"], "tpl_id": others_template}) == (400, "KM.00000426")
    with pytest.raises(ClientRequestException) as caught:
        await call(lambda: check(sdk_client(url, tenant), [f"1380013{i:04d}" for i in range(101)]))
    assert caught.value.status_code == 400 and caught.value.error_code == "KM.90016301"


async def test_resolver_unavailable_is_a_503(settings: Settings) -> None:
    config = gateway_config(replay_check=True, resolver_url=f"http://127.0.0.1:{free_port()}")
    async with served_gateway(settings, config) as (url, harness):
        tenant = await harness.tenant()
        with pytest.raises(ServerResponseException) as caught:
            await call(lambda: check(sdk_client(url, tenant), ["13800138000"]))
        assert caught.value.status_code == 503 and caught.value.error_code == "KM.00000460"
        async with httpx.AsyncClient() as plain:  # the gateway itself is fine
            assert (await plain.get(url + "/healthz")).status_code == 200
