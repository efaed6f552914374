"""Enterprise filings: material uploads (types and sizes decided by content), the DRAFT -> PENDING -> APPROVED |
REJECTED state machine with the reviewer's decisions on the real broker, shared materials across products, and
tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, eventually
from .console_samples import jpg, pdf, png, rar, upload, zip_file

pytestmark = pytest.mark.integration

FILES = "/v1/magpie/filing-files"
FILINGS = "/v1/magpie/filings"
FILING = template_pb2.REVIEW_SUBJECT_FILING


async def material(client: httpx.AsyncClient, name: str, data: bytes, file_name: str = "m.pdf") -> str:
    response = await upload(client, FILES, file_name, data, material=name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["purpose"] == name and body["file_size"] == len(data)
    return str(body["file_id"])


async def aim_materials(client: httpx.AsyncClient) -> dict[str, str]:
    return {
        "business_license": await material(client, "business_license", jpg(), "license.jpg"),
        "material_commitment": await material(client, "material_commitment", pdf(text="commitment")),
        "signature_authorization": await material(client, "signature_authorization", pdf(text="signature")),
        "company_relation": await material(client, "company_relation", pdf(text="relation")),
    }


async def status_of(client: httpx.AsyncClient, filing_id: str, status: str, **extra: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"{FILINGS}/{filing_id}")).json()
        ok = body["status"] == status and all(body[k] == v for k, v in extra.items())
        return body if ok else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_filing_state_machine(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        files = await aim_materials(client)
        draft = await client.post(
            FILINGS,
            json={
                "product": "AIM",
                "enterprise": {"enterprise_name": "喜鹊商城有限公司"},
                "materials": {"business_license": files["business_license"]},
            },
        )
        assert draft.status_code == 200, draft.text
        filing = draft.json()
        filing_id = filing["filing_id"]
        assert filing["status"] == "DRAFT" and filing["revision"] == 1
        assert filing["enterprise"]["certificate_type"] == "BUSINESS_LICENSE"
        assert filing["materials"]["business_license"]["file_type"] == "jpg"
        assert set(filing["missing"]) == {"material_commitment", "signature_authorization", "company_relation"}

        incomplete = await client.post(f"{FILINGS}/{filing_id}/submit")
        assert incomplete.status_code == 400
        assert incomplete.json()["error_code"] == "KM.00000502"
        assert "material_commitment" in incomplete.json()["error_msg"]

        edited = await client.put(f"{FILINGS}/{filing_id}", json={"materials": files})
        assert edited.status_code == 200, edited.text
        assert edited.json()["status"] == "DRAFT" and edited.json()["missing"] == []
        assert edited.json()["revision"] == 2

        submitted = await client.post(f"{FILINGS}/{filing_id}/submit")
        assert submitted.status_code == 200
        assert submitted.json()["status"] == "PENDING" and submitted.json()["revision"] == 3
        assert submitted.json()["submit_time"] is not None
        sent = await collect(
            harness.settings,
            TEMPLATE_SUBMITTED,
            template_pb2.TemplateSubmitted,
            until=lambda ms: any(m.subject_id == filing_id for m in ms),
        )
        message = next(m for m in sent if m.subject_id == filing_id)
        assert message.subject == FILING and message.revision == 3 and message.use_template_type == "AIM"
        assert "喜鹊商城有限公司" in message.texts

        again = await client.post(f"{FILINGS}/{filing_id}/submit")
        assert again.status_code == 400 and again.json()["error_code"] == "KM.00000501"
        while_pending = await client.put(f"{FILINGS}/{filing_id}", json={"enterprise": {"contact_name": "李四"}})
        assert while_pending.json()["error_code"] == "KM.00000501"

        await harness.review(FILING, filing_id, approved=False, revision=3, reason="licence unreadable")
        rejected = await status_of(client, filing_id, "REJECTED")
        assert rejected["review_desc"] == "licence unreadable" and rejected["review_time"] is not None

        # Editing a rejected filing submits it again.
        new_license = await material(client, "business_license", pdf(text="licence v2"), "license.pdf")
        resubmitted = await client.put(f"{FILINGS}/{filing_id}", json={"materials": {"business_license": new_license}})
        assert resubmitted.json()["status"] == "PENDING" and resubmitted.json()["revision"] == 4
        assert resubmitted.json()["review_desc"] is None
        await harness.review(FILING, filing_id, approved=True, revision=3)  # stale: ignored
        await harness.review(FILING, filing_id, approved=True, revision=4)
        approved = await status_of(client, filing_id, "APPROVED")
        assert approved["materials"]["business_license"]["file_id"] == new_license

        already = await client.post(f"{FILINGS}/{filing_id}/submit")
        assert already.json()["error_code"] == "KM.00000504"

        # Editing an approved filing keeps it approved; the change is reviewed in the background.
        changed = await client.put(f"{FILINGS}/{filing_id}", json={"enterprise": {"contact_name": "李四"}})
        assert changed.status_code == 200
        assert changed.json()["status"] == "APPROVED" and changed.json()["change_under_review"] is True
        blocked = await client.put(f"{FILINGS}/{filing_id}", json={"enterprise": {"contact_name": "王五"}})
        assert blocked.json()["error_code"] == "KM.00000501"
        await harness.review(FILING, filing_id, approved=True, revision=5)
        done = await status_of(client, filing_id, "APPROVED", change_under_review=False)
        assert done["enterprise"]["contact_name"] == "李四"

        # A rejected change revokes the approval.
        await client.put(f"{FILINGS}/{filing_id}", json={"enterprise": {"contact_name": "王五"}})
        await harness.review(FILING, filing_id, approved=False, revision=6, reason="contact unknown")
        assert (await status_of(client, filing_id, "REJECTED"))["review_desc"] == "contact unknown"

        duplicate = await client.post(FILINGS, json={"product": "AIM"})
        assert duplicate.status_code == 400 and duplicate.json()["error_code"] == "KM.00000503"

        listed = (await client.get(FILINGS, params={"product": "AIM"})).json()
        assert listed["page_info"]["total"] == 1 and listed["filings"][0]["filing_id"] == filing_id
        assert (await client.get(FILINGS, params={"status": "APPROVED"})).json()["page_info"]["total"] == 0
        bad_status = await client.get(FILINGS, params={"status": "DONE"})
        assert bad_status.status_code == 400


async def test_shared_materials_across_products(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        files = await aim_materials(client)
        aim = await client.post(
            FILINGS,
            json={
                "product": "AIM",
                "enterprise": {"enterprise_name": "喜鹊商城有限公司", "contact_email": "ops@example.com"},
                "materials": files,
                "submit": True,
            },
        )
        assert aim.status_code == 200, aim.text
        assert aim.json()["status"] == "PENDING"
        aim_id = aim.json()["filing_id"]
        await harness.review(FILING, aim_id, approved=True, revision=1)
        await status_of(client, aim_id, "APPROVED")

        # VMS: the shared materials come from the approved AIM filing; only the port registration is new.
        port = await material(client, "port_registration", pdf(text="port"))
        vms = await client.post(FILINGS, json={"product": "VMS", "materials": {"port_registration": port}})
        assert vms.status_code == 200, vms.text
        view = vms.json()
        assert view["missing"] == []
        for name in ("business_license", "material_commitment", "signature_authorization", "company_relation"):
            assert view["materials"][name]["file_id"] == files[name]
            assert view["shared_from"][name] == "AIM"
        assert view["enterprise"]["enterprise_name"] == "喜鹊商城有限公司"
        assert view["shared_from"]["enterprise.enterprise_name"] == "AIM"
        submitted = await client.post(f"{FILINGS}/{view['filing_id']}/submit")
        assert submitted.json()["status"] == "PENDING"

        # Without inheritance nothing is taken over.
        sa_alone = await client.post(FILINGS, json={"product": "SA", "inherit_shared": False})
        assert sa_alone.status_code == 200
        assert "business_license" in sa_alone.json()["missing"]
        assert "enterprise.credit_code" in sa_alone.json()["missing"]


async def test_sa_filing_requires_enterprise_data(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        license_id = await material(client, "business_license", png(), "license.png")
        authorization = await material(client, "smart_message_authorization", pdf(text="authorisation"))
        special_zip = await material(client, "special_materials", zip_file(), "extra.zip")
        special_rar = await material(client, "special_materials", rar(), "extra.rar")
        materials = {
            "business_license": license_id,
            "smart_message_authorization": authorization,
            "special_materials": [special_zip, special_rar],
        }
        incomplete = await client.post(FILINGS, json={"product": "SA", "materials": materials, "submit": True})
        assert incomplete.status_code == 400 and incomplete.json()["error_code"] == "KM.00000502"
        assert "enterprise.credit_code" in incomplete.json()["error_msg"]
        enterprise = {
            "certificate_type": "THREE_IN_ONE",
            "enterprise_name": "喜鹊商城有限公司",
            "credit_code": "91310000ma1k35xy2q",
            "contact_name": "张三",
            "contact_phone": "+86 139-0000-0001",
            "contact_email": "sa@example.com",
            "enterprise_type": "ENTERPRISE",
            "industry": "SHOPPING",
        }
        bad_certificate = await client.post(
            FILINGS, json={"product": "SA", "enterprise": {**enterprise, "certificate_type": "BUSINESS_LICENSE"}}
        )
        assert bad_certificate.json()["error_code"] == "KM.00000400"
        bad_code = await client.post(FILINGS, json={"product": "SA", "enterprise": {**enterprise, "credit_code": "1"}})
        assert bad_code.json()["error_code"] == "KM.00000400" and "credit_code" in bad_code.json()["error_msg"]
        bad_industry = await client.post(FILINGS, json={"product": "SA", "enterprise": {**enterprise, "industry": "X"}})
        assert bad_industry.status_code == 400
        ok = await client.post(
            FILINGS, json={"product": "SA", "enterprise": enterprise, "materials": materials, "submit": True}
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["status"] == "PENDING"
        assert body["enterprise"]["credit_code"] == "91310000MA1K35XY2Q"
        assert [f["file_type"] for f in body["materials"]["special_materials"]] == ["zip", "rar"]
        assert body["materials"]["company_relation"] is None


async def test_uploads_and_references_are_checked(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        too_big = await upload(client, FILES, "big.pdf", pdf(2 * 1024 * 1024 + 1), material="company_relation")
        assert too_big.status_code == 413 and too_big.json()["error_code"] == "KM.00000413"
        png_as_pdf = await upload(client, FILES, "letter.pdf", png(), material="company_relation")
        assert png_as_pdf.status_code == 400 and png_as_pdf.json()["error_code"] == "KM.00000430"
        assert "png" in png_as_pdf.json()["error_msg"]
        pdf_as_special = await upload(client, FILES, "extra.pdf", pdf(), material="special_materials")
        assert pdf_as_special.json()["error_code"] == "KM.00000430"
        empty = await upload(client, FILES, "empty.pdf", b"", material="company_relation")
        assert empty.json()["error_code"] == "KM.00000430"
        unknown = await upload(client, FILES, "x.pdf", pdf(), material="passport")
        assert unknown.status_code == 400 and "material must be one of" in unknown.json()["error_msg"]
        no_material = await upload(client, FILES, "x.pdf", pdf())
        assert no_material.status_code == 400
        no_file = await upload(client, FILES, "", None, material="company_relation", note="no file")
        assert no_file.status_code == 400 and no_file.json()["error_code"] == "KM.00000400"

        license_jpg = await material(client, "business_license", jpg(), "license.jpg")
        wrong_slot = await client.post(FILINGS, json={"product": "AIM", "materials": {"company_relation": license_jpg}})
        assert wrong_slot.status_code == 400 and wrong_slot.json()["error_code"] == "KM.00000505"
        missing = await client.post(FILINGS, json={"product": "AIM", "materials": {"business_license": "CFNOPE"}})
        assert missing.json()["error_code"] == "KM.00000505"
        not_aim = await client.post(FILINGS, json={"product": "AIM", "materials": {"port_registration": license_jpg}})
        assert not_aim.json()["error_code"] == "KM.00000400"
        typo = await client.post(FILINGS, json={"product": "AIM", "materials": {"busines_license": license_jpg}})
        assert typo.json()["error_code"] == "KM.00000400"
        bad_product = await client.post(FILINGS, json={"product": "SMS"})
        assert bad_product.json()["error_code"] == "KM.00000400"
        no_body = await client.post(FILINGS)
        assert no_body.status_code == 400

        downloaded = await client.get(f"{FILES}/{license_jpg}")
        assert downloaded.status_code == 200 and downloaded.content == jpg()
        assert "license.jpg" in downloaded.headers["content-disposition"]


async def test_filings_are_tenant_scoped(harness: Harness) -> None:
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        license_id = await material(client, "business_license", jpg(), "license.jpg")
        created = await client.post(FILINGS, json={"product": "AIM", "materials": {"business_license": license_id}})
        filing_id = created.json()["filing_id"]

        for response in (
            await intruder.get(f"{FILINGS}/{filing_id}"),
            await intruder.put(f"{FILINGS}/{filing_id}", json={"enterprise": {"contact_name": "x"}}),
            await intruder.post(f"{FILINGS}/{filing_id}/submit"),
            await intruder.get(f"{FILES}/{license_id}"),
        ):
            assert response.status_code == 404 and response.json()["error_code"] == "KM.00000404"
        stolen = await intruder.post(FILINGS, json={"product": "AIM", "materials": {"business_license": license_id}})
        assert stolen.json()["error_code"] == "KM.00000505"
        assert (await intruder.get(FILINGS)).json()["page_info"]["total"] == 0
        # The other tenant's AIM filing is its own (same product, another id).
        own = await intruder.post(FILINGS, json={"product": "AIM"})
        assert own.status_code == 200 and own.json()["filing_id"] != filing_id
        assert (await client.get(f"{FILINGS}/{filing_id}")).json()["enterprise"]["contact_name"] is None
