"""AIM template-status callbacks (url_type 1) on the real embedded Kafka and MongoDB: ``AimTemplateStatus`` on
AIM_TEMPLATE_STATUS -> exactly one POST of KooMessage's template-status body to a local HTTP server (the fixtures of
``test_receipts_service``)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest
from standardwebhooks import Webhook

from magpie.v1 import common_pb2, template_status_pb2
from magpie_common.kafka import EventProducer
from magpie_common.topics import AIM_TEMPLATE_STATUS
from magpie_dispatcher.receipts import tenant_signing_secret

from . import test_receipts_service as service
from .test_receipts_service import TEST_CONFIG, Customer, Start, outbox_items, register, wait_states

# The receipt service's fixtures: its customer endpoint, the receipts role starter and a producer.
customer = service.customer
start = service.start
producer = service.producer

pytestmark = pytest.mark.integration

TPL_ID = "600000001"


def status(
    tenant: str,
    event_id: str,
    *,
    tpl_id: str = TPL_ID,
    tpl_state: int = 1,
    audit_state: int = 2,
    audit_desc: str = "审核通过",
    vendors: tuple[tuple[str, int], ...] = (("HUAWEI", 1), ("XIAOMI", 2), ("MEIZU", 0), ("HONOR", 1)),
) -> template_status_pb2.AimTemplateStatus:
    event = template_status_pb2.AimTemplateStatus(
        meta=common_pb2.EventMeta(event_id=event_id, tenant_id=tenant, producer="gateway"),
        tpl_id=tpl_id,
        revision=1,
        tpl_state=tpl_state,
        audit_state=audit_state,
        audit_desc=audit_desc,
        change="review",
    )
    for vendor, state in vendors:
        event.factory_info.add(factory_type=vendor, state=state, reason="" if state == 1 else "not approved")
    return event


async def test_one_post_of_the_documented_body_per_change(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    master = "whsec_" + "c2VjcmV0LW9mLXRoZS1kZXBsb3ltZW50LTMyYnl0ZXM="
    receipts = await start(replace(TEST_CONFIG, signing_secret=master))
    await register(producer, receipts, "tenant-t", customer.url("/status"), url_type=1)
    await register(producer, receipts, "tenant-t", customer.url("/single"), url_type=0)
    await register(producer, receipts, "tenant-none", customer.url("/none-single"), url_type=0)

    # Same key (tpl_id), so in order: a tenant without a url_type 1 URL, the change, and the same change again.
    await producer.send(AIM_TEMPLATE_STATUS, TPL_ID, status("tenant-none", "ev-none"))
    await producer.send(AIM_TEMPLATE_STATUS, TPL_ID, status("tenant-t", "ev-approved"))
    await producer.send(AIM_TEMPLATE_STATUS, TPL_ID, status("tenant-t", "ev-approved"))
    (first,) = await customer.wait("/status", 1)
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(first.body) == {
        "tpl_id": TPL_ID,
        "tpl_state": 1,
        "audit_state": 2,
        "audit_desc": "审核通过",
        "factory_info": [
            {"factory_type": "HuaWei", "state": 1},
            {"factory_type": "XiaoMi", "state": 2},
            {"factory_type": "MEIZU", "state": 0},
            {"factory_type": "HONOR", "state": 1},
        ],
    }
    verified = Webhook(tenant_signing_secret(master, "tenant-t")).verify(first.body, first.headers)
    assert verified["tpl_id"] == TPL_ID

    # A later change (the tenant disabled it; no review opinion): a second POST, audit_desc left out.
    await producer.send(
        AIM_TEMPLATE_STATUS, TPL_ID, status("tenant-t", "ev-disabled", tpl_state=0, audit_desc="", vendors=())
    )
    hits = await customer.wait("/status", 2)
    assert json.loads(hits[1].body) == {"tpl_id": TPL_ID, "tpl_state": 0, "audit_state": 2, "factory_info": []}
    assert hits[0].headers["webhook-id"] != hits[1].headers["webhook-id"]
    await wait_states(receipts, "tenant-t", "done", 2)
    await asyncio.sleep(0.5)
    # Exactly one POST per change; receipt URLs (url_type 0) and tenants without a url_type 1 URL get nothing.
    assert [h.path for h in customer.hits] == ["/status", "/status"]
    items = await outbox_items(receipts, "tenant-t")
    assert [(i["callback_type"], i["url_type"], i["source_event_id"]) for i in items] == [
        ("template_status", 1, "ev-approved"),
        ("template_status", 1, "ev-disabled"),
    ]
    assert await outbox_items(receipts, "tenant-none") == []


async def test_a_failing_endpoint_gets_the_same_body_again(
    start: Start, producer: EventProducer, customer: Customer
) -> None:
    receipts = await start()
    await register(producer, receipts, "tenant-f", customer.url("/flaky"), url_type=1)
    customer.fail_first["/flaky"] = 2
    started = time.monotonic()
    await producer.send(AIM_TEMPLATE_STATUS, "600000002", status("tenant-f", "ev-flaky", tpl_id="600000002"))
    hits = await customer.wait("/flaky", 3)
    await wait_states(receipts, "tenant-f", "done", 1)
    assert len({h.body for h in hits}) == 1
    assert json.loads(hits[0].body)["tpl_id"] == "600000002"
    assert hits[2].at - started >= 0.59  # retried after 200 ms, then 400 ms
    (item,) = await outbox_items(receipts, "tenant-f")
    assert (item["state"], item["attempts"], item["last_error"]) == ("done", 2, "HTTP 500")
