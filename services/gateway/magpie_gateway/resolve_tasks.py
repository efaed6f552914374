"""Resolution tasks: short links minted for an AIM template without sending anything (the customer sends the SMS
through its own channel), their documents and their views.

Creating one (``create_resolve_task``):

1. the request is checked (rules below; the first failure answers, nothing is written);
2. the task (``resolve_tasks``, state ``generating``) and one document per link (``resolve_links``,
   ``<task_id>:<index>``) are written, so a resolution can never arrive before its link is known;
3. the shortlink service mints the links (``POST /internal/resolution-links`` at ``MAGPIE_SHORTLINK_URL``, idempotent
   per task and link index) and the results are stored: per link ``result_code`` "0" and its ``aim_url`` /
   ``aim_code``, or a failure code (``KM.90016482``: the custom short code is taken);
4. the task state becomes ``success`` (every link minted), ``partial`` or ``failed`` (none). When the shortlink
   service cannot be reached the task is ``failed`` with ``KM.00000460`` on every link, and the request answers
   503 ``KM.00000460`` (retry; with the same ``Idempotency-Key`` a retry is a new attempt, 5xx are not stored).

Checks: ``tpl_id`` an AIM template of the caller (KM.00000426) approved by at least one vendor and enabled
(KM.00000427); ``sms_signs`` 1-5 signatures (KM.00001075 when none or blank; KM.00001076 outside 2-16 characters;
KM.00000400 more than 5 or characters other than Chinese, letters and digits; 【】 are stripped);
``aim_code_type`` individual (default) | group, a template with card parameters only individual; ``generation_type``
1 (default) | 2 (custom short codes: ``domain`` and every ``custom_short_code`` required, 3-10 letters and digits,
unique in the request (KM.90016482), ``custom_url`` ignored as KooMessage documents); ``domain`` a host name
(KM.00000400; see below for the approval); ``expiration_time`` 1-7 days individual, 1-180 group (default 7);
``resolving_times`` group >= 2 (individual: always 1, another value is ignored as KooMessage documents);
``params`` non-empty (KM.90016414), at most 100 links (KM.90016403), a group task exactly one (KM.90016403);
``cust_flag`` 1-64 characters, unique in an individual task (a group link's is optional); ``dync_params`` exactly
the template's parameters (KM.90016802);
``custom_url`` only on group links (a resolution task's landing page is the card's H5 page otherwise), http(s), at
most 256 characters (KM.00000400).

Decisions beyond the SDK:

- ``aim_url`` is the full link with its scheme, ready to paste into an SMS: ``https://<domain>/<code>`` when the
  task names a ``domain``, else on the edge's public URL (``MAGPIE_SHORTLINK_PUBLIC_URL``). A ``domain`` must be a
  short-link domain of the tenant approved in the domain review (``/v1/magpie/domains``), registered for the same
  kind of code (custom short codes or standard), as KooMessage requires (KM.00000461 otherwise); pointing its DNS
  and TLS at the edge is the operator's part.
- The SMS signatures are recorded (and filter the details), not enforced at the edge: the handset's resolve call
  does not say which signature the SMS carried.
- ``task_state`` (Magpie extension) is the state above; ``task_name`` is an optional Magpie extension of the body.
- ``resolved_times``: an individual link counts its first resolution (the billable one), a group link every
  counted resolution up to ``resolving_times`` (each billable; the edge refuses resolutions beyond the budget).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.aim_templates import param_key
from magpie_gateway.auth import Principal
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import (
    CARD_PARAMS_MISMATCH,
    DUPLICATE_CUSTOM_SHORT_LINK,
    EMPTY_INPUT,
    EMPTY_SIGNATURE,
    SIGNATURE_LENGTH_INVALID,
    TOO_MANY_SHORT_LINKS,
    ApiError,
)
from magpie_gateway.resolve_task_models import CreateResolveTaskRequestBody, CreateShortChainParam
from magpie_gateway.timefmt import iso, to_ms, utc_now
from magpie_gateway.upstream import UpstreamRefused, UpstreamUnavailable, post_json, unavailable
from magpie_gateway.validation import invalid

TASK_PREFIX = "RT"  # resolve_task_projection.RESOLUTION_TASK_PREFIX: LINK events of these tasks come back here
INDIVIDUAL = "individual"
GROUP = "group"
STANDARD = "1"
CUSTOM = "2"
STATE_GENERATING = "generating"
STATE_SUCCESS = "success"
STATE_PARTIAL = "partial"
STATE_FAILED = "failed"
OK = "0"

MAX_LINKS = 100
MAX_SIGNS = 5
SIGN_CHARS = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]+")
MIN_SIGN_CHARS, MAX_SIGN_CHARS = 2, 16
MAX_CUST_FLAG_CHARS = 64
MAX_CUSTOM_URL_CHARS = 256
MAX_TASK_NAME_CHARS = 30
CUSTOM_CODE = re.compile(r"[A-Za-z0-9]{3,10}")
DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_DOMAIN_CHARS = 253
DOMAIN_APPROVED = "APPROVED"  # domains_api: the review state of a usable domain
MAX_DAYS = {INDIVIDUAL: 7, GROUP: 180}
DEFAULT_DAYS = 7
MAX_RESOLVING_TIMES = 2**31 - 1
MINT_PATH = "/internal/resolution-links"
TOKEN_HEADER = "X-Internal-Token"


@dataclass
class LinkPlan:
    index: int
    cust_flag: str
    dync_params: dict[str, str]
    custom_url: str
    custom_short_code: str


@dataclass
class TaskPlan:
    task_name: str | None
    tpl_id: str
    sms_signs: list[str]
    kind: str
    generation_type: str
    domain: str | None
    days: int
    resolving_times: int
    links: list[LinkPlan]


# --- request checks ------------------------------------------------------------------------------------------------


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(f"{name} must be a string")
    return str(value).strip()


def _int(name: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid(f"{name} must be an integer")
    try:
        return int(str(value).strip())
    except ValueError:
        raise invalid(f"{name} must be an integer") from None


def check_signs(value: Any) -> list[str]:
    if value is None or value == []:
        raise ApiError.of(EMPTY_SIGNATURE, f"{EMPTY_SIGNATURE.message}: sms_signs needs at least one signature")
    if not isinstance(value, list):
        raise invalid("sms_signs must be a list of signatures")
    if len(value) > MAX_SIGNS:
        raise invalid(f"sms_signs has at most {MAX_SIGNS} signatures")
    signs: list[str] = []
    for position, item in enumerate(value):
        sign = _text(f"sms_signs[{position}]", item).strip("【】").strip()
        if not sign:
            raise ApiError.of(EMPTY_SIGNATURE, f"{EMPTY_SIGNATURE.message}: sms_signs[{position}]")
        if not MIN_SIGN_CHARS <= len(sign) <= MAX_SIGN_CHARS:
            raise ApiError.of(
                SIGNATURE_LENGTH_INVALID,
                f"{SIGNATURE_LENGTH_INVALID.message}: sms_signs[{position}] must have "
                f"{MIN_SIGN_CHARS}-{MAX_SIGN_CHARS} characters",
            )
        if not SIGN_CHARS.fullmatch(sign):
            raise invalid(f"sms_signs[{position}] may contain only Chinese characters, letters and digits")
        if sign not in signs:
            signs.append(sign)
    return signs


def _param(position: int, raw: Any) -> CreateShortChainParam:
    if not isinstance(raw, dict):
        raise invalid(f"params[{position}] must be an object")
    return CreateShortChainParam.model_validate(raw)


def check_shape(body: CreateResolveTaskRequestBody) -> TaskPlan:
    """Everything that needs no database: the plan of the task, or the request's error."""
    tpl_id = _text("tpl_id", body.tpl_id)
    if not tpl_id:
        raise invalid("tpl_id is required")
    task_name = _text("task_name", body.task_name) or None
    if task_name is not None and len(task_name) > MAX_TASK_NAME_CHARS:
        raise invalid(f"task_name must have at most {MAX_TASK_NAME_CHARS} characters")
    signs = check_signs(body.sms_signs)
    kind = _text("aim_code_type", body.aim_code_type).lower() or INDIVIDUAL
    if kind not in (INDIVIDUAL, GROUP):
        raise invalid("aim_code_type must be individual or group")
    generation = _text("generation_type", body.generation_type) or STANDARD
    if generation not in (STANDARD, CUSTOM):
        raise invalid("generation_type must be 1 (standard) or 2 (custom short codes)")
    domain = _text("domain", body.domain).lower().rstrip(".") or None
    if domain is not None and (
        len(domain) > MAX_DOMAIN_CHARS or not all(DOMAIN_LABEL.fullmatch(label) for label in domain.split("."))
    ):
        raise invalid("domain must be a host name (letters, digits and hyphens, e.g. s.example.com)")
    if generation == CUSTOM and domain is None:
        raise invalid("domain is required with generation_type 2 (custom short codes)")
    days = _int("expiration_time", body.expiration_time, DEFAULT_DAYS)
    if not 1 <= days <= MAX_DAYS[kind]:
        raise invalid(f"expiration_time must be 1 to {MAX_DAYS[kind]} days for {kind} links")
    if kind == GROUP:
        times = _int("resolving_times", body.resolving_times, 0)
        if not 2 <= times <= MAX_RESOLVING_TIMES:
            raise invalid("resolving_times of a group link must be at least 2")
    else:
        times = 1  # KooMessage: an individual link resolves once; other values are ignored
    raw_params = body.params
    if raw_params is None or raw_params == []:
        raise ApiError.of(EMPTY_INPUT, f"{EMPTY_INPUT.message}: params has no link")
    if not isinstance(raw_params, list):
        raise invalid("params must be a list")
    if len(raw_params) > MAX_LINKS:
        raise ApiError.of(
            TOO_MANY_SHORT_LINKS, f"{TOO_MANY_SHORT_LINKS.message} ({len(raw_params)} > {MAX_LINKS} per call)"
        )
    if kind == GROUP and len(raw_params) > 1:
        raise ApiError.of(TOO_MANY_SHORT_LINKS, f"{TOO_MANY_SHORT_LINKS.message} (a group task has one link)")
    links: list[LinkPlan] = []
    flags: set[str] = set()
    short_codes: set[str] = set()
    for position, raw in enumerate(raw_params):
        param = _param(position, raw)
        cust_flag = _text(f"params[{position}].cust_flag", param.cust_flag)
        if kind == INDIVIDUAL and not cust_flag:
            raise invalid(f"params[{position}].cust_flag is required for individual links")
        if len(cust_flag) > MAX_CUST_FLAG_CHARS:
            raise invalid(f"params[{position}].cust_flag must have at most {MAX_CUST_FLAG_CHARS} characters")
        if kind == INDIVIDUAL and cust_flag in flags:
            raise invalid(f"params[{position}].cust_flag {cust_flag} is repeated: one link per cust_flag")
        flags.add(cust_flag)
        dync = param.dync_params or {}
        if not isinstance(dync, dict) or any(isinstance(v, (dict, list)) for v in dync.values()):
            raise invalid(f"params[{position}].dync_params must be an object of texts")
        custom_url = _text(f"params[{position}].custom_url", param.custom_url)
        short_code = _text(f"params[{position}].custom_short_code", param.custom_short_code)
        if generation == CUSTOM:
            custom_url = ""  # KooMessage: not supported with custom short codes, the value is ignored
            if not CUSTOM_CODE.fullmatch(short_code):
                raise invalid(f"params[{position}].custom_short_code must be 3-10 letters and digits")
            if short_code in short_codes:
                raise ApiError.of(
                    DUPLICATE_CUSTOM_SHORT_LINK,
                    f"{DUPLICATE_CUSTOM_SHORT_LINK.message}: {short_code} is requested twice",
                )
            short_codes.add(short_code)
        else:
            short_code = ""
        if custom_url:
            if kind != GROUP:
                raise invalid(f"params[{position}].custom_url is accepted for group links only")
            if len(custom_url) > MAX_CUSTOM_URL_CHARS or not custom_url.lower().startswith(("http://", "https://")):
                raise invalid(f"params[{position}].custom_url must be an http(s) URL of at most 256 characters")
        links.append(
            LinkPlan(
                index=position,
                cust_flag=cust_flag,
                dync_params={param_key(str(k)): "" if v is None else str(v) for k, v in dync.items()},
                custom_url=custom_url,
                custom_short_code=short_code,
            )
        )
    return TaskPlan(task_name, tpl_id, signs, kind, generation, domain, days, times, links)


async def check_domain(context: GatewayContext, tenant_id: str, plan: TaskPlan) -> None:
    """The task's domain is one of the tenant's approved short-link domains, for this kind of code."""
    if plan.domain is None:
        return
    doc = await context.collections.domains.find_one(
        {"tenant_id": tenant_id, "domain": plan.domain}, {"status": 1, "custom_short_code": 1}
    )
    if doc is None or doc.get("status") != DOMAIN_APPROVED:
        state = "is not a domain of yours" if doc is None else f"is {doc.get('status')}"
        raise codes.fail(codes.DOMAIN_UNUSABLE, f"domain {plan.domain} {state}")
    custom = plan.generation_type == CUSTOM
    if bool(doc.get("custom_short_code")) != custom:
        wanted = "custom short codes" if custom else "standard short codes"
        raise codes.fail(codes.DOMAIN_UNUSABLE, f"domain {plan.domain} is not registered for {wanted}")


def link_domain(context: GatewayContext, plan: TaskPlan) -> str:
    return f"https://{plan.domain}/" if plan.domain else context.config.link_domain


async def load_template(context: GatewayContext, tenant_id: str, plan: TaskPlan) -> dict[str, Any]:
    """The caller's approved template; the links' card parameters must be exactly the template's."""
    card = await context.collections.aim_templates.find_one({"_id": plan.tpl_id, "tenant_id": tenant_id})
    if card is None:
        raise codes.fail(codes.AIM_TEMPLATE_NOT_FOUND, f"tpl_id {plan.tpl_id}")
    vendors = [f["factory_type"] for f in card.get("factory_info", []) if f.get("state") == 1]
    if not vendors or card.get("tpl_state") != 1:
        raise codes.fail(codes.AIM_TEMPLATE_NOT_APPROVED, f"tpl_id {plan.tpl_id}")
    expected = {p["key"] for p in card.get("params", [])}
    if expected and plan.kind == GROUP:
        raise invalid("a template with card parameters needs aim_code_type individual")
    for link in plan.links:
        if link.dync_params.keys() != expected:
            raise ApiError.of(
                CARD_PARAMS_MISMATCH,
                f"{CARD_PARAMS_MISMATCH.message}: params[{link.index}] has {sorted(link.dync_params)}, "
                f"the template expects {sorted(expected)}",
            )
    return card


# --- documents ------------------------------------------------------------------------------------------------------


def task_document(
    principal: Principal, plan: TaskPlan, card: dict[str, Any], task_id: str, created_at: datetime
) -> dict[str, Any]:
    return {
        "_id": task_id,
        "tenant_id": principal.tenant_id,
        "task_name": plan.task_name,
        "tpl_id": plan.tpl_id,
        "tpl_name": card.get("tpl_name", ""),
        "sms_signs": plan.sms_signs,
        "resolving_times": plan.resolving_times,
        "resolved_times": 0,
        "aim_code_type": plan.kind,
        "generation_type": plan.generation_type,
        "domain": plan.domain,
        "expiration_time": plan.days,
        "state": STATE_GENERATING,
        "link_count": len(plan.links),
        "minted": 0,
        "created_at": created_at,
        "expires_at": created_at + timedelta(days=plan.days),
        "operator": principal.user_name or principal.user_id,
    }


def link_documents(task: dict[str, Any], plan: TaskPlan) -> list[dict[str, Any]]:
    return [
        {
            "_id": f"{task['_id']}:{link.index}",
            "tenant_id": task["tenant_id"],
            "task_id": task["_id"],
            "task_name": task["task_name"],
            "tpl_id": task["tpl_id"],
            "tpl_name": task["tpl_name"],
            "sms_signs": task["sms_signs"],
            "operator": task["operator"],
            "aim_code_type": task["aim_code_type"],
            "index": link.index,
            "cust_flag": link.cust_flag,
            # card parameter names are customer input (may contain "." or start with "$"): stored as pairs
            "dync_params": [{"k": k, "v": v} for k, v in link.dync_params.items()],
            "custom_url": link.custom_url,
            "custom_short_code": link.custom_short_code,
            "code": "",
            "aim_url": "",
            "result_code": "",
            "error_message": "",
            "max_resolutions": task["resolving_times"],
            "resolved_times": 0,
            "created_at": task["created_at"],
            "expires_at": task["expires_at"],
        }
        for link in plan.links
    ]


def mint_request(context: GatewayContext, task: dict[str, Any], plan: TaskPlan) -> dict[str, Any]:
    return {
        "tenant_id": task["tenant_id"],
        "task_id": task["_id"],
        "tpl_id": task["tpl_id"],
        "tpl_name": task["tpl_name"],
        "group": plan.kind == GROUP,
        "max_resolutions": plan.resolving_times,
        "link_domain": link_domain(context, plan),
        "aim_url": "",  # receipts of these links go to the tenant's default callback
        "created_at_ms": to_ms(task["created_at"]),
        "expires_at_ms": to_ms(task["expires_at"]),
        "links": [
            {
                "index": link.index,
                "cust_flag": link.cust_flag,
                "params": link.dync_params,
                "custom_url": link.custom_url,
                "custom_code": link.custom_short_code,
            }
            for link in plan.links
        ],
    }


async def mint(context: GatewayContext, task: dict[str, Any], plan: TaskPlan) -> list[dict[str, Any]]:
    """The shortlink service's result per link (in plan order)."""
    config = context.config
    if not config.shortlink_internal_token:
        raise UpstreamUnavailable("MAGPIE_SHORTLINK_INTERNAL_TOKEN is not configured")
    answer = await post_json(
        config.shortlink_url,
        MINT_PATH,
        mint_request(context, task, plan),
        timeout_s=config.upstream_timeout_s,
        headers={TOKEN_HEADER: config.shortlink_internal_token},
        service="shortlink",
    )
    links = answer.get("links")
    if not isinstance(links, list) or len(links) != len(plan.links):
        raise UpstreamUnavailable("shortlink answered an unexpected body")
    by_index = {int(item.get("index", -1)): item for item in links if isinstance(item, dict)}
    if set(by_index) != {link.index for link in plan.links}:
        raise UpstreamUnavailable("shortlink answered other links than requested")
    return [by_index[link.index] for link in plan.links]


def state_of(minted: int, total: int) -> str:
    return STATE_SUCCESS if minted == total else STATE_PARTIAL if minted else STATE_FAILED


async def store_results(context: GatewayContext, links: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """The shortlink service's answer per link into the link documents (and ``links``, updated in place)."""
    ops: list[UpdateOne] = []
    for doc, result in zip(links, results, strict=True):
        code = str(result.get("code") or "")
        changes = {
            "code": code,
            "aim_url": str(result.get("short_url") or ""),
            "result_code": str(result.get("result_code") or OK) if code else str(result.get("result_code") or "1"),
            "error_message": str(result.get("error_message") or ""),
        }
        doc.update(changes)
        ops.append(UpdateOne({"_id": doc["_id"], "tenant_id": doc["tenant_id"]}, {"$set": changes}))
    if ops:
        await context.collections.resolve_links.bulk_write(ops, ordered=False)


async def create(context: GatewayContext, principal: Principal, body: CreateResolveTaskRequestBody) -> dict[str, Any]:
    plan = check_shape(body)
    card = await load_template(context, principal.tenant_id, plan)
    await check_domain(context, principal.tenant_id, plan)
    c = context.collections
    task = task_document(principal, plan, card, new_id(TASK_PREFIX), utc_now())
    links = link_documents(task, plan)
    await c.resolve_tasks.insert_one(task)
    await c.resolve_links.insert_many(links, ordered=True)
    try:
        results = await mint(context, task, plan)
    except (UpstreamUnavailable, UpstreamRefused) as exc:
        detail = str(exc)
        await c.resolve_links.update_many(
            {"task_id": task["_id"]},
            {"$set": {"result_code": codes.UPSTREAM_UNAVAILABLE.code, "error_message": detail}},
        )
        await c.resolve_tasks.update_one({"_id": task["_id"]}, {"$set": {"state": STATE_FAILED}})
        raise unavailable("shortlink") from exc
    await store_results(context, links, results)
    minted = sum(1 for doc in links if doc["result_code"] == OK)
    state = state_of(minted, len(links))
    await c.resolve_tasks.update_one({"_id": task["_id"]}, {"$set": {"state": state, "minted": minted}})
    task.update(state=state, minted=minted)
    return {
        **task_fields(task),
        "params": [link_view(doc, with_custom_code=True) for doc in links],
        "task_state": state,
        # Magpie extensions
        "task_name": task["task_name"],
        "generation_type": task["generation_type"],
        "creation_time": iso(task["created_at"]),
        "link_count": task["link_count"],
        "minted_count": minted,
    }


# --- views ----------------------------------------------------------------------------------------------------------


def task_fields(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": task["_id"],
        "tpl_id": task["tpl_id"],
        "sms_signs": task["sms_signs"],
        "resolving_times": task["resolving_times"],
        "resolved_times": int(task.get("resolved_times") or 0),
        "aim_code_type": task["aim_code_type"],
        "domain": task.get("domain"),
        "expiration_time": task["expiration_time"],
    }


def resolved_status(doc: dict[str, Any], now: datetime) -> str:
    """success (resolved at least once), fail (the link was not minted, or expired unresolved), unresolved."""
    if int(doc.get("resolved_times") or 0) > 0:
        return "success"
    if doc.get("result_code") != OK or doc["expires_at"] <= now:
        return "fail"
    return "unresolved"


def link_view(doc: dict[str, Any], *, with_custom_code: bool = False) -> dict[str, Any]:
    """``CreateResolveTaskParamMode`` / ``ListResolveTaskResultParam`` of a link document."""
    view: dict[str, Any] = {
        "cust_flag": doc["cust_flag"] or None,
        "cust_id": doc["tenant_id"],
        "dync_params": {p["k"]: p["v"] for p in doc.get("dync_params", [])},
        "custom_url": doc.get("custom_url") or None,
        "aim_url": doc.get("aim_url") or None,
        "aim_code": doc.get("code") or None,
        "ext_data": None,
        "result_code": doc.get("result_code") or None,
        "error_message": doc.get("error_message") or None,
        "generate_date": iso(doc["created_at"]),
        "expire_date": iso(doc["expires_at"]),
        "resolved_date": iso(doc.get("first_resolved_at")),
        "resolved_times": int(doc.get("resolved_times") or 0),
    }
    if with_custom_code:
        view["custom_short_code"] = doc.get("custom_short_code") or None
    return view


def list_view(task: dict[str, Any], first_link: dict[str, Any] | None) -> dict[str, Any]:
    """``ListResolveTaskResult`` (plus Magpie extensions) of a task."""
    return {
        **task_fields(task),
        "task_name": task.get("task_name"),
        "params": [link_view(first_link)] if first_link is not None else [],
        # Magpie extensions
        "task_state": task["state"],
        "generation_type": task.get("generation_type"),
        "creation_time": iso(task["created_at"]),
        "link_count": task["link_count"],
        "minted_count": int(task.get("minted") or 0),
    }


def detail_view(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``AIMResolveDetail`` (plus Magpie extensions) of a resolution-task link."""
    return {
        "resolve_id": doc["_id"],
        "task_id": doc["task_id"],
        "task_name": doc.get("task_name"),
        "send_account": doc.get("operator"),
        "tpl_id": doc.get("tpl_id"),
        "tpl_name": doc.get("tpl_name"),
        "cust_flag": doc.get("cust_flag") or None,
        "aim_url": doc.get("aim_url") or None,
        "result_code": doc.get("result_code") or None,
        "generate_date": iso(doc["created_at"]),
        "expire_date": iso(doc["expires_at"]),
        "resolved_time": iso(doc.get("first_resolved_at")),
        "resolved_status": resolved_status(doc, now),
        # Magpie extensions
        "aim_code": doc.get("code") or None,
        "aim_code_type": doc.get("aim_code_type"),
        "resolved_times": int(doc.get("resolved_times") or 0),
        "last_resolved_time": iso(doc.get("last_resolved_at")),
        "sms_signs": doc.get("sms_signs"),
    }
