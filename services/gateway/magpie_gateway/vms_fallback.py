"""The VMS fallback of smart send tasks (product spec §1 降级 "发送智能信息基础版", §6 "VMS fallback: VMS quota",
§8 "send the tenant's chosen VMS template").

Request: headers of ``POST /v1/aim/send-tasks`` beyond the SDK (send them with the SDK through
``client.create_aim_send_task_invoker(request).add_header(name, value).invoke()``):

- ``X-Magpie-Fallback: vms`` (or no ``X-Magpie-Fallback`` with ``MAGPIE_DEFAULT_FALLBACK=vms``): the recipients
  whose handset cannot render the card get a VMS (video SMS) instead of the plain SMS;
- ``X-Magpie-Fallback-Vms-Template: <tpl_id>``: the tenant's VMS template to send (``tpl_id`` of
  ``create_vms_template``). Required with the vms fallback, refused with another one (KM.00000400);
- ``X-Magpie-Fallback-Vms-Params``: how the template's ``#p_N#`` params are filled for each recipient, a
  comma-separated list of ``<param>=<source>``, e.g. ``#p_1#=dync:name,#p_2#=sms:1,#p_3#=text:%E5%91%A8%E6%9C%AB``:

  * ``<param>``: ``#p_N#`` or ``p_N``, a param of the template;
  * ``dync:<name>``: the recipient's ``dync_params`` value of that card param (``name`` or ``${name}``);
  * ``sms:<n>``: the ``n``-th value (1-based) of the recipient's ``sms_params``;
  * ``text:<value>``: the same value for every recipient.

  Each name and source is percent-decoded (UTF-8) after the split, so non-ASCII text (HTTP headers are Latin-1) and
  ``,`` ``=`` ``%`` are written percent-encoded. Every param of the template is mapped exactly once; a static
  template (no params) takes no mapping. There is no implicit mapping: a template with params and no header is
  refused, because guessing which recipient value goes where would send wrong texts silently.

Checks, after the task's own checks (``send_task_builder``), first failure answers:

- the template exists and is the tenant's (KM.00000485; another tenant's id is unknown here too), approved by at
  least one carrier and not expired (KM.00000486), the same rules as ``create_vms_send_task``;
- the mapping: well formed, names exactly the template's params, ``dync`` names a param of the card template,
  ``n`` of ``sms`` is at most the number of ``sms_params`` the SMS template takes, a ``text`` value is 1-500
  characters (KM.00000488);
- every recipient (after de-duplication, since any of them may turn out unresolvable) has a value of 1-500
  non-blank characters for every param (KM.00000488 naming the recipient's ``cust_flag``).

The answer and the task views carry ``fallback: "vms"``. The task's ``TaskContext`` carries the template
(``vms_tpl_id``, ``vms_tpl_revision``: the revision approved now; a later approved revision is sent if there is one)
and the sources (``vms_params``, format in ``magpie_common.vms_params``).

Downstream: the number-resolver routes the unresolvable recipients ``ROUTE_VMS``; shortlink forwards them in the
``DispatchBatch`` without minting a link; the dispatcher's send role, when it sends the batch (so schedules, the
marketing window and cancellation apply to them as to the SMS), hands them to its vms role on VMS_SEND
(``aim_fallback``), which sends the template with each recipient's values and reports on DELIVERY, the task's own
stream: the send details show them with route ``VMS`` and their final status (DELIVERED, FAILED with the channel's
code, e.g. ``TEMPLATE_NOT_APPROVED`` for a carrier that did not approve the template, or TIMEOUT), billing charges
one VMS unit per delivered message (VMS packages first; no AIM_SMS, no resolution: there is no link) and the AIM
receipts (sms callback) report them with ``tpl_id`` = the VMS template. Replies to these messages are VMS replies
(VMS MO callback).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from magpie.v1 import task_pb2
from magpie_common.vms_params import DYNC, SMS, TEXT, BadSource, split, values_of
from magpie_gateway import codes
from magpie_gateway.aim_templates import param_key
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import ApiError
from magpie_gateway.validation import invalid
from magpie_gateway.vms_tasks import MAX_PARAM_CHARS, check_template

TEMPLATE_HEADER = "X-Magpie-Fallback-Vms-Template"
PARAMS_HEADER = "X-Magpie-Fallback-Vms-Params"
VMS = "vms"
MAX_TPL_ID_CHARS = 64
PARAM_NAME = re.compile(r"^#?(p_\d{1,3})#?$")


@dataclass(frozen=True)
class VmsFallbackRequest:
    """The VMS fallback as the request gives it (shape checked, nothing looked up yet)."""

    tpl_id: str
    params_header: str


@dataclass(frozen=True)
class VmsFallback:
    """The checked VMS fallback of a task."""

    tpl_id: str
    tpl_name: str
    revision: int
    params: list[str]  # the template's params (#p_N#), in its order
    sources: list[str]  # the source of each of them (magpie_common.vms_params)

    def apply(self, ctx: task_pb2.TaskContext) -> None:
        ctx.vms_tpl_id = self.tpl_id
        ctx.vms_tpl_revision = self.revision
        ctx.vms_params[:] = self.sources


def mismatch(detail: str) -> ApiError:
    return fail(codes.VMS_PARAMS_MISMATCH, detail)


def request_of(fallback: str, template_header: str | None, params_header: str | None) -> VmsFallbackRequest | None:
    """The VMS fallback of the request (None for another fallback); KM.00000400 when the headers do not fit."""
    tpl_id = (template_header or "").strip()
    mapping = (params_header or "").strip()
    if fallback != VMS:
        if tpl_id or mapping:
            raise invalid(f"{TEMPLATE_HEADER} and {PARAMS_HEADER} go with the vms fallback only (X-Magpie-Fallback)")
        return None
    if not tpl_id:
        raise invalid(f"the vms fallback needs {TEMPLATE_HEADER}: the tpl_id of the VMS template to send")
    if len(tpl_id) > MAX_TPL_ID_CHARS:
        raise invalid(f"{TEMPLATE_HEADER} must have at most {MAX_TPL_ID_CHARS} characters")
    return VmsFallbackRequest(tpl_id, mapping)


def _param_name(raw: str) -> str:
    match = PARAM_NAME.fullmatch(raw.strip())
    if match is None:
        raise mismatch(f"{PARAMS_HEADER}: {raw[:40]!r} is not a VMS template param (#p_N# or p_N)")
    return f"#{match.group(1)}#"


def parse_mapping(header: str, template_params: list[str], card_params: set[str], sms_count: int) -> list[str]:
    """The source of each template param, in the template's order (see the module docstring)."""
    given: dict[str, str] = {}
    for part in (p.strip() for p in header.split(",")):
        if not part:
            continue
        name_raw, equals, source_raw = part.partition("=")
        if not equals:
            raise mismatch(f"{PARAMS_HEADER}: {unquote(part)[:60]!r} is not <param>=<source>")
        name = _param_name(unquote(name_raw))
        if name not in template_params:
            raise mismatch(
                f"{PARAMS_HEADER}: the template has no param {name} (it has {', '.join(template_params) or 'none'})"
            )
        if name in given:
            raise mismatch(f"{PARAMS_HEADER}: {name} is mapped twice")
        source = unquote(source_raw.strip())
        try:
            kind, argument = split(source)
        except BadSource as exc:
            raise mismatch(f"{PARAMS_HEADER}: {name}: {exc}") from None
        if kind == DYNC:
            key = param_key(argument)
            if key not in card_params:
                raise mismatch(
                    f"{PARAMS_HEADER}: {name}: the card template has no param {argument!r} "
                    f"(it has {', '.join(sorted(card_params)) or 'none'})"
                )
            source = f"{DYNC}:{key}"
        elif kind == SMS and int(argument) > sms_count:
            raise mismatch(
                f"{PARAMS_HEADER}: {name}: sms:{argument}, but the SMS template takes {sms_count} sms_params"
            )
        elif kind == TEXT and (not argument.strip() or len(argument) > MAX_PARAM_CHARS):
            raise mismatch(f"{PARAMS_HEADER}: {name}: a text value has 1-{MAX_PARAM_CHARS} non-blank characters")
        given[name] = source
    missing = [name for name in template_params if name not in given]
    if missing:
        raise mismatch(
            f"the VMS template's params {', '.join(missing)} are not mapped: give {PARAMS_HEADER}, "
            "e.g. #p_1#=dync:<card param>,#p_2#=sms:1"
        )
    return [given[name] for name in template_params]


async def load(
    context: GatewayContext,
    tenant_id: str,
    request: VmsFallbackRequest,
    *,
    card_params: set[str],
    sms_count: int,
) -> VmsFallback:
    """The checked template and mapping (KM.00000485, KM.00000486, KM.00000488)."""
    doc: dict[str, Any] | None = await context.collections.vms_templates.find_one(
        {"_id": request.tpl_id, "tenant_id": tenant_id}
    )
    template = check_template(doc, request.tpl_id)
    params = list(template.get("params") or [])
    sources = parse_mapping(request.params_header, params, card_params, sms_count)
    return VmsFallback(template["_id"], template.get("tpl_name") or "", int(template["revision"]), params, sources)


def check_recipients(fallback: VmsFallback, batches: list[task_pb2.RecipientBatch]) -> None:
    """KM.00000488 for the first recipient lacking a usable value of a param."""
    checked = [(n, s) for n, s in zip(fallback.params, fallback.sources, strict=True) if not s.startswith(f"{TEXT}:")]
    if not checked:
        return
    sources = [s for _, s in checked]
    for batch in batches:
        for recipient in batch.recipients:
            values = values_of(sources, recipient.params, recipient.sms_params)
            for (name, source), value in zip(checked, values, strict=True):
                if not value.strip() or len(value) > MAX_PARAM_CHARS:
                    raise mismatch(
                        f"cust_flag {recipient.mobile}: {name} of the VMS template ({source}) needs "
                        f"1-{MAX_PARAM_CHARS} non-blank characters, the recipient's value has {len(value)}"
                    )


async def prepare(
    context: GatewayContext,
    tenant_id: str,
    request: VmsFallbackRequest,
    *,
    card_params: set[str],
    sms_count: int,
    chunks: AsyncIterator[list[task_pb2.RecipientBatch]],
) -> VmsFallback:
    """The checked VMS fallback of a task whose recipients come in ``chunks`` (read once more for this check)."""
    fallback = await load(context, tenant_id, request, card_params=card_params, sms_count=sms_count)
    async for batches in chunks:
        check_recipients(fallback, batches)
    return fallback
