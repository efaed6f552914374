"""``python -m magpie_gateway`` as a process: ops endpoints, OpenAPI docs, a signed call, clean drain on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from magpie_common.config import Settings

from .conftest import SdkSigner

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gateway_process_serves_and_drains(settings: Settings) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MONGODB_URI": settings.mongodb_uri,
        "REDIS_URL": settings.redis_url,
        "MONGODB_DB": settings.mongodb_db,
        "MAGPIE_TOPIC_PREFIX": settings.topic_prefix,
        "MAGPIE_HTTP_PORT": str(port),
        "MAGPIE_ADMIN_TOKEN": "process-token",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "magpie_gateway"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway not ready"
            time.sleep(0.2)
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["checks"] == {"mongodb": True, "redis": True, "consumers": True}
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert "magpie_gateway_projected_events_total" in httpx.get(f"{base}/metrics").text
        assert httpx.get(f"{base}/docs").status_code == 200
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert {"/v1/aim/send-tasks", "/v1/aim/send-details", "/v1/sms/apps", "/v1/aim/templates"} <= set(paths)
        unsigned = httpx.get(f"{base}/v1/sms/apps")
        assert unsigned.status_code == 401 and unsigned.headers["X-Request-Id"]
        created = httpx.post(
            f"{base}/internal/tenants", json={"name": "process"}, headers={"X-Admin-Token": "process-token"}
        ).json()
        signed = httpx.get(f"{base}/v1/sms/apps", auth=SdkSigner(created["access_key"], created["secret_key"]))
        assert signed.status_code == 200 and signed.json()["page_info"]["total"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
