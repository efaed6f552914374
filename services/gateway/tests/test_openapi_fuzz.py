"""Schemathesis over the gateway's own OpenAPI document: for every signed operation, a bounded number of generated
requests (valid and invalid bodies, queries and path parameters, signed with the tenant's AK/SK like the SDK) is
sent to the gateway served on a real socket, and none may answer 5xx. The services the gateway calls over HTTP
(number-resolver, shortlink edge, billing) run too, so "unavailable" answers don't hide real answers.

``MAGPIE_FUZZ_EXAMPLES`` (default 12) sets the examples per operation; the run is derandomized so a failure
reproduces. Every server error found is listed with its request and response.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from magpie_billing.app import build as build_billing
from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.testing import serve as serve_resolver

from .conftest import Harness, TenantKeys, free_port, gateway_config, served_gateway
from .test_resolve_tasks import TOKEN, shortlink_edge

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MAGPIE_FUZZ_EXAMPLES", "12"))
SKIPPED_PREFIXES = ("/internal", "/metrics", "/healthz", "/readyz", "/docs", "/openapi.json", "/redoc")


class SdkAuth(requests.auth.AuthBase):
    """Signs a prepared ``requests`` request with the official SDK's signer (SDK-HMAC-SHA256)."""

    def __init__(self, tenant: TenantKeys) -> None:
        self.credentials = BasicCredentials(tenant.access_key, tenant.secret_key)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url or "")
        query = [
            (unquote(key), unquote(value))
            for key, _, value in (part.partition("=") for part in url.query.split("&") if part)
        ]
        body = request.body or b""
        content_type = request.headers.get("Content-Type", "application/json")
        sdk_request = SdkRequest(
            method=request.method or "GET",
            schema=url.scheme,
            host=url.netloc,
            resource_path=url.path,
            query_params=query,
            header_params={"Content-Type": content_type},
            body=body if isinstance(body, bytes | str) else b"",
        )
        Signer(self.credentials).sign(sdk_request)
        for name, value in sdk_request.header_params.items():
            if name.lower() != "host":
                request.headers[name] = str(value)
        return request


def fuzz(url: str, tenant: TenantKeys) -> tuple[dict[int, int], list[str]]:
    """Run the generated cases of every operation; (count of answers per status, descriptions of the 5xx)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    session = requests.Session()
    auth = SdkAuth(tenant)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(SKIPPED_PREFIXES):
            continue

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(base_url=url, session=session, auth=auth, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 401 and os.environ.get("FUZZ_DEBUG"):
                print("401", case.method, case.formatted_path, case.query, repr(case.body)[:80], response.text[:150])
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.300} -> "
                    f"{response.status_code} {response.text[:300]}"
                )

        check()
    return statuses, failures


@contextlib.asynccontextmanager
async def billing_api(settings: Settings) -> AsyncIterator[str]:
    components = await build_billing(settings)
    port = free_port()
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


async def test_generated_requests_never_get_a_server_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        serve_resolver(settings, ResolverConfig(), worker=False) as resolver,
        shortlink_edge(settings) as (edge_url, _),
        billing_api(settings) as billing_url,
    ):
        monkeypatch.setenv("MAGPIE_BILLING_URL", billing_url)
        config = gateway_config(
            resolver_url=resolver.base_url,
            shortlink_url=edge_url,
            shortlink_internal_token=TOKEN,
            link_domain=edge_url + "/",
        )
        async with served_gateway(settings, config) as (url, harness):
            await fuzz_gateway(url, harness)


async def fuzz_gateway(url: str, harness: Harness) -> None:
    tenant = await harness.tenant("fuzz")
    async with harness.client(tenant) as client:
        await harness.prerequisites(client, approve=False)  # some real ids exist
    statuses, failures = await asyncio.to_thread(fuzz, url, tenant)
    print("answers by status:", dict(sorted(statuses.items())))
    # The signature was accepted for most requests: the operations themselves were exercised.
    assert sum(n for status, n in statuses.items() if status != 401) > 0.8 * sum(statuses.values())
    assert any(200 <= status < 300 for status in statuses)
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:30])
