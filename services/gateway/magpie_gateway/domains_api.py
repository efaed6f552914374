"""Short-link domains (域名管理) and custom jump links (自定义跳转链接). Magpie-only operations (the KooMessage SDK
has none), AK/SK signed like the rest:

=============================  ========================================  ===============================================
operation (route summary)      route                                     what it does
=============================  ========================================  ===============================================
``upload_domain_file``         POST   /v1/magpie/domain-files            material of a domain (``purpose=domain``: pdf
                                                                         <= 2 MB, the company relation letter) or of a
                                                                         jump-link batch (``purpose=jump_link``: rar or
                                                                         zip <= 2 MB)
``create_domain``              POST   /v1/magpie/domains                 add a domain (sent to review)
``list_domains``               GET    /v1/magpie/domains                 filters ``status``, ``domain`` (contains),
                                                                         ``begin_time``/``end_time``
``show_domain``                GET    /v1/magpie/domains/{id}
``update_domain``              PUT    /v1/magpie/domains/{id}            only a REJECTED domain; back to PENDING
``set_default_domain``         POST   /v1/magpie/domains/{id}/default    only an APPROVED domain
``delete_domain``              DELETE /v1/magpie/domains/{id}            always refused: KM.00000507 (404 if unknown)
``create_jump_links``          POST   /v1/magpie/jump-links              a batch typed in: 1 to 10 links (JSON)
``import_jump_links``          POST   /v1/magpie/jump-links/import       a batch from an xlsx file: up to 10,000 links
``list_jump_links``            GET    /v1/magpie/jump-links              batches; filters ``task_name`` (contains),
                                                                         ``batch_id``, ``status``, ``link`` (exact),
                                                                         ``begin_time``/``end_time``
``show_jump_links``            GET    /v1/magpie/jump-links/{batch_id}   a batch with a page of its links
=============================  ========================================  ===============================================

**Domains** (user guide 7.2.2). A domain is a host name: labels of letters, digits and hyphens (a hyphen neither
first nor last in a label), separated by dots, at least two labels, at most 253 characters; letters are not case
sensitive (stored in lower case). A tenant cannot add the same domain twice (KM.00000423); uniqueness is per
tenant (proving ownership of the domain is the reviewer's job). States: PENDING (审核中, reviewed by template-review
as ``REVIEW_SUBJECT_DOMAIN``) -> APPROVED (通过) | REJECTED (不通过, ``review_desc`` says why). Only a rejected
domain can be edited (KM.00000506); editing submits it again. Domains cannot be deleted (KM.00000507).

Exactly one approved domain is the default (``is_default``): the first domain approved becomes the default, and
``set_default_domain`` moves it to another approved domain (KM.00000508 for one that is not approved). The
default is the approved domain with the latest ``default_at``, so concurrent changes never leave two defaults.

**Jump links** (user guide 7.2.3). A batch has a task name (<= 64 characters), an application reason (<= 500) and
its links: http(s) URLs of at most 256 characters without white space or credentials; the same link given twice
in a batch is kept once (``duplicates_removed``). Typed in: 1 to 10 links; from a file: an xlsx workbook (<= 5 MB)
whose first sheet has a header row naming the link column (``url``, ``link``, ``jump_link``, ``跳转链接`` or
``自定义跳转链接``; other columns are ignored) and at most 10,000 links below it; empty rows are skipped. Every
problem is KM.00000509 with the positions (typed in) or row numbers (file) concerned: an unreadable workbook,
no link column, too many links, bad links (the first 20 rows are named). The whole batch is reviewed as
``REVIEW_SUBJECT_JUMP_LINK`` (every link is a text the reviewer scans): PENDING -> APPROVED | REJECTED. Batches
are not edited or deleted: a rejected batch is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any, Literal
from urllib.parse import urlsplit

import openpyxl
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from magpie.v1 import template_pb2
from magpie_common.ids import new_id
from magpie_gateway import codes, console_files, console_reviews
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.console_files import ConsoleFile, UploadedFile
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.files import read_upload
from magpie_gateway.pagination import PageInfo, fetch_page, page
from magpie_gateway.reviews import ReviewTarget, register_review_target
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter, optional_one_of

router = APIRouter(tags=["Short-link domains and jump links"])

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
STATUSES = (PENDING, APPROVED, REJECTED)

DOMAIN_MATERIAL = console_files.rule("domain_material", {"pdf"}, 2)
JUMP_LINK_MATERIAL = console_files.rule("jump_link_material", {"rar", "zip"}, 2)
PURPOSES = {"domain": DOMAIN_MATERIAL, "jump_link": JUMP_LINK_MATERIAL}

MAX_DOMAIN_CHARS = 253
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

MAX_MANUAL_LINKS = 10
MAX_FILE_LINKS = 10_000
MAX_LINK_CHARS = 256
MAX_XLSX_BYTES = 5 * 1024 * 1024
MAX_TASK_NAME = 64
MAX_REASON = 500
REPORTED_ROWS = 20
LINK_HEADERS = frozenset({"url", "link", "links", "jump_link", "jump_links", "跳转链接", "自定义跳转链接", "链接"})
DEFAULT_LINKS_LIMIT = 100


# --- models ---------------------------------------------------------------------------------------------------
class CreateDomainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(max_length=300, description="host name, e.g. s.example.com", examples=["s.magpie-shop.com"])
    custom_short_code: bool = Field(False, description="自定义短码: the tenant wants custom short codes on it")
    material_file_id: str | None = Field(
        None, description="company relation letter (pdf, from upload_domain_file with purpose=domain)"
    )


class UpdateDomainRequest(BaseModel):
    """Only the given fields change; ``material_file_id`` "" removes the material."""

    model_config = ConfigDict(extra="forbid")

    domain: str | None = Field(None, max_length=300, examples=["go.magpie-shop.com"])
    custom_short_code: bool | None = None
    material_file_id: str | None = None


class Domain(BaseModel):
    domain_id: str = Field(examples=["DOM01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    domain: str = Field(examples=["s.magpie-shop.com"])
    custom_short_code: bool
    status: Literal["PENDING", "APPROVED", "REJECTED"]
    is_default: bool
    material: ConsoleFile | None = None
    review_desc: str | None = None
    revision: int = Field(examples=[1])
    create_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    update_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    review_time: str | None = Field(None, examples=["2026-11-22T09:00:00Z"])


class DomainList(BaseModel):
    domains: list[Domain]
    page_info: PageInfo


class CreateJumpLinksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_name: str = Field(max_length=MAX_TASK_NAME, examples=["双十一落地页"])
    apply_reason: str = Field(max_length=MAX_REASON, examples=["活动落地页，需在智能信息中跳转"])
    links: list[str] = Field(
        description=f"1 to {MAX_MANUAL_LINKS} http(s) links of at most {MAX_LINK_CHARS} characters",
        examples=[["https://shop.example.com/double11", "https://shop.example.com/coupon?id=42"]],
    )
    material_file_id: str | None = Field(None, description="rar/zip from upload_domain_file (purpose=jump_link)")


class JumpLinkBatch(BaseModel):
    batch_id: str = Field(examples=["JL01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    task_name: str = Field(examples=["双十一落地页"])
    apply_reason: str = Field(examples=["活动落地页，需在智能信息中跳转"])
    source: Literal["MANUAL", "FILE"]
    file_name: str | None = Field(None, description="the imported workbook (FILE batches)")
    link_count: int = Field(examples=[2])
    duplicates_removed: int = Field(0, examples=[0])
    status: Literal["PENDING", "APPROVED", "REJECTED"]
    review_desc: str | None = None
    material: ConsoleFile | None = None
    create_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    review_time: str | None = Field(None, examples=["2026-11-22T09:00:00Z"])


class JumpLinkBatchList(BaseModel):
    batches: list[JumpLinkBatch]
    page_info: PageInfo


class JumpLinkBatchDetail(JumpLinkBatch):
    links: list[str] = Field(description="one page of the links (offset/limit)")
    links_page_info: PageInfo


# --- domains --------------------------------------------------------------------------------------------------
def normalize_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not domain:
        raise invalid("domain is required")
    if "://" in domain or "/" in domain or ":" in domain:
        raise invalid("domain must be a host name only (no scheme, port or path), e.g. s.example.com")
    if len(domain) > MAX_DOMAIN_CHARS:
        raise invalid(f"domain must have at most {MAX_DOMAIN_CHARS} characters")
    labels = domain.split(".")
    if len(labels) < 2:
        raise invalid("domain must have at least two labels, e.g. s.example.com")
    for label in labels:
        if not LABEL.fullmatch(label):
            raise invalid(
                f"domain label {label!r} is not valid: letters, digits and hyphens only, 1-63 characters, "
                "no hyphen at the start or end"
            )
    if labels[-1].isdigit():
        raise invalid("domain must end with a top-level domain, not a number")
    return domain


async def _material(
    context: GatewayContext, tenant_id: str, file_id: str | None, purpose: str
) -> dict[str, Any] | None:
    """The stored material file ``material_file_id`` of a domain or jump-link batch (``PURPOSES``), None if none."""
    if not file_id or not file_id.strip():
        return None
    rule = PURPOSES[purpose]
    stored = await console_files.referenced(
        context, tenant_id, file_id.strip(), kind=rule.kind, accepted=rule.extensions, what="material_file_id"
    )
    return console_files.file_view(stored)


async def _default_domain_id(context: GatewayContext, tenant_id: str) -> str | None:
    doc = await context.collections.domains.find_one(
        {"tenant_id": tenant_id, "status": APPROVED, "default_at": {"$ne": None}},
        {"_id": 1},
        sort=[("default_at", -1), ("_id", -1)],
    )
    return None if doc is None else str(doc["_id"])


def domain_view(doc: dict[str, Any], default_id: str | None) -> dict[str, Any]:
    return {
        "domain_id": doc["_id"],
        "domain": doc["domain"],
        "custom_short_code": bool(doc.get("custom_short_code")),
        "status": doc["status"],
        "is_default": doc["_id"] == default_id,
        "material": doc.get("material"),
        "review_desc": doc.get("review_desc"),
        "revision": doc["revision"],
        "create_time": iso(doc.get("created_at")),
        "update_time": iso(doc.get("updated_at")),
        "review_time": iso(doc.get("reviewed_at")),
    }


def domain_review(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    texts = [doc["domain"]]
    if doc.get("material"):
        texts.append(f"material: {doc['material']['file_name']} ({doc['material']['file_id']})")
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_DOMAIN,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["domain"],
        use_template_type="custom_short_code" if doc.get("custom_short_code") else "domain",
        texts=texts,
    )


def _domain_decision(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    return {"status": APPROVED if review.approved else REJECTED, "review_desc": review.reason or None}


async def _first_default(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    """The tenant's first approved domain becomes its default."""
    if context is None or doc.get("status") != APPROVED:
        return
    if await _default_domain_id(context, doc["tenant_id"]) is None:
        await context.collections.domains.update_one(
            {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "default_at": None}, {"$set": {"default_at": utc_now()}}
        )


register_review_target(
    template_pb2.REVIEW_SUBJECT_DOMAIN, ReviewTarget("domains", "domain", _domain_decision, _first_default)
)


async def _own_domain(context: GatewayContext, tenant_id: str, domain_id: str) -> dict[str, Any]:
    doc = await context.collections.domains.find_one({"_id": domain_id, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"domain {domain_id}")
    return doc


@router.post("/v1/magpie/domain-files", response_model=UploadedFile, summary="upload_domain_file")
async def upload_domain_file(
    purpose: str = Form(description="domain (pdf <= 2 MB) or jump_link (rar/zip <= 2 MB)"),
    file: UploadFile | None = File(None, description="the material"),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    rule = PURPOSES.get(purpose.strip())
    if rule is None:
        raise invalid("purpose must be domain or jump_link")
    return await console_files.upload(context, principal.tenant_id, rule, file, purpose=purpose.strip())


@router.post("/v1/magpie/domains", response_model=Domain, summary="create_domain")
async def create_domain(
    body: CreateDomainRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    domain = normalize_domain(body.domain)
    now = utc_now()
    doc: dict[str, Any] = {
        "_id": new_id("DOM"),
        "tenant_id": tenant,
        "domain": domain,
        "name_key": domain,
        "custom_short_code": body.custom_short_code,
        "material": await _material(context, tenant, body.material_file_id, "domain"),
        "status": PENDING,
        "review_desc": None,
        "revision": 1,
        "default_at": None,
        "created_at": now,
        "updated_at": now,
        "reviewed_at": None,
        "operator": principal.user_name or principal.user_id,
    }
    try:
        await console_reviews.insert(
            context, context.collections.domains, doc, domain_review(doc), trace_id=request_id(request)
        )
    except DuplicateKeyError:
        raise fail(codes.NAME_TAKEN, f"domain {domain} was already added") from None
    return domain_view(doc, await _default_domain_id(context, tenant))


@router.get("/v1/magpie/domains", response_model=DomainList, summary="list_domains")
async def list_domains(
    status: str | None = None,
    domain: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    tenant = principal.tenant_id
    query = list_filter(
        tenant,
        equal={"status": optional_one_of("status", status, STATUSES)},
        contains={"domain": domain and domain.strip()},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.domains, query, paging)
    default_id = await _default_domain_id(context, tenant)
    return {"domains": [domain_view(d, default_id) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/magpie/domains/{domain_id}", response_model=Domain, summary="show_domain")
async def show_domain(
    domain_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await _own_domain(context, principal.tenant_id, domain_id)
    return domain_view(doc, await _default_domain_id(context, principal.tenant_id))


@router.put("/v1/magpie/domains/{domain_id}", response_model=Domain, summary="update_domain")
async def update_domain(
    domain_id: str,
    body: UpdateDomainRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    before = await _own_domain(context, tenant, domain_id)
    if before["status"] != REJECTED:
        raise fail(codes.DOMAIN_NOT_EDITABLE, f"domain {before['domain']} is {before['status']}")
    after = dict(before)
    if body.domain is not None:
        after["domain"] = after["name_key"] = normalize_domain(body.domain)
    if body.custom_short_code is not None:
        after["custom_short_code"] = body.custom_short_code
    if body.material_file_id is not None:
        after["material"] = await _material(context, tenant, body.material_file_id, "domain")
    now = utc_now()
    after.update(
        status=PENDING,
        review_desc=None,
        revision=before["revision"] + 1,
        updated_at=now,
        operator=principal.user_name or principal.user_id,
    )
    try:
        await console_reviews.replace(
            context,
            context.collections.domains,
            before,
            after,
            domain_review(after),
            trace_id=request_id(request),
            conflict=fail(codes.DOMAIN_NOT_EDITABLE, "the domain was changed by another request meanwhile"),
        )
    except DuplicateKeyError:
        raise fail(codes.NAME_TAKEN, f"domain {after['domain']} was already added") from None
    return domain_view(after, await _default_domain_id(context, tenant))


@router.post("/v1/magpie/domains/{domain_id}/default", response_model=Domain, summary="set_default_domain")
async def set_default_domain(
    domain_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    doc = await _own_domain(context, tenant, domain_id)
    if doc["status"] != APPROVED:
        raise fail(codes.DOMAIN_NOT_APPROVED, f"domain {doc['domain']} is {doc['status']}")
    now = utc_now()
    result = await context.collections.domains.update_one(
        {"_id": domain_id, "tenant_id": tenant, "status": APPROVED}, {"$set": {"default_at": now, "updated_at": now}}
    )
    if result.matched_count != 1:
        raise fail(codes.DOMAIN_NOT_APPROVED, f"domain {doc['domain']} is no longer approved")
    doc.update(default_at=now, updated_at=now)
    return domain_view(doc, await _default_domain_id(context, tenant))


@router.delete(
    "/v1/magpie/domains/{domain_id}",
    response_model=Domain,
    summary="delete_domain",
    description="Domains cannot be deleted: always 400 KM.00000507 (404 for an unknown domain).",
)
async def delete_domain(
    domain_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await _own_domain(context, principal.tenant_id, domain_id)
    raise fail(codes.DOMAIN_NOT_DELETABLE, f"domain {doc['domain']} stays; a rejected domain can be edited instead")


# --- jump links -----------------------------------------------------------------------------------------------
def link_problem(value: Any) -> str | None:
    """Why ``value`` is not an acceptable jump link (None when it is)."""
    if not isinstance(value, str):
        return "not text"
    if not value:
        return "empty"
    if len(value) > MAX_LINK_CHARS:
        return f"longer than {MAX_LINK_CHARS} characters"
    if any(ch.isspace() for ch in value):
        return "contains white space"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return "malformed"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http(s) link"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "carries credentials"
    return None


def _dedupe(links: list[str]) -> tuple[list[str], int]:
    unique = list(dict.fromkeys(links))
    return unique, len(links) - len(unique)


def _report(problems: list[str], total: int) -> str:
    shown = "; ".join(problems[:REPORTED_ROWS])
    more = f"; and {len(problems) - REPORTED_ROWS} more" if len(problems) > REPORTED_ROWS else ""
    return f"{total} bad link(s): {shown}{more}"


def manual_links(values: list[str]) -> tuple[list[str], int]:
    links = [v.strip() for v in values]
    if not links:
        raise fail(codes.JUMP_LINKS_INVALID, "give at least one link")
    if len(links) > MAX_MANUAL_LINKS:
        raise fail(
            codes.JUMP_LINKS_INVALID,
            f"at most {MAX_MANUAL_LINKS} links can be typed in ({len(links)} given); import an xlsx file for more",
        )
    problems = [f"links[{i}] {problem}" for i, v in enumerate(links) if (problem := link_problem(v))]
    if problems:
        raise fail(codes.JUMP_LINKS_INVALID, _report(problems, len(problems)))
    return _dedupe(links)


def parse_workbook(data: bytes) -> list[str]:
    """The links of an xlsx workbook (blocking: run it in a thread); KM.00000509 with row numbers."""
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, InvalidFileException, KeyError, XML errors of damaged parts ...
        raise fail(
            codes.JUMP_LINKS_INVALID, f"the file is not a readable xlsx workbook ({type(exc).__name__})"
        ) from None
    try:
        if not workbook.worksheets:
            raise fail(codes.JUMP_LINKS_INVALID, "the workbook has no sheet")
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        column: int | None = None
        header_row = 0
        for number, row in enumerate(rows, start=1):
            cells = [str(c).strip().lower() if c is not None else "" for c in row]
            if not any(cells):
                continue
            header_row = number
            column = next((i for i, c in enumerate(cells) if c in LINK_HEADERS), None)
            if column is None:
                raise fail(
                    codes.JUMP_LINKS_INVALID,
                    f"row {number}: the header row must name the link column ({', '.join(sorted(LINK_HEADERS))}); "
                    f"found {', '.join(c for c in cells if c) or 'nothing'}",
                )
            break
        if column is None:
            raise fail(codes.JUMP_LINKS_INVALID, "the first sheet is empty")
        links: list[str] = []
        problems: list[str] = []
        bad = 0
        for number, row in enumerate(rows, start=header_row + 1):
            value = row[column] if column < len(row) else None
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if len(links) + bad >= MAX_FILE_LINKS:
                raise fail(
                    codes.JUMP_LINKS_INVALID,
                    f"row {number}: a file holds at most {MAX_FILE_LINKS} links; split it into several batches",
                )
            text = value.strip() if isinstance(value, str) else value
            problem = link_problem(text)
            if problem:
                bad += 1
                if len(problems) < REPORTED_ROWS + 1:
                    problems.append(f"row {number} {problem}")
                continue
            links.append(text)
        if bad:
            raise fail(codes.JUMP_LINKS_INVALID, _report(problems, bad))
        if not links:
            raise fail(codes.JUMP_LINKS_INVALID, f"no link below the header (row {header_row})")
        return links
    finally:
        workbook.close()


def _text(name: str, value: str, max_chars: int) -> str:
    text = value.strip()
    if not text:
        raise invalid(f"{name} is required")
    if len(text) > max_chars:
        raise invalid(f"{name} must have at most {max_chars} characters")
    return text


def batch_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch_id": doc["_id"],
        "task_name": doc["task_name"],
        "apply_reason": doc["apply_reason"],
        "source": doc["source"],
        "file_name": doc.get("file_name"),
        "link_count": doc["link_count"],
        "duplicates_removed": doc.get("duplicates_removed", 0),
        "status": doc["status"],
        "review_desc": doc.get("review_desc"),
        "material": doc.get("material"),
        "create_time": iso(doc.get("created_at")),
        "review_time": iso(doc.get("reviewed_at")),
    }


def jump_review(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_JUMP_LINK,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["task_name"],
        use_template_type=doc["source"],
        texts=[doc["apply_reason"], *doc["links"]],
    )


def _jump_decision(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    return {"status": APPROVED if review.approved else REJECTED, "review_desc": review.reason or None}


register_review_target(template_pb2.REVIEW_SUBJECT_JUMP_LINK, ReviewTarget("jump_links", "jump_link", _jump_decision))


async def _store_batch(
    context: GatewayContext,
    principal: Principal,
    request: Request,
    *,
    task_name: str,
    apply_reason: str,
    links: list[str],
    duplicates: int,
    source: str,
    file_name: str | None,
    material: dict[str, Any] | None,
) -> dict[str, Any]:
    now = utc_now()
    doc: dict[str, Any] = {
        "_id": new_id("JL"),
        "tenant_id": principal.tenant_id,
        "task_name": task_name,
        "apply_reason": apply_reason,
        "source": source,
        "file_name": file_name,
        "links": links,
        "link_count": len(links),
        "duplicates_removed": duplicates,
        "material": material,
        "status": PENDING,
        "review_desc": None,
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "reviewed_at": None,
        "operator": principal.user_name or principal.user_id,
    }
    await console_reviews.insert(
        context, context.collections.jump_links, doc, jump_review(doc), trace_id=request_id(request)
    )
    return batch_view(doc)


@router.post("/v1/magpie/jump-links", response_model=JumpLinkBatch, summary="create_jump_links")
async def create_jump_links(
    body: CreateJumpLinksRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    task_name = _text("task_name", body.task_name, MAX_TASK_NAME)
    reason = _text("apply_reason", body.apply_reason, MAX_REASON)
    links, duplicates = manual_links(body.links)
    material = await _material(context, principal.tenant_id, body.material_file_id, "jump_link")
    return await _store_batch(
        context,
        principal,
        request,
        task_name=task_name,
        apply_reason=reason,
        links=links,
        duplicates=duplicates,
        source="MANUAL",
        file_name=None,
        material=material,
    )


@router.post("/v1/magpie/jump-links/import", response_model=JumpLinkBatch, summary="import_jump_links")
async def import_jump_links(
    request: Request,
    task_name: str = Form(description=f"at most {MAX_TASK_NAME} characters"),
    apply_reason: str = Form(description=f"at most {MAX_REASON} characters"),
    material_file_id: str | None = Form(None),
    file: UploadFile | None = File(
        None, description="xlsx: a header row naming the link column (url), <= 10,000 links"
    ),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    name = _text("task_name", task_name, MAX_TASK_NAME)
    reason = _text("apply_reason", apply_reason, MAX_REASON)
    if file is None:
        raise invalid("file is required (multipart/form-data field 'file', an xlsx workbook)")
    data = await read_upload(file, MAX_XLSX_BYTES)
    if not data:
        raise fail(codes.JUMP_LINKS_INVALID, "the file is empty")
    material = await _material(context, principal.tenant_id, material_file_id, "jump_link")
    links, duplicates = _dedupe(await asyncio.to_thread(parse_workbook, data))
    return await _store_batch(
        context,
        principal,
        request,
        task_name=name,
        apply_reason=reason,
        links=links,
        duplicates=duplicates,
        source="FILE",
        file_name=file.filename or None,
        material=material,
    )


@router.get("/v1/magpie/jump-links", response_model=JumpLinkBatchList, summary="list_jump_links")
async def list_jump_links(
    task_name: str | None = None,
    batch_id: str | None = None,
    status: str | None = None,
    link: str | None = None,
    begin_time: str | None = None,
    end_time: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    query = list_filter(
        principal.tenant_id,
        equal={"status": optional_one_of("status", status, STATUSES)},
        contains={"task_name": task_name and task_name.strip()},
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    if batch_id:  # given but blank: matches nothing
        query["_id"] = batch_id.strip()
    if link:
        query["links"] = link.strip()
    collection = context.collections.jump_links
    total = await collection.count_documents(query)
    docs = (
        await collection.find(query, {"links": 0})
        .sort([("created_at", -1), ("_id", -1)])
        .skip(paging.offset)
        .limit(paging.limit)
        .to_list(None)
    )
    return {"batches": [batch_view(d) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/magpie/jump-links/{batch_id}", response_model=JumpLinkBatchDetail, summary="show_jump_links")
async def show_jump_links(
    batch_id: str,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit, default_limit=DEFAULT_LINKS_LIMIT)
    doc = await context.collections.jump_links.find_one({"_id": batch_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"jump-link batch {batch_id}")
    links = doc["links"][paging.offset : paging.offset + paging.limit]
    return {**batch_view(doc), "links": links, "links_page_info": paging.info(doc["link_count"])}
