"""Product spec §7: a card template has at most 20 params, 40 for the e-commerce coupon layouts (KM.80040004)."""

from __future__ import annotations

import pytest

from .conftest import Harness, card_body

pytestmark = pytest.mark.integration


def names(count: int) -> tuple[str, ...]:
    return tuple(f"p{i}" for i in range(count))


async def test_card_params_limits(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        assert (await client.post("/v1/aim/templates", json=card_body(names(20)))).status_code == 200
        too_many = await client.post("/v1/aim/templates", json=card_body(names(21)))
        assert too_many.status_code == 400
        assert too_many.json()["error_code"] == "KM.80040004"
        assert "at most 20 params" in too_many.json()["error_msg"]

        coupon = {**card_body(names(40), vendors=("HUAWEI",)), "card_id": "EcommerceCouponVertical"}
        assert (await client.post("/v1/aim/templates", json=coupon)).status_code == 200
        coupon_too_many = {**card_body(names(41), vendors=("HUAWEI",)), "card_id": "EcommerceCouponVertical"}
        refused = await client.post("/v1/aim/templates", json=coupon_too_many)
        assert (refused.status_code, refused.json()["error_code"]) == (400, "KM.80040004")
        listed = (await client.get("/v1/aim/templates")).json()
        assert len(listed["templates"]) == 2  # nothing was created by the refused requests
