"""Plain SMS sends: ``send_aim_batch_messages`` (one template, up to 500 numbers) and
``send_aim_batch_different_messages`` (up to 100 ``sms_content`` entries, each a template and up to 500 numbers).

How a send travels
==================

A plain SMS has no card and no link, so it skips the number resolver and the short-link service: the gateway
checks the request, stores the send (collection ``sms_sends``) and produces one ``DispatchBatch`` per template
entry straight to DISPATCH (awaiting the broker's acknowledgement before answering). The dispatcher submits each
recipient over SMPP to the carrier, and its DELIVERY events drive what every message gets downstream:

- receipts: the dispatcher's receipt service pushes the ``sms`` receipts to the tenant's receipt URLs; ``extend``
  travels as the receipt's ``aim_url`` (KooMessage returns ``extend`` as is in the status report; the receipt
  object has no other free field), so a URL registered for that ``aim_url`` receives them, else the tenant's
  default one. The receipt's ``task_id`` is this send's ``task_id`` and its ``tpl_id`` the SMS template id;
- billing: a delivered message is billed per segment (``AIM_SMS``), like the plain-SMS fallback of smart sends.

The ``DispatchBatch`` records: ``batch_no`` = the entry's position (0 for ``send_aim_batch_messages``), recipient
``index`` unique across the send, ``route`` ROUTE_DEGRADED (plain SMS), ``msisdn`` 86 + the national number,
``carrier`` empty (the dispatcher's default SMSC account: carrier routing needs the number resolver's tables and
portability data, which plain sends do not consult), ``sms_params`` = the values in fill order and
``TaskContext.link_param`` = -1 (no variable receives a link, so the dispatcher fills every variable from
``sms_params``). ``msg_id`` is the dispatcher's ``stable_id("msg", task_id, batch_no, index)``, so the id answered
here is the one in the receipts.

Rules
=====

- ``template_id``: an SMS template of the tenant, APPROVED, whose signature is APPROVED (KM.00000425 /
  KM.00000424). ``signature`` (optional, KooMessage: universal templates only): when given it must be a valid
  name (KM.00001075 empty, KM.00001076 length) and the template's signature (KM.00000424).
- ``template_params``: one value per distinct variable of the template, at most 20 (KM.00001376 otherwise),
  filling the variables in ascending N (``show_aim_msg_template_variable`` lists them in that order; the link
  variable of a smart-message template is filled like any other, with the link the caller wants); each value
  follows the rule of its declared type (KM.00000400, see ``sms_variables``). The rendered SMS (``【sign】`` +
  content) must fit in 255 segments.
- ``to``: 1 to 500 numbers per entry (KM.90016414 none, KM.90016301 more), each at most 21 characters. Mainland
  mobile numbers, ``+86`` / ``86`` / ``0086`` optional, spaces and hyphens ignored. Per number the answer's
  ``send_status`` is ``000000`` (accepted, ``msg_id`` given), ``E200041`` (the same number again in the same
  entry: sent once) or ``E000503`` (not a mainland mobile number: not sent). An entry without any valid number
  fails the request (KM.00000400).
- ``channel_num``: digits, at most 21; when the signature has a channel number it must be that one. Default: the
  channel number of each entry's signature (or the dispatcher's default source address when it has none).
- ``task_name``: non-blank, at most 30 characters (default ``Task_<yyyyMMddHHmmss>``); ``extend``: non-empty, at
  most 128 characters, no ``{`` or ``}``.

The answer's ``status`` is ``Success`` once every record is on the broker (delivery comes later, in receipts);
when the broker cannot take them the send is stored as ``Failed`` and the request fails (5xx: retry it, with an
``Idempotency-Key`` to avoid a second send).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from magpie.v1 import common_pb2, dispatch_pb2, task_pb2
from magpie_common.ids import new_id, stable_id
from magpie_common.sms_text import count_segments
from magpie_common.topics import DISPATCH
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta, get_context, request_id
from magpie_gateway.errors import EMPTY_INPUT, SMS_PARAMS_COUNT_MISMATCH, TOO_MANY_MOBILES, ApiError
from magpie_gateway.filing_gate import require_filing
from magpie_gateway.reviews import APPROVED
from magpie_gateway.signatures_api import check_signature_name
from magpie_gateway.sms_models import (
    MsgContent,
    SendAimBatchDifferentMessagesResponse,
    SendAimBatchMessagesResponse,
    SmsMultiTemplateTaskRequestBody,
    SmsTaskReq,
)
from magpie_gateway.sms_variables import declared, fill, value_problem, variables
from magpie_gateway.timefmt import iso, to_ms, utc_now
from magpie_gateway.validation import invalid, required_text

router = APIRouter(tags=["SMS sends"])

TASK_PREFIX = "SMS"
MAX_MOBILES = 500
MAX_MOBILE_CHARS = 21
MAX_PARAMS = 20
MAX_CONTENTS = 100
MAX_TASK_NAME_CHARS = 30
MAX_EXTEND_CHARS = 128
MAX_SEGMENTS = 255
MAX_CHANNEL_CHARS = 21
NO_LINK = -1  # TaskContext.link_param of a plain SMS: no variable receives a short link
PROMOTION = "PROMOTION_TYPE"

SEND_OK = "000000"
DUPLICATE_NUMBER = "E200041"  # KooMessage: the same number twice for the same content
INVALID_NUMBER = "E000503"  # KooMessage: parameter format error (the number)
STATE_ACCEPTING = "Accepting"
STATE_SUCCESS = "Success"
STATE_FAILED = "Failed"

_SEPARATORS = re.compile(r"[\s\-\u00a0\u3000]")
_NATIONAL = re.compile(r"1[3-9]\d{9}")
_CHANNEL = re.compile(r"\d{1,21}")


def national_number(raw: str) -> str | None:
    """The 11-digit national form of a mainland mobile number (``+86``, ``86``, ``0086`` optional; spaces and
    hyphens ignored), or None."""
    text = _SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if text.startswith(prefix) and len(text) == len(prefix) + 11:
            text = text[len(prefix) :]
            break
    return text if _NATIONAL.fullmatch(text) else None


def message_id(task_id: str, batch_no: int, index: int) -> str:
    """The dispatcher's id of the message to one recipient (``magpie_dispatcher.events.message_id``)."""
    return stable_id("msg", task_id, batch_no, index)


@dataclass
class Entry:
    """One template and its recipients: one DispatchBatch."""

    batch_no: int
    template: dict[str, Any]
    signature: dict[str, Any]
    values: list[str]
    text: str
    segments: int
    channel_num: str
    numbers: list[tuple[str, str | None, str]] = field(default_factory=list)  # (to as given, national, status)


async def load_template(
    context: GatewayContext, tenant_id: str, template_id: str | None, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not template_id:
        raise invalid(f"{where}template_id is required")
    c = context.collections
    template = await c.sms_templates.find_one({"_id": template_id, "tenant_id": tenant_id})
    if template is None:
        raise fail(codes.SMS_TEMPLATE_UNUSABLE, f"template_id {template_id} does not exist")
    if template.get("flow_status") != APPROVED:
        raise fail(codes.SMS_TEMPLATE_UNUSABLE, f"template_id {template_id} is {template.get('flow_status')}")
    signature = await c.signatures.find_one({"_id": template["signature_id"], "tenant_id": tenant_id})
    if signature is None or signature.get("status") != APPROVED:
        state = "does not exist" if signature is None else f"is {signature.get('status')}"
        raise fail(codes.SIGNATURE_UNUSABLE, f"the signature of template {template_id} {state}")
    return template, signature


def check_values(template: dict[str, Any], params: list[str] | None, where: str) -> list[str]:
    """The values in fill order (ascending N), checked against the template's variables and their types."""
    numbers = sorted(variables(template["template_content"]))
    values = list(params or [])
    if len(values) > MAX_PARAMS or len(values) != len(numbers):
        raise ApiError.of(
            SMS_PARAMS_COUNT_MISMATCH,
            f"{SMS_PARAMS_COUNT_MISMATCH.message}: {where}template_params has {len(values)} value(s), the template "
            f"has {len(numbers)} variable(s) {['${' + str(n) + '}' for n in numbers]} (at most {MAX_PARAMS})",
        )
    types = declared(template)
    for position, (number, value) in enumerate(zip(numbers, values, strict=True)):
        kind = types.get(number, {}).get("variable_type")
        problem = value_problem(kind, value)
        if problem:
            label = f" ({kind})" if kind else ""
            raise invalid(f"{where}template_params[{position}] for ${{{number}}}{label} {problem}")
    return values


def check_channel(channel_num: str | None, signature: dict[str, Any]) -> str:
    own = signature.get("channel_num") or ""
    if channel_num is None or channel_num == "":
        return own
    if not _CHANNEL.fullmatch(channel_num):
        raise invalid(f"channel_num must be 1-{MAX_CHANNEL_CHARS} digits")
    if own and channel_num != own:
        raise invalid(f"channel_num {channel_num} is not the channel number of signature {signature['signature_name']}")
    return channel_num


def check_numbers(to: list[str] | None, where: str) -> list[tuple[str, str | None, str]]:
    numbers = to or []
    if not numbers:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: {where}to has no number")
    if len(numbers) > MAX_MOBILES:
        raise ApiError.of(
            TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message} ({where}to has {len(numbers)} > {MAX_MOBILES} numbers)"
        )
    out: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()
    for position, raw in enumerate(numbers):
        given = raw.strip()
        if not given or len(given) > MAX_MOBILE_CHARS:
            raise invalid(f"{where}to[{position}] must be 1-{MAX_MOBILE_CHARS} characters")
        national = national_number(given)
        if national is None:
            out.append((given, None, INVALID_NUMBER))
        elif national in seen:
            out.append((given, None, DUPLICATE_NUMBER))
        else:
            seen.add(national)
            out.append((given, national, SEND_OK))
    if not seen:
        raise invalid(f"{where}to has no valid mainland mobile number")
    return out


async def prepare_entry(
    context: GatewayContext,
    tenant_id: str,
    batch_no: int,
    content: MsgContent | SmsTaskReq,
    channel_num: str | None,
    where: str,
) -> Entry:
    numbers = check_numbers(content.to, where)
    template, signature = await load_template(context, tenant_id, content.template_id, where)
    values = check_values(template, content.template_params, where)
    body = fill(template["template_content"], sorted(variables(template["template_content"])), values)
    text = f"【{signature['signature_name']}】{body}"
    segments = count_segments(text)[1]
    if segments > MAX_SEGMENTS:
        raise invalid(f"{where}the message needs {segments} SMS segments; at most {MAX_SEGMENTS} can be sent")
    return Entry(
        batch_no=batch_no,
        template=template,
        signature=signature,
        values=values,
        text=text,
        segments=segments,
        channel_num=check_channel(channel_num, signature),
        numbers=numbers,
    )


def check_common(task_name: str | None, extend: str | None, created_at: datetime) -> tuple[str, str]:
    if task_name is None or task_name == "":
        name = "Task_" + created_at.strftime("%Y%m%d%H%M%S")
    else:
        name = required_text("task_name", task_name, max_chars=MAX_TASK_NAME_CHARS)
    if extend is None:
        return name, ""
    if not extend.strip():
        raise invalid("extend must not be empty (omit it instead)")
    if len(extend) > MAX_EXTEND_CHARS or "{" in extend or "}" in extend:
        raise invalid(f"extend must have at most {MAX_EXTEND_CHARS} characters and no {{ or }}")
    return name, extend


def dispatch_batch(
    principal: Principal,
    task_id: str,
    task_name: str,
    extend: str,
    created_at: datetime,
    entry: Entry,
    first_index: int,
    batch_count: int,
    trace_id: str,
) -> tuple[dispatch_pb2.DispatchBatch, list[str]]:
    """The entry's DispatchBatch and the msg_id of each of its numbers ("" for numbers not sent)."""
    template, signature = entry.template, entry.signature
    ctx = task_pb2.TaskContext(
        tenant_id=principal.tenant_id,
        task_id=task_id,
        task_name=task_name,
        operator=principal.user_name or principal.user_id,
        tpl_id=template["_id"],
        tpl_name=template.get("template_name") or "",
        sms_template_id=template["_id"],
        sms_template_content=template["template_content"],
        sms_sign=signature["signature_name"],
        channel_number=entry.channel_num,
        sms_app_name=template.get("app_name") or "",
        link_param=NO_LINK,
        fallback=common_pb2.FALLBACK_UNSPECIFIED,
        created_at_ms=to_ms(created_at),
        aim_url=extend,
        marketing=template.get("template_type") == PROMOTION,
    )
    batch = dispatch_pb2.DispatchBatch(
        meta=event_meta(stable_id("sms-dispatch", task_id, entry.batch_no), principal.tenant_id, trace_id),
        ctx=ctx,
        batch_no=entry.batch_no,
        batch_count=batch_count,
    )
    ids: list[str] = []
    index = first_index
    for given, national, status in entry.numbers:
        if status != SEND_OK or national is None:
            ids.append("")
            continue
        batch.recipients.add(
            index=index,
            mobile=given,
            msisdn="86" + national,
            route=common_pb2.ROUTE_DEGRADED,
            carrier="",
            sms_params=entry.values,
        )
        ids.append(message_id(task_id, entry.batch_no, index))
        index += 1
    return batch, ids


async def send(
    context: GatewayContext,
    principal: Principal,
    request: Request,
    *,
    kind: str,
    entries: list[Entry],
    task_name: str,
    extend: str,
    created_at: datetime,
) -> dict[str, Any]:
    """Store the send, produce its DispatchBatches (durably) and answer the SDK's response."""
    task_id = new_id(TASK_PREFIX)
    trace_id = request_id(request)
    batches: list[dispatch_pb2.DispatchBatch] = []
    result: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    index = 0
    create_time = iso(created_at)
    for entry in entries:
        batch, ids = dispatch_batch(
            principal, task_id, task_name, extend, created_at, entry, index, len(entries), trace_id
        )
        index += len(batch.recipients)
        batches.append(batch)
        recipients = []
        for (given, _, status), msg_id in zip(entry.numbers, ids, strict=True):
            detail = {
                "to": given,
                "channel_num": entry.channel_num or None,
                "msg_id": msg_id or None,
                "send_status": status,
                "create_time": create_time,
                "segments": entry.segments if msg_id else None,
            }
            result.append(detail)
            recipients.append({"to": given, "msg_id": msg_id or None, "send_status": status})
        items.append(
            {
                "batch_no": entry.batch_no,
                "template_id": entry.template["_id"],
                "signature_id": entry.signature["_id"],
                "sms_sign": entry.signature["signature_name"],
                "channel_num": entry.channel_num,
                "segments": entry.segments,
                "recipients": recipients,
            }
        )
    c = context.collections
    await c.sms_sends.insert_one(
        {
            "_id": task_id,
            "tenant_id": principal.tenant_id,
            "kind": kind,
            "task_name": task_name,
            "extend": extend or None,
            "state": STATE_ACCEPTING,
            "items": items,
            "sent": index,
            "created_at": created_at,
            "operator": principal.user_name or principal.user_id,
            "trace_id": trace_id,
        }
    )
    records = [(DISPATCH, f"{task_id}:{batch.batch_no}", batch) for batch in batches if batch.recipients]
    try:
        await context.producer.send_many(records)
    except BaseException:
        await c.sms_sends.update_one({"_id": task_id}, {"$set": {"state": STATE_FAILED}})
        raise
    await c.sms_sends.update_one({"_id": task_id}, {"$set": {"state": STATE_SUCCESS, "accepted_at": utc_now()}})
    return {"task_id": task_id, "status": STATE_SUCCESS, "result": result}


@router.post("/v1/aim/sms/messages", response_model=SendAimBatchMessagesResponse, summary="send_aim_batch_messages")
async def send_aim_batch_messages(
    body: SmsTaskReq,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await require_filing(context, principal.tenant_id, "AIM")
    created_at = utc_now()
    task_name, extend = check_common(body.task_name, body.extend, created_at)
    entry = await prepare_entry(context, principal.tenant_id, 0, body, body.channel_num, "")
    if body.signature is not None:
        name = check_signature_name(body.signature.strip().strip("【】"))
        if name != entry.signature["signature_name"]:
            raise fail(codes.SIGNATURE_UNUSABLE, f"signature {name} is not the signature of the template")
    return await send(
        context,
        principal,
        request,
        kind="batch",
        entries=[entry],
        task_name=task_name,
        extend=extend,
        created_at=created_at,
    )


@router.post(
    "/v1/aim/sms/diff-messages",
    response_model=SendAimBatchDifferentMessagesResponse,
    summary="send_aim_batch_different_messages",
)
async def send_aim_batch_different_messages(
    body: SmsMultiTemplateTaskRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    await require_filing(context, principal.tenant_id, "AIM")
    created_at = utc_now()
    task_name, extend = check_common(body.task_name, body.extend, created_at)
    contents = body.sms_content or []
    if not contents:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: sms_content has no entry")
    if len(contents) > MAX_CONTENTS:
        raise invalid(f"sms_content must have at most {MAX_CONTENTS} entries")
    entries = [
        await prepare_entry(
            context, principal.tenant_id, position, content, body.channel_num, f"sms_content[{position}]."
        )
        for position, content in enumerate(contents)
    ]
    return await send(
        context,
        principal,
        request,
        kind="diff",
        entries=entries,
        task_name=task_name,
        extend=extend,
        created_at=created_at,
    )
