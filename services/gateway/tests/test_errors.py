"""Error rendering: unit checks, and the official SDK parsing our errors from a uvicorn-served app."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import uvicorn
from fastapi import FastAPI, HTTPException
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkkoomessage.v1 import (
    CheckMobileCapabilityRequest,
    CheckMobileCapabilityRequestBody,
    KooMessageClient,
    ListAimCallbacksRequest,
    ListAimTemplatesRequest,
)
from pydantic import BaseModel, Field

from magpie_gateway import errors
from magpie_gateway.errors import (
    API_NOT_FOUND,
    EMPTY_INPUT,
    INTERNAL_ERROR,
    INVALID_PARAMETER,
    TOO_MANY_MOBILES,
    ApiError,
    RequestIdMiddleware,
    ensure_request_id,
    http_exception_to_api_error,
    install_error_handlers,
    validation_error_to_api_error,
)

REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")
SPEC_CODES = {
    "KM.90016301",
    "KM.90016403",
    "KM.90016414",
    "KM.90016416",
    "KM.90016482",
    "KM.90016801",
    "KM.90016802",
    "KM.00001075",
    "KM.00001076",
    "KM.00001376",
    "KM.00001377",
    "KM.80040004",
    "KM.80040005",
    "KM.80040006",
}


# --- unit -------------------------------------------------------------------------------------------------


def test_catalogue_holds_every_code_of_the_spec_and_is_consistent() -> None:
    assert set(errors.CATALOGUE) >= SPEC_CODES
    for code, entry in errors.CATALOGUE.items():
        assert entry.code == code
        assert re.fullmatch(r"(KM\.\d{8}|APIGW\.\d{4})", code)
        assert 400 <= entry.http_status < 600
        assert entry.message
    assert all(errors.CATALOGUE[code].http_status == 400 for code in SPEC_CODES)
    module_constants = {v.code for v in vars(errors).values() if isinstance(v, errors.ErrorCode)}
    assert module_constants == set(errors.CATALOGUE)


def test_api_error_of_uses_default_or_given_message() -> None:
    default = ApiError.of(TOO_MANY_MOBILES)
    assert (default.http_status, default.error_code, default.error_msg) == (
        400,
        "KM.90016301",
        TOO_MANY_MOBILES.message,
    )
    custom = ApiError.of(TOO_MANY_MOBILES, "at most 100 mobiles")
    assert custom.error_msg == "at most 100 mobiles"


def test_ensure_request_id_is_stable_per_scope() -> None:
    scope: dict[str, Any] = {"type": "http"}
    first = ensure_request_id(scope)
    assert REQUEST_ID_RE.fullmatch(first)
    assert ensure_request_id(scope) == first
    assert scope["state"]["request_id"] == first
    assert ensure_request_id({"type": "http"}) != first


def test_validation_errors_mapping() -> None:
    missing_body = [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    assert validation_error_to_api_error(missing_body).error_code == EMPTY_INPUT.code

    many = [
        {"type": "missing", "loc": ("body", f"f{i}"), "msg": "Field required", "input": "SECRET-INPUT"}
        for i in range(8)
    ]
    error = validation_error_to_api_error(many)
    assert (error.http_status, error.error_code) == (400, INVALID_PARAMETER.code)
    assert error.error_msg.startswith("Invalid request parameter: body.f0: Field required; body.f1")
    assert error.error_msg.endswith("and 3 more")
    assert "SECRET-INPUT" not in error.error_msg


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "APIGW.0301"),
        (403, "APIGW.0302"),
        (404, "APIGW.0101"),
        (405, "APIGW.0101"),
        (413, "KM.00000413"),
        (429, "APIGW.0308"),
        (400, "KM.00000400"),
        (422, "KM.00000400"),
        (503, "KM.00000500"),
    ],
)
def test_http_exception_mapping(status: int, code: str) -> None:
    error = http_exception_to_api_error(status, "some detail")
    assert (error.http_status, error.error_code) == (status, code)
    assert ("some detail" in error.error_msg) == (status < 500)


# --- through the SDK -------------------------------------------------------------------------------------


class CheckBody(BaseModel):
    mobiles: list[str] = Field(max_length=100)
    tpl_id: str


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/v1/aim/templates")
    async def list_templates(tpl_name: str = "", limit: int = 10) -> dict[str, Any]:
        if tpl_name == "catalogued":
            raise ApiError.of(TOO_MANY_MOBILES)
        if tpl_name == "custom":
            raise ApiError(409, "KM.12345678", "模板名称重复 (duplicate)")
        if tpl_name == "forbidden":
            raise HTTPException(status_code=403, detail="read-only users cannot send")
        if tpl_name == "boom":
            raise RuntimeError("database password is hunter2")
        return {"templates": [], "page_info": {"offset": 0, "limit": limit, "total": 0}}

    @app.post("/v1/aim/mobile-capabilities/check")
    async def check(body: CheckBody) -> dict[str, Any]:
        return {"supported_mobiles": body.mobiles, "unsupported_mobiles": [], "tpl_id": body.tpl_id}

    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(build_app(), log_level="critical", lifespan="off"))
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


@pytest.fixture
def client(base_url: str) -> KooMessageClient:
    # No auth middleware in this app: any AK/SK will do.
    return (
        KooMessageClient.new_builder().with_credentials(BasicCredentials("AK", "SK")).with_endpoints([base_url]).build()
    )


def test_api_error_reaches_the_sdk_as_client_request_exception(client: KooMessageClient) -> None:
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_templates(ListAimTemplatesRequest(tpl_name="catalogued"))
    exc = caught.value
    assert (exc.status_code, exc.error_code, exc.error_msg) == (400, "KM.90016301", TOO_MANY_MOBILES.message)
    assert REQUEST_ID_RE.fullmatch(exc.request_id)


def test_custom_status_and_non_ascii_message(client: KooMessageClient) -> None:
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_templates(ListAimTemplatesRequest(tpl_name="custom"))
    assert (caught.value.status_code, caught.value.error_code) == (409, "KM.12345678")
    assert caught.value.error_msg == "模板名称重复 (duplicate)"


def test_http_exception_is_rendered_in_koomessage_shape(client: KooMessageClient) -> None:
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_templates(ListAimTemplatesRequest(tpl_name="forbidden"))
    assert (caught.value.status_code, caught.value.error_code) == (403, "APIGW.0302")
    assert caught.value.error_msg.endswith("read-only users cannot send")


def test_unexpected_exception_is_500_without_details(
    client: KooMessageClient, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="magpie_gateway.errors"),
        pytest.raises(ServerResponseException) as caught,
    ):
        client.list_aim_templates(ListAimTemplatesRequest(tpl_name="boom"))
    exc = caught.value
    assert (exc.status_code, exc.error_code, exc.error_msg) == (500, INTERNAL_ERROR.code, INTERNAL_ERROR.message)
    assert "hunter2" not in exc.error_msg
    logged = [r for r in caplog.records if r.name == "magpie_gateway.errors"]
    assert len(logged) == 1
    assert exc.request_id in logged[0].getMessage()
    assert logged[0].exc_info is not None and "hunter2" in str(logged[0].exc_info[1])


def test_missing_field_is_invalid_parameter(client: KooMessageClient) -> None:
    request = CheckMobileCapabilityRequest(body=CheckMobileCapabilityRequestBody(mobiles=["8613800000000"]))
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(request)
    assert (caught.value.status_code, caught.value.error_code) == (400, INVALID_PARAMETER.code)
    assert "body.tpl_id: Field required" in caught.value.error_msg


def test_constraint_violation_is_invalid_parameter(client: KooMessageClient) -> None:
    body = CheckMobileCapabilityRequestBody(mobiles=[f"86138{i:08d}" for i in range(101)], tpl_id="t")
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(CheckMobileCapabilityRequest(body=body))
    assert caught.value.error_code == INVALID_PARAMETER.code
    assert "body.mobiles" in caught.value.error_msg


def test_missing_body_is_empty_input(client: KooMessageClient) -> None:
    with pytest.raises(ClientRequestException) as caught:
        client.check_mobile_capability(CheckMobileCapabilityRequest())
    assert (caught.value.status_code, caught.value.error_code) == (400, EMPTY_INPUT.code)


def test_unknown_api_is_apigw_0101(client: KooMessageClient) -> None:
    with pytest.raises(ClientRequestException) as caught:
        client.list_aim_callbacks(ListAimCallbacksRequest())
    assert (caught.value.status_code, caught.value.error_code) == (404, API_NOT_FOUND.code)
    assert caught.value.error_msg == API_NOT_FOUND.message


def test_wrong_method_keeps_405_and_allow_header(base_url: str) -> None:
    response = requests.put(f"{base_url}/v1/aim/templates", timeout=10)
    assert response.status_code == 405
    assert response.json()["error_code"] == API_NOT_FOUND.code
    assert "GET" in response.headers["Allow"]
    assert REQUEST_ID_RE.fullmatch(response.headers["X-Request-Id"])


def test_bad_query_and_bad_json(base_url: str) -> None:
    response = requests.get(f"{base_url}/v1/aim/templates?limit=abc", timeout=10)
    assert response.status_code == 400
    assert response.json()["error_code"] == INVALID_PARAMETER.code
    assert "query.limit" in response.json()["error_msg"]

    response = requests.post(
        f"{base_url}/v1/aim/mobile-capabilities/check",
        data=b'{"mobiles": [',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == INVALID_PARAMETER.code
    assert set(response.json()) == {"error_code", "error_msg"}


def test_success_responses_carry_a_request_id(base_url: str) -> None:
    response = requests.get(f"{base_url}/v1/aim/templates", timeout=10)
    assert response.status_code == 200
    assert REQUEST_ID_RE.fullmatch(response.headers["X-Request-Id"])
