"""Checking a ``create_aim_send_task`` request against the tenant's prerequisites and turning it into the task
document, the ``TaskContext`` and the de-duplicated recipients.

Checks, in order (the first failure answers):

- ``task_name`` non-blank, at most 30 characters; ``sms_channel`` and ``resolve_task.tpl_id`` present
  (KM.00000400); ``aim_code_type`` individual and ``generation_type`` 1 (KM.00000429 otherwise);
  ``expiration_time`` 1-7 days (KM.00000400)
- ``resolve_task.params`` non-empty (KM.90016414), at most 1,000,000 entries (KM.90016301)
- the SMS app ``sms_app_name`` exists (KM.00000421); the signature ``sms_sign`` exists in that app and is
  approved (KM.00000424); the SMS template ``sms_tpl_id`` exists, belongs to that app and signature and is
  approved (KM.00000425); it has a ``${N}`` variable for the link (KM.00001377)
- the AIM template ``tpl_id`` exists (KM.00000426) and is approved by at least one vendor (KM.00000427)
- every recipient: ``cust_flag`` non-blank, at most 64 characters (KM.00000400); ``dync_params`` name exactly
  the card template's params (KM.90016802); ``sms_params`` fill exactly the SMS template's other variables
  (KM.00001376); ``custom_url`` http(s), at most 2048 characters (KM.00000400)

Recipients are de-duplicated on ``cust_flag`` (the first occurrence wins; duplicates are counted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from magpie.v1 import task_pb2
from magpie_gateway import codes
from magpie_gateway.aim_templates import param_key
from magpie_gateway.auth import Principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import (
    CARD_PARAMS_MISMATCH,
    EMPTY_INPUT,
    SMS_PARAMS_COUNT_MISMATCH,
    SMS_TEMPLATE_LACKS_LINK,
    TOO_MANY_MOBILES,
    ApiError,
)
from magpie_gateway.read_model import BATCH_SIZE
from magpie_gateway.reviews import APPROVED
from magpie_gateway.sms_variables import other_variables
from magpie_gateway.task_models import AIMResolveTask, CreateAimSendTaskRequestBody, SmsChannel
from magpie_gateway.timefmt import to_ms
from magpie_gateway.validation import invalid, required_text

THREAD_THRESHOLD = 5_000
MAX_TASK_NAME_CHARS = 30
MAX_RECIPIENTS = 1_000_000
MAX_CUST_FLAG_CHARS = 64
MAX_CUSTOM_URL_CHARS = 2048
MAX_LINK_DAYS = 7  # individual links
DAY_MS = 86_400_000
PROMOTION = "PROMOTION_TYPE"


@dataclass
class Prerequisites:
    app: dict[str, Any]
    signature: dict[str, Any]
    sms_template: dict[str, Any]
    aim_template: dict[str, Any]
    link_param: int
    other_variables: list[int]
    approved_vendors: list[str]


@dataclass
class PreparedTask:
    task_name: str
    channel: SmsChannel
    resolve: AIMResolveTask
    expiration_days: int
    prerequisites: Prerequisites
    batches: list[task_pb2.RecipientBatch]  # recipients only: meta, ctx and counts are set on acceptance
    mobiles: list[list[str]]  # per batch, the recipients' mobiles (the read model's documents)
    unique: int
    submitted: int
    duplicates: int


def check_shape(body: CreateAimSendTaskRequestBody) -> tuple[str, SmsChannel, AIMResolveTask, int]:
    task_name = required_text("task_name", body.task_name, max_chars=MAX_TASK_NAME_CHARS)
    channel = body.sms_channel
    if channel is None:
        raise invalid("sms_channel is required")
    for name in ("sms_tpl_id", "sms_sign", "sms_app_name"):
        required_text(f"sms_channel.{name}", getattr(channel, name))
    resolve = body.resolve_task
    if resolve is None:
        raise invalid("resolve_task is required")
    required_text("resolve_task.tpl_id", resolve.tpl_id)
    if resolve.aim_code_type not in (None, "", "individual"):
        raise fail(codes.NOT_SUPPORTED, "aim_code_type must be individual (group links are not supported yet)")
    if resolve.generation_type not in (None, "", "1"):
        raise fail(codes.NOT_SUPPORTED, "generation_type must be 1 (custom short codes are not supported yet)")
    days = MAX_LINK_DAYS if resolve.expiration_time is None else resolve.expiration_time
    if not 1 <= days <= MAX_LINK_DAYS:
        raise invalid(f"resolve_task.expiration_time must be 1 to {MAX_LINK_DAYS} days for individual links")
    params = resolve.params or []
    if not params:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: resolve_task.params has no recipient")
    if len(params) > MAX_RECIPIENTS:
        raise ApiError.of(TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message} ({len(params)} > {MAX_RECIPIENTS} recipients)")
    return task_name, channel, resolve, days


async def load_prerequisites(
    context: GatewayContext, tenant_id: str, channel: SmsChannel, tpl_id: str
) -> Prerequisites:
    c = context.collections
    app = await c.sms_apps.find_one({"tenant_id": tenant_id, "name_key": (channel.sms_app_name or "").lower()})
    if app is None:
        raise fail(codes.SMS_APP_NOT_FOUND, f"sms_app_name {channel.sms_app_name}")
    sign = (channel.sms_sign or "").strip().strip("【】")
    signature = await c.signatures.find_one({"tenant_id": tenant_id, "app_id": app["_id"], "signature_name": sign})
    if signature is None or signature.get("status") != APPROVED:
        state = "does not exist in the app" if signature is None else f"is {signature.get('status')}"
        raise fail(codes.SIGNATURE_UNUSABLE, f"sms_sign {sign} {state}")
    template = await c.sms_templates.find_one({"_id": channel.sms_tpl_id, "tenant_id": tenant_id})
    if template is None:
        raise fail(codes.SMS_TEMPLATE_UNUSABLE, f"sms_tpl_id {channel.sms_tpl_id} does not exist")
    if template["app_id"] != app["_id"] or template["signature_id"] != signature["_id"]:
        raise fail(
            codes.SMS_TEMPLATE_UNUSABLE, f"sms_tpl_id {channel.sms_tpl_id} is not a template of the app and sign"
        )
    if template.get("flow_status") != APPROVED:
        raise fail(codes.SMS_TEMPLATE_UNUSABLE, f"sms_tpl_id {channel.sms_tpl_id} is {template.get('flow_status')}")
    link_param = template.get("link_variable")
    if link_param is None:
        raise ApiError.of(
            SMS_TEMPLATE_LACKS_LINK,
            f"{SMS_TEMPLATE_LACKS_LINK.message}: the template needs a ${{N}} variable to carry the short link",
        )
    card = await c.aim_templates.find_one({"_id": tpl_id, "tenant_id": tenant_id})
    if card is None:
        raise fail(codes.AIM_TEMPLATE_NOT_FOUND, f"tpl_id {tpl_id}")
    vendors = [f["factory_type"] for f in card.get("factory_info", []) if f.get("state") == 1]
    if not vendors or card.get("tpl_state") != 1:
        raise fail(codes.AIM_TEMPLATE_NOT_APPROVED, f"tpl_id {tpl_id}")
    return Prerequisites(
        app=app,
        signature=signature,
        sms_template=template,
        aim_template=card,
        link_param=int(link_param),
        other_variables=other_variables(template["template_content"], int(link_param)),
        approved_vendors=vendors,
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def build_recipients(
    resolve: AIMResolveTask, prerequisites: Prerequisites, batch_size: int = BATCH_SIZE
) -> tuple[list[task_pb2.RecipientBatch], list[list[str]], int, int]:
    """The de-duplicated recipients in batches of ``batch_size`` (task-level ``index`` = position after
    de-duplication), the batches' mobiles, the number of unique recipients and of duplicates dropped.

    Recipients are added to their batch message directly: building protobuf messages is most of the cost of a
    big task, and adding avoids a copy.
    """
    card_params = {p["key"] for p in prerequisites.aim_template.get("params", [])}
    sms_param_count = len(prerequisites.other_variables)
    batches: list[task_pb2.RecipientBatch] = []
    mobiles: list[list[str]] = []
    unique = 0
    seen: set[str] = set()
    duplicates = 0
    keys: dict[str, str] = {}  # dync_params names as sent -> parameter names (the same few names every time)
    for position, param in enumerate(resolve.params or []):
        mobile = (param.cust_flag or "").strip()
        if not mobile or len(mobile) > MAX_CUST_FLAG_CHARS:
            raise invalid(f"resolve_task.params[{position}].cust_flag must be 1-{MAX_CUST_FLAG_CHARS} characters")
        dync: dict[str, str] = {}
        for name, value in (param.dync_params or {}).items():
            key = keys.get(name)
            if key is None:
                key = keys[name] = param_key(name)
            dync[key] = value if isinstance(value, str) else _text(value)
        if dync.keys() != card_params:
            raise ApiError.of(
                CARD_PARAMS_MISMATCH,
                f"{CARD_PARAMS_MISMATCH.message}: params[{position}] has {sorted(dync)}, "
                f"the template expects {sorted(card_params)}",
            )
        sms_params = [_text(v) for v in param.sms_params or []]
        if len(sms_params) != sms_param_count:
            raise ApiError.of(
                SMS_PARAMS_COUNT_MISMATCH,
                f"{SMS_PARAMS_COUNT_MISMATCH.message}: params[{position}] has {len(sms_params)}, "
                f"the SMS template needs {sms_param_count}",
            )
        custom_url = (param.custom_url or "").strip()
        if custom_url and (
            len(custom_url) > MAX_CUSTOM_URL_CHARS or not custom_url.lower().startswith(("http://", "https://"))
        ):
            raise invalid(f"resolve_task.params[{position}].custom_url must be an http(s) URL of at most 2048 chars")
        if mobile in seen:
            duplicates += 1
            continue
        seen.add(mobile)
        if unique % batch_size == 0:
            batches.append(task_pb2.RecipientBatch(batch_no=len(batches)))
            mobiles.append([])
        recipient = batches[-1].recipients.add(
            index=unique, mobile=mobile, custom_url=custom_url, sms_params=sms_params
        )
        recipient.params.update(dync)
        mobiles[-1].append(mobile)
        unique += 1
    return batches, mobiles, unique, duplicates


async def prepare(context: GatewayContext, principal: Principal, body: CreateAimSendTaskRequestBody) -> PreparedTask:
    task_name, channel, resolve, days = check_shape(body)
    prerequisites = await load_prerequisites(context, principal.tenant_id, channel, resolve.tpl_id or "")
    if len(resolve.params or []) > THREAD_THRESHOLD:
        # Seconds of CPU for a big task: in a thread, so the event loop keeps serving meanwhile.
        batches, mobiles, unique, duplicates = await asyncio.to_thread(build_recipients, resolve, prerequisites)
    else:
        batches, mobiles, unique, duplicates = build_recipients(resolve, prerequisites)
    return PreparedTask(
        task_name=task_name,
        channel=channel,
        resolve=resolve,
        expiration_days=days,
        prerequisites=prerequisites,
        batches=batches,
        mobiles=mobiles,
        unique=unique,
        submitted=len(resolve.params or []),
        duplicates=duplicates,
    )


def task_context(
    context: GatewayContext,
    principal: Principal,
    prepared: PreparedTask,
    *,
    task_id: str,
    created_at: datetime,
    fallback: int,
) -> task_pb2.TaskContext:
    pre = prepared.prerequisites
    created_ms = to_ms(created_at)
    return task_pb2.TaskContext(
        tenant_id=principal.tenant_id,
        task_id=task_id,
        task_name=prepared.task_name,
        operator=principal.user_name or principal.user_id,
        tpl_id=pre.aim_template["_id"],
        tpl_name=pre.aim_template.get("tpl_name", ""),
        approved_vendors=pre.approved_vendors,
        sms_template_id=pre.sms_template["_id"],
        sms_template_content=pre.sms_template["template_content"],
        sms_sign=pre.signature["signature_name"],
        channel_number=prepared.channel.channel_number or pre.signature.get("channel_num") or "",
        sms_app_name=pre.app["app_name"],
        link_param=pre.link_param,
        fallback=fallback,  # type: ignore[arg-type]
        link_expires_at_ms=created_ms + prepared.expiration_days * DAY_MS,
        link_domain=context.config.link_domain,
        created_at_ms=created_ms,
        aim_url="",
        marketing=pre.sms_template.get("template_type") == PROMOTION,
    )
