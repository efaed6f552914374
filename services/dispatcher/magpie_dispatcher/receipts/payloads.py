"""What the customer receives: receipt objects and the POST envelope (KooMessage's callback format).

Envelope (one POST)::

    {"request_id": "<uuid>", "domain_id": "<tenant id>", "callback_type": "sms" | "shortchain",
     "body": "<JSON string>", "retry": <attempts before this one, 0 first>}

``body`` is a JSON *string*: one receipt object for a single-mode URL (url_type 0), an array of receipt objects
for a batch-mode URL (url_type 2).

sms receipt object (one per final delivery status)::

    {"task_id", "msg_id", "cust_flag" (mobile), "tpl_id", "sms_sign", "status", "result_code",
     "send_time", "receive_time", "segments", "aim_url"}

``status`` is ``DELIVRD`` for DELIVERED, ``TIMEOUT`` for TIMEOUT (no carrier receipt within the receipt window)
and the carrier's result code for FAILED (``UNDELIV``, ``EXPIRED``, ``REJECTD`` or an SMPP command status;
``UNDELIV`` when the event carries none). ``result_code`` is the event's result code (``status`` when empty).

shortchain receipt object (one per successful, i.e. first and billable, resolution of a link)::

    {"task_id", "aim_code" (the short code), "cust_flag" (mobile), "tpl_id", "resolve_time", "aim_url"}

Times are ISO 8601 UTC with second precision (``2024-05-01T08:30:00Z``), ``null`` when unknown.

AIM template status (url_type 1, callback type ``template_status``) is POSTed as KooMessage's template-status body
itself, one per change, without the envelope: ``{"tpl_id", "tpl_state", "audit_state", "audit_desc",
"factory_info": [{"factory_type", "state"}]}`` (``magpie_dispatcher.receipts.template_status``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from magpie.v1 import dispatch_pb2, link_pb2
from magpie_dispatcher.vms.payloads import VMS_CALLBACK_TYPES, vms_envelope

SMS = "sms"
SHORTCHAIN = "shortchain"
TEMPLATE_STATUS = "template_status"  # AIM template status (url_type 1): the body alone, no envelope

URL_TYPE_SINGLE = 0
URL_TYPE_TEMPLATE_STATUS = 1
URL_TYPE_BATCH = 2
RECEIPT_URL_TYPES = (URL_TYPE_SINGLE, URL_TYPE_BATCH)

FINAL_STATUSES = frozenset(
    {
        dispatch_pb2.DELIVERY_STATUS_DELIVERED,
        dispatch_pb2.DELIVERY_STATUS_FAILED,
        dispatch_pb2.DELIVERY_STATUS_TIMEOUT,
    }
)


def iso_from_ms(ms: int) -> str | None:
    if ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sms_status(event: dispatch_pb2.DeliveryEvent) -> str:
    if event.status == dispatch_pb2.DELIVERY_STATUS_DELIVERED:
        return "DELIVRD"
    if event.status == dispatch_pb2.DELIVERY_STATUS_TIMEOUT:
        return "TIMEOUT"
    return event.result_code or "UNDELIV"


def sms_receipt(event: dispatch_pb2.DeliveryEvent) -> dict[str, Any]:
    """The sms receipt object of a final delivery event."""
    status = sms_status(event)
    return {
        "task_id": event.task_id,
        "msg_id": event.msg_id,
        "cust_flag": event.mobile,
        "tpl_id": event.tpl_id,
        "sms_sign": event.sms_sign,
        "status": status,
        "result_code": event.result_code or status,
        "send_time": iso_from_ms(event.submitted_at_ms),
        "receive_time": iso_from_ms(event.done_at_ms),
        "segments": event.segments,
        "aim_url": event.aim_url,
    }


def shortchain_receipt(event: link_pb2.LinkEvent) -> dict[str, Any]:
    """The shortchain receipt object of a successful resolution."""
    return {
        "task_id": event.task_id,
        "aim_code": event.code,
        "cust_flag": event.mobile,
        "tpl_id": event.tpl_id,
        "resolve_time": iso_from_ms(event.at_ms or event.meta.occurred_at_ms),
        "aim_url": event.aim_url,
    }


def request_id_of(hex_id: str) -> str:
    """A UUID string of a 32-hex-digit id (stable ids and batch ids are such), so retries keep their request_id."""
    return str(uuid.UUID(hex=hex_id))


def envelope(
    *, request_id: str, tenant_id: str, callback_type: str, receipts: list[dict[str, Any]], batch: bool, retry: int
) -> bytes:
    """The exact bytes POSTed (and signed): compact UTF-8 JSON. VMS callbacks have their own formats
    (``magpie_dispatcher.vms.payloads``)."""
    if callback_type in VMS_CALLBACK_TYPES:
        return vms_envelope(request_id=request_id, callback_type=callback_type, receipts=receipts)
    if callback_type == TEMPLATE_STATUS:
        return orjson.dumps(receipts[0])
    inner = receipts if batch else receipts[0]
    return orjson.dumps(
        {
            "request_id": request_id,
            "domain_id": tenant_id,
            "callback_type": callback_type,
            "body": orjson.dumps(inner).decode(),
            "retry": retry,
        }
    )
