"""Pure logic of the receipt sender: wire format, routing, retry schedule, signing, destination checks."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from magpie.v1 import common_pb2, dispatch_pb2, link_pb2
from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.destination import AddressGuard, DestinationRefused, check_scheme
from magpie_dispatcher.receipts.endpoints import BREAKER_THRESHOLD, Endpoints
from magpie_dispatcher.receipts.payloads import (
    envelope,
    request_id_of,
    shortchain_receipt,
    sms_receipt,
)
from magpie_dispatcher.receipts.producers import batch_window_end
from magpie_dispatcher.receipts.registry import Callback, route
from magpie_dispatcher.receipts.signing import ReceiptSigner, tenant_signing_secret
from magpie_dispatcher.receipts.sweep import EPOCH, MARGIN, RESCAN_LOOKBACK, MainSweep, SliceCursor

MASTER = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def delivery(status: int, result_code: str = "") -> dispatch_pb2.DeliveryEvent:
    return dispatch_pb2.DeliveryEvent(
        event_id="ev-1",
        tenant_id="tenant-a",
        task_id="task-1",
        mobile="13800138000",
        msg_id="MSG1",
        status=status,  # type: ignore[arg-type]
        result_code=result_code,
        segments=2,
        submitted_at_ms=1714552200000,
        done_at_ms=1714552203500,
        tpl_id="100000001",
        sms_sign="Magpie",
        aim_url="https://aim.example/promo",
    )


def test_sms_receipt_fields_and_statuses() -> None:
    delivered = sms_receipt(delivery(dispatch_pb2.DELIVERY_STATUS_DELIVERED, "DELIVRD"))
    assert delivered == {
        "task_id": "task-1",
        "msg_id": "MSG1",
        "cust_flag": "13800138000",
        "tpl_id": "100000001",
        "sms_sign": "Magpie",
        "status": "DELIVRD",
        "result_code": "DELIVRD",
        "send_time": "2024-05-01T08:30:00Z",
        "receive_time": "2024-05-01T08:30:03Z",
        "segments": 2,
        "aim_url": "https://aim.example/promo",
    }
    assert sms_receipt(delivery(dispatch_pb2.DELIVERY_STATUS_FAILED, "EXPIRED"))["status"] == "EXPIRED"
    failed_plain = sms_receipt(delivery(dispatch_pb2.DELIVERY_STATUS_FAILED))
    assert (failed_plain["status"], failed_plain["result_code"]) == ("UNDELIV", "UNDELIV")
    timeout = sms_receipt(delivery(dispatch_pb2.DELIVERY_STATUS_TIMEOUT))
    assert (timeout["status"], timeout["result_code"]) == ("TIMEOUT", "TIMEOUT")
    unknown_times = dispatch_pb2.DeliveryEvent(status=dispatch_pb2.DELIVERY_STATUS_TIMEOUT)
    assert sms_receipt(unknown_times)["send_time"] is None


def test_shortchain_receipt_fields() -> None:
    event = link_pb2.LinkEvent(
        meta=common_pb2.EventMeta(event_id="l1", tenant_id="tenant-a", occurred_at_ms=1714552260000),
        type=link_pb2.LINK_EVENT_TYPE_RESOLVED,
        code="Ab3dE9",
        task_id="task-1",
        mobile="13800138000",
        tpl_id="100000001",
        at_ms=1714552259000,
        billable=True,
        aim_url="https://aim.example/promo",
    )
    assert shortchain_receipt(event) == {
        "task_id": "task-1",
        "aim_code": "Ab3dE9",
        "cust_flag": "13800138000",
        "tpl_id": "100000001",
        "resolve_time": "2024-05-01T08:30:59Z",
        "aim_url": "https://aim.example/promo",
    }


def test_envelope_body_is_a_json_string() -> None:
    receipts = [{"msg_id": "M1", "note": "送达"}, {"msg_id": "M2"}]
    single = json.loads(
        envelope(request_id="r", tenant_id="t", callback_type="sms", receipts=receipts[:1], batch=False, retry=2)
    )
    assert single == {
        "request_id": "r",
        "domain_id": "t",
        "callback_type": "sms",
        "body": '{"msg_id":"M1","note":"送达"}',
        "retry": 2,
    }
    batch = json.loads(
        envelope(request_id="r", tenant_id="t", callback_type="sms", receipts=receipts, batch=True, retry=0)
    )
    assert isinstance(batch["body"], str)
    assert json.loads(batch["body"]) == receipts


def test_request_id_is_a_stable_uuid() -> None:
    hex_id = uuid.uuid4().hex
    assert request_id_of(hex_id) == str(uuid.UUID(hex_id)) == request_id_of(hex_id)


def test_routing_by_aim_url_with_default_fallback() -> None:
    default = Callback("t", 0, "https://c.example/default", "", "CB1")
    promo = Callback("t", 2, "https://c.example/promo", "https://aim.example/promo", "CB2")
    template = Callback("t", 1, "https://c.example/templates", "", "CB3")
    callbacks = [default, promo, template]
    assert route(callbacks, "https://aim.example/promo") == [promo]
    assert route(callbacks, "https://aim.example/other") == [default]
    assert route(callbacks, "") == [default]
    assert route([template], "") == []
    assert route([], "https://aim.example/promo") == []


def test_retry_delays_double_and_cap() -> None:
    config = ReceiptsConfig(retry_base_ms=1000, retry_max_ms=600_000)
    assert [config.retry_delay_s(n) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert config.retry_delay_s(10) == 512
    assert config.retry_delay_s(11) == 600
    assert config.retry_delay_s(200) == 600
    with pytest.raises(ValueError):
        ReceiptsConfig(max_batch=0)


def test_signature_verifies_with_the_tenant_secret_only() -> None:
    signer = ReceiptSigner(MASTER)
    body = envelope(request_id="r1", tenant_id="tenant-a", callback_type="sms", receipts=[{}], batch=False, retry=0)
    headers = signer.headers("tenant-a", "r1", body)
    assert headers["webhook-id"] == "r1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(tenant_signing_secret(MASTER, "tenant-a")).verify(body, headers)["request_id"] == "r1"
    for wrong in (MASTER, tenant_signing_secret(MASTER, "tenant-b")):
        with pytest.raises(WebhookVerificationError):
            Webhook(wrong).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(tenant_signing_secret(MASTER, "tenant-a")).verify(body + b" ", headers)
    with pytest.raises(ValueError):
        ReceiptSigner("whsec_!!notbase64!!")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "::1",
        "10.1.2.3",
        "192.168.1.1",
        "172.16.0.9",
        "169.254.169.254",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "fd00::1",
        "224.0.0.1",
        "100.64.0.1",
    ],
)
def test_non_public_destinations_are_refused(host: str) -> None:
    guard = AddressGuard(allow_loopback=False)
    with pytest.raises(DestinationRefused):
        asyncio.run(guard.addresses(host, 80))


def test_loopback_allowed_only_when_enabled_and_public_addresses_pass() -> None:
    guard = AddressGuard(allow_loopback=True)
    assert asyncio.run(guard.addresses("127.0.0.1", 80)) == ["127.0.0.1"]
    assert asyncio.run(guard.addresses("localhost", 80)) == ["127.0.0.1"]
    with pytest.raises(DestinationRefused):
        asyncio.run(guard.addresses("10.0.0.1", 80))
    assert asyncio.run(AddressGuard(allow_loopback=False).addresses("8.8.8.8", 443)) == ["8.8.8.8"]
    assert asyncio.run(AddressGuard(allow_loopback=False).addresses("[2001:4860:4860::8888]", 443)) == [
        "2001:4860:4860::8888"
    ]


@pytest.mark.parametrize(
    "url",
    ["ftp://c.example/x", "file:///etc/passwd", "c.example/x", "http://", "http://u:p@c.example/", "http://c:99999/"],
)
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_scheme(url)
    check_scheme("https://c.example:8443/cb?x=1")
    check_scheme("http://c.example/cb")


def test_batch_windows_are_tumbling_with_a_phase_per_url() -> None:
    base = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    url = "https://c.example/batch"
    ends = {batch_window_end(base + timedelta(milliseconds=ms), url, 1000) for ms in range(0, 3000, 50)}
    assert len(ends) in (3, 4)  # 3 s of arrivals fall into 3 (or 4, by phase) one-second windows
    for ms in range(0, 3000, 50):
        at = base + timedelta(milliseconds=ms)
        end = batch_window_end(at, url, 1000)
        assert timedelta(0) < end - at <= timedelta(seconds=1)
    assert len({int(e.timestamp() * 1000) % 1000 for e in ends}) == 1  # one phase per URL
    assert batch_window_end(base, "https://d.example/batch", 1000) != batch_window_end(base, url, 1000)
    assert batch_window_end(base, url, 0) == base  # no window: due at once


def test_slice_cursor_adapts_to_density() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    cursor = SliceCursor(start, timedelta(seconds=1))
    lo, hi = cursor.next_range(start + timedelta(hours=1)) or (start, start)
    assert (lo, hi) == (start, start + timedelta(seconds=1))
    cursor.advance(lo, hi, read=0, limit=500, last=None)  # sparse: move on, widen
    assert (cursor.cursor, cursor.slice) == (hi, timedelta(seconds=4))
    lo, hi = cursor.next_range(start + timedelta(hours=1)) or (start, start)
    last = lo + timedelta(seconds=2)
    cursor.advance(lo, hi, read=500, limit=500, last=last)  # full: resume at the last one read, narrow
    assert (cursor.cursor, cursor.slice) == (last, timedelta(seconds=2))
    cursor.back_to(start)
    assert cursor.cursor == start
    assert cursor.next_range(start) is None  # nothing before `upto`


def test_main_sweep_stays_behind_the_present_and_looks_back(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = MainSweep()
    now = datetime.now(UTC)
    assert sweep.range_for(now) == (EPOCH, EPOCH + timedelta(seconds=1))
    sweep.cursor = now - MARGIN
    assert sweep.range_for(now) is None
    monkeypatch.setattr("magpie_dispatcher.receipts.sweep.RESCAN_EVERY_S", 0.0)
    bounds = sweep.range_for(now)
    assert bounds is not None and bounds[0] == now - MARGIN - RESCAN_LOOKBACK


def test_circuit_breaker_opens_after_consecutive_failures_and_closes_on_success() -> None:
    async def scenario() -> None:
        endpoints = Endpoints(concurrency=4, breaker_base_s=1.0)
        endpoint = endpoints.get("https://c.example/cb")
        assert endpoints.unit_cap(endpoint, batch=False) == 128
        assert endpoints.unit_cap(endpoint, batch=True) == 8
        for _ in range(BREAKER_THRESHOLD - 1):
            endpoints.failed(endpoint, "HTTP 500", now=100.0, elapsed_s=0.01)
        assert not endpoint.circuit_open(100.0)
        assert endpoint.limiter.current == 2  # halved once: the failures of one round trip count once
        assert endpoints.unit_cap(endpoint, batch=False) == 4  # failing: short quota (2 x the limit)
        endpoints.failed(endpoint, "HTTP 500", now=100.0)
        assert endpoint.circuit_open(100.5) and not endpoint.circuit_open(101.0)
        endpoints.failed(endpoint, "HTTP 500", now=101.0)
        assert endpoint.circuit_open(102.9) and not endpoint.circuit_open(103.0)  # open twice as long
        endpoints.succeeded(endpoint, elapsed_s=0.01, now=103.0)
        assert not endpoint.circuit_open(101.5)
        healthy_quota = int(endpoint.limiter.current / endpoint.limiter.smoothed_rtt * endpoints.drain_s)
        assert (endpoint.failures, endpoints.unit_cap(endpoint, batch=False)) == (0, healthy_quota)

    asyncio.run(scenario())
