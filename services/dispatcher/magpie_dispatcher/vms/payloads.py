"""What VMS customers receive on their callback URLs (KooMessage's VMS callback formats, product spec §5).

Send status (url_type 0), one POST per batch of reports (the receipt sender's batch mode)::

    {"seq_id": "<uuid>", "reports": [{"task_id", "mobile", "status", "code", "desc", "stime", "rtime",
                                      "msg_id", "tpl_id"}]}

``status`` is ``success`` (code ``DELIVRD``), ``failed`` (code = the channel's status: ``UNDELIV``, ``EXPIRED``,
``REJECTD``, a refusal such as ``INVALID_NUMBER`` / ``TEMPLATE_NOT_APPROVED``, or Magpie's ``TEMPLATE_UNAVAILABLE``
/ ``NOT_SUBMITTED``) or ``timeout`` (code ``TIMEOUT``: no report within the message validity); ``stime`` / ``rtime``
the submit and report times (``2024-05-01T08:30:00Z``, null when unknown).

Replies (url_type 1)::

    {"seq_id": "<uuid>", "result": [{"task_id", "mobile", "content", "rtime", "tpl_id"}]}

Template status (to the template's ``callbackurl``), one POST per change::

    {"tpl_id", "audit_state", "audit_desc", "status_detail": [{"carrier", "status", "desc"}],
     "var_info": [{"name", "type"}]}

``seq_id`` is the sender's request id: stable across retries of the same POST. This module imports only protobuf
and orjson (``receipts.payloads`` calls :func:`vms_envelope` for the VMS callback types).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from magpie.v1 import dispatch_pb2, vms_pb2

VMS_STATUS = "vms_status"
VMS_MO = "vms_mo"
VMS_TEMPLATE = "vms_template"
VMS_CALLBACK_TYPES = frozenset({VMS_STATUS, VMS_MO, VMS_TEMPLATE})

URL_TYPE_STATUS = 0
URL_TYPE_MO = 1

DESCRIPTIONS = {
    "DELIVRD": "delivered",
    "UNDELIV": "the handset could not be reached",
    "EXPIRED": "not delivered within the message validity",
    "REJECTD": "rejected by the carrier",
    "TIMEOUT": "no delivery report within the message validity",
    "INVALID_NUMBER": "not a mobile number of a supported carrier",
    "TEMPLATE_NOT_APPROVED": "the recipient's carrier did not approve the template",
    "PARAM_MISMATCH": "the params do not match the template",
    "TEMPLATE_UNAVAILABLE": "the template was not available for sending",
    "NOT_SUBMITTED": "the carrier could not be reached before the message expired",
}


def iso_from_ms(ms: int) -> str | None:
    if ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_report(event: dispatch_pb2.DeliveryEvent) -> dict[str, Any]:
    if event.status == dispatch_pb2.DELIVERY_STATUS_DELIVERED:
        status, code = "success", "DELIVRD"
    elif event.status == dispatch_pb2.DELIVERY_STATUS_TIMEOUT:
        status, code = "timeout", "TIMEOUT"
    else:
        status, code = "failed", event.result_code or "UNDELIV"
    return {
        "task_id": event.task_id,
        "mobile": event.mobile,
        "status": status,
        "code": code,
        "desc": DESCRIPTIONS.get(code, code.lower().replace("_", " ")),
        "stime": iso_from_ms(event.submitted_at_ms),
        "rtime": iso_from_ms(event.done_at_ms),
        "msg_id": event.msg_id,
        "tpl_id": event.tpl_id,
    }


def mo_result(event: vms_pb2.VmsMoEvent) -> dict[str, Any]:
    return {
        "task_id": event.task_id,
        "mobile": event.mobile,
        "content": event.content,
        "rtime": iso_from_ms(event.at_ms),
        "tpl_id": event.tpl_id,
    }


def template_status(event: vms_pb2.VmsTemplateStatus) -> dict[str, Any]:
    return {
        "tpl_id": event.tpl_id,
        "audit_state": event.audit_state,
        "audit_desc": event.audit_desc or None,
        "status_detail": [
            {"carrier": d.carrier, "status": d.status, "desc": d.desc or None} for d in event.status_detail
        ],
        "var_info": [{"name": v.name, "type": v.type} for v in event.var_info],
    }


def vms_envelope(*, request_id: str, callback_type: str, receipts: list[dict[str, Any]]) -> bytes:
    """The exact bytes POSTed for a VMS callback type."""
    if callback_type == VMS_STATUS:
        return orjson.dumps({"seq_id": request_id, "reports": receipts})
    if callback_type == VMS_MO:
        return orjson.dumps({"seq_id": request_id, "result": receipts})
    return orjson.dumps(receipts[0])
