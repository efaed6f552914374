"""Short-link domains: name rules, review round trip on the real broker, the one default, edit only when rejected,
no deletion, materials, and tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, eventually
from .console_samples import pdf, png, rar, upload

pytestmark = pytest.mark.integration

DOMAINS = "/v1/magpie/domains"
FILES = "/v1/magpie/domain-files"
DOMAIN = template_pb2.REVIEW_SUBJECT_DOMAIN


async def wait_status(client: httpx.AsyncClient, domain_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"{DOMAINS}/{domain_id}")).json()
        return body if body["status"] == status else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_domain_lifecycle_and_default(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        created = await client.post(DOMAINS, json={"domain": "S.Magpie-Shop.com", "custom_short_code": True})
        assert created.status_code == 200, created.text
        first = created.json()
        first_id = first["domain_id"]
        assert first["domain"] == "s.magpie-shop.com" and first["status"] == "PENDING"
        assert first["custom_short_code"] is True and first["is_default"] is False and first["revision"] == 1
        sent = await collect(
            harness.settings,
            TEMPLATE_SUBMITTED,
            template_pb2.TemplateSubmitted,
            until=lambda ms: any(m.subject_id == first_id for m in ms),
        )
        assert next(m for m in sent if m.subject_id == first_id).texts[0] == "s.magpie-shop.com"

        same = await client.post(DOMAINS, json={"domain": "s.MAGPIE-shop.com."})
        assert same.status_code == 400 and same.json()["error_code"] == "KM.00000423"
        pending_edit = await client.put(f"{DOMAINS}/{first_id}", json={"domain": "t.magpie-shop.com"})
        assert pending_edit.status_code == 400 and pending_edit.json()["error_code"] == "KM.00000506"
        not_yet = await client.post(f"{DOMAINS}/{first_id}/default")
        assert not_yet.json()["error_code"] == "KM.00000508"

        await harness.review(DOMAIN, first_id, approved=False, reason="ownership not proven")
        rejected = await wait_status(client, first_id, "REJECTED")
        assert rejected["review_desc"] == "ownership not proven"
        edited = await client.put(f"{DOMAINS}/{first_id}", json={"domain": "go.magpie-shop.com"})
        assert edited.status_code == 200, edited.text
        assert edited.json()["status"] == "PENDING" and edited.json()["revision"] == 2
        assert edited.json()["domain"] == "go.magpie-shop.com" and edited.json()["review_desc"] is None

        await harness.review(DOMAIN, first_id, approved=True, revision=1)  # stale: ignored
        await harness.review(DOMAIN, first_id, approved=True, revision=2)
        await wait_status(client, first_id, "APPROVED")
        # The first approved domain becomes the default.
        assert (await eventually(lambda: _is_default(client, first_id))) is True

        second_id = (await client.post(DOMAINS, json={"domain": "m.magpie-shop.com"})).json()["domain_id"]
        await harness.review(DOMAIN, second_id, approved=True)
        second = await wait_status(client, second_id, "APPROVED")
        assert second["is_default"] is False
        moved = await client.post(f"{DOMAINS}/{second_id}/default")
        assert moved.status_code == 200 and moved.json()["is_default"] is True
        assert (await client.get(f"{DOMAINS}/{first_id}")).json()["is_default"] is False
        listed = (await client.get(DOMAINS, params={"status": "APPROVED"})).json()
        assert listed["page_info"]["total"] == 2
        assert [d["domain_id"] for d in listed["domains"] if d["is_default"]] == [second_id]
        assert (await client.get(DOMAINS, params={"domain": "GO.magpie"})).json()["page_info"]["total"] == 1

        approved_edit = await client.put(f"{DOMAINS}/{second_id}", json={"custom_short_code": True})
        assert approved_edit.json()["error_code"] == "KM.00000506"
        deleted = await client.delete(f"{DOMAINS}/{second_id}")
        assert deleted.status_code == 400 and deleted.json()["error_code"] == "KM.00000507"
        assert (await client.get(f"{DOMAINS}/{second_id}")).status_code == 200
        unknown = await client.delete(f"{DOMAINS}/DOMNOPE")
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "KM.00000404"


async def _is_default(client: httpx.AsyncClient, domain_id: str) -> bool:
    return bool((await client.get(f"{DOMAINS}/{domain_id}")).json()["is_default"])


BAD_DOMAINS = (
    "-bad.example.com",
    "bad-.example.com",
    "under_score.example.com",
    "https://s.example.com",
    "s.example.com/path",
    "s.example.com:8080",
    "localhost",
    "s.example.123",
    "a..example.com",
    ("x" * 64) + ".example.com",
    ("a" * 60 + ".") * 5 + "com",
    "",
)


async def test_domain_name_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        for domain in BAD_DOMAINS:
            response = await client.post(DOMAINS, json={"domain": domain})
            assert response.status_code == 400, domain
            assert response.json()["error_code"] == "KM.00000400", domain
        assert (await client.get(DOMAINS)).json()["page_info"]["total"] == 0
        assert (await client.post(DOMAINS, json={"domain": "a-1.b2.example.com"})).status_code == 200


async def test_domain_materials(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        letter = await upload(client, FILES, "relation.pdf", pdf(), purpose="domain")
        assert letter.status_code == 200, letter.text
        letter_id = letter.json()["file_id"]
        created = await client.post(DOMAINS, json={"domain": "s.example.com", "material_file_id": letter_id})
        assert created.json()["material"]["file_id"] == letter_id
        assert created.json()["material"]["file_type"] == "pdf"

        image = await upload(client, FILES, "relation.pdf", png(), purpose="domain")
        assert image.status_code == 400 and image.json()["error_code"] == "KM.00000430"
        too_big = await upload(client, FILES, "relation.pdf", pdf(2 * 1024 * 1024 + 10), purpose="domain")
        assert too_big.status_code == 413
        wrong_purpose = await upload(client, FILES, "relation.pdf", pdf(), purpose="logo")
        assert wrong_purpose.status_code == 400 and wrong_purpose.json()["error_code"] == "KM.00000400"
        archive = await upload(client, FILES, "extra.rar", rar(), purpose="jump_link")
        assert archive.status_code == 200
        mismatched = await client.post(
            DOMAINS, json={"domain": "t.example.com", "material_file_id": archive.json()["file_id"]}
        )
        assert mismatched.status_code == 400 and mismatched.json()["error_code"] == "KM.00000505"
        extra = await client.post(DOMAINS, json={"domain": "u.example.com", "owner": "me"})
        assert extra.status_code == 400


async def test_domains_are_tenant_scoped(harness: Harness) -> None:
    owner, other = await harness.tenant("owner"), await harness.tenant("other")
    async with harness.client(owner) as client, harness.client(other) as intruder:
        domain_id = (await client.post(DOMAINS, json={"domain": "s.example.com"})).json()["domain_id"]
        await harness.review(DOMAIN, domain_id, approved=False)
        await wait_status(client, domain_id, "REJECTED")
        for response in (
            await intruder.get(f"{DOMAINS}/{domain_id}"),
            await intruder.put(f"{DOMAINS}/{domain_id}", json={"domain": "evil.example.com"}),
            await intruder.post(f"{DOMAINS}/{domain_id}/default"),
            await intruder.delete(f"{DOMAINS}/{domain_id}"),
        ):
            assert response.status_code == 404 and response.json()["error_code"] == "KM.00000404"
        assert (await intruder.get(DOMAINS)).json()["page_info"]["total"] == 0
        # Uniqueness is per tenant: the other tenant may ask for the same domain (the review decides).
        assert (await intruder.post(DOMAINS, json={"domain": "s.example.com"})).status_code == 200
        assert (await client.get(f"{DOMAINS}/{domain_id}")).json()["domain"] == "s.example.com"
