"""Unit tests of the link record (MongoDB / Redis forms, landing URL), the HTML pages and the resolve body."""

from __future__ import annotations

import pytest

from magpie.v1 import common_pb2
from magpie_shortlink.edge import EdgeError, card_json, parse_resolve_body
from magpie_shortlink.links import LinkRecord, normalise_domain, route_name, route_value
from magpie_shortlink.pages import card_page, error_page


def record(**changes: object) -> LinkRecord:
    values: dict[str, object] = {
        "code": "Ab3dE5gH9k",
        "tenant_id": "tenant-1",
        "task_id": "task-1",
        "batch_no": 2,
        "index": 7,
        "mobile": "13800138000",
        "msisdn": "8613800138000",
        "tpl_id": "100000001",
        "tpl_name": "Spring",
        "params": {"2": "b", "10": "j", "1": "a", "$odd.key": "x"},
        "route": common_pb2.ROUTE_SMART,
        "carrier": "CMCC",
        "custom_url": "",
        "link_domain": "https://mgp.example/",
        "aim_url": "https://customer.example/aim",
        "created_at_ms": 1_700_000_000_000,
        "expires_at_ms": 1_700_000_600_123,
    }
    values.update(changes)
    return LinkRecord(**values)  # type: ignore[arg-type]


def test_document_and_cache_round_trips() -> None:
    link = record()
    doc = link.to_document()
    assert doc["_id"] == link.code
    assert doc["route"] == "SMART"
    assert {"k": "$odd.key", "v": "x"} in doc["params"]  # pairs: customer keys never become field names
    assert doc["short_url"] == "https://mgp.example/Ab3dE5gH9k"
    assert doc["target_url"] == "https://mgp.example/h5/Ab3dE5gH9k"
    assert LinkRecord.from_document(doc) == link
    assert LinkRecord.from_cache(link.code, link.to_cache()) == link
    assert b" " not in link.to_cache().replace(b"Spring", b"")


def test_target_url() -> None:
    assert record(custom_url="https://shop.example/x?a=1").target_url == "https://shop.example/x?a=1"
    assert record(custom_url="javascript:alert(1)").target_url == "https://mgp.example/h5/Ab3dE5gH9k"
    assert record(link_domain="").target_url == "/h5/Ab3dE5gH9k"
    assert record(link_domain="").short_url == "Ab3dE5gH9k"
    assert normalise_domain("https://mgp.example") == "https://mgp.example/"
    assert normalise_domain("https://mgp.example//") == "https://mgp.example/"
    assert normalise_domain("") == ""


def test_route_names() -> None:
    assert route_name(common_pb2.ROUTE_DEGRADED) == "DEGRADED"
    assert route_value("DEGRADED") == common_pb2.ROUTE_DEGRADED
    assert route_name(99) == "99"


def test_expiry() -> None:
    link = record()
    assert not link.expired(link.expires_at_ms - 1)
    assert link.expired(link.expires_at_ms)
    assert card_json(link)["expires_at"] == "2023-11-14T22:23:20.123Z"


def test_card_page_escapes_everything() -> None:
    page = card_page(record(tpl_name="<b>Promo</b>", params={"<k>": "<script>alert('x')</script>", "amount": 'a&b"c'}))
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;k&gt;" in page
    assert "a&amp;b&quot;c" in page
    assert "<title>&lt;b&gt;Promo&lt;/b&gt;</title>" in page


def test_card_page_lists_params_in_natural_order() -> None:
    page = card_page(record(params={"10": "ten", "2": "two", "1": "one"}))
    assert page.index("<dd>one</dd>") < page.index("<dd>two</dd>") < page.index("<dd>ten</dd>")


def test_error_page_escapes() -> None:
    assert "&lt;x&gt;" in error_page(404, "<x>")


def test_parse_resolve_body() -> None:
    assert parse_resolve_body(b'{"code": "abc"}') == ("abc", {})
    assert parse_resolve_body(b'{"code": "abc", "handset": {"brand": "HUAWEI", "model": "P60", "x": 1}}') == (
        "abc",
        {"brand": "HUAWEI", "model": "P60"},
    )


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"abc"',
        b"{}",
        b'{"code": 12}',
        b'{"code": ""}',
        b'{"code": "abc", "handset": "HUAWEI"}',
        b'{"code": "abc", "handset": {"brand": 1}}',
        b'{"code": "' + b"a" * 20000 + b'"}',
    ],
)
def test_parse_resolve_body_rejects(body: bytes) -> None:
    with pytest.raises(EdgeError) as info:
        parse_resolve_body(body)
    assert info.value.status == 400
    assert info.value.error_code == "KM.00000400"
