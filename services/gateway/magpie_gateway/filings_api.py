"""Enterprise filings (企业备案), one per product and tenant: AIM (smart messages), VMS (video SMS), SA (service
numbers). Magpie-only operations (the KooMessage SDK has none), AK/SK signed like the rest:

=====================================  ==================================  =========================================
operation (route summary)              route                               what it does
=====================================  ==================================  =========================================
``upload_filing_file``                 POST /v1/magpie/filing-files        upload one material (multipart ``file``,
                                                                           form field ``material``)
``download_filing_file``               GET  /v1/magpie/filing-files/{id}   the material's bytes
``create_filing``                      POST /v1/magpie/filings             a DRAFT (or, with ``submit``, PENDING)
``list_filings``                       GET  /v1/magpie/filings             the tenant's filings
``show_filing``                        GET  /v1/magpie/filings/{id}        one filing
``update_filing``                      PUT  /v1/magpie/filings/{id}        change materials / enterprise data
``submit_filing``                      POST /v1/magpie/filings/{id}/submit send a DRAFT (or a REJECTED one) to review
=====================================  ==================================  =========================================

State machine (product-spec §2, user guide 6.1): DRAFT -> PENDING (submitted, reviewed by template-review as
``REVIEW_SUBJECT_FILING``) -> APPROVED | REJECTED.

- Submitting needs every required material and field of the product (KM.00000502 lists what is missing).
- While PENDING, the filing can be neither submitted again nor edited (KM.00000501).
- Editing a REJECTED filing submits it again: it returns to PENDING (so it must be complete).
- Editing an APPROVED filing keeps it APPROVED ("审核通过，修改参数信息后，审核状态不刷新"): the change is stored and
  sent to review as a new revision (``change_under_review`` is true meanwhile, and further edits wait for the
  decision: KM.00000501). If the reviewer approves the change nothing else happens; if the reviewer rejects it the
  filing becomes REJECTED with the reason, because the materials it now holds were refused.
- Submitting an APPROVED filing is refused (KM.00000504): edit it instead. Editing a DRAFT keeps it a DRAFT.
- A decision applies only to the revision it was made for (every change increases ``revision``).

Materials are uploaded once (``upload_filing_file``; the ``material`` form field decides the accepted types and
the 2 MB limit: 413 above it, KM.00000430 for another type, decided by the content) and referenced by ``file_id``.
The same file may be referenced by the filings of several products. Shared data is not re-uploaded across
products: when a filing is created, the shared materials (business licence, material commitment letter, signature
authorisation letter, company relation letter) and the enterprise data it does not give are taken from the
tenant's approved filings of the other products (``shared_from`` names the product each came from; disable with
``inherit_shared: false``).

=============================== ========================== ================== ===================================
material                        accepted                   required for       used by
=============================== ========================== ================== ===================================
``business_license``            pdf, jpg, png <= 2 MB      AIM, VMS, SA       all (shared)
``material_commitment``         pdf <= 2 MB                AIM, VMS           AIM, VMS (shared)
``signature_authorization``     pdf <= 2 MB                AIM, VMS           AIM, VMS (shared)
``company_relation``            pdf <= 2 MB                AIM, VMS           all (shared; optional for SA)
``port_registration``           pdf <= 2 MB                VMS                VMS
``smart_message_authorization`` pdf <= 2 MB                SA                 SA
``special_materials``           rar, zip <= 2 MB, up to 5  -                  all
=============================== ========================== ================== ===================================

Enterprise data: for SA every field is required (certificate type THREE_IN_ONE | FIVE_IN_ONE | NON_PROFIT, name,
unified social credit code — or organisation code for NON_PROFIT —, contact, phone, e-mail, enterprise type,
industry); for AIM and VMS the certificate type is BUSINESS_LICENSE and the other fields are optional. The filing
id is derived from the tenant and the product, so a tenant has at most one filing per product (KM.00000503).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from magpie.v1 import template_pb2
from magpie_common.ids import stable_id
from magpie_gateway import codes, console_files, console_reviews
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.console_files import ConsoleFile, UploadedFile
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.errors import ApiError
from magpie_gateway.pagination import PageInfo, fetch_page, page
from magpie_gateway.reviews import ReviewTarget, register_review_target
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, list_filter, optional_one_of

router = APIRouter(tags=["Enterprise filings"])

Product = Literal["AIM", "VMS", "SA"]
PRODUCTS: tuple[str, ...] = ("AIM", "VMS", "SA")
ALL = frozenset(PRODUCTS)

DRAFT = "DRAFT"
PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
STATUSES = (DRAFT, PENDING, APPROVED, REJECTED)

FILE_KIND = "filing"
MAX_SPECIAL = 5
SPECIAL = "special_materials"


@dataclass(frozen=True)
class Material:
    name: str
    title: str
    extensions: frozenset[str]
    required: frozenset[str]
    used_by: frozenset[str]
    shared: bool


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("business_license", "企业营业执照", frozenset({"pdf", "jpg", "png"}), ALL, ALL, True),
        Material(
            "material_commitment",
            "智能信息业务素材承诺函",
            frozenset({"pdf"}),
            frozenset({"AIM", "VMS"}),
            frozenset({"AIM", "VMS"}),
            True,
        ),
        Material(
            "signature_authorization",
            "签名授权函",
            frozenset({"pdf"}),
            frozenset({"AIM", "VMS"}),
            frozenset({"AIM", "VMS"}),
            True,
        ),
        Material("company_relation", "公司关系授权函", frozenset({"pdf"}), frozenset({"AIM", "VMS"}), ALL, True),
        Material(
            "port_registration", "端口客户信息登记书", frozenset({"pdf"}), frozenset({"VMS"}), frozenset({"VMS"}), False
        ),
        Material(
            "smart_message_authorization",
            "智能信息授权书",
            frozenset({"pdf"}),
            frozenset({"SA"}),
            frozenset({"SA"}),
            False,
        ),
        Material(SPECIAL, "特殊材料", frozenset({"rar", "zip"}), frozenset(), ALL, False),
    )
}
UPLOAD_RULES = {m.name: console_files.rule(FILE_KIND, set(m.extensions), 2) for m in MATERIALS.values()}

CertificateType = Literal["BUSINESS_LICENSE", "THREE_IN_ONE", "FIVE_IN_ONE", "NON_PROFIT"]
EnterpriseType = Literal[
    "ENTERPRISE",
    "GOVERNMENT",
    "PUBLIC_INSTITUTION",
    "INDIVIDUAL_BUSINESS",
    "PRIVATE_NON_ENTERPRISE",
    "SOCIAL_ORGANIZATION",
]
Industry = Literal[
    "FINANCE",
    "SOCIAL",
    "ENTERTAINMENT",
    "TRAVEL",
    "SHOPPING",
    "LOCAL_LIFE",
    "HEALTH",
    "EDUCATION",
    "NEWS",
    "CARRIER",
    "OTHER",
]
ENTERPRISE_FIELDS = (
    "certificate_type",
    "enterprise_name",
    "credit_code",
    "contact_name",
    "contact_phone",
    "contact_email",
    "enterprise_type",
    "industry",
)
CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
ORGANIZATION_CODE = re.compile(r"[0-9A-Z]{8}-?[0-9X]")
PHONE = re.compile(r"\+?[0-9][0-9\- ]{4,19}")
EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")


# --- models ---------------------------------------------------------------------------------------------------
class EnterpriseInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate_type: CertificateType | None = Field(
        None, description="AIM/VMS: BUSINESS_LICENSE (default); SA: THREE_IN_ONE, FIVE_IN_ONE or NON_PROFIT"
    )
    enterprise_name: str | None = Field(None, max_length=100, examples=["喜鹊商城有限公司"])
    credit_code: str | None = Field(
        None,
        max_length=18,
        description="unified social credit code (18 characters); organisation code for NON_PROFIT",
        examples=["91310000MA1K35XY2Q"],
    )
    contact_name: str | None = Field(None, max_length=50, examples=["张三"])
    contact_phone: str | None = Field(None, max_length=20, examples=["13900000001"])
    contact_email: str | None = Field(None, max_length=100, examples=["filing@example.com"])
    enterprise_type: EnterpriseType | None = None
    industry: Industry | None = None


class FilingMaterials(BaseModel):
    """``file_id`` of each material (from ``upload_filing_file``); on update, "" removes an optional one."""

    model_config = ConfigDict(extra="forbid")

    business_license: str | None = Field(None, examples=["CF01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    material_commitment: str | None = Field(None, examples=["CF01JD3Q8W5R2K7M9N4P6T8V0X2Z"])
    signature_authorization: str | None = Field(None, examples=["CF01JD3Q8W5R2K7M9N4P6T8V0X30"])
    company_relation: str | None = Field(None, examples=["CF01JD3Q8W5R2K7M9N4P6T8V0X31"])
    port_registration: str | None = None
    smart_message_authorization: str | None = None
    special_materials: list[str] | None = Field(None, max_length=MAX_SPECIAL, description="rar/zip files")


class CreateFilingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: Product = Field(description="AIM (smart messages), VMS (video SMS) or SA (service numbers)")
    enterprise: EnterpriseInfo | None = None
    materials: FilingMaterials | None = None
    submit: bool = Field(False, description="submit for review right away (the filing must be complete)")
    inherit_shared: bool = Field(
        True,
        description="take the shared materials and enterprise data not given from approved filings of other products",
    )


class UpdateFilingRequest(BaseModel):
    """Only the given fields change; omitted ones keep their value."""

    model_config = ConfigDict(extra="forbid")

    enterprise: EnterpriseInfo | None = None
    materials: FilingMaterials | None = None


class FilingMaterialsView(BaseModel):
    business_license: ConsoleFile | None = None
    material_commitment: ConsoleFile | None = None
    signature_authorization: ConsoleFile | None = None
    company_relation: ConsoleFile | None = None
    port_registration: ConsoleFile | None = None
    smart_message_authorization: ConsoleFile | None = None
    special_materials: list[ConsoleFile] = Field(default_factory=list)


class Filing(BaseModel):
    filing_id: str = Field(examples=["FIL5f0c2d7e9a1b4c3d8e6f7a9b"])
    product: Product
    status: Literal["DRAFT", "PENDING", "APPROVED", "REJECTED"]
    revision: int = Field(description="increases with every change", examples=[1])
    change_under_review: bool = Field(
        False, description="an APPROVED filing was edited and the change waits for the review"
    )
    enterprise: EnterpriseInfo
    materials: FilingMaterialsView
    missing: list[str] = Field(description="what is still required before the filing can be submitted")
    shared_from: dict[str, str] = Field(
        default_factory=dict, description="material or field -> product whose approved filing provided it"
    )
    review_desc: str | None = Field(None, description="the reviewer's reason (rejections)")
    create_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    update_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    submit_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    review_time: str | None = Field(None, examples=["2026-11-22T09:00:00Z"])


class FilingList(BaseModel):
    filings: list[Filing]
    page_info: PageInfo


# --- rules ----------------------------------------------------------------------------------------------------
def filing_id(tenant_id: str, product: str) -> str:
    return "FIL" + stable_id("filing", tenant_id, product)[:24]


def missing_items(product: str, enterprise: dict[str, Any], materials: dict[str, Any]) -> list[str]:
    missing = [
        m.name for m in MATERIALS.values() if product in m.required and m.name != SPECIAL and not materials.get(m.name)
    ]
    if product == "SA":
        missing += [f"enterprise.{name}" for name in ENTERPRISE_FIELDS if not enterprise.get(name)]
    return missing


def check_enterprise(product: str, values: dict[str, Any]) -> None:
    certificate = values.get("certificate_type")
    if certificate is not None:
        if product == "SA" and certificate == "BUSINESS_LICENSE":
            raise invalid("enterprise.certificate_type of an SA filing must be THREE_IN_ONE, FIVE_IN_ONE or NON_PROFIT")
        if product != "SA" and certificate != "BUSINESS_LICENSE":
            raise invalid(f"enterprise.certificate_type of an {product} filing must be BUSINESS_LICENSE")
    code = values.get("credit_code")
    if code:
        pattern = ORGANIZATION_CODE if certificate == "NON_PROFIT" else CREDIT_CODE
        if not pattern.fullmatch(code):
            what = "an organisation code (9 characters)" if certificate == "NON_PROFIT" else "18 characters"
            raise invalid(f"enterprise.credit_code must be {what}")
    if values.get("contact_phone") and not PHONE.fullmatch(values["contact_phone"]):
        raise invalid("enterprise.contact_phone must be a phone number (digits, optional +, - and spaces)")
    if values.get("contact_email") and not EMAIL.fullmatch(values["contact_email"]):
        raise invalid("enterprise.contact_email must be an e-mail address")


def _clean_enterprise(given: EnterpriseInfo | None) -> dict[str, Any]:
    """The fields the client gave (None = not given); strings stripped, "" means "clear"."""
    if given is None:
        return {}
    values: dict[str, Any] = {}
    for name in given.model_fields_set:
        value = getattr(given, name)
        if isinstance(value, str):
            value = value.strip()
            if name == "credit_code":
                value = value.upper()
        values[name] = value if value != "" else None
    return values


async def _resolve_materials(
    context: GatewayContext, tenant_id: str, product: str, given: FilingMaterials | None
) -> dict[str, Any]:
    """The given materials as stored file views (None = remove); KM.00000505 for an unusable file."""
    if given is None:
        return {}
    resolved: dict[str, Any] = {}
    for name in given.model_fields_set:
        material = MATERIALS[name]
        value = getattr(given, name)
        if value is None:
            continue
        if product not in material.used_by:
            raise invalid(f"materials.{name} is not part of an {product} filing")
        if name == SPECIAL:
            ids = [v.strip() for v in value if v.strip()]
            if len(set(ids)) != len(ids):
                raise invalid("materials.special_materials lists a file twice")
            resolved[name] = [
                console_files.file_view(
                    await console_files.referenced(
                        context, tenant_id, file_id, kind=FILE_KIND, accepted=material.extensions, what=name
                    )
                )
                for file_id in ids
            ]
            continue
        value = value.strip()
        if not value:
            resolved[name] = None
            continue
        stored = await console_files.referenced(
            context, tenant_id, value, kind=FILE_KIND, accepted=material.extensions, what=name
        )
        resolved[name] = console_files.file_view(stored)
    return resolved


async def _shared(context: GatewayContext, tenant_id: str, product: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shared materials and enterprise data of the tenant's approved filings of other products (newest first),
    and which product each came from."""
    docs = (
        await context.collections.filings.find(
            {"tenant_id": tenant_id, "product": {"$ne": product}, "status": APPROVED}
        )
        .sort("updated_at", -1)
        .to_list(None)
    )
    values: dict[str, Any] = {"materials": {}, "enterprise": {}}
    origin: dict[str, Any] = {}
    for doc in docs:
        for material in MATERIALS.values():
            if material.shared and product in material.used_by and material.name not in values["materials"]:
                stored = doc.get("materials", {}).get(material.name)
                if stored:
                    values["materials"][material.name] = stored
                    origin[material.name] = doc["product"]
        for name in ENTERPRISE_FIELDS:
            if name == "certificate_type" or name in values["enterprise"]:
                continue
            value = doc.get("enterprise", {}).get(name)
            if value:
                values["enterprise"][name] = value
                origin[f"enterprise.{name}"] = doc["product"]
    return values, origin


def review_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    enterprise = doc.get("enterprise", {})
    texts = [str(enterprise[name]) for name in ENTERPRISE_FIELDS if enterprise.get(name)]
    materials = doc.get("materials", {})
    for name, value in materials.items():
        for item in value if isinstance(value, list) else [value]:
            if item:
                texts.append(f"{name}: {item['file_name']} ({item['file_id']})")
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_FILING,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=f"{doc['product']} filing {enterprise.get('enterprise_name') or doc['tenant_id']}",
        use_template_type=doc["product"],
        texts=texts,
    )


def filing_view(doc: dict[str, Any]) -> dict[str, Any]:
    materials = doc.get("materials", {})
    return {
        "filing_id": doc["_id"],
        "product": doc["product"],
        "status": doc["status"],
        "revision": doc["revision"],
        "change_under_review": bool(doc.get("change_under_review")),
        "enterprise": {name: doc.get("enterprise", {}).get(name) for name in ENTERPRISE_FIELDS},
        "materials": {
            **{name: materials.get(name) for name in MATERIALS if name != SPECIAL},
            SPECIAL: materials.get(SPECIAL) or [],
        },
        "missing": missing_items(doc["product"], doc.get("enterprise", {}), materials),
        "shared_from": doc.get("shared_from", {}),
        "review_desc": doc.get("review_desc"),
        "create_time": iso(doc.get("created_at")),
        "update_time": iso(doc.get("updated_at")),
        "submit_time": iso(doc.get("submitted_at")),
        "review_time": iso(doc.get("reviewed_at")),
    }


def _require_complete(doc: dict[str, Any]) -> None:
    missing = missing_items(doc["product"], doc.get("enterprise", {}), doc.get("materials", {}))
    if missing:
        raise fail(codes.FILING_INCOMPLETE, f"missing {', '.join(missing)}")


def _review_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    return {
        "status": APPROVED if review.approved else REJECTED,
        "review_desc": review.reason or None,
        "change_under_review": False,
    }


register_review_target(template_pb2.REVIEW_SUBJECT_FILING, ReviewTarget("filings", "filing", _review_update))


async def _own(context: GatewayContext, tenant_id: str, filing: str) -> dict[str, Any]:
    doc = await context.collections.filings.find_one({"_id": filing, "tenant_id": tenant_id})
    if doc is None:
        raise not_found(f"filing {filing}")
    return doc


def _concurrent() -> ApiError:
    return fail(codes.FILING_STATE, "the filing was changed by another request meanwhile; read it and retry")


# --- routes ---------------------------------------------------------------------------------------------------
@router.post("/v1/magpie/filing-files", response_model=UploadedFile, summary="upload_filing_file")
async def upload_filing_file(
    material: str = Form(description=f"which material: {' | '.join(MATERIALS)}"),
    file: UploadFile | None = File(None, description="pdf (licence also jpg/png; special materials rar/zip), <= 2 MB"),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    rule = UPLOAD_RULES.get(material.strip())
    if rule is None:
        raise invalid(f"material must be one of {' | '.join(MATERIALS)}")
    return await console_files.upload(context, principal.tenant_id, rule, file, purpose=material.strip())


@router.get(
    "/v1/magpie/filing-files/{file_id}",
    summary="download_filing_file",
    response_class=StreamingResponse,
    responses={200: {"description": "the file's bytes", "content": {"application/octet-stream": {}}}},
)
async def download_filing_file(
    file_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> StreamingResponse:
    stored = await context.files.info(principal.tenant_id, file_id, kind=FILE_KIND)
    return console_files.download_response(context, stored)


@router.post("/v1/magpie/filings", response_model=Filing, summary="create_filing")
async def create_filing(
    body: CreateFilingRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    product = body.product
    enterprise = {k: v for k, v in _clean_enterprise(body.enterprise).items() if v is not None}
    materials = {k: v for k, v in (await _resolve_materials(context, tenant, product, body.materials)).items() if v}
    shared_from: dict[str, str] = {}
    if body.inherit_shared:
        inherited, origin = await _shared(context, tenant, product)
        for name, value in inherited["materials"].items():
            if name not in materials:
                materials[name] = value
                shared_from[name] = origin[name]
        for name, value in inherited["enterprise"].items():
            if name not in enterprise:
                enterprise[name] = value
                shared_from[f"enterprise.{name}"] = origin[f"enterprise.{name}"]
    if product != "SA":
        enterprise.setdefault("certificate_type", "BUSINESS_LICENSE")
    check_enterprise(product, enterprise)
    now = utc_now()
    doc: dict[str, Any] = {
        "_id": filing_id(tenant, product),
        "tenant_id": tenant,
        "product": product,
        "status": DRAFT,
        "revision": 1,
        "enterprise": enterprise,
        "materials": materials,
        "shared_from": shared_from,
        "change_under_review": False,
        "review_desc": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "reviewed_at": None,
        "operator": principal.user_name or principal.user_id,
    }
    message = None
    if body.submit:
        _require_complete(doc)
        doc.update(status=PENDING, submitted_at=now)
        message = review_message(doc)
    try:
        await console_reviews.insert(context, context.collections.filings, doc, message, trace_id=request_id(request))
    except DuplicateKeyError:
        raise fail(codes.FILING_EXISTS, f"the {product} filing is {doc['_id']}; edit it instead") from None
    return filing_view(doc)


@router.get("/v1/magpie/filings", response_model=FilingList, summary="list_filings")
async def list_filings(
    product: str | None = None,
    status: str | None = None,
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
        equal={
            "product": optional_one_of("product", product, PRODUCTS),
            "status": optional_one_of("status", status, STATUSES),
        },
        created=parse_window("begin_time", begin_time, "end_time", end_time),
    )
    docs, total = await fetch_page(context.collections.filings, query, paging)
    return {"filings": [filing_view(d) for d in docs], "page_info": paging.info(total)}


@router.get("/v1/magpie/filings/{filing_id}", response_model=Filing, summary="show_filing")
async def show_filing(
    filing_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    return filing_view(await _own(context, principal.tenant_id, filing_id))


@router.put("/v1/magpie/filings/{filing_id}", response_model=Filing, summary="update_filing")
async def update_filing(
    filing_id: str,
    body: UpdateFilingRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    before = await _own(context, tenant, filing_id)
    if before["status"] == PENDING or before.get("change_under_review"):
        raise fail(codes.FILING_UNDER_REVIEW, f"filing {filing_id} is under review; wait for the decision")
    product = before["product"]
    changes = _clean_enterprise(body.enterprise)
    materials_given = await _resolve_materials(context, tenant, product, body.materials)
    enterprise = {**before.get("enterprise", {}), **changes}
    enterprise = {k: v for k, v in enterprise.items() if v is not None}
    if product != "SA":
        enterprise.setdefault("certificate_type", "BUSINESS_LICENSE")
    check_enterprise(product, enterprise)
    materials = {**before.get("materials", {}), **materials_given}
    materials = {k: v for k, v in materials.items() if v}
    shared_from = {
        k: v
        for k, v in before.get("shared_from", {}).items()
        if k not in materials_given and k.removeprefix("enterprise.") not in changes
    }
    now = utc_now()
    after = {
        **before,
        "enterprise": enterprise,
        "materials": materials,
        "shared_from": shared_from,
        "revision": before["revision"] + 1,
        "updated_at": now,
        "operator": principal.user_name or principal.user_id,
    }
    message = None
    if before["status"] in (REJECTED, APPROVED):
        _require_complete(after)
        if before["status"] == REJECTED:
            after.update(status=PENDING, submitted_at=now, review_desc=None)
        else:
            after["change_under_review"] = True
        message = review_message(after)
    await console_reviews.replace(
        context,
        context.collections.filings,
        before,
        after,
        message,
        trace_id=request_id(request),
        conflict=_concurrent(),
    )
    return filing_view(after)


@router.post("/v1/magpie/filings/{filing_id}/submit", response_model=Filing, summary="submit_filing")
async def submit_filing(
    filing_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    before = await _own(context, principal.tenant_id, filing_id)
    status = before["status"]
    if status == PENDING or before.get("change_under_review"):
        raise fail(codes.FILING_UNDER_REVIEW, f"filing {filing_id} is under review; it cannot be resubmitted")
    if status == APPROVED:
        raise fail(codes.FILING_STATE, f"filing {filing_id} is already approved; edit it to change it")
    _require_complete(before)
    now = utc_now()
    after = {
        **before,
        "status": PENDING,
        "revision": before["revision"] + 1,
        "submitted_at": now,
        "updated_at": now,
        "review_desc": None,
        "operator": principal.user_name or principal.user_id,
    }
    await console_reviews.replace(
        context,
        context.collections.filings,
        before,
        after,
        review_message(after),
        trace_id=request_id(request),
        conflict=_concurrent(),
    )
    return filing_view(after)
