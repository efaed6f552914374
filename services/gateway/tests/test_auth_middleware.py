"""End to end: the official KooMessage SDK client against a FastAPI app behind SignatureAuthMiddleware,
served by uvicorn on a real socket, with the Redis replay store on a real redis-server."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests
import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkkoomessage.v1 import (
    CheckMobileCapabilityRequest,
    CheckMobileCapabilityRequestBody,
    DeleteAimPersonalTemplateRequest,
    KooMessageClient,
    ListAimTemplatesRequest,
)
from pydantic import BaseModel
from redis.asyncio import Redis as AsyncRedis

from magpie_gateway.auth import (
    Credential,
    MemoryReplayStore,
    Principal,
    RedisReplayStore,
    SignatureAuthMiddleware,
    get_principal,
)
from magpie_gateway.errors import AUTH_FAILED, REQUEST_TOO_LARGE, RequestIdMiddleware, install_error_handlers

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
AK = "MAGPIEAK0000000000001"
SK = "magpie-secret-key-0001"
DISABLED_AK = "MAGPIEAK0000000000002"
CREDENTIALS = {
    AK: Credential(AK, SK, tenant_id="tenant-1", user_id="user-1", user_name="ops-sub-user"),
    DISABLED_AK: Credential(DISABLED_AK, SK, tenant_id="tenant-1", user_id="user-2", enabled=False),
}
REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")


def _bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with _bound_socket() as probe:
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


class CheckBody(BaseModel):
    mobiles: list[str]
    tpl_id: str | None = None


@dataclass
class Gateway:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)


def build_app(redis_url: str, seen: list[dict[str, Any]]) -> FastAPI:
    replay_redis = AsyncRedis.from_url(redis_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await replay_redis.aclose()

    async def lookup(access_key: str) -> Credential | None:
        return CREDENTIALS.get(access_key)

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(
        SignatureAuthMiddleware,
        lookup=lookup,
        replay_store=RedisReplayStore(replay_redis),
        exempt_paths={"/health"},
    )
    app.add_middleware(RequestIdMiddleware)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/aim/templates")
    async def list_templates(
        request: Request,
        principal: Principal = Depends(get_principal),
        tpl_name: str | None = None,
        factory_type: list[str] = Query(default=[]),
        has_param: bool | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        seen.append(
            {
                "principal": principal,
                "tpl_name": tpl_name,
                "factory_type": factory_type,
                "has_param": has_param,
                "limit": limit,
                "request_id": request.state.request_id,
            }
        )
        return {
            "templates": [{"tpl_id": "tpl-1", "tpl_name": tpl_name}],
            "page_info": {"offset": 0, "limit": limit, "total": 1},
        }

    @app.post("/v1/aim/mobile-capabilities/check")
    async def check_capability(body: CheckBody, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
        seen.append({"principal": principal, "body": body.model_dump()})
        return {"supported_mobiles": body.mobiles, "unsupported_mobiles": [], "tpl_id": body.tpl_id}

    @app.delete("/v1/aim/template/{tpl_id}")
    async def delete_template(tpl_id: str, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
        seen.append({"principal": principal, "tpl_id": tpl_id})
        return {"status": "0", "message": "ok"}

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free port; yield its base URL."""
    sock = _bound_socket()
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[Gateway]:
    seen: list[dict[str, Any]] = []
    with serve(build_app(redis_url, seen)) as url:
        yield Gateway(url=url, seen=seen)


@pytest.fixture(autouse=True)
def clean_state(gateway: Gateway, redis_url: str) -> None:
    gateway.seen.clear()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def make_client(
    gateway: Gateway,
    *,
    ak: str = AK,
    sk: str = SK,
    project_id: str | None = None,
    http_handler: HttpHandler | None = None,
) -> KooMessageClient:
    builder = (
        KooMessageClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_endpoints([gateway.url])
    )
    if http_handler is not None:
        builder = builder.with_http_handler(http_handler)
    return builder.build()


def sdk_date(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y%m%dT%H%M%SZ")


def list_request(tpl_name: str = "春节 活动+1/2") -> ListAimTemplatesRequest:
    return ListAimTemplatesRequest(tpl_name=tpl_name, factory_type=["OPPO", "HUAWEI"], has_param=True, limit=5)


def check_request(*mobiles: str) -> CheckMobileCapabilityRequest:
    return CheckMobileCapabilityRequest(body=CheckMobileCapabilityRequestBody(mobiles=list(mobiles), tpl_id="模板-1"))


def assert_auth_failure(exc: ClientRequestException, message_part: str) -> None:
    assert exc.status_code == 401
    assert exc.error_code == AUTH_FAILED.code
    assert exc.error_msg.startswith(AUTH_FAILED.message + ": ")
    assert message_part in exc.error_msg
    assert REQUEST_ID_RE.fullmatch(exc.request_id)


def test_get_with_chinese_query_is_accepted(gateway: Gateway) -> None:
    response = make_client(gateway).list_aim_templates(list_request())
    assert response.status_code == 200
    assert response.templates[0].tpl_name == "春节 活动+1/2"
    assert response.page_info.limit == 5
    (seen,) = gateway.seen
    assert seen["tpl_name"] == "春节 活动+1/2"
    assert sorted(seen["factory_type"]) == ["HUAWEI", "OPPO"]
    assert seen["has_param"] is True
    assert seen["principal"] == Principal(AK, "tenant-1", "user-1", "ops-sub-user", None)
    assert REQUEST_ID_RE.fullmatch(seen["request_id"])


def test_post_with_json_body_is_accepted_and_body_reaches_endpoint(gateway: Gateway) -> None:
    response = make_client(gateway).check_mobile_capability(check_request("8613800000000", "8613900000000"))
    assert response.supported_mobiles == ["8613800000000", "8613900000000"]
    assert response.tpl_id == "模板-1"
    assert gateway.seen[0]["body"] == {"mobiles": ["8613800000000", "8613900000000"], "tpl_id": "模板-1"}


def test_delete_with_encoded_path_parameter_is_accepted(gateway: Gateway) -> None:
    response = make_client(gateway).delete_aim_personal_template(DeleteAimPersonalTemplateRequest(tpl_id="模板 1"))
    assert response.status_code == 200
    assert gateway.seen[0]["tpl_id"] == "模板 1"


def test_project_id_is_signed_and_exposed_on_the_principal(gateway: Gateway) -> None:
    make_client(gateway, project_id="project-0001").list_aim_templates(list_request("p"))
    assert gateway.seen[0]["principal"].project_id == "project-0001"


def test_wrong_secret_is_rejected(gateway: Gateway) -> None:
    with pytest.raises(ClientRequestException) as caught:
        make_client(gateway, sk="not-the-secret").check_mobile_capability(check_request("8613800000000"))
    assert_auth_failure(caught.value, "verify aksk signature fail")
    assert gateway.seen == []


def test_unknown_access_key_is_rejected(gateway: Gateway) -> None:
    with pytest.raises(ClientRequestException) as caught:
        make_client(gateway, ak="UNKNOWNAK").list_aim_templates(list_request())
    assert_auth_failure(caught.value, "access key not found")


def test_disabled_access_key_is_rejected(gateway: Gateway) -> None:
    with pytest.raises(ClientRequestException) as caught:
        make_client(gateway, ak=DISABLED_AK).list_aim_templates(list_request())
    assert_auth_failure(caught.value, "access key is disabled")


def _tamper_body(**kwargs: Any) -> None:
    request: SdkRequest = kwargs["request"]
    request.body = request.body.replace(b"8613800000000", b"8613899999999")


def test_tampered_body_is_rejected(gateway: Gateway) -> None:
    client = make_client(gateway, http_handler=HttpHandler().add_request_handler(_tamper_body))
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(check_request("8613800000000"))
    assert_auth_failure(caught.value, "verify aksk signature fail")
    assert gateway.seen == []


def _malform_authorization(**kwargs: Any) -> None:
    request: SdkRequest = kwargs["request"]
    request.header_params["Authorization"] = "SDK-HMAC-SHA256 Access=" + AK + ", Signature=zz"


def test_malformed_authorization_is_rejected(gateway: Gateway) -> None:
    client = make_client(gateway, http_handler=HttpHandler().add_request_handler(_malform_authorization))
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_templates(list_request())
    assert_auth_failure(caught.value, "Authorization header lacks SignedHeaders")


def test_missing_authorization_is_rejected(gateway: Gateway) -> None:
    response = requests.get(f"{gateway.url}/v1/aim/templates", timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error_code": AUTH_FAILED.code,
        "error_msg": f"{AUTH_FAILED.message}: Authorization header is missing",
    }
    assert REQUEST_ID_RE.fullmatch(response.headers["X-Request-Id"])


@pytest.mark.parametrize("offset", [timedelta(minutes=-20), timedelta(minutes=20)])
def test_skewed_clock_is_rejected(gateway: Gateway, offset: timedelta) -> None:
    client = make_client(gateway)
    client.preset_headers = {"X-Sdk-Date": sdk_date(offset)}  # the SDK signer then signs with this date
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_templates(list_request())
    assert_auth_failure(caught.value, "more than 15 minutes away from the server time")


def test_replayed_request_is_rejected(gateway: Gateway) -> None:
    client = make_client(gateway)
    client.preset_headers = {"X-Sdk-Date": sdk_date()}  # same date => byte-identical signed request
    client.check_mobile_capability(check_request("8613800000000"))
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(check_request("8613800000000"))
    assert_auth_failure(caught.value, "request has already been used")
    assert len(gateway.seen) == 1
    # A different request signed with the same date is a different signature, hence accepted.
    client.check_mobile_capability(check_request("8613900000000"))
    assert len(gateway.seen) == 2


def test_exempt_path_needs_no_signature(gateway: Gateway) -> None:
    response = requests.get(f"{gateway.url}/health", timeout=10)
    assert response.status_code == 200
    assert REQUEST_ID_RE.fullmatch(response.headers["X-Request-Id"])


def test_response_request_id_matches_the_endpoint_request_id(gateway: Gateway) -> None:
    captured: list[str | None] = []
    handler = HttpHandler().add_response_handler(
        lambda **kwargs: captured.append(kwargs["response"].headers.get("X-Request-Id"))
    )
    make_client(gateway, http_handler=handler).list_aim_templates(list_request("rid"))
    assert captured == [gateway.seen[0]["request_id"]]


@pytest.fixture(scope="module")
def small_gateway() -> Iterator[str]:
    """A gateway accepting at most 64 body bytes, with the in-memory replay store and a fixed clock."""

    async def lookup(access_key: str) -> Credential | None:
        return CREDENTIALS.get(access_key)

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(
        SignatureAuthMiddleware,
        lookup=lookup,
        replay_store=MemoryReplayStore(),
        max_body_bytes=64,
        clock=lambda: datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
    )
    app.add_middleware(RequestIdMiddleware)

    @app.post("/v1/aim/mobile-capabilities/check")
    async def check_capability(body: CheckBody) -> dict[str, Any]:
        return {"supported_mobiles": body.mobiles, "unsupported_mobiles": [], "tpl_id": body.tpl_id}

    with serve(app) as url:
        yield url


def test_body_over_the_limit_is_413(small_gateway: str) -> None:
    client = make_client(Gateway(url=small_gateway))
    client.preset_headers = {"X-Sdk-Date": "20250101T120000Z"}
    assert client.check_mobile_capability(check_request("8613800000000")).supported_mobiles == ["8613800000000"]
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(check_request(*(f"86138{i:08d}" for i in range(10))))
    assert (caught.value.status_code, caught.value.error_code) == (413, REQUEST_TOO_LARGE.code)


def test_chunked_body_over_the_limit_is_413(small_gateway: str) -> None:
    authorization = f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature={'0' * 64}"
    response = requests.post(
        f"{small_gateway}/v1/aim/mobile-capabilities/check",
        data=iter([b"x" * 40, b"y" * 40]),  # no Content-Length: Transfer-Encoding chunked
        headers={"Authorization": authorization, "X-Sdk-Date": "20250101T120000Z"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == REQUEST_TOO_LARGE.code


def test_injected_clock_decides_the_skew(small_gateway: str) -> None:
    client = make_client(Gateway(url=small_gateway))  # signs with the real current time
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(check_request("8613800000000"))
    assert_auth_failure(caught.value, "more than 15 minutes away")
