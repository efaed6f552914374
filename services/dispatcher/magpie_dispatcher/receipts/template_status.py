"""AIM template-status callbacks: ``AimTemplateStatus`` (AIM_TEMPLATE_STATUS, from the gateway) -> one POST of
KooMessage's template-status body to the tenant's url_type 1 URL (``POST /v1/aim/callbacks``), through the receipt
outbox and sender (retries, signatures, SSRF guard and deduplication as for sms / shortchain receipts).

Body (KooMessage "定义模板状态回执", ``POST /v1/aim/template-status`` on the customer's side), the JSON object itself,
without the sms / shortchain envelope::

    {"tpl_id": "600000001", "tpl_state": 1, "audit_state": 2, "audit_desc": "审核通过",
     "factory_info": [{"factory_type": "HuaWei", "state": 1}, {"factory_type": "XiaoMi", "state": 2}]}

- ``tpl_state``: 0 disabled, 1 enabled; ``audit_state``: 2 approved, 3 rejected;
- ``audit_desc``: the reviewer's opinion, left out when there is none (it is optional in KooMessage's definition);
- ``factory_info[].state``: 0 disabled, 1 enabled, 2 not enabled; ``factory_type`` spelled as KooMessage's
  template-status callback spells it (``HuaWei``, ``XiaoMi``, ``OPPO``, ``VIVO``, ``MEIZU``, ``SAMSUNG``);
  Magpie's additional vendor Honor is ``HONOR``.

Routing: the tenant's url_type 1 registration (the gateway keeps one per tenant; ``aim_url`` plays no part for
template status: should the registry hold several, the default one, with an empty ``aim_url``, is used). A tenant
without one gets nothing. Outbox item id = ``stable_id("receipt",
"template_status", meta.event_id, 1)``: an event redelivered or produced again (same event id) is posted once.
One POST per change (single mode), ``webhook-id`` = the item's request id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from magpie.v1 import template_status_pb2
from magpie_common.kafka import Decoded
from magpie_dispatcher.receipts.outbox import new_item, utcnow
from magpie_dispatcher.receipts.payloads import TEMPLATE_STATUS, URL_TYPE_TEMPLATE_STATUS
from magpie_dispatcher.receipts.producers import ReceiptProducer, receipt_item_id
from magpie_dispatcher.receipts.registry import Callback

log = logging.getLogger(__name__)

# Magpie's vendor names -> the factory_type values of KooMessage's template-status callback.
FACTORY_TYPES = {
    "HUAWEI": "HuaWei",
    "XIAOMI": "XiaoMi",
    "OPPO": "OPPO",
    "VIVO": "VIVO",
    "MEIZU": "MEIZU",
    "SAMSUNG": "SAMSUNG",
    "HONOR": "HONOR",
}


def factory_type(vendor: str) -> str:
    name = vendor.strip().upper()
    return FACTORY_TYPES.get(name, name)


def template_status_body(event: template_status_pb2.AimTemplateStatus) -> dict[str, Any]:
    """KooMessage's template-status callback body of one status event."""
    body: dict[str, Any] = {
        "tpl_id": event.tpl_id,
        "tpl_state": event.tpl_state,
        "audit_state": event.audit_state,
    }
    if event.audit_desc:
        body["audit_desc"] = event.audit_desc
    body["factory_info"] = [
        {"factory_type": factory_type(vendor.factory_type), "state": vendor.state} for vendor in event.factory_info
    ]
    return body


def template_status_callback(callbacks: Sequence[Callback]) -> Callback | None:
    """The tenant's url_type 1 registration: the default one (empty ``aim_url``), else the first; None if none."""
    registered = sorted(
        (c for c in callbacks if c.url_type == URL_TYPE_TEMPLATE_STATUS), key=lambda c: (c.aim_url != "", c.aim_url)
    )
    return registered[0] if registered else None


class TemplateStatusProducer:
    """Kafka handler of AIM_TEMPLATE_STATUS (consumer group ``receipts-template-status``)."""

    def __init__(self, receipts: ReceiptProducer) -> None:
        self.receipts = receipts

    async def handle(self, batch: Sequence[Decoded[template_status_pb2.AimTemplateStatus]]) -> None:
        events = []
        for item in batch:
            event = item.message
            if not event.meta.tenant_id or not event.meta.event_id or not event.tpl_id:
                log.warning(
                    "template status without tenant, event id or tpl_id ignored",
                    extra={"event_id": event.meta.event_id, "tpl_id": event.tpl_id},
                )
                continue
            events.append(event)
        if not events:
            return
        callbacks = await self.receipts.registry.lookup(e.meta.tenant_id for e in events)
        now = utcnow()
        items: list[dict[str, Any]] = []
        for event in events:
            tenant = event.meta.tenant_id
            callback = template_status_callback(callbacks.get(tenant, []))
            if callback is None:
                continue
            items.append(
                new_item(
                    item_id=receipt_item_id(TEMPLATE_STATUS, event.meta.event_id, callback.url_type),
                    tenant_id=tenant,
                    callback_type=TEMPLATE_STATUS,
                    url=callback.url,
                    url_type=callback.url_type,
                    aim_url="",
                    source_event_id=event.meta.event_id,
                    receipt=template_status_body(event),
                    now=now,
                    due_at=now,
                )
            )
        await self.receipts.store(items)
