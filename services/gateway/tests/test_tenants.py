"""Tenants: the internal endpoint and its guard, the admin CLI, the cached credential lookup."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from magpie_common.config import Settings
from magpie_gateway.db import Collections
from magpie_gateway.tenants import CredentialCache, TenantStore

from .conftest import ADMIN_TOKEN, Harness, TenantKeys, gateway_config, running_gateway

pytestmark = pytest.mark.integration


async def test_internal_endpoint_is_guarded_and_never_lists_secrets(harness: Harness) -> None:
    async with harness.admin() as admin:
        no_token = await admin.post("/internal/tenants", json={"name": "x"})
        assert no_token.status_code == 403
        assert no_token.json()["error_code"] == "APIGW.0302"
        wrong = await admin.post("/internal/tenants", json={"name": "x"}, headers={"X-Admin-Token": "guess"})
        assert wrong.status_code == 403
        blank = await admin.post("/internal/tenants", json={"name": " "}, headers={"X-Admin-Token": ADMIN_TOKEN})
        assert blank.status_code == 400
        created = await admin.post("/internal/tenants", json={"name": "acme"}, headers={"X-Admin-Token": ADMIN_TOKEN})
        assert created.status_code == 201
        body = created.json()
        assert set(body) == {"tenant_id", "name", "access_key", "secret_key"}
        assert len(body["access_key"]) == 20 and len(body["secret_key"]) == 40
        listed = await admin.get("/internal/tenants", headers={"X-Admin-Token": ADMIN_TOKEN})
        assert listed.status_code == 200
        assert body["secret_key"] not in listed.text
        (tenant,) = [t for t in listed.json()["tenants"] if t["tenant_id"] == body["tenant_id"]]
        assert tenant["credentials"] == [{"access_key": body["access_key"], "enabled": True}]

    # The new key signs requests at once; a wrong secret is refused with the SDK's error shape.
    keys = TenantKeys(body["tenant_id"], body["access_key"], body["secret_key"])
    async with harness.client(keys) as client:
        assert (await client.get("/v1/sms/apps")).status_code == 200
    async with harness.client(TenantKeys(keys.tenant_id, keys.access_key, "x" * 40)) as bad:
        refused = await bad.get("/v1/sms/apps")
        assert refused.status_code == 401 and refused.json()["error_code"] == "APIGW.0301"


async def test_internal_endpoint_does_not_exist_without_admin_token(settings: Settings) -> None:
    async with running_gateway(settings, gateway_config(admin_token=None), loops=False) as gateway:
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url="http://g") as admin:
            response = await admin.post("/internal/tenants", json={"name": "x"}, headers={"X-Admin-Token": ""})
            assert response.status_code == 404
            assert response.json()["error_code"] == "APIGW.0101"
            assert (await admin.get("/healthz")).status_code == 200
            ready = await admin.get("/readyz")
            assert ready.json()["checks"]["mongodb"] is True


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "REDIS_URL": settings.redis_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "magpie_gateway.admin", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_admin_cli_creates_a_tenant_the_gateway_accepts(harness: Harness) -> None:
    result = await asyncio.to_thread(_cli, harness.settings, "create-tenant", "--name", "cli tenant")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) >= {"tenant_id", "access_key", "secret_key"}
    keys = TenantKeys(created["tenant_id"], created["access_key"], created["secret_key"])
    async with harness.client(keys) as client:
        app = await client.post("/v1/sms/apps", json={"app_name": "cli_app"})
        assert app.status_code == 200
    listed = await asyncio.to_thread(_cli, harness.settings, "list-tenants")
    assert created["access_key"] in listed.stdout and created["secret_key"] not in listed.stdout


async def test_credential_cache_hits_expires_and_sees_disabled_keys(harness: Harness) -> None:
    store = TenantStore(Collections.of(harness.gateway.context.collections.tenants.database))
    tenant = await store.create_tenant("cached")
    now = [1000.0]
    cache = CredentialCache(store, ttl_s=30, negative_ttl_s=2, clock=lambda: now[0])
    credential = await cache(tenant.access_key)
    assert credential is not None and credential.enabled and credential.tenant_id == tenant.tenant_id
    assert credential.secret_key == tenant.secret_key
    assert await store.set_enabled(tenant.access_key, False)
    cached = await cache(tenant.access_key)
    assert cached is not None and cached.enabled  # still cached
    now[0] += 31
    expired = await cache(tenant.access_key)
    assert expired is not None and not expired.enabled
    # Unknown keys are remembered briefly.
    assert await cache("NOSUCHKEY") is None
    other = await store.create_tenant("late")
    assert await cache(other.access_key) is not None
    assert await cache("NOSUCHKEY") is None
