"""Custom jump links: typed-in batches (<= 10) and xlsx imports (<= 10,000 rows, read-only parsing) with clear
errors naming positions and rows, the review round trip, filters, paging of a batch's links, tenant isolation."""

from __future__ import annotations

import pytest

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, eventually
from .console_samples import pdf, rar, upload, xlsx, zip_file

pytestmark = pytest.mark.integration

LINKS = "/v1/magpie/jump-links"
IMPORT = "/v1/magpie/jump-links/import"
JUMP_LINK = template_pb2.REVIEW_SUBJECT_JUMP_LINK
BASE = {"task_name": "双十一落地页", "apply_reason": "活动落地页"}


async def test_typed_in_batch_is_reviewed(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        material = await upload(client, "/v1/magpie/domain-files", "proof.zip", zip_file(), purpose="jump_link")
        links = ["https://shop.example.com/a", "http://shop.example.com/b?x=1", "https://shop.example.com/a"]
        created = await client.post(
            LINKS, json={**BASE, "links": links, "material_file_id": material.json()["file_id"]}
        )
        assert created.status_code == 200, created.text
        batch = created.json()
        batch_id = batch["batch_id"]
        assert batch["status"] == "PENDING" and batch["source"] == "MANUAL"
        assert batch["link_count"] == 2 and batch["duplicates_removed"] == 1
        assert batch["material"]["file_type"] == "zip"
        sent = await collect(
            harness.settings,
            TEMPLATE_SUBMITTED,
            template_pb2.TemplateSubmitted,
            until=lambda ms: any(m.subject_id == batch_id for m in ms),
        )
        message = next(m for m in sent if m.subject_id == batch_id)
        assert message.subject == JUMP_LINK and list(message.texts)[1:] == links[:2]

        await harness.review(JUMP_LINK, batch_id, approved=True)

        async def approved() -> bool:
            return bool((await client.get(f"{LINKS}/{batch_id}")).json()["status"] == "APPROVED")

        await eventually(approved)
        detail = (await client.get(f"{LINKS}/{batch_id}")).json()
        assert detail["links"] == links[:2] and detail["links_page_info"]["total"] == 2

        other = await client.post(LINKS, json={**BASE, "task_name": "会员日", "links": ["https://m.example.com"]})
        await harness.review(JUMP_LINK, other.json()["batch_id"], approved=False, reason="landing page unreachable")

        async def rejected() -> bool:
            body = (await client.get(f"{LINKS}/{other.json()['batch_id']}")).json()
            return bool(body["status"] == "REJECTED" and body["review_desc"] == "landing page unreachable")

        await eventually(rejected)
        by_status = (await client.get(LINKS, params={"status": "APPROVED"})).json()
        assert [b["batch_id"] for b in by_status["batches"]] == [batch_id]
        by_link = (await client.get(LINKS, params={"link": "http://shop.example.com/b?x=1"})).json()
        assert by_link["page_info"]["total"] == 1 and by_link["batches"][0]["batch_id"] == batch_id
        by_name = (await client.get(LINKS, params={"task_name": "会员"})).json()
        assert [b["task_name"] for b in by_name["batches"]] == ["会员日"]
        assert (await client.get(LINKS, params={"batch_id": batch_id})).json()["page_info"]["total"] == 1
        assert (await client.get(LINKS, params={"status": "OK"})).status_code == 400


BAD_LINKS = (
    ([f"https://e.example.com/{i}" for i in range(11)], "at most 10 links"),
    ([], "at least one link"),
    (["https://ok.example.com", "ftp://files.example.com/x"], "links[1] not an http(s) link"),
    (["https://e.example.com/" + "x" * 240], "links[0] longer than 256 characters"),
    (["https://e.example.com/a b"], "links[0] contains white space"),
    (["https://user:pw@e.example.com/"], "links[0] carries credentials"),
    (["https:///path"], "links[0] has no host"),
    (["https://e.example.com:99999/"], "links[0] malformed"),
)


async def test_typed_in_links_are_checked(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        for links, fragment in BAD_LINKS:
            response = await client.post(LINKS, json={**BASE, "links": links})
            assert response.status_code == 400, fragment
            assert response.json()["error_code"] == "KM.00000509"
            assert fragment in response.json()["error_msg"], response.json()["error_msg"]
        assert (await client.get(LINKS)).json()["page_info"]["total"] == 0


async def test_other_fields_of_a_typed_in_batch(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        for body in (
            {**BASE, "task_name": " ", "links": ["https://e.example.com"]},
            {**BASE, "apply_reason": "", "links": ["https://e.example.com"]},
            {**BASE, "task_name": "x" * 65, "links": ["https://e.example.com"]},
            {"task_name": "x", "links": ["https://e.example.com"]},
        ):
            response = await client.post(LINKS, json=body)
            assert response.status_code == 400 and response.json()["error_code"] == "KM.00000400"
        pdf_material = await client.post(
            LINKS, json={**BASE, "links": ["https://e.example.com"], "material_file_id": "CFX"}
        )
        assert pdf_material.json()["error_code"] == "KM.00000505"


async def test_xlsx_import_up_to_ten_thousand_rows(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        rows = [[f"https://shop.example.com/item/{i}", f"note {i}"] for i in range(10_000)]
        data = xlsx(rows, header=["跳转链接", "备注"])
        imported = await upload(client, IMPORT, "links.xlsx", data, **BASE)
        assert imported.status_code == 200, imported.text
        batch = imported.json()
        assert batch["source"] == "FILE" and batch["file_name"] == "links.xlsx"
        assert batch["link_count"] == 10_000 and batch["status"] == "PENDING"
        page = (await client.get(f"{LINKS}/{batch['batch_id']}", params={"offset": 9_998, "limit": 5})).json()
        assert page["links"] == ["https://shop.example.com/item/9998", "https://shop.example.com/item/9999"]
        assert page["links_page_info"] == {"offset": 9_998, "limit": 5, "total": 10_000}
        listed = (await client.get(LINKS)).json()["batches"][0]
        assert listed["link_count"] == 10_000 and "links" not in listed

        # Blank rows are skipped, duplicates kept once, the link column found by its header.
        mixed = xlsx(
            [
                ["a", "https://e.example.com/1"],
                [None, None],
                ["b", "https://e.example.com/1"],
                ["c", "https://e.example.com/2"],
            ],
            header=["name", "URL"],
        )
        small = await upload(client, IMPORT, "mixed.xlsx", mixed, **BASE)
        assert small.status_code == 200, small.text
        assert small.json()["link_count"] == 2 and small.json()["duplicates_removed"] == 1

        too_many = xlsx([[f"https://shop.example.com/{i}"] for i in range(10_001)], header=["url"])
        refused = await upload(client, IMPORT, "many.xlsx", too_many, **BASE)
        assert refused.status_code == 400 and refused.json()["error_code"] == "KM.00000509"
        assert "row 10002" in refused.json()["error_msg"] and "10000" in refused.json()["error_msg"]


async def test_xlsx_import_errors_name_the_rows(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:

        async def refused(name: str, data: bytes, fragment: str) -> None:
            response = await upload(client, IMPORT, name, data, **BASE)
            assert response.status_code == 400, response.text
            assert response.json()["error_code"] == "KM.00000509"
            assert fragment in response.json()["error_msg"], response.json()["error_msg"]

        await refused("broken.xlsx", b"PK\x03\x04 this is not a workbook", "not a readable xlsx workbook")
        await refused("pdf.xlsx", pdf(), "not a readable xlsx workbook")
        await refused("archive.xlsx", zip_file(), "not a readable xlsx workbook")
        await refused("archive.xlsx", rar(), "not a readable xlsx workbook")
        await refused("empty.xlsx", b"", "the file is empty")
        await refused("columns.xlsx", xlsx([["https://e.example.com"]], header=["name", "remark"]), "row 1")
        await refused("headerless.xlsx", xlsx([["https://e.example.com/1"], ["https://e.example.com/2"]]), "row 1")
        await refused("blank.xlsx", xlsx([]), "the first sheet is empty")
        await refused("only-header.xlsx", xlsx([], header=["url"]), "no link below the header")
        bad_rows = xlsx(
            [["https://e.example.com/1"], ["mailto:x@example.com"], ["https://e.example.com/3"], [12345]],
            header=["url"],
        )
        await refused("bad.xlsx", bad_rows, "2 bad link(s): row 3 not an http(s) link; row 5 not text")
        many_bad = xlsx([["ftp://e.example.com"] for _ in range(30)], header=["url"])
        await refused("bad.xlsx", many_bad, "30 bad link(s): row 2 not an http(s) link")
        big = b"PK" + b"\x00" * (5 * 1024 * 1024)
        too_big = await upload(client, IMPORT, "big.xlsx", big, **BASE)
        assert too_big.status_code == 413 and too_big.json()["error_code"] == "KM.00000413"
        no_file = await upload(client, IMPORT, "", None, **BASE)
        assert no_file.status_code == 400 and no_file.json()["error_code"] == "KM.00000400"
        no_name = await upload(client, IMPORT, "x.xlsx", xlsx([["https://e.example.com"]], header=["url"]))
        assert no_name.status_code == 400 and no_name.json()["error_code"] == "KM.00000400"
        assert (await client.get(LINKS)).json()["page_info"]["total"] == 0


async def test_jump_links_are_tenant_scoped(harness: Harness) -> None:
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        batch_id = (await client.post(LINKS, json={**BASE, "links": ["https://e.example.com"]})).json()["batch_id"]
        response = await intruder.get(f"{LINKS}/{batch_id}")
        assert response.status_code == 404 and response.json()["error_code"] == "KM.00000404"
        assert (await intruder.get(LINKS, params={"batch_id": batch_id})).json()["page_info"]["total"] == 0
        assert (await intruder.get(LINKS, params={"link": "https://e.example.com"})).json()["batches"] == []
        material = await upload(client, "/v1/magpie/domain-files", "proof.rar", rar(), purpose="jump_link")
        stolen = await intruder.post(
            LINKS, json={**BASE, "links": ["https://x.example.com"], "material_file_id": material.json()["file_id"]}
        )
        assert stolen.json()["error_code"] == "KM.00000505"
