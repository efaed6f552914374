"""AIM template-status callback body, routing and wire bytes (no infrastructure)."""

from __future__ import annotations

import orjson

from magpie.v1 import common_pb2, template_status_pb2
from magpie_dispatcher.receipts.payloads import TEMPLATE_STATUS, envelope
from magpie_dispatcher.receipts.registry import Callback
from magpie_dispatcher.receipts.template_status import (
    factory_type,
    template_status_body,
    template_status_callback,
)


def test_body_has_exactly_the_documented_fields_and_vendor_spellings() -> None:
    event = template_status_pb2.AimTemplateStatus(
        meta=common_pb2.EventMeta(event_id="e1", tenant_id="t1"),
        tpl_id="600000001",
        revision=3,
        tpl_state=1,
        audit_state=2,
        audit_desc="审核通过",
        change="review",
    )
    for vendor, state in (("HUAWEI", 1), ("XIAOMI", 2), ("OPPO", 2), ("VIVO", 1), ("MEIZU", 0), ("SAMSUNG", 1)):
        event.factory_info.add(factory_type=vendor, state=state, reason="internal")
    body = template_status_body(event)
    assert body == {
        "tpl_id": "600000001",
        "tpl_state": 1,
        "audit_state": 2,
        "audit_desc": "审核通过",
        "factory_info": [
            {"factory_type": "HuaWei", "state": 1},
            {"factory_type": "XiaoMi", "state": 2},
            {"factory_type": "OPPO", "state": 2},
            {"factory_type": "VIVO", "state": 1},
            {"factory_type": "MEIZU", "state": 0},
            {"factory_type": "SAMSUNG", "state": 1},
        ],
    }
    # Rejected, no opinion: audit_desc (optional) is left out, zero values are kept.
    rejected = template_status_pb2.AimTemplateStatus(tpl_id="600000002", tpl_state=0, audit_state=3)
    assert template_status_body(rejected) == {
        "tpl_id": "600000002",
        "tpl_state": 0,
        "audit_state": 3,
        "factory_info": [],
    }


def test_vendor_names() -> None:
    assert [factory_type(v) for v in ("HUAWEI", "huawei", " XiaoMi ", "HONOR", "NEWVENDOR")] == [
        "HuaWei",
        "HuaWei",
        "XiaoMi",
        "HONOR",
        "NEWVENDOR",
    ]


def test_posted_bytes_are_the_body_itself() -> None:
    body = {"tpl_id": "600000001", "tpl_state": 1, "audit_state": 2, "factory_info": []}
    raw = envelope(request_id="r", tenant_id="t", callback_type=TEMPLATE_STATUS, receipts=[body], batch=False, retry=3)
    assert orjson.loads(raw) == body


def test_only_the_url_type_1_registration_is_used() -> None:
    receipts = Callback("t", 0, "https://a.example/single", "", "CB0")
    batch = Callback("t", 2, "https://a.example/batch", "", "CB2")
    assert template_status_callback([receipts, batch]) is None
    assert template_status_callback([]) is None
    special = Callback("t", 1, "https://a.example/special", "https://aim.example/x", "CB1x")
    default = Callback("t", 1, "https://a.example/status", "", "CB1")
    assert template_status_callback([receipts, special, default, batch]) == default
    assert template_status_callback([special]) == special
