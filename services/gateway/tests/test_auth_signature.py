"""The verifier against the official SDK signer (huaweicloudsdkcore.signer.signer.Signer)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from magpie_gateway.auth.signature import (
    EMPTY_BODY_SHA256,
    AuthorizationHeader,
    ClockSkewError,
    InvalidDateError,
    MalformedAuthorizationError,
    MissingDateError,
    SignatureMismatchError,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    normalize_headers,
    parse_authorization,
    verify,
)

AK = "MAGPIEAKTEST0001"
SK = "s3cr3t-key-\u00e9-value"
SIGNED_AT = "20250101T120000Z"
NOW = datetime(2025, 1, 1, 12, 0, 5, tzinfo=UTC)
HOST = "gateway.magpie.test:8443"


class RecordingSigner(Signer):
    """The SDK signer, keeping the canonical request it built so the test can compare ours with it."""

    canonical: str = ""

    def _process_canonical_request(self, request: SdkRequest, signed_headers: list[str]) -> str:
        self.canonical = super()._process_canonical_request(request, signed_headers)
        return self.canonical


@dataclass(frozen=True)
class Wire:
    """A signed request as the server receives it."""

    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    sdk_canonical: str

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.decode("latin-1").lower() == name.lower()]
        assert len(values) == 1
        return values[0].decode("utf-8")

    def with_header(self, name: str, value: str | None) -> Wire:
        kept = [(k, v) for k, v in self.headers if k.decode("latin-1").lower() != name.lower()]
        if value is not None:
            kept.append((name.encode("latin-1"), value.encode("utf-8")))
        return replace(self, headers=kept)


def sdk_sign(
    method: str,
    resource_path: str,
    query_params: list[tuple[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    *,
    sk: str = SK,
    date: str | None = SIGNED_AT,
) -> Wire:
    header_params = {"Content-Type": "application/json", "User-Agent": "huaweicloud-usdk-python/3.0"}
    header_params.update(headers or {})
    if date is not None:
        header_params["X-Sdk-Date"] = date
    request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path=resource_path,
        query_params=list(query_params or []),
        header_params=header_params,
        body=body,
    )
    signer = RecordingSigner(BasicCredentials(AK, sk))
    signer.sign(request)
    # http.client sends str header values as latin-1; the signer already turned UTF-8 into latin-1 text.
    wire_headers = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in request.header_params.items()]
    path, _, query = request.uri.partition("?")
    assert path == resource_path
    return Wire(method, path, query, wire_headers, request.body or b"", signer.canonical)


def check(wire: Wire, *, sk: str = SK, now: datetime = NOW, **kwargs: Any) -> None:
    verify(wire.method, wire.path, wire.query, wire.headers, wire.body, sk, now=now, **kwargs)


def our_canonical(wire: Wire) -> str:
    auth = parse_authorization(wire.header("Authorization"))
    return canonical_request(
        wire.method, wire.path, wire.query, normalize_headers(wire.headers), auth.signed_headers, wire.body
    )


CASES: dict[str, Wire] = {
    "get-query-chinese-space-plus-slash": sdk_sign(
        "GET",
        "/v1/aim/templates",
        [
            ("tpl_name", "春节 活动+1/2~"),
            ("factory_type", "b"),
            ("factory_type", "a"),
            ("has_param", True),
            ("limit", 10),
            ("begin_time", "2025-01-01T00:00:00Z"),
            ("weird", "a=b&c=d;e,f?g#h%"),
            ("empty", ""),
        ],
    ),
    "get-no-query": sdk_sign("GET", "/v1/aim/callbacks"),
    "post-json-body": sdk_sign(
        "POST",
        "/v1/aim/mobile-capabilities/check",
        body=json.dumps({"mobiles": ["8613800000000"], "tpl_id": "模板-1"}),
    ),
    "post-json-body-unicode-raw": sdk_sign(
        "POST", "/v1/aim/templates", body=json.dumps({"tpl_name": "营销 模板"}, ensure_ascii=False)
    ),
    "post-empty-body": sdk_sign("POST", "/v1/aim-sa/pubs/p1/freeze", body=""),
    "delete-encoded-path-param": sdk_sign("DELETE", "/v1/aim/template/a%2Fb%20%E4%B8%AD"),
    "trailing-slash": sdk_sign("GET", "/v1/sms/apps/"),
    "project-id-and-non-ascii-header": sdk_sign(
        "PUT",
        "/v1/aim-sa/menus/m-1",
        headers={"X-Project-Id": "0123456789abcdef", "X-Custom-Note": "  中文 note  "},
        body=json.dumps({"menus": []}),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_canonical_request_matches_sdk_and_signature_verifies(name: str) -> None:
    wire = CASES[name]
    assert our_canonical(wire) == wire.sdk_canonical
    check(wire)


def test_query_encoding_of_special_characters() -> None:
    wire = CASES["get-query-chinese-space-plus-slash"]
    # The SDK puts its canonical query string on the wire, so the server sees exactly this.
    assert "tpl_name=%E6%98%A5%E8%8A%82%20%E6%B4%BB%E5%8A%A8%2B1%2F2~" in wire.query
    assert "has_param=true" in wire.query
    assert wire.query.index("factory_type=a") < wire.query.index("factory_type=b")
    assert canonical_query_string(wire.query) == wire.query


def test_query_in_another_order_and_with_unencoded_characters_still_verifies() -> None:
    wire = CASES["get-query-chinese-space-plus-slash"]
    reordered = "&".join(reversed(wire.query.split("&")))
    check(replace(wire, query=reordered))
    assert canonical_query_string("b=2&a=%7e&a=1&flag") == "a=1&a=~&b=2&flag="
    assert canonical_query_string("q=a+b") == "q=a%2Bb"  # '+' is a literal plus, as the SDK means it


def test_canonical_uri_rules() -> None:
    assert canonical_uri("/v1/aim/templates") == "/v1/aim/templates/"
    assert canonical_uri("/v1/sms/apps/") == "/v1/sms/apps/"
    assert canonical_uri("/v1/aim/template/a%2Fb%20%E4%B8%AD") == "/v1/aim/template/a/b%20%E4%B8%AD/"
    assert canonical_uri("/v1/aim/template/a b") == "/v1/aim/template/a%20b/"


def test_empty_body_uses_the_constant_hash() -> None:
    wire = CASES["post-empty-body"]
    assert wire.body == b""
    assert wire.sdk_canonical.endswith("\n" + EMPTY_BODY_SHA256)


def test_json_body_hash_is_in_canonical_request() -> None:
    wire = CASES["post-json-body"]
    assert wire.sdk_canonical.endswith("\n" + hashlib.sha256(wire.body).hexdigest())


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureMismatchError):
        check(CASES["post-json-body"], sk="another-secret")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda w: replace(w, body=w.body.replace(b"8613800000000", b"8613800000001")), id="body"),
        pytest.param(lambda w: replace(w, body=b""), id="body-removed"),
        pytest.param(lambda w: replace(w, method="PUT"), id="method"),
        pytest.param(lambda w: replace(w, path="/v1/aim/mobile-capabilities/check2"), id="path"),
        pytest.param(lambda w: replace(w, query="limit=1"), id="query-added"),
        pytest.param(lambda w: w.with_header("Host", "evil.example"), id="host-header"),
        pytest.param(lambda w: w.with_header("Content-Type", "text/plain"), id="content-type"),
        pytest.param(lambda w: w.with_header("X-Sdk-Date", "20250101T120001Z"), id="date"),
    ],
)
def test_tampered_request_is_rejected(tamper: Any) -> None:
    wire = CASES["post-json-body"]
    check(wire)
    with pytest.raises(SignatureMismatchError):
        check(tamper(wire))


def test_tampered_query_value_is_rejected() -> None:
    wire = CASES["get-query-chinese-space-plus-slash"]
    with pytest.raises(SignatureMismatchError):
        check(replace(wire, query=wire.query.replace("limit=10", "limit=100")))


def test_tampered_non_ascii_header_is_rejected() -> None:
    wire = CASES["project-id-and-non-ascii-header"]
    with pytest.raises(SignatureMismatchError):
        check(wire.with_header("X-Custom-Note", "中文 note!"))


def test_unsigned_sha256_header_added_by_attacker_is_ignored() -> None:
    wire = CASES["post-json-body"]
    tampered = replace(wire, body=b'{"mobiles": ["8613999999999"]}').with_header(
        "X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"
    )
    with pytest.raises(SignatureMismatchError):
        check(tampered)


def test_multipart_upload_is_signed_as_unsigned_payload() -> None:
    wire = sdk_sign(
        "POST",
        "/v1/aim/template-materials",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        body=b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n",
    )
    assert wire.header("X-Sdk-Content-Sha256") == "UNSIGNED-PAYLOAD"
    assert our_canonical(wire) == wire.sdk_canonical
    check(wire)
    with pytest.raises(SignatureMismatchError):
        check(wire, allow_unsigned_payload=False)


def test_declared_body_hash_must_match_the_body() -> None:
    body = json.dumps({"mobiles": ["8613800000000"]}).encode()
    wire = sdk_sign(
        "POST",
        "/v1/aim/mobile-capabilities/check",
        headers={"X-Sdk-Content-Sha256": hashlib.sha256(body).hexdigest()},
        body=body,
    )
    assert our_canonical(wire) == wire.sdk_canonical
    check(wire)
    with pytest.raises(SignatureMismatchError, match="X-Sdk-Content-Sha256"):
        check(replace(wire, body=body + b" "))


def test_decoded_mapping_headers_are_accepted() -> None:
    wire = CASES["project-id-and-non-ascii-header"]
    decoded = {k.decode("latin-1"): v.decode("utf-8") for k, v in wire.headers}
    verify(wire.method, wire.path, wire.query, decoded, wire.body, SK, now=NOW)


def test_missing_date_header() -> None:
    with pytest.raises(MissingDateError):
        check(CASES["get-no-query"].with_header("X-Sdk-Date", None))


@pytest.mark.parametrize("value", ["2025-01-01T12:00:00Z", "20250101T120000", "20251301T120000Z", "x"])
def test_invalid_date_header(value: str) -> None:
    with pytest.raises(InvalidDateError):
        check(CASES["get-no-query"].with_header("X-Sdk-Date", value))


@pytest.mark.parametrize("offset_minutes", [-20, 20, 16, -16])
def test_clock_skew_beyond_window_is_rejected(offset_minutes: int) -> None:
    signed_at = NOW + timedelta(minutes=offset_minutes)
    wire = sdk_sign("GET", "/v1/aim/callbacks", date=signed_at.strftime("%Y%m%dT%H%M%SZ"))
    with pytest.raises(ClockSkewError, match="15 minutes"):
        check(wire)


@pytest.mark.parametrize("offset_minutes", [-14, 14, 0])
def test_clock_skew_within_window_is_accepted(offset_minutes: int) -> None:
    signed_at = NOW + timedelta(minutes=offset_minutes)
    check(sdk_sign("GET", "/v1/aim/callbacks", date=signed_at.strftime("%Y%m%dT%H%M%SZ")))


def test_clock_skew_window_is_configurable() -> None:
    wire = sdk_sign("GET", "/v1/aim/callbacks", date=(NOW - timedelta(minutes=3)).strftime("%Y%m%dT%H%M%SZ"))
    check(wire, max_skew=timedelta(minutes=5))
    with pytest.raises(ClockSkewError, match="2 minutes"):
        check(wire, max_skew=timedelta(minutes=2))


def test_current_time_is_used_by_default() -> None:
    wire = sdk_sign("GET", "/v1/aim/callbacks", date=None)  # the SDK stamps the current UTC time
    verify(wire.method, wire.path, wire.query, wire.headers, wire.body, SK)
    with pytest.raises(ClockSkewError):
        check(wire)  # NOW is in 2025


def test_date_must_be_a_signed_header() -> None:
    wire = CASES["get-no-query"]
    auth = parse_authorization(wire.header("Authorization"))
    unsigned_date = AuthorizationHeader(auth.access_key, ("host",), auth.signature)
    with pytest.raises(MalformedAuthorizationError, match="x-sdk-date"):
        check(wire, authorization=unsigned_date)


def test_signed_header_absent_from_request() -> None:
    with pytest.raises(MalformedAuthorizationError, match="user-agent"):
        check(CASES["get-no-query"].with_header("User-Agent", None))


def test_repeated_authorization_header_is_malformed() -> None:
    wire = CASES["get-no-query"]
    doubled = replace(wire, headers=[*wire.headers, (b"authorization", wire.header("Authorization").encode())])
    with pytest.raises(MalformedAuthorizationError):
        check(doubled)


def test_parse_authorization_from_sdk_header() -> None:
    wire = CASES["project-id-and-non-ascii-header"]
    access_key, signed_headers, signature = parse_authorization(wire.header("Authorization"))
    assert access_key == AK
    assert signed_headers == (
        "content-type",
        "host",
        "user-agent",
        "x-custom-note",
        "x-project-id",
        "x-sdk-date",
    )
    assert len(signature) == 64


GOOD_SIGNATURE = "0" * 64


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "Bearer abc",
        f"SDK-HMAC-SM3 Access=AK, SignedHeaders=host;x-sdk-date, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={GOOD_SIGNATURE[:-1]}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={GOOD_SIGNATURE.upper()}Z",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=" + "g" * 64,
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date",
        f"SDK-HMAC-SHA256 Access=, SignedHeaders=host;x-sdk-date, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 SignedHeaders=host;x-sdk-date, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=Host;X-Sdk-Date, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;;x-sdk-date, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;host, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, Access=BK, SignedHeaders=host, Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature={GOOD_SIGNATURE}, Nonce=1",
        f"SDK-HMAC-SHA256 Access=AK SignedHeaders=host Signature={GOOD_SIGNATURE}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders={'h;' * 5000}x, Signature={GOOD_SIGNATURE}",
    ],
)
def test_parse_authorization_rejects_malformed_headers(header: str | None) -> None:
    with pytest.raises(MalformedAuthorizationError):
        parse_authorization(header)


def test_parse_authorization_tolerates_spacing_and_field_order() -> None:
    parsed = parse_authorization(
        f"  SDK-HMAC-SHA256 Signature={GOOD_SIGNATURE} ,SignedHeaders=host;x-sdk-date,   Access=AK-1  "
    )
    assert parsed == AuthorizationHeader("AK-1", ("host", "x-sdk-date"), GOOD_SIGNATURE)
