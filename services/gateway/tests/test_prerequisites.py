"""SMS apps, signatures, SMS templates and AIM templates: creation rules, the review round trip on the real broker,
and tenant isolation."""

from __future__ import annotations

import pytest

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, card_body, eventually

pytestmark = pytest.mark.integration


async def test_apps_name_rules_and_limit_of_two(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        bad = await client.post("/v1/sms/apps", json={"app_name": "shop-app!"})
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "KM.00000400"
        first = await client.post("/v1/sms/apps", json={"app_name": "Shop_1", "up_link_addr": "https://1.1.1.1/mo"})
        assert first.status_code == 200
        assert first.json()["app_name"] == "Shop_1"
        same_name = await client.post("/v1/sms/apps", json={"app_name": "shop_1"})
        assert same_name.status_code == 400
        assert same_name.json()["error_code"] == "KM.00000423"
        private_mo = await client.post("/v1/sms/apps", json={"app_name": "x", "up_link_addr": "http://10.0.0.8/mo"})
        assert private_mo.json()["error_code"] == "KM.00000428"
        second = await client.post("/v1/sms/apps", json={"app_name": "shop_2"})
        assert second.status_code == 200
        third = await client.post("/v1/sms/apps", json={"app_name": "shop_3"})
        assert third.status_code == 400
        assert third.json()["error_code"] == "KM.00000422"

        listed = (await client.get("/v1/sms/apps", params={"limit": 1})).json()
        assert listed["page_info"] == {"offset": 0, "limit": 1, "total": 2}
        assert listed["result"][0]["app_name"] == "shop_2"
        detail = await client.get(f"/v1/sms/apps/{first.json()['app_id']}")
        assert detail.json()["up_link_addr"] == "https://1.1.1.1/mo"
        assert detail.json()["status"] == "NORMAL"


async def test_signature_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        app_id = (await client.post("/v1/sms/apps", json={"app_name": "app"})).json()["app_id"]
        base = {"signature_type": "NOTIFY_TYPE", "app_id": app_id, "signature_source": 0}
        empty = await client.post("/v1/sms/signatures", json={**base, "signature_name": " "})
        assert empty.json()["error_code"] == "KM.00001075"
        long = await client.post("/v1/sms/signatures", json={**base, "signature_name": "喜" * 17})
        assert long.json()["error_code"] == "KM.00001076"
        brackets = await client.post("/v1/sms/signatures", json={**base, "signature_name": "【喜鹊】"})
        assert brackets.json()["error_code"] == "KM.00000400"
        no_app = await client.post("/v1/sms/signatures", json={**base, "app_id": "APPX", "signature_name": "喜鹊"})
        assert no_app.json()["error_code"] == "KM.00000421"
        ok = await client.post("/v1/sms/signatures", json={**base, "signature_name": "喜鹊"})
        assert ok.status_code == 200
        assert ok.json()["signature_name"] == "喜鹊"
        again = await client.post("/v1/sms/signatures", json={**base, "signature_name": "喜鹊"})
        assert again.json()["error_code"] == "KM.00000423"


async def test_reviews_round_trip_and_stale_revisions(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)
        submitted = await collect(
            harness.settings,
            TEMPLATE_SUBMITTED,
            template_pb2.TemplateSubmitted,
            until=lambda m: len(m) >= 3,
        )
        by_subject = {m.subject: m for m in submitted}
        sig = by_subject[template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE]
        assert (sig.subject_id, sig.revision, sig.name) == (setup.signature_id, 1, setup.sign)
        assert sig.texts == [setup.sign] and sig.use_template_type == "PROMOTION_TYPE"
        assert sig.meta.tenant_id == tenant.tenant_id and sig.meta.event_id
        sms = by_subject[template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE]
        assert sms.subject_id == setup.sms_template_id
        assert sms.texts == ["尊敬的会员，您的专属优惠已到账，点击 ${1} 查看。拒收请回复R"]
        assert (sms.param_count, list(sms.param_names)) == (1, ["1"])
        card = by_subject[template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE]
        assert card.subject_id == setup.tpl_id and len(card.subject_id) == 9 and card.subject_id.isdigit()
        assert list(card.vendors) == ["HUAWEI", "HONOR", "OPPO"]
        assert card.use_template_type == "StandardImageAndText"
        assert (card.param_count, list(card.param_names)) == (2, ["name", "amount"])
        assert "双十一会员日" in card.texts and "立即领取" in card.texts and "您有一张优惠券待领取" in card.texts
        assert [(b.text, b.action, b.target) for b in card.buttons] == [
            ("", "OPEN_BROWSER", "https://shop.example.com"),
            ("立即领取", "OPEN_BROWSER", "https://shop.example.com/coupon"),
        ]

        # Pending until the reviewer decides.
        listed = (await client.get("/v1/aim/templates", params={"tpl_id": setup.tpl_id})).json()["templates"][0]
        assert (listed["audit_state"], listed["tpl_state"]) == (1, 0)
        assert {f["factory_type"]: f["state"] for f in listed["factory_info"]} == {"HUAWEI": 0, "HONOR": 0, "OPPO": 0}

        # A decision for another revision is stale: ignored.
        await harness.review(template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE, setup.signature_id, revision=7)
        await harness.review(template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE, setup.signature_id, approved=False, reason="no")
        await harness.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, setup.sms_template_id)
        await harness.review(
            template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE, setup.tpl_id, vendors={"HUAWEI": True, "OPPO": False}
        )

        async def reviewed() -> dict[str, object] | None:
            card_view = (await client.get("/v1/aim/templates", params={"tpl_id": setup.tpl_id})).json()["templates"][0]
            return card_view if card_view["audit_state"] != 1 else None

        card_view = await eventually(reviewed)
        assert card_view["tpl_state"] == 1 and card_view["audit_state"] == 2
        assert {f["factory_type"]: f["state"] for f in card_view["factory_info"]} == {
            "HUAWEI": 1,
            "HONOR": 0,
            "OPPO": 0,
        }
        signature = (await client.get(f"/v1/sms/signatures/{setup.signature_id}")).json()
        assert (signature["status"], signature["review_desc"]) == ("REJECTED", "no")
        template = (await client.get("/v1/sms/templates", params={"template_id": setup.sms_template_id})).json()
        assert template["result"][0]["flow_status"] == "APPROVED"
        assert template["result"][0]["has_variable"] == "true"


async def test_other_tenants_ids_are_not_found(harness: Harness) -> None:
    alice, bob = await harness.tenant("alice"), await harness.tenant("bob")
    async with harness.client(alice) as a, harness.client(bob) as b:
        setup = await harness.prerequisites(a, approve=False)
        for path in (
            f"/v1/sms/apps/{setup.app_id}",
            f"/v1/sms/signatures/{setup.signature_id}",
            f"/v1/sms/templates/{setup.sms_template_id}",
        ):
            response = await b.get(path)
            assert response.status_code == 404, path
            assert response.json()["error_code"] == "KM.00000404"
            assert (await a.get(path)).status_code == 200
        assert (await b.get("/v1/aim/templates", params={"tpl_id": setup.tpl_id})).json()["templates"] == []
        assert (await b.get("/v1/sms/apps")).json()["page_info"]["total"] == 0
        # Bob cannot hang a signature on Alice's app.
        stolen = await b.post(
            "/v1/sms/signatures",
            json={"signature_name": "喜鹊", "signature_type": "NOTIFY_TYPE", "app_id": setup.app_id},
        )
        assert stolen.json()["error_code"] == "KM.00000421"


async def test_aim_template_checks(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        unknown_vendor = await client.post("/v1/aim/templates", json=card_body(vendors=("NOKIA",)))
        assert unknown_vendor.json()["error_code"] == "KM.00000400"
        no_vendor = card_body()
        no_vendor["factorys"] = [{"factory_type": "HUAWEI", "state": 0}]
        assert (await client.post("/v1/aim/templates", json=no_vendor)).status_code == 400
        bad_layout = {**card_body(), "card_id": "Hologram"}
        assert (await client.post("/v1/aim/templates", json=bad_layout)).status_code == 400
        ok = await client.post("/v1/aim/templates", json=card_body(vendors=("huawei", "Xiaomi")))
        assert ok.status_code == 200
        body = ok.json()
        assert body["status"] == "200" and len(body["data"]["tpl_id"]) == 9
        xiaomi = (await client.get("/v1/aim/templates", params={"factory_type": "XIAOMI"})).json()
        assert [t["tpl_id"] for t in xiaomi["templates"]] == [body["data"]["tpl_id"]]
        assert (await client.get("/v1/aim/templates", params={"factory_type": "OPPO"})).json()["templates"] == []
        status_only = (await client.get("/v1/aim/templates", params={"is_only_status": "true"})).json()["templates"][0]
        assert status_only["pages"] is None and status_only["params"] is None
