"""Enterprise filings as a prerequisite of sending (product-spec §2: "Enterprise filing (per product AIM / VMS / SA)
... must be approved before use"; §4 workflow 1: "Prerequisites approved (filing, SMS app, signature, ...)").

``await require_filing(context, tenant_id, product)`` answers 400 ``KM.00000514`` ("an approved enterprise filing
for <product> is required") unless the tenant's filing of that product (``filings_api``) is APPROVED. Switched by
``MAGPIE_REQUIRE_FILINGS`` (``GatewayConfig.require_filings``, default on; the gateway unit tests turn it off like
the other production checks, the dev stack keeps it on).

Where it applies (the operations that send, or create something that sends, on the tenant's behalf):

=====================================  =======  ==============================================================
operation                              product  note
=====================================  =======  ==============================================================
``create_aim_send_task``               AIM      plus **VMS** when the task asks for the VMS fallback
                                                (``X-Magpie-Fallback: vms``): its unresolvable numbers get
                                                video SMS, which is the VMS product
``create_resolve_task``                AIM      the links are smart messages the customer sends
``send_aim_batch_messages``            AIM      plain SMS belongs to the AIM product in KooMessage
``send_aim_batch_different_messages``  AIM
``create_vms_send_task``               VMS
``create_pub_info``                    SA       a service number is the SA product's use
=====================================  =======  ==============================================================

Decisions:

- Preparing is allowed before the filing is approved (KooMessage lets customers prepare while the filing is
  reviewed): SMS apps, signatures, SMS / AIM / VMS templates, materials, callbacks, domains, SA media and ports,
  the filings themselves, and every read. Only the operations above are refused.
- The gate is the first check of those operations (after the body is parsed), so a tenant without a filing is told
  that first rather than about its other prerequisites. The message says what to do: create and submit the filing
  (``create_filing``), submit a DRAFT, wait for a PENDING one, or fix a REJECTED one (with the reviewer's reason).
- ``create_aim_send_task`` with an ``Idempotency-Key``: a retry that answers a stored response, or resumes a task
  whose first attempt was accepted, is not checked again (that task passed the gate when it was created).
- A scheduled send task is checked when it is created, not when its send time comes; existing service numbers,
  resolution tasks and send tasks are not stopped if the filing later stops being APPROVED. The gate decides who
  may start sending, it does not recall what was accepted.
- An APPROVED filing that was edited stays APPROVED while the change is reviewed (``change_under_review``), so it
  keeps the gate open; if the change is rejected the filing becomes REJECTED and the gate closes for new sends.
- Nothing is cached: the filing is read by its primary key (a tenant has one filing per product, its id derived
  from tenant and product) on every gated request, so a filing approved a moment ago counts at once and one just
  rejected closes the gate at once. Only the caller's own filing counts (the query filters on ``tenant_id``).
"""

from __future__ import annotations

from typing import Any

from magpie_gateway import codes
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import ApiError
from magpie_gateway.filings_api import APPROVED, DRAFT, PENDING, PRODUCTS, REJECTED, filing_id

PRODUCT_NAMES = {"AIM": "smart messages (AIM)", "VMS": "video SMS (VMS)", "SA": "service numbers (SA)"}


def refusal(product: str, filing: dict[str, Any] | None) -> ApiError:
    """The KM.00000514 error for ``product`` given the tenant's filing of it (None = there is none)."""
    head = f"An approved enterprise filing for {product} is required to send {PRODUCT_NAMES[product]}"
    status = filing.get("status") if filing else None
    if filing is None:
        what = "there is none: create it with its materials and submit it (POST /v1/magpie/filings)"
    elif status == DRAFT:
        what = f"filing {filing['_id']} is a DRAFT: submit it (POST /v1/magpie/filings/{filing['_id']}/submit)"
    elif status == PENDING:
        what = f"filing {filing['_id']} is PENDING (under review): send once it is approved"
    elif status == REJECTED:
        reason = filing.get("review_desc") or "no reason given"
        what = f"filing {filing['_id']} was REJECTED ({reason}): correct it (PUT /v1/magpie/filings/{filing['_id']})"
    else:
        what = f"filing {filing['_id']} is {status}"
    return ApiError.of(codes.FILING_REQUIRED, f"{head}; {what}")


async def require_filing(context: GatewayContext, tenant_id: str, product: str) -> None:
    """Raise KM.00000514 unless ``tenant_id``'s filing of ``product`` is APPROVED (no-op when
    ``require_filings`` is off)."""
    if product not in PRODUCTS:
        raise ValueError(f"unknown filing product {product!r}")
    if not context.config.require_filings:
        return
    filing = await context.collections.filings.find_one(
        {"_id": filing_id(tenant_id, product), "tenant_id": tenant_id}, {"status": 1, "review_desc": 1}
    )
    if filing is None or filing.get("status") != APPROVED:
        raise refusal(product, filing)
