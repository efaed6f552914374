"""The internal HTTP API over httpx's ASGI transport, on the real MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from magpie_billing.app import BillingComponents
from magpie_billing.products import Product
from magpie_billing.units import BillableUnit, Source

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(billing: BillingComponents) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=billing.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
        yield client


def unit(tenant: str, ref: str, quantity: int, *, task_id: str, product: Product = Product.AIM_SMS) -> BillableUnit:
    return BillableUnit(
        unit_id=f"{tenant}-{ref}",
        tenant_id=tenant,
        product=product,
        quantity=quantity,
        source=Source.DELIVERY,
        source_event_id=f"ev-{ref}",
        task_id=task_id,
        ref=ref,
    )


async def test_buy_packages_idempotently_and_list_them(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/internal/tenants/acme/packages", json={"product": "AIM_SMS", "quantity": 1000, "package_id": "order-1"}
    )
    assert response.status_code == 201, response.text
    package = response.json()
    assert package["package_id"] == "order-1"
    assert (package["tenant_id"], package["product"], package["total"], package["remaining"]) == (
        "acme",
        "AIM_SMS",
        1000,
        1000,
    )
    assert package["status"] == "active" and package["used"] == 0
    assert package["valid_from"].endswith("Z") and package["expires_at"] > package["valid_from"]

    again = await http.post(
        "/internal/tenants/acme/packages", json={"product": "AIM_SMS", "quantity": 1000, "package_id": "order-1"}
    )
    assert again.status_code == 200
    assert again.json() == package

    conflict = await http.post(
        "/internal/tenants/acme/packages", json={"product": "AIM_SMS", "quantity": 5, "package_id": "order-1"}
    )
    assert conflict.status_code == 409
    assert conflict.json()["error_code"] == "KM.00000409"

    generated = await http.post(
        "/internal/tenants/acme/packages", json={"product": "AIM_RESOLUTION", "quantity": 10, "validity_days": 30}
    )
    assert generated.status_code == 201
    assert generated.json()["package_id"].startswith("pkg_")

    listing = (await http.get("/internal/tenants/acme/packages")).json()
    assert listing["tenant_id"] == "acme"
    assert [(p["product"], p["total"]) for p in listing["packages"]] == [("AIM_RESOLUTION", 10), ("AIM_SMS", 1000)]
    assert (await http.get("/internal/tenants/nobody/packages")).json()["packages"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"product": "GOLD", "quantity": 10},
        {"product": "AIM_SMS", "quantity": 0},
        {"product": "AIM_SMS", "quantity": -3},
        {"product": "AIM_SMS", "quantity": "10"},
        {"product": "AIM_SMS", "quantity": True},
        {"product": "AIM_SMS", "quantity": 10, "validity_days": 0},
        {"product": "AIM_SMS", "quantity": 10, "validity_days": 100000},
        {"product": "AIM_SMS", "quantity": 10, "package_id": "has spaces"},
        {"product": "AIM_SMS", "quantity": 10, "colour": "red"},
        {"quantity": 10},
    ],
)
async def test_bad_purchases_are_400_with_an_error_body(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await http.post("/internal/tenants/acme/packages", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_code"] == "KM.00000400"
    assert error["error_msg"]
    assert (await http.get("/internal/tenants/acme/packages")).json()["packages"] == []


async def test_bad_tenant_ids_and_queries_are_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/internal/tenants/a%20b/packages", json={"product": "AIM_SMS", "quantity": 1})
    assert response.status_code == 400
    assert response.json()["error_code"] == "KM.00000400"
    not_json = await http.post(
        "/internal/tenants/acme/packages", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    for query in ("limit=0", "limit=5000", "offset=-1", "product=GOLD", "limit=abc"):
        response = await http.get(f"/internal/tenants/acme/ledger?{query}")
        assert response.status_code == 400, query
        assert response.json()["error_code"] == "KM.00000400"
    response = await http.get("/internal/tenants/acme/settlements?from=yesterday")
    assert response.status_code == 400 and "ISO 8601" in response.json()["error_msg"]
    response = await http.get("/internal/tenants/acme/settlements?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z")
    assert response.status_code == 400
    missing = await http.get("/internal/nothing")
    assert missing.status_code == 404 and missing.json()["error_code"] == "KM.00000404"


async def test_summary_and_ledger_after_charging(http: httpx.AsyncClient, billing: BillingComponents) -> None:
    await http.post("/internal/tenants/shop/packages", json={"product": "AIM_SMS", "quantity": 5, "package_id": "p"})
    await billing.charger.charge(
        [
            unit("shop", "m1", 3, task_id="task-a"),
            unit("shop", "m2", 3, task_id="task-b"),
            unit("shop", "r1", 1, task_id="task-a", product=Product.AIM_RESOLUTION),
        ]
    )

    summary = (await http.get("/internal/tenants/shop/summary")).json()
    assert summary["tenant_id"] == "shop"
    rows = {row["product"]: row for row in summary["products"]}
    assert set(rows) == {"AIM_SMS", "AIM_RESOLUTION", "VMS", "SA_CLICK"}
    assert rows["AIM_SMS"] == {
        "product": "AIM_SMS",
        "units": 2,
        "charged": 6,
        "from_packages": 5,
        "on_demand": 1,
        "remaining_quota": 0,
        "active_packages": 0,
    }
    assert (rows["AIM_RESOLUTION"]["charged"], rows["AIM_RESOLUTION"]["on_demand"]) == (1, 1)
    assert rows["VMS"]["charged"] == 0

    ledger = (await http.get("/internal/tenants/shop/ledger")).json()
    assert ledger["total"] == 3 and ledger["offset"] == 0 and ledger["limit"] == 100
    assert {e["unit_id"] for e in ledger["entries"]} == {"shop-m1", "shop-m2", "shop-r1"}
    by_task = (await http.get("/internal/tenants/shop/ledger", params={"task_id": "task-a"})).json()
    assert sorted(e["ref"] for e in by_task["entries"]) == ["m1", "r1"]
    sms_a = (await http.get("/internal/tenants/shop/ledger", params={"task_id": "task-a", "product": "AIM_SMS"})).json()
    assert [e["ref"] for e in sms_a["entries"]] == ["m1"]
    entry = sms_a["entries"][0]
    assert entry["packages"] == [{"package_id": "p", "quantity": 3}]
    assert (entry["quantity"], entry["from_packages"], entry["on_demand"]) == (3, 3, 0)
    assert entry["source"] == "delivery" and entry["source_event_id"] == "ev-m1" and entry["charged_at"].endswith("Z")

    page1 = (await http.get("/internal/tenants/shop/ledger", params={"limit": 2})).json()
    page2 = (await http.get("/internal/tenants/shop/ledger", params={"limit": 2, "offset": 2})).json()
    assert page1["total"] == page2["total"] == 3
    assert len(page1["entries"]) == 2 and len(page2["entries"]) == 1
    assert {e["unit_id"] for e in page1["entries"] + page2["entries"]} == {"shop-m1", "shop-m2", "shop-r1"}

    packages = (await http.get("/internal/tenants/shop/packages")).json()["packages"]
    assert [(p["remaining"], p["used"], p["status"]) for p in packages] == [(0, 5, "exhausted")]


async def test_ops_routes(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200 and "magpie_billing_units_charged_total" in metrics.text
    ready = await http.get("/readyz")  # consumers not started in this test: not ready, but MongoDB is reachable
    assert ready.status_code == 503
    assert ready.json()["checks"]["mongodb"] is True
