"""Receipt callbacks: URL rules (public addresses only), CallbackConfigured on the broker, replacement."""

from __future__ import annotations

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from magpie.v1 import billing_pb2
from magpie_common.config import Settings
from magpie_common.topics import CALLBACKS, topic_name

from .conftest import BASE_URL, Harness, SdkSigner, gateway_config, running_gateway

pytestmark = pytest.mark.integration


async def read_callbacks(settings: Settings, count: int) -> list[tuple[str, billing_pb2.CallbackConfigured]]:
    consumer = AIOKafkaConsumer(
        topic_name(settings, CALLBACKS), **settings.kafka_client_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[tuple[str, billing_pb2.CallbackConfigured]] = []
    try:
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    message = billing_pb2.CallbackConfigured()
                    message.ParseFromString(record.value)
                    found.append(((record.key or b"").decode(), message))
            if len(found) >= count:
                return found
    finally:
        await consumer.stop()
    raise AssertionError(f"only {len(found)} CallbackConfigured events")


async def test_callback_registration(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        for url in (
            "http://127.0.0.1:9000/receipts",
            "https://localhost/receipts",
            "https://10.1.2.3/receipts",
            "https://[::1]/receipts",
            "https://169.254.169.254/latest",
            "ftp://1.1.1.1/receipts",
            "https://1.1.1.1/" + "x" * 1000,
            "https://user:pw@1.1.1.1/receipts",
        ):
            refused = await client.post("/v1/aim/callbacks", json={"callback_url": url, "url_type": 0})
            assert refused.status_code == 400, url
            assert refused.json()["error_code"] == "KM.00000428", url
        bad_type = await client.post("/v1/aim/callbacks", json={"callback_url": "https://1.1.1.1/r", "url_type": 5})
        assert bad_type.json()["error_code"] == "KM.00000400"

        single = await client.post("/v1/aim/callbacks", json={"callback_url": "https://1.1.1.1/single", "url_type": 0})
        assert single.status_code == 200, single.text
        body = single.json()
        assert body["status"] == "200" and body["data"]["url_type"] == 0
        callback_id = body["data"]["id"]
        batch = await client.post("/v1/aim/callbacks", json={"callback_url": "https://8.8.8.8/batch", "url_type": 2})
        replaced = await client.post("/v1/aim/callbacks", json={"callback_url": "https://1.1.1.1/v2", "url_type": 0})
        assert replaced.json()["data"] == {"callback_url": "https://1.1.1.1/v2", "id": callback_id, "url_type": 0}
        listed = (await client.get("/v1/aim/callbacks")).json()
        assert listed["data"] == [replaced.json()["data"], batch.json()["data"]]

    events = await read_callbacks(harness.settings, 3)
    # In order per key (the partition), keyed by tenant and type so compaction keeps each type's latest.
    by_key: dict[str, list[tuple[int, str, bool]]] = {}
    for key, e in events:
        by_key.setdefault(key, []).append((e.url_type, e.url, e.callback_id == callback_id))
    assert by_key == {
        f"{tenant.tenant_id}:0": [(0, "https://1.1.1.1/single", True), (0, "https://1.1.1.1/v2", True)],
        f"{tenant.tenant_id}:2": [(2, "https://8.8.8.8/batch", False)],
    }
    assert all(e.meta.tenant_id == tenant.tenant_id and not e.deleted for _, e in events)
    assert len({e.meta.event_id for _, e in events}) == 3


async def test_loopback_callbacks_when_allowed(settings: Settings, harness: Harness) -> None:
    tenant = await harness.tenant()
    async with running_gateway(settings, gateway_config(allow_loopback_callbacks=True), loops=False) as gateway:
        transport = httpx.ASGITransport(app=gateway.app)
        auth = SdkSigner(tenant.access_key, tenant.secret_key)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as client:
            local = await client.post(
                "/v1/aim/callbacks", json={"callback_url": "http://127.0.0.1:9000/r", "url_type": 0}
            )
            assert local.status_code == 200
            private = await client.post(
                "/v1/aim/callbacks", json={"callback_url": "http://192.168.1.2/r", "url_type": 0}
            )
            assert private.status_code == 400
