"""Packages (套餐包): the offers, the tenant's packages with what is left of them, and buying one. Magpie-only
operations (the KooMessage SDK has none), AK/SK signed like the rest:

=========================  ===============================  ====================================================
operation (route summary)  route                            what it does
=========================  ===============================  ====================================================
``list_package_offers``    GET  /v1/magpie/package-offers   what can be bought: type, sizes, validity
``list_packages``          GET  /v1/magpie/packages         the tenant's packages (filters ``package_type``,
                                                            ``status``; ``offset``/``limit``)
``show_package``           GET  /v1/magpie/packages/{id}    one package with its quotas
``purchase_package``       POST /v1/magpie/packages         buy ``quantity`` packages of one type and size
``show_package_usage``     GET  /v1/magpie/package-usage    per billed product: charged, from packages, on
                                                            demand, quota left (the console's overview)
=========================  ===============================  ====================================================

Billing owns the quotas: the gateway calls billing's internal HTTP API (``MAGPIE_BILLING_URL``, see
``console_billing``) and never its code. A purchase creates one billing package per billed product of the offer,
of ``size x quantity`` units, valid 365 days from the purchase; packages are consumed first and the excess is
billed on demand (billing's rule). The offers (product-spec §2 "Packages", user guide ch. 3):

=========================  ===========================  ==========================  =================================
``package_type``           name                         billed products (quotas)    sizes
=========================  ===========================  ==========================  =================================
``AIM_RESOLUTION``         智能信息解析                  AIM_RESOLUTION              100k, 500k, 1M, 5M, 10M
``AIM_SEND_MARKETING``     智能信息发送和解析-营销类      AIM_SMS + AIM_RESOLUTION    100k, 500k, 1M, 5M, 10M
``AIM_SEND_NOTIFICATION``  智能信息发送和解析-通知类      AIM_SMS + AIM_RESOLUTION    100k, 500k, 1M, 5M, 10M
``VMS_THREE_NETWORK``      智能信息基础版（三网通道）     VMS                         1k, 10k, 100k, 1M
``SA_CLICKS``              智能信息服务号                SA_CLICK                    5k, 50k, 300k, 1M
=========================  ===========================  ==========================  =================================

A send-and-resolution package holds two quotas (SMS segments and resolutions), consumed independently: when only
resolutions are left, the SMS of a smart message is billed on demand (KooMessage's documented behaviour).
Billing does not distinguish marketing from notification messages, so both kinds consume the same quotas.
Payment is outside Magpie (a self-hosted deployment settles with its customers itself): a purchase records the
quota. Packages cannot be refunded or deleted.

``quantity`` is 1 to 100 per purchase. Send the ``Idempotency-Key`` header: a repeated purchase with the same key
answers the same response without buying again, and after a failure (KM.00000513, billing unavailable) a retry
with the same key completes the same purchase (the billing package ids derive from the key) instead of buying a
second time (without the header, a failed purchase may leave part of its quotas bought: they are listed under
the purchase's ``package_id``). A package's ``status``: ``active``, ``exhausted`` (every quota used),
``expired``, ``pending`` (not valid yet). Packages created in billing directly (not through this API) are listed
too, as a single-quota package of their product (``size`` = its total, ``quantity`` 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from magpie_common.ids import new_id, stable_id
from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.console_billing import BillingClient
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from magpie_gateway.pagination import PageInfo, page
from magpie_gateway.timefmt import iso, utc_now
from magpie_gateway.validation import optional_one_of

router = APIRouter(tags=["Packages"])

VALIDITY_DAYS = 365
MAX_QUANTITY = 100
STATUSES = ("active", "exhausted", "expired", "pending")
CREATING = "CREATING"
COMPLETED = "COMPLETED"

AIM_SIZES = (100_000, 500_000, 1_000_000, 5_000_000, 10_000_000)


@dataclass(frozen=True)
class Offer:
    package_type: str
    name: str
    description: str
    products: tuple[str, ...]
    sizes: tuple[int, ...]
    unit: str


OFFERS: dict[str, Offer] = {
    o.package_type: o
    for o in (
        Offer(
            "AIM_RESOLUTION", "智能信息解析", "resolutions of smart-message links", ("AIM_RESOLUTION",), AIM_SIZES,
            "resolution",
        ),
        Offer(
            "AIM_SEND_MARKETING", "智能信息发送和解析-营销类",
            "marketing smart messages: one SMS segment and one resolution per unit", ("AIM_SMS", "AIM_RESOLUTION"),
            AIM_SIZES, "message",
        ),
        Offer(
            "AIM_SEND_NOTIFICATION", "智能信息发送和解析-通知类",
            "notification smart messages: one SMS segment and one resolution per unit", ("AIM_SMS", "AIM_RESOLUTION"),
            AIM_SIZES, "message",
        ),
        Offer(
            "VMS_THREE_NETWORK", "智能信息基础版（三网通道）",
            "video SMS on all three carriers (China Mobile at least 75% of the volume)", ("VMS",),
            (1_000, 10_000, 100_000, 1_000_000), "message",
        ),
        Offer(
            "SA_CLICKS", "智能信息服务号", "service-number clicks (menu, homepage, shortcut), one PV each",
            ("SA_CLICK",), (5_000, 50_000, 300_000, 1_000_000), "click",
        ),
    )
}  # fmt: skip
# Billing packages created outside this API: shown as a package of the single-product offer of their product.
PRODUCT_TYPES = {
    "AIM_RESOLUTION": "AIM_RESOLUTION",
    "AIM_SMS": "AIM_SMS",
    "VMS": "VMS_THREE_NETWORK",
    "SA_CLICK": "SA_CLICKS",
}
PackageType = Literal["AIM_RESOLUTION", "AIM_SEND_MARKETING", "AIM_SEND_NOTIFICATION", "VMS_THREE_NETWORK", "SA_CLICKS"]


# --- models ---------------------------------------------------------------------------------------------------
class PackageOffer(BaseModel):
    package_type: str = Field(examples=["AIM_SEND_MARKETING"])
    package_name: str = Field(examples=["智能信息发送和解析-营销类"])
    description: str
    products: list[str] = Field(description="billed products, one quota each", examples=[["AIM_SMS", "AIM_RESOLUTION"]])
    sizes: list[int] = Field(description="units per package", examples=[[100_000, 500_000, 1_000_000]])
    unit: str = Field(examples=["message"])
    validity_days: int = Field(examples=[VALIDITY_DAYS])
    max_quantity: int = Field(description="packages per purchase", examples=[MAX_QUANTITY])


class PackageOfferList(BaseModel):
    offers: list[PackageOffer]


class PurchasePackageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package_type: PackageType = Field(examples=["AIM_SEND_MARKETING"])
    size: int = Field(description="one of the offer's sizes", examples=[100_000])
    quantity: int = Field(1, ge=1, le=MAX_QUANTITY, description="how many packages of that size", examples=[2])


class PackageQuota(BaseModel):
    product: str = Field(examples=["AIM_SMS"])
    billing_package_id: str = Field(examples=["PKG01JD3Q8W5R2K7M9N4P6T8V0X2Y.AIM_SMS"])
    total: int = Field(examples=[200_000])
    used: int = Field(examples=[1_250])
    remaining: int = Field(examples=[198_750])
    status: str = Field(examples=["active"])


class Package(BaseModel):
    package_id: str = Field(examples=["PKG01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    package_type: str = Field(examples=["AIM_SEND_MARKETING"])
    package_name: str = Field(examples=["智能信息发送和解析-营销类"])
    size: int = Field(examples=[100_000])
    quantity: int = Field(examples=[2])
    total: int = Field(description="size x quantity", examples=[200_000])
    remaining: int = Field(description="units every quota of the package still covers", examples=[198_750])
    status: Literal["active", "exhausted", "expired", "pending"]
    validity_days: int = Field(examples=[VALIDITY_DAYS])
    valid_from: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    expires_at: str | None = Field(None, examples=["2027-11-22T08:00:00Z"])
    quotas: list[PackageQuota]
    create_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])


class PackageList(BaseModel):
    packages: list[Package]
    page_info: PageInfo


class ProductUsage(BaseModel):
    product: str = Field(examples=["AIM_RESOLUTION"])
    charged: int = Field(description="units charged so far", examples=[1_250])
    from_packages: int = Field(examples=[1_250])
    on_demand: int = Field(examples=[0])
    remaining_quota: int = Field(description="left in packages usable now", examples=[198_750])
    active_packages: int = Field(examples=[1])


class PackageUsage(BaseModel):
    as_of: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    products: list[ProductUsage]


# --- helpers --------------------------------------------------------------------------------------------------
def _iso(value: str | None) -> str | None:
    if not value:
        return None
    return iso(datetime.fromisoformat(value))


def _quota(package: dict[str, Any]) -> dict[str, Any]:
    return {
        "product": package["product"],
        "billing_package_id": package["package_id"],
        "total": int(package["total"]),
        "used": int(package["used"]),
        "remaining": int(package["remaining"]),
        "status": package["status"],
    }


def _status(quotas: list[dict[str, Any]]) -> str:
    statuses = {q["status"] for q in quotas}
    for status in ("expired", "pending"):
        if status in statuses:
            return status
    return "exhausted" if statuses == {"exhausted"} else "active"


def package_view(order: dict[str, Any] | None, packages: list[dict[str, Any]]) -> dict[str, Any]:
    """One row: an order of this API with its billing packages, or a billing package bought elsewhere."""
    quotas = [_quota(p) for p in sorted(packages, key=lambda p: str(p["product"]))]
    first = packages[0]
    if order is not None:
        offer = OFFERS[order["package_type"]]
        package_id, size, quantity = order["_id"], int(order["size"]), int(order["quantity"])
        created = iso(order["created_at"])
    else:
        offer = OFFERS.get(PRODUCT_TYPES.get(first["product"], ""))
        package_id, size, quantity = first["package_id"], int(first["total"]), 1
        created = _iso(first.get("created_at"))
    valid_from, expires_at = first.get("valid_from"), first.get("expires_at")
    days = (datetime.fromisoformat(expires_at) - datetime.fromisoformat(valid_from)).days if valid_from else 0
    return {
        "package_id": package_id,
        "package_type": offer.package_type if offer else first["product"],
        "package_name": offer.name if offer else first["product"],
        "size": size,
        "quantity": quantity,
        "total": size * quantity,
        "remaining": min((q["remaining"] for q in quotas), default=0),
        "status": _status(quotas),
        "validity_days": days,
        "valid_from": _iso(valid_from),
        "expires_at": _iso(expires_at),
        "quotas": quotas,
        "create_time": created,
    }


def order_id_of(request: Request, tenant_id: str) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key and key.strip():
        return "PKG" + stable_id("package-order", tenant_id, key.strip())[:26].upper()
    return new_id("PKG")


async def _rows(context: GatewayContext, tenant_id: str) -> list[dict[str, Any]]:
    """Every package of the tenant: its orders joined with billing's packages (the quotas as they are now)."""
    packages = await BillingClient().packages(tenant_id)
    orders = {doc["_id"]: doc async for doc in context.collections.package_orders.find({"tenant_id": tenant_id})}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        owner = str(package["package_id"]).split(".", 1)[0]
        key = owner if owner in orders else str(package["package_id"])
        grouped.setdefault(key, []).append(package)
    return [package_view(orders.get(key), items) for key, items in grouped.items()]


# --- routes ---------------------------------------------------------------------------------------------------
@router.get("/v1/magpie/package-offers", response_model=PackageOfferList, summary="list_package_offers")
async def list_package_offers(principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    return {
        "offers": [
            {
                "package_type": o.package_type,
                "package_name": o.name,
                "description": o.description,
                "products": list(o.products),
                "sizes": list(o.sizes),
                "unit": o.unit,
                "validity_days": VALIDITY_DAYS,
                "max_quantity": MAX_QUANTITY,
            }
            for o in OFFERS.values()
        ]
    }


@router.post("/v1/magpie/packages", response_model=Package, summary="purchase_package")
async def purchase_package(
    body: PurchasePackageRequest,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    offer = OFFERS[body.package_type]
    if body.size not in offer.sizes:
        raise fail(
            codes.PACKAGE_OFFER_UNKNOWN,
            f"{offer.package_type} comes in sizes {', '.join(str(s) for s in offer.sizes)}, not {body.size}",
        )
    tenant = principal.tenant_id
    order_id = order_id_of(request, tenant)
    orders = context.collections.package_orders
    await orders.update_one(
        {"_id": order_id, "tenant_id": tenant},
        {
            "$setOnInsert": {
                "package_type": offer.package_type,
                "size": body.size,
                "quantity": body.quantity,
                "products": list(offer.products),
                "package_ids": {p: f"{order_id}.{p}" for p in offer.products},
                "state": CREATING,
                "created_at": utc_now(),
                "operator": principal.user_name or principal.user_id,
            }
        },
        upsert=True,
    )
    order = await orders.find_one({"_id": order_id, "tenant_id": tenant})
    assert order is not None
    if (order["package_type"], order["size"], order["quantity"]) != (offer.package_type, body.size, body.quantity):
        raise fail(codes.IDEMPOTENCY_CONFLICT, f"{IDEMPOTENCY_HEADER} was used for another purchase")
    billing = BillingClient()
    packages = [
        await billing.buy(
            tenant,
            product=product,
            quantity=body.size * body.quantity,
            validity_days=VALIDITY_DAYS,
            package_id=order["package_ids"][product],
        )
        for product in offer.products
    ]
    await orders.update_one({"_id": order_id, "tenant_id": tenant}, {"$set": {"state": COMPLETED}})
    return package_view(order, packages)


@router.get("/v1/magpie/packages", response_model=PackageList, summary="list_packages")
async def list_packages(
    package_type: str | None = None,
    status: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    package_type = optional_one_of("package_type", package_type, OFFERS)
    status = optional_one_of("status", status, STATUSES)
    rows = await _rows(context, principal.tenant_id)
    if package_type:
        rows = [r for r in rows if r["package_type"] == package_type]
    if status:
        rows = [r for r in rows if r["status"] == status]
    rows.sort(key=lambda r: (r["create_time"] or "", r["package_id"]), reverse=True)
    return {"packages": rows[paging.offset : paging.offset + paging.limit], "page_info": paging.info(len(rows))}


@router.get("/v1/magpie/package-usage", response_model=PackageUsage, summary="show_package_usage")
async def show_package_usage(principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    summary = await BillingClient().summary(principal.tenant_id)
    return {
        "as_of": _iso(summary.get("as_of")),
        "products": [
            {
                "product": row["product"],
                "charged": int(row["charged"]),
                "from_packages": int(row["from_packages"]),
                "on_demand": int(row["on_demand"]),
                "remaining_quota": int(row["remaining_quota"]),
                "active_packages": int(row["active_packages"]),
            }
            for row in summary.get("products", [])
        ],
    }


@router.get("/v1/magpie/packages/{package_id}", response_model=Package, summary="show_package")
async def show_package(
    package_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    for row in await _rows(context, principal.tenant_id):
        if row["package_id"] == package_id:
            return row
    raise not_found(f"package {package_id}")
