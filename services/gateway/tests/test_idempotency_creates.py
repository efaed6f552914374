"""``Idempotency-Key`` on every create (``idempotency_middleware``): the same key and body answer the stored
response without creating twice; another body, path or query with the same key answers 409; keys are per tenant."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_same_key_same_body_creates_once_and_replays(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        headers = {"Idempotency-Key": "create-app-1"}
        first = await client.post("/v1/sms/apps", json={"app_name": "idem_app"}, headers=headers)
        second = await client.post("/v1/sms/apps", json={"app_name": "idem_app"}, headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert second.headers["X-Request-Id"] and second.headers["X-Request-Id"] != first.headers["X-Request-Id"]
        listed = (await client.get("/v1/sms/apps")).json()
        assert listed["page_info"]["total"] == 1


async def test_same_key_other_request_is_a_conflict(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        headers = {"Idempotency-Key": "k-1"}
        assert (await client.post("/v1/sms/apps", json={"app_name": "a1"}, headers=headers)).status_code == 200
        other_body = await client.post("/v1/sms/apps", json={"app_name": "a2"}, headers=headers)
        assert other_body.status_code == 409
        assert other_body.json()["error_code"] == "KM.00000409"
        other_path = await client.post(
            "/v1/aim/callbacks", json={"callback_url": "https://1.1.1.1/r", "url_type": 0}, headers=headers
        )
        assert other_path.status_code == 409
        listed = (await client.get("/v1/sms/apps")).json()
        assert [a["app_name"] for a in listed["result"]] == ["a1"]


async def test_keys_are_per_tenant(harness: Harness) -> None:
    one, two = await harness.tenant("one"), await harness.tenant("two")
    headers = {"Idempotency-Key": "shared-key"}
    async with harness.client(one) as c1, harness.client(two) as c2:
        r1 = await c1.post("/v1/sms/apps", json={"app_name": "app_one"}, headers=headers)
        r2 = await c2.post("/v1/sms/apps", json={"app_name": "app_two"}, headers=headers)
        assert r1.status_code == r2.status_code == 200
        assert r1.json()["app_id"] != r2.json()["app_id"]
        assert "Idempotent-Replayed" not in r2.headers


async def test_a_client_error_is_replayed_too(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        headers = {"Idempotency-Key": "bad-name"}
        first = await client.post("/v1/sms/apps", json={"app_name": "bad name!"}, headers=headers)
        second = await client.post("/v1/sms/apps", json={"app_name": "bad name!"}, headers=headers)
        assert first.status_code == second.status_code == 400
        assert first.json() == second.json()
        assert second.headers["Idempotent-Replayed"] == "true"


async def test_malformed_key_is_rejected_and_nothing_is_created(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        response = await client.post("/v1/sms/apps", json={"app_name": "x1"}, headers={"Idempotency-Key": "k" * 256})
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["error_msg"]
        assert (await client.get("/v1/sms/apps")).json()["page_info"]["total"] == 0


async def test_concurrent_duplicates_create_once(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        headers = {"Idempotency-Key": "race"}
        responses = await asyncio.gather(
            *(client.post("/v1/sms/apps", json={"app_name": "race_app"}, headers=headers) for _ in range(4))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
        assert len({r.json()["app_id"] for r in responses if r.status_code == 200}) == 1
        assert (await client.get("/v1/sms/apps")).json()["page_info"]["total"] == 1
