"""Checking a ``create_aim_send_task`` request against the tenant's prerequisites and turning it into the task
document, the ``TaskContext`` and the de-duplicated recipients.

Checks, in order (the first failure answers):

- ``task_name`` non-blank, at most 30 characters; ``sms_channel`` and ``resolve_task.tpl_id`` present
  (KM.00000400); ``aim_code_type`` individual (KM.00000429 otherwise); ``generation_type`` 1 (default) or 2
  (KM.00000400 otherwise); ``domain`` a host name, required with ``generation_type`` 2 (KM.00000400);
  ``expiration_time`` 1-7 days (KM.00000400)
- ``resolve_task.params`` non-empty (KM.90016414), at most 1,000,000 entries (KM.90016301), at most 100,000 with
  custom short codes (KM.90016416)
- the SMS app ``sms_app_name`` exists (KM.00000421); the signature ``sms_sign`` exists in that app and is
  approved (KM.00000424); the SMS template ``sms_tpl_id`` exists, belongs to that app and signature and is
  approved (KM.00000425); it has a ``${N}`` variable for the link (KM.00001377)
- the AIM template ``tpl_id`` exists (KM.00000426) and is approved by at least one vendor (KM.00000427)
- the ``domain`` (when given) is an approved short-link domain of the tenant registered for this generation type
  (``resolve_tasks.check_domain``, the check of resolution tasks: KM.00000461 otherwise)
- every recipient: ``cust_flag`` non-blank, at most 64 characters (KM.00000400); ``dync_params`` name exactly
  the card template's params (KM.90016802); ``sms_params`` fill exactly the SMS template's other variables
  (KM.00001376); ``custom_url`` http(s), at most 2048 characters (KM.00000400); with ``generation_type`` 2
  ``custom_short_code`` 3-10 letters and digits (KM.00000400), each once among the recipients kept (KM.90016482)
- the custom short codes are free: no link of another task holds one, live or expired within its retention
  (asked of the shortlink service, ``POST /internal/custom-codes/check``: KM.90016482 naming the taken codes;
  503 KM.00000460 when it cannot answer)

Recipients are de-duplicated on ``cust_flag`` (the first occurrence wins; duplicates are counted).

Custom short codes and domains (SDK ``generation_type`` 2, ``domain``, ``params[].custom_short_code``): each
recipient's code travels in ``Recipient.custom_code`` (number-resolver copies it to ``ClassifiedRecipient``) and the
task's domain in ``TaskContext.link_domain`` (``https://<domain>/``; without a domain, the edge's public URL), so the
SMS carries ``https://<domain>/<code>``; pointing the domain's DNS and TLS at the edge is the operator's part (the
edge finds links by path only). ``custom_url`` is ignored with custom codes (KooMessage documents it so), and
``custom_short_code`` without them (``generation_type`` 1: the codes are derived);
``resolve_times`` is always 1 for individual links (KooMessage ignores other values, so does Magpie). Codes are
case-sensitive (``Spring01`` and ``spring01`` are two codes), like the edge's paths. The check above is early
feedback; the shortlink minter decides when it inserts the links: a code taken in between (another task created at
the same moment) fails that recipient alone with result code KM.90016482 in the send details.

A scheduled task (``X-Magpie-Send-At``, see ``send_schedules``) carries its send time in
``TaskContext.send_at_ms``, and its links' validity counts from that time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from magpie.v1 import task_pb2
from magpie_gateway import codes
from magpie_gateway.auth import Principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import (
    CARD_PARAMS_MISMATCH,
    DUPLICATE_CUSTOM_SHORT_LINK,
    EMPTY_INPUT,
    SMS_PARAMS_COUNT_MISMATCH,
    SMS_TEMPLATE_LACKS_LINK,
    TOO_MANY_MOBILES,
    TOO_MANY_SHORT_CODES,
    ApiError,
)
from magpie_gateway.read_model import BATCH_SIZE
from magpie_gateway.recipient_source import CHUNK_BATCHES, RecipientSource
from magpie_gateway.resolve_tasks import (
    CUSTOM,
    DOMAIN_LABEL,
    INDIVIDUAL,
    MAX_DOMAIN_CHARS,
    STANDARD,
    TOKEN_HEADER,
    TaskPlan,
    check_domain,
    link_domain,
)
from magpie_gateway.reviews import APPROVED
from magpie_gateway.send_task_recipients import MAX_CUST_FLAG_CHARS, BuildSettings, RecipientScan
from magpie_gateway.sms_variables import other_variables
from magpie_gateway.task_models import AIMResolveTask, CreateAimSendTaskRequestBody, SmsChannel
from magpie_gateway.timefmt import to_ms
from magpie_gateway.upstream import UpstreamRefused, UpstreamUnavailable, post_json, unavailable
from magpie_gateway.validation import invalid, required_text
from magpie_gateway.vms_fallback import VmsFallback

log = logging.getLogger(__name__)

MAX_TASK_NAME_CHARS = 30
MAX_RECIPIENTS = 1_000_000
MAX_LINK_DAYS = 7  # individual links
DAY_MS = 86_400_000
PROMOTION = "PROMOTION_TYPE"
MAX_CUSTOM_CODES = 100_000  # recipients of a task with custom short codes (KM.90016416)
CODES_CHECK_PATH = "/internal/custom-codes/check"  # magpie_shortlink.custom_codes
CODES_PER_CHECK = 10_000  # magpie_shortlink.custom_codes.MAX_CHECK_CODES


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
    recipients: RecipientSource  # read in chunks on acceptance (meta, ctx and counts of batches set then)
    send_at_ms: int = 0  # scheduled send (epoch ms), 0 = now
    link_domain: str = ""  # base URL of the links (https://<domain>/ for a tenant's domain), "" = the edge's
    vms_fallback: VmsFallback | None = None  # X-Magpie-Fallback: vms (magpie_gateway.vms_fallback)

    @property
    def batch_count(self) -> int:
        return -(-self.recipients.unique // BATCH_SIZE)


def is_marketing(prepared: PreparedTask) -> bool:
    """A promotion SMS template: the marketing send window applies."""
    return bool(prepared.prerequisites.sms_template.get("template_type") == PROMOTION)


def check_shape(body: CreateAimSendTaskRequestBody, submitted: int) -> tuple[str, SmsChannel, AIMResolveTask, int]:
    """The checks that need neither the database nor the recipients beyond their number ``submitted``."""
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
    generation = (resolve.generation_type or "").strip() or STANDARD
    if generation not in (STANDARD, CUSTOM):
        raise invalid("resolve_task.generation_type must be 1 (standard) or 2 (custom short codes)")
    domain = (resolve.domain or "").strip().lower().rstrip(".") or None
    if domain is not None and (
        len(domain) > MAX_DOMAIN_CHARS or not all(DOMAIN_LABEL.fullmatch(label) for label in domain.split("."))
    ):
        raise invalid("resolve_task.domain must be a host name (letters, digits and hyphens, e.g. s.example.com)")
    if generation == CUSTOM and domain is None:
        raise invalid("resolve_task.domain is required with generation_type 2 (custom short codes)")
    resolve.generation_type, resolve.domain = generation, domain  # canonical from here on (stored and echoed)
    days = MAX_LINK_DAYS if resolve.expiration_time is None else resolve.expiration_time
    if not 1 <= days <= MAX_LINK_DAYS:
        raise invalid(f"resolve_task.expiration_time must be 1 to {MAX_LINK_DAYS} days for individual links")
    if not submitted:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: resolve_task.params has no recipient")
    if submitted > MAX_RECIPIENTS:
        raise ApiError.of(TOO_MANY_MOBILES, f"{TOO_MANY_MOBILES.message} ({submitted} > {MAX_RECIPIENTS} recipients)")
    if generation == CUSTOM and submitted > MAX_CUSTOM_CODES:
        raise ApiError.of(
            TOO_MANY_SHORT_CODES,
            f"{TOO_MANY_SHORT_CODES.message} ({submitted} > {MAX_CUSTOM_CODES} custom short codes per task)",
        )
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


def check_recipients(scan: RecipientScan, prerequisites: Prerequisites, custom: bool) -> None:
    """The first param (in order) that breaks a per-recipient check answers, as a loop over all params would:
    ``cust_flag`` (KM.00000400), ``dync_params`` names (KM.90016802), ``sms_params`` count (KM.00001376),
    ``custom_short_code`` or ``custom_url`` (KM.00000400), a custom code repeated (KM.90016482)."""
    card_params = frozenset(p["key"] for p in prerequisites.aim_template.get("params", []))
    sms_count = len(prerequisites.other_variables)
    found: list[tuple[int, int, ApiError]] = []
    if scan.flag_error is not None:
        p = scan.flag_error
        found.append((p, 0, invalid(f"resolve_task.params[{p}].cust_flag must be 1-{MAX_CUST_FLAG_CHARS} characters")))
    keys = _first_other(scan.first_keys, scan.other_keys, card_params)
    if keys is not None:
        p, names = keys
        message = f"params[{p}] has {sorted(names)}, the template expects {sorted(card_params)}"
        found.append((p, 1, ApiError.of(CARD_PARAMS_MISMATCH, f"{CARD_PARAMS_MISMATCH.message}: {message}")))
    counts = _first_other(scan.first_sms, scan.other_sms, sms_count)
    if counts is not None:
        p, count = counts
        message = f"params[{p}] has {count}, the SMS template needs {sms_count}"
        found.append((p, 2, ApiError.of(SMS_PARAMS_COUNT_MISMATCH, f"{SMS_PARAMS_COUNT_MISMATCH.message}: {message}")))
    if custom and scan.code_error is not None:
        p = scan.code_error
        message = f"resolve_task.params[{p}].custom_short_code must be 3-10 letters and digits (required with "
        found.append((p, 3, invalid(message + "generation_type 2)")))
    if not custom and scan.url_error is not None:
        p = scan.url_error
        found.append(
            (p, 3, invalid(f"resolve_task.params[{p}].custom_url must be an http(s) URL of at most 2048 chars"))
        )
    if custom and scan.code_repeat is not None:
        p, code = scan.code_repeat
        message = f"params[{p}].custom_short_code {code} is given to another recipient of the task"
        found.append(
            (p, 5, ApiError.of(DUPLICATE_CUSTOM_SHORT_LINK, f"{DUPLICATE_CUSTOM_SHORT_LINK.message}: {message}"))
        )
    if found:
        raise min(found, key=lambda f: (f[0], f[1]))[2]


T = TypeVar("T")


def _first_other(first: T | None, other: tuple[int, T] | None, expected: T) -> tuple[int, T] | None:
    """The first position whose value is not ``expected``: 0 when the first param's is not, else where the
    values first differ from the first param's (the only other candidate)."""
    if first is None:
        return None
    if first != expected:
        return 0, first
    return other


def domain_plan(task_name: str, resolve: AIMResolveTask, days: int) -> TaskPlan:
    """The task as ``resolve_tasks`` sees one, for its domain check and link base (no links: not needed there)."""
    return TaskPlan(
        task_name=task_name,
        tpl_id=resolve.tpl_id or "",
        sms_signs=[],
        kind=INDIVIDUAL,
        generation_type=resolve.generation_type or STANDARD,
        domain=resolve.domain,
        days=days,
        resolving_times=1,
        links=[],
    )


def _code_positions(resolve: AIMResolveTask) -> dict[str, int]:
    positions: dict[str, int] = {}
    for position, param in enumerate(resolve.params or []):
        positions.setdefault((param.custom_short_code or "").strip(), position)
    return positions


async def check_codes_free(
    context: GatewayContext, tenant_id: str, positions: dict[str, int], task_id: str | None
) -> None:
    """KM.90016482 when a link of another task holds one of ``short_codes`` (the shortlink service knows every
    link); links of ``task_id`` itself (a resumed task) do not count."""
    config = context.config
    if not config.shortlink_internal_token:
        log.error("custom short codes need MAGPIE_SHORTLINK_INTERNAL_TOKEN (the shortlink internal API)")
        raise unavailable("shortlink")
    taken: list[str] = []
    short_codes = list(positions)
    for start in range(0, len(short_codes), CODES_PER_CHECK):
        chunk = short_codes[start : start + CODES_PER_CHECK]
        try:
            answer = await post_json(
                config.shortlink_url,
                CODES_CHECK_PATH,
                {"tenant_id": tenant_id, "task_id": task_id or "", "codes": chunk},
                timeout_s=config.upstream_timeout_s,
                headers={TOKEN_HEADER: config.shortlink_internal_token},
                service="shortlink",
            )
        except (UpstreamUnavailable, UpstreamRefused) as exc:
            raise unavailable("shortlink") from exc
        found = answer.get("taken")
        if not isinstance(found, list):
            log.warning("shortlink answered an unexpected body", extra={"body": str(answer)[:300]})
            raise unavailable("shortlink")
        taken.extend(str(code) for code in found)
    if taken:
        named = ", ".join(f"params[{positions.get(code, '?')}].custom_short_code {code}" for code in taken[:10])
        more = f" and {len(taken) - 10} more" if len(taken) > 10 else ""
        raise ApiError.of(
            DUPLICATE_CUSTOM_SHORT_LINK,
            f"{DUPLICATE_CUSTOM_SHORT_LINK.message}: {named}{more} already in use "
            "(by another short link, or a path of the short-link service)",
        )


async def prepare(
    context: GatewayContext,
    principal: Principal,
    body: CreateAimSendTaskRequestBody,
    recipients: RecipientSource,
    *,
    task_id: str | None = None,
    check: Callable[[Prerequisites, bool], Awaitable[None]] | None = None,
) -> PreparedTask:
    """The checked task; ``task_id`` names the task being resumed (same Idempotency-Key), if any. ``check`` runs
    the per-recipient checks once the templates are known (``check_recipients`` of an inline scan; the columns of
    a recipient file)."""
    task_name, channel, resolve, days = check_shape(body, recipients.submitted)
    prerequisites = await load_prerequisites(context, principal.tenant_id, channel, resolve.tpl_id or "")
    plan = domain_plan(task_name, resolve, days)
    await check_domain(context, principal.tenant_id, plan)
    custom = resolve.generation_type == CUSTOM
    if check is not None:
        await check(prerequisites, custom)
    if custom:
        await check_codes_free(context, principal.tenant_id, recipients.custom_codes, task_id)
    return PreparedTask(
        task_name=task_name,
        channel=channel,
        resolve=resolve,
        expiration_days=days,
        prerequisites=prerequisites,
        recipients=recipients,
        link_domain=link_domain(context, plan),
    )


def build_settings(prepared: PreparedTask) -> BuildSettings:
    return BuildSettings(
        custom=prepared.resolve.generation_type == CUSTOM, batch_size=BATCH_SIZE, chunk_batches=CHUNK_BATCHES
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
    ctx = task_pb2.TaskContext(
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
        link_expires_at_ms=max(created_ms, prepared.send_at_ms) + prepared.expiration_days * DAY_MS,
        link_domain=prepared.link_domain or context.config.link_domain,
        created_at_ms=created_ms,
        aim_url="",
        marketing=is_marketing(prepared),
        send_at_ms=prepared.send_at_ms,
    )
    if prepared.vms_fallback is not None:
        prepared.vms_fallback.apply(ctx)
    return ctx
