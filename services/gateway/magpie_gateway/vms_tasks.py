"""VMS send tasks: checking a ``create_vms_send_task`` request, the task document, the commands to the dispatcher
and the task's view.

Request rules (product spec §2 "VMS send task", §7):

- ``task_name`` 1-32 characters; ``exdata`` at most 1000 characters; ``expiration_time`` 1-72 hours (default 24):
  the validity of the messages at the carriers; no report by then (plus the dispatcher's grace) = timeout.
- The template (``tpl_id``) must be the tenant's and usable: approved by at least one carrier, not expired
  (KM.00000485 unknown, KM.00000486 not usable).
- Exactly one of ``mobiles`` (group send: every number gets the same ``dync_params``) and ``individual_params``
  (each entry: its numbers and their ``dync_params``); a static template (no params) allows group sends only
  (KM.00000487). Each number is 1-20 characters: digits, optionally a leading ``+`` (KM.00000487); a task has at
  most 5,000 numbers (KM.90016301). A number listed twice is sent once (its first occurrence counts).
- ``dync_params`` (at most 100 entries, ``content_type`` and ``content_source`` ``txt``, ``content_detail``
  1-500 characters) give one value per template param, in the template's param order; when every ``param_name``
  names a param (``#p_1#`` or ``p_1``) they are matched by name instead. Any other count is KM.00000488.

The task document (``vms_tasks``) holds the recipients (``mobiles``), one status per recipient (``st``: 0 waiting,
then the ``DeliveryStatus`` numbers 1 submitted, 2 delivered, 3 failed, 4 timeout: see ``vms_projector``) and the
counters the API shows. The recipients go to the dispatcher as ``VmsSendBatch`` records on VMS_SEND (at most 500
recipients and about 256 KB per record, key ``<task_id>:<batch_no>``). If producing fails the task document is
removed again and the client gets the error: nothing is half-created.

``task_state`` (the SDK's ``task_status`` values): ``submit_success`` (accepted, nothing reported yet),
``processing`` (the carriers have some of it), ``sending_complete`` (every recipient has a final status and at
least one succeeded) or ``sending_failed`` (every recipient final, none delivered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from magpie.v1 import vms_pb2
from magpie_common.ids import new_id, stable_id
from magpie_common.topics import VMS_SEND
from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.errors import TOO_MANY_MOBILES, ApiError
from magpie_gateway.timefmt import iso
from magpie_gateway.validation import invalid
from magpie_gateway.vms_models import ContentParam, CreateVmsSendTaskRequestBody
from magpie_gateway.vms_templates import STATE_APPROVED, is_expired

MAX_TASK_NAME_CHARS = 32
MAX_EXDATA_CHARS = 1000
MAX_MOBILES = 5000
MAX_MOBILE_CHARS = 20
MAX_DYNC_PARAMS = 100
MAX_PARAM_CHARS = 500
DEFAULT_EXPIRATION_H = 24
MAX_EXPIRATION_H = 72
BATCH_RECIPIENTS = 500
BATCH_BYTES = 256 * 1024

MOBILE = re.compile(r"^\+?[0-9]{1,19}$")

STATE_SUBMITTED = "submit_success"
STATE_PROCESSING = "processing"
STATE_COMPLETE = "sending_complete"
STATE_FAILED = "sending_failed"
TASK_STATES = (
    "submit_success",
    "submit_failed",
    "processing",
    "sending_failed",
    "re_submit_success",
    "sending_complete",
    "re_submit_failed",
    "re_processing",
    "re_sending_complete",
    "scheduled",
)


@dataclass(frozen=True)
class Recipients:
    mobiles: list[str]
    params: list[list[str]]  # per recipient (individual) or empty lists (group)
    group_params: list[str]


def check_mobiles(values: list[str] | None, where: str) -> list[str]:
    result: list[str] = []
    for value in values or []:
        if not isinstance(value, str) or not value.strip():
            raise fail(codes.VMS_RECIPIENTS_INVALID, f"{where}: an empty mobile number")
        mobile = value.strip()
        if len(mobile) > MAX_MOBILE_CHARS or not MOBILE.match(mobile):
            raise fail(
                codes.VMS_RECIPIENTS_INVALID,
                f"{where}: {mobile[:40]!r} is not a mobile number (digits, optionally a leading +, at most 20)",
            )
        result.append(mobile)
    return result


def _param_key(name: str) -> str:
    text = name.strip()
    if text.startswith("#") and text.endswith("#"):
        text = text[1:-1]
    return f"#{text}#"


def order_params(template_params: list[str], given: list[ContentParam] | None, where: str) -> list[str]:
    """The values of ``given`` in the template's param order (see the module docstring)."""
    items = given or []
    if len(items) > MAX_DYNC_PARAMS:
        raise invalid(f"{where}: at most {MAX_DYNC_PARAMS} dync_params")
    values: list[str] = []
    for item in items:
        if (item.content_type or "txt").strip().lower() != "txt" or (item.content_source or "txt").strip().lower() != (
            "txt"
        ):
            raise fail(codes.VMS_PARAMS_MISMATCH, f"{where}: only text params (content_type/content_source txt)")
        detail = item.content_detail
        if detail is None or not detail.strip():
            raise fail(codes.VMS_PARAMS_MISMATCH, f"{where}: content_detail of {item.param_name!r} is empty")
        if len(detail) > MAX_PARAM_CHARS:
            raise fail(codes.VMS_PARAMS_MISMATCH, f"{where}: a param value has more than {MAX_PARAM_CHARS} characters")
        values.append(detail)
    if len(values) != len(template_params):
        raise fail(
            codes.VMS_PARAMS_MISMATCH,
            f"{where}: the template has {len(template_params)} params ({', '.join(template_params) or 'none'}), "
            f"{len(values)} given",
        )
    names = [_param_key(item.param_name) if item.param_name else "" for item in items]
    if sorted(names) == sorted(template_params):
        by_name = dict(zip(names, values, strict=True))
        return [by_name[name] for name in template_params]
    return values


def recipients_of(body: CreateVmsSendTaskRequestBody, template_params: list[str]) -> Recipients:
    group = bool(body.mobiles)
    individual = bool(body.individual_params)
    if group == individual:
        raise fail(codes.VMS_RECIPIENTS_INVALID, "give either mobiles (group send) or individual_params, not both")
    if individual and not template_params:
        raise fail(codes.VMS_RECIPIENTS_INVALID, "a static template (no params) allows group sends only")
    seen: set[str] = set()
    mobiles: list[str] = []
    params: list[list[str]] = []
    if group:
        if len(body.mobiles or []) > MAX_MOBILES:
            raise ApiError.of(TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message}: at most {MAX_MOBILES} per task")
        group_params = order_params(template_params, body.dync_params, "dync_params")
        for mobile in check_mobiles(body.mobiles, "mobiles"):
            if mobile not in seen:
                seen.add(mobile)
                mobiles.append(mobile)
                params.append([])
        return Recipients(mobiles, params, group_params)
    total = sum(len(entry.mobiles or []) for entry in body.individual_params or [])
    if total > MAX_MOBILES:
        raise ApiError.of(TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message}: at most {MAX_MOBILES} per task")
    for position, entry in enumerate(body.individual_params or []):
        where = f"individual_params[{position}]"
        numbers = check_mobiles(entry.mobiles, f"{where}.mobiles")
        if not numbers:
            raise fail(codes.VMS_RECIPIENTS_INVALID, f"{where}: mobiles is empty")
        values = order_params(template_params, entry.dync_params, f"{where}.dync_params")
        for mobile in numbers:
            if mobile not in seen:
                seen.add(mobile)
                mobiles.append(mobile)
                params.append(values)
    return Recipients(mobiles, params, [])


def expiration_hours(value: int | None) -> int:
    if value is None:
        return DEFAULT_EXPIRATION_H
    if not 1 <= value <= MAX_EXPIRATION_H:
        raise invalid(f"expiration_time must be between 1 and {MAX_EXPIRATION_H} hours")
    return value


def check_template(template: dict[str, Any] | None, tpl_id: str) -> dict[str, Any]:
    if template is None:
        raise fail(codes.VMS_TEMPLATE_NOT_FOUND, f"tpl_id {tpl_id}")
    if template["state"] != STATE_APPROVED:
        raise fail(codes.VMS_TEMPLATE_UNUSABLE, f"tpl_id {tpl_id} is {template['state']}")
    if is_expired(template):
        raise fail(codes.VMS_TEMPLATE_UNUSABLE, f"tpl_id {tpl_id} has expired")
    return template


def new_task(
    *,
    tenant_id: str,
    operator: str,
    name: str,
    template: dict[str, Any],
    recipients: Recipients,
    hours: int,
    exdata: str | None,
    now: datetime,
) -> dict[str, Any]:
    n = len(recipients.mobiles)
    return {
        "_id": new_id("VTK"),
        "tenant_id": tenant_id,
        "task_name": name,
        "tpl_id": template["_id"],
        "tpl_name": template["tpl_name"],
        "tpl_revision": template["revision"],
        "operator": operator,
        "exdata": exdata,
        "expiration_h": hours,
        "expires_at": now + timedelta(hours=hours),
        "created_at": now,
        "send_time": now,
        "mobiles": recipients.mobiles,
        "st": [0] * n,
        "total": n,
        "submitted_count": 0,
        "success_count": 0,
        "failed_count": 0,
        "timeout_count": 0,
        "task_state": STATE_SUBMITTED,
        "v": 0,
    }


def send_batches(doc: dict[str, Any], recipients: Recipients, trace_id: str) -> list[tuple[str, vms_pb2.VmsSendBatch]]:
    """The task's VmsSendBatch records (key ``<task_id>:<batch_no>``)."""
    groups: list[list[vms_pb2.VmsRecipient]] = [[]]
    size = 0
    for index, (mobile, values) in enumerate(zip(recipients.mobiles, recipients.params, strict=True)):
        recipient = vms_pb2.VmsRecipient(index=index, mobile=mobile, params=values)
        weight = recipient.ByteSize() + 4
        if groups[-1] and (len(groups[-1]) >= BATCH_RECIPIENTS or size + weight > BATCH_BYTES):
            groups.append([])
            size = 0
        groups[-1].append(recipient)
        size += weight
    expires_ms = int(doc["expires_at"].timestamp() * 1000)
    records = []
    for batch_no, group in enumerate(groups):
        message = vms_pb2.VmsSendBatch(
            meta=event_meta(stable_id("vms-send", doc["_id"], batch_no), doc["tenant_id"], trace_id),
            task_id=doc["_id"],
            task_name=doc["task_name"],
            tpl_id=doc["tpl_id"],
            tpl_revision=doc["tpl_revision"],
            batch_no=batch_no,
            batch_count=len(groups),
            expires_at_ms=expires_ms,
            params=recipients.group_params,
            recipients=group,
            exdata=doc.get("exdata") or "",
        )
        records.append((f"{doc['_id']}:{batch_no}", message))
    return records


async def dispatch(context: GatewayContext, doc: dict[str, Any], recipients: Recipients, trace_id: str) -> None:
    """Produce the task's commands; on failure remove the task (the client gets the error)."""
    try:
        await context.producer.send_many(
            (VMS_SEND, key, message) for key, message in send_batches(doc, recipients, trace_id)
        )
    except BaseException:
        await context.collections.vms_tasks.delete_one({"_id": doc["_id"], "tenant_id": doc["tenant_id"]})
        raise


def task_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": doc["_id"],
        "task_name": doc["task_name"],
        "task_state": doc["task_state"],
        "tpl_id": doc["tpl_id"],
        "tpl_name": doc.get("tpl_name"),
        "operator": doc.get("operator"),
        "create_time": iso(doc["created_at"]),
        "send_time": iso(doc.get("send_time")),
        "total_count": doc["total"],
        "success_count": doc["success_count"],
        "failed_count": doc["failed_count"],
        "timeout_count": doc["timeout_count"],
        "exdata": doc.get("exdata"),
    }


VIEW_PROJECTION = {"mobiles": 0, "st": 0}
