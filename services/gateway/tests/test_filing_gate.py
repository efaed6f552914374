"""Enterprise filings as a prerequisite of sending (``filing_gate``, ``require_filings`` on): every gated operation is
refused with KM.00000514 without an approved filing of its product (none, DRAFT, PENDING, REJECTED; another
tenant's approved filing; the filing of another product) and accepted once the right one is approved; preparing
(templates, signatures, media) is allowed before; refusals store nothing and spend no Idempotency-Key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    CreateVmsSendTaskRequest,
    CreateVmsSendTaskRequestBody,
    SmsChannel,
)

from magpie.v1 import template_pb2
from magpie_common.config import Settings

from .conftest import (
    Harness,
    Setup,
    TenantKeys,
    call,
    eventually,
    gateway_config,
    harness_of,
    recipients,
    sdk_client,
    served_gateway,
)
from .console_samples import jpg, pdf, upload
from .sa_testkit import Images, create_body, images
from .test_resolve_tasks import TOKEN, shortlink_edge
from .test_vms import approved_template
from .vms_samples import params

pytestmark = pytest.mark.integration

FILINGS = "/v1/magpie/filings"
FILING = template_pb2.REVIEW_SUBJECT_FILING
REQUIRED = "KM.00000514"
LINK = "https://s.example/x1"
SA_ENTERPRISE = {
    "certificate_type": "THREE_IN_ONE",
    "enterprise_name": "喜鹊商城有限公司",
    "credit_code": "91310000MA1K35XY2Q",
    "contact_name": "张三",
    "contact_phone": "13900000001",
    "contact_email": "filing@example.com",
    "enterprise_type": "ENTERPRISE",
    "industry": "SHOPPING",
}
# material -> products that require it (filings_api.MATERIALS)
MATERIALS = {
    "business_license": {"AIM", "VMS", "SA"},
    "material_commitment": {"AIM", "VMS"},
    "signature_authorization": {"AIM", "VMS"},
    "company_relation": {"AIM", "VMS"},
    "port_registration": {"VMS"},
    "smart_message_authorization": {"SA"},
}


@dataclass
class Gated:
    url: str
    harness: Harness


@pytest.fixture
async def gated(settings: Settings) -> AsyncIterator[Gated]:
    """The gateway with ``require_filings`` on (and a shortlink edge, so resolution tasks can be accepted)."""
    async with shortlink_edge(settings) as (edge_url, _):
        config = gateway_config(
            require_filings=True,  # the gated operations are repeated word for word: no replay check here
            shortlink_url=edge_url,
            shortlink_internal_token=TOKEN,
            link_domain=edge_url + "/",
        )
        async with served_gateway(settings, config) as (url, harness):
            yield Gated(url, harness)


# --- filings through the API --------------------------------------------------------------------------------
async def material_file(client: httpx.AsyncClient, name: str) -> str:
    data, file_name = (jpg(), "license.jpg") if name == "business_license" else (pdf(text=name), f"{name}.pdf")
    response = await upload(client, "/v1/magpie/filing-files", file_name, data, material=name)
    assert response.status_code == 200, response.text
    return str(response.json()["file_id"])


async def draft_filing(client: httpx.AsyncClient, product: str) -> str:
    """A complete DRAFT filing of ``product`` (its own materials, nothing inherited)."""
    materials = {name: await material_file(client, name) for name, used in MATERIALS.items() if product in used}
    body: dict[str, Any] = {"product": product, "materials": materials, "inherit_shared": False}
    body["enterprise"] = SA_ENTERPRISE if product == "SA" else {"enterprise_name": "喜鹊商城有限公司"}
    response = await client.post(FILINGS, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "DRAFT" and response.json()["missing"] == []
    return str(response.json()["filing_id"])


async def filing_now(client: httpx.AsyncClient, filing_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"{FILINGS}/{filing_id}")).json()
        return body if body["status"] == status and not body["change_under_review"] else None

    result: dict[str, Any] = await eventually(check)
    return result


async def submit(client: httpx.AsyncClient, filing_id: str) -> int:
    response = await client.post(f"{FILINGS}/{filing_id}/submit")
    assert response.status_code == 200 and response.json()["status"] == "PENDING", response.text
    return int(response.json()["revision"])


async def decide(
    harness: Harness, client: httpx.AsyncClient, filing_id: str, revision: int, *, approved: bool
) -> dict[str, Any]:
    await harness.review(FILING, filing_id, approved=approved, revision=revision, reason="" if approved else "模糊")
    return await filing_now(client, filing_id, "APPROVED" if approved else "REJECTED")


async def approved_filing(harness: Harness, client: httpx.AsyncClient, product: str) -> str:
    filing_id = await draft_filing(client, product)
    await decide(harness, client, filing_id, await submit(client, filing_id), approved=True)
    return filing_id


# --- the gated operations -----------------------------------------------------------------------------------
@dataclass
class Prepared:
    """What the gated operations of one tenant send (prepared before any filing: preparing is allowed)."""

    setup: Setup
    vms_tpl_id: str
    images: Images


async def prepare(harness: Harness, client: httpx.AsyncClient) -> Prepared:
    setup = await harness.prerequisites(client)
    return Prepared(setup, await approved_template(harness, client), await images(client))


def vms_fallback_headers(pre: Prepared) -> dict[str, str]:
    return {
        "X-Magpie-Fallback": "vms",
        "X-Magpie-Fallback-Vms-Template": pre.vms_tpl_id,
        "X-Magpie-Fallback-Vms-Params": "p_1=dync:name,p_2=text:drive",
    }


Operation = Callable[[httpx.AsyncClient, Prepared], Awaitable[httpx.Response]]


def operations() -> dict[str, tuple[str, Operation]]:
    """operation -> (product whose filing it needs, the call)."""

    async def aim_task(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        return await c.post("/v1/aim/send-tasks", json=p.setup.task(recipients(2)))

    async def resolve_task(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        body = {
            "tpl_id": p.setup.tpl_id,
            "sms_signs": [p.setup.sign],
            "aim_code_type": "individual",
            "generation_type": "1",
            "expiration_time": 3,
            "params": [{"cust_flag": "13800138000", "dync_params": {"name": "王", "amount": "5"}}],
        }
        return await c.post("/v1/aim/resolve-tasks", json=body)

    async def sms_batch(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        body = {"template_id": p.setup.sms_template_id, "to": ["13800138000"], "template_params": [LINK]}
        return await c.post("/v1/aim/sms/messages", json=body)

    async def sms_diff(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        entry = {"template_id": p.setup.sms_template_id, "to": ["13800138001"], "template_params": [LINK]}
        return await c.post("/v1/aim/sms/diff-messages", json={"sms_content": [entry]})

    async def vms_task(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        body = {"task_name": "t", "tpl_id": p.vms_tpl_id, "mobiles": ["13900000001"], "dync_params": params("a", "b")}
        return await c.post("/v1/aim-basic/send-tasks", json=body)

    async def pub(c: httpx.AsyncClient, p: Prepared) -> httpx.Response:
        return await c.post("/v1/aim-sa/unify/pubs", json=create_body(p.images))

    return {
        "create_aim_send_task": ("AIM", aim_task),
        "create_resolve_task": ("AIM", resolve_task),
        "send_aim_batch_messages": ("AIM", sms_batch),
        "send_aim_batch_different_messages": ("AIM", sms_diff),
        "create_vms_send_task": ("VMS", vms_task),
        "create_pub_info": ("SA", pub),
    }


async def refused(response: httpx.Response, product: str, *words: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == REQUIRED, body
    message = str(body["error_msg"])
    assert f"An approved enterprise filing for {product} is required" in message, message
    for word in words:
        assert word in message, message
    return message


async def stored(harness: Harness, tenant: TenantKeys) -> dict[str, int]:
    c = harness.gateway.context.collections
    mine = {"tenant_id": tenant.tenant_id}
    return {
        "tasks": await c.tasks.count_documents(mine),
        "resolve_tasks": await c.resolve_tasks.count_documents(mine),
        "sms_sends": await c.sms_sends.count_documents(mine),
        "vms_tasks": await c.vms_tasks.count_documents(mine),
        "sa_pubs": await c.sa_pubs.count_documents(mine),
    }


NOTHING = {"tasks": 0, "resolve_tasks": 0, "sms_sends": 0, "vms_tasks": 0, "sa_pubs": 0}


# --- tests ----------------------------------------------------------------------------------------------------
async def test_each_operation_needs_the_approved_filing_of_its_product(gated: Gated) -> None:
    harness = gated.harness
    acme, rival = await harness.tenant("acme"), await harness.tenant("rival")
    ops = operations()
    async with harness.client(acme) as client, harness.client(rival) as other:
        pre = await prepare(harness, client)  # apps, signatures, templates, media: allowed without a filing

        async def all_refused(products: set[str], *words: str) -> None:
            for product, op in ops.values():
                if product in products:
                    await refused(await op(client, pre), product, *words)

        # Another tenant's approved filings do not count.
        for product in ("AIM", "VMS", "SA"):
            await approved_filing(harness, other, product)
        await all_refused({"AIM", "VMS", "SA"}, "there is none", "POST /v1/magpie/filings")

        drafts = {product: await draft_filing(client, product) for product in ("AIM", "VMS", "SA")}
        await all_refused({"AIM", "VMS", "SA"}, "is a DRAFT", "submit")
        revisions = {product: await submit(client, filing_id) for product, filing_id in drafts.items()}
        await all_refused({"AIM", "VMS", "SA"}, "is PENDING")
        for product, filing_id in drafts.items():
            await decide(harness, client, filing_id, revisions[product], approved=False)
        await all_refused({"AIM", "VMS", "SA"}, "was REJECTED", "模糊")
        assert await stored(harness, acme) == NOTHING

        # Correcting a rejected filing submits it again; its approval opens AIM only.
        aim = drafts["AIM"]
        again = await client.put(f"{FILINGS}/{aim}", json={"enterprise": {"contact_name": "李四"}})
        assert again.status_code == 200 and again.json()["status"] == "PENDING", again.text
        await decide(harness, client, aim, again.json()["revision"], approved=True)
        for name, (product, op) in ops.items():
            response = await op(client, pre)
            if product == "AIM":
                assert response.status_code == 200, (name, response.text)
            else:
                await refused(response, product, "was REJECTED")
        # The VMS fallback of a smart send task sends video SMS: it needs the VMS filing too.
        fallback = await client.post(
            "/v1/aim/send-tasks", json=pre.setup.task(recipients(2)), headers=vms_fallback_headers(pre)
        )
        await refused(fallback, "VMS", "was REJECTED")
        assert await stored(harness, acme) == {**NOTHING, "tasks": 1, "resolve_tasks": 1, "sms_sends": 2}

        vms = drafts["VMS"]
        await decide(harness, client, vms, await submit(client, vms), approved=True)
        vms_task = await ops["create_vms_send_task"][1](client, pre)
        assert vms_task.status_code == 200 and vms_task.json()["data"]["task_id"], vms_task.text
        fallback = await client.post(
            "/v1/aim/send-tasks", json=pre.setup.task(recipients(2)), headers=vms_fallback_headers(pre)
        )
        assert fallback.status_code == 200 and fallback.json()["fallback"] == "vms", fallback.text
        await refused(await ops["create_pub_info"][1](client, pre), "SA", "was REJECTED")

        sa = drafts["SA"]
        await decide(harness, client, sa, await submit(client, sa), approved=True)
        pub = await ops["create_pub_info"][1](client, pre)
        assert pub.status_code == 200 and pub.json()["data"]["data"]["pub_id"], pub.text
        assert await stored(harness, acme) == {
            "tasks": 2,
            "resolve_tasks": 1,
            "sms_sends": 2,
            "vms_tasks": 1,
            "sa_pubs": 1,
        }


async def test_sdk_sees_the_refusal_and_the_gate_follows_the_filing_at_once(gated: Gated) -> None:
    harness = gated.harness
    tenant = await harness.tenant("acme")
    sdk = sdk_client(gated.url, tenant)
    async with harness.client(tenant) as client:
        pre = await prepare(harness, client)
        setup = pre.setup
        request = CreateAimSendTaskRequest(
            body=CreateAimSendTaskRequestBody(
                task_name="双十一",
                sms_channel=SmsChannel(
                    sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name
                ),
                resolve_task=AIMResolveTask(
                    tpl_id=setup.tpl_id,
                    aim_code_type="individual",
                    generation_type="1",
                    expiration_time=3,
                    params=[CreateResolveTaskParam(cust_flag="13900000001", dync_params={"name": "王", "amount": "5"})],
                ),
            )
        )
        with pytest.raises(ClientRequestException) as no_filing:
            await call(lambda: sdk.create_aim_send_task(request))
        assert no_filing.value.status_code == 400 and no_filing.value.error_code == REQUIRED
        assert "enterprise filing for AIM is required" in no_filing.value.error_msg
        vms_request = CreateVmsSendTaskRequest(
            body=CreateVmsSendTaskRequestBody(
                task_name="t", tpl_id=pre.vms_tpl_id, mobiles=["13900000001"], dync_params=params("a", "b")
            )
        )
        with pytest.raises(ClientRequestException) as no_vms:
            await call(lambda: sdk.create_vms_send_task(vms_request))
        assert no_vms.value.status_code == 400 and no_vms.value.error_code == REQUIRED
        assert "enterprise filing for VMS is required" in no_vms.value.error_msg

        # A refused request with an Idempotency-Key spends nothing: the same key works once the filing is approved.
        keyed = {"Idempotency-Key": "campaign-2026-11-11"}
        body = setup.task(recipients(3))
        await refused(await client.post("/v1/aim/send-tasks", json=body, headers=keyed), "AIM")
        idempotency = harness.gateway.context.collections.idempotency
        assert await idempotency.find_one({"_id": f"{tenant.tenant_id}:campaign-2026-11-11"}) is None
        aim = await approved_filing(harness, client, "AIM")  # counts at once: nothing is cached
        first = await client.post("/v1/aim/send-tasks", json=body, headers=keyed)
        assert first.status_code == 200, first.text
        created = await call(lambda: sdk.create_aim_send_task(request))
        assert created.task_id and created.task_id != first.json()["task_id"]

        # Editing the approved filing keeps it approved (and the gate open) while the change is reviewed ...
        changed = await client.put(f"{FILINGS}/{aim}", json={"enterprise": {"contact_name": "李四"}})
        assert changed.json()["status"] == "APPROVED" and changed.json()["change_under_review"] is True
        assert (await client.post("/v1/aim/send-tasks", json=setup.task(recipients(1)))).status_code == 200
        # ... a rejected change makes it REJECTED: new sends are refused, the accepted task's key still answers.
        await decide(harness, client, aim, changed.json()["revision"], approved=False)
        await refused(await client.post("/v1/aim/send-tasks", json=setup.task(recipients(1))), "AIM", "REJECTED")
        replay = await client.post("/v1/aim/send-tasks", json=body, headers=keyed)
        assert replay.status_code == 200 and replay.json()["task_id"] == first.json()["task_id"]
        with pytest.raises(ClientRequestException) as rejected:
            await call(lambda: sdk.create_aim_send_task(request))
        assert rejected.value.error_code == REQUIRED and "REJECTED" in rejected.value.error_msg


async def test_the_gate_is_off_when_not_required(settings: Settings) -> None:
    """``MAGPIE_REQUIRE_FILINGS=0`` (the unit-test default): sending needs no filing."""
    async with harness_of(settings, gateway_config()) as harness:
        assert harness.gateway.config.require_filings is False
        tenant = await harness.tenant("acme")
        async with harness.client(tenant) as client:
            setup = await harness.prerequisites(client)
            response = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(1)))
            assert response.status_code == 200, response.text
            assert (await client.get(FILINGS)).json()["page_info"]["total"] == 0


def test_the_production_default_requires_filings(monkeypatch: pytest.MonkeyPatch) -> None:
    from magpie_gateway.config import GatewayConfig

    monkeypatch.delenv("MAGPIE_REQUIRE_FILINGS", raising=False)
    assert GatewayConfig().require_filings is True
    monkeypatch.setenv("MAGPIE_REQUIRE_FILINGS", "0")
    assert GatewayConfig().require_filings is False


async def test_the_demo_driver_files_its_enterprise_through_the_api(gated: Gated) -> None:
    """``campaign.approved_filings`` (the demo's and the e2e tests' driver) creates complete filings with its own
    PDFs through the signed Magpie API, submits them and waits for the decision (played here by the harness)."""
    from magpie_devstack import campaign

    harness = gated.harness
    tenant = await harness.tenant("demo")
    client = campaign.sdk_client(gated.url, tenant.access_key, tenant.secret_key)
    running = asyncio.create_task(call(lambda: campaign.approved_filings(client, ("AIM", "VMS", "SA"))))
    decided: set[str] = set()
    async with harness.client(tenant) as console:
        while not running.done():
            for filing in (await console.get(FILINGS, params={"status": "PENDING"})).json()["filings"]:
                if filing["filing_id"] not in decided:
                    decided.add(filing["filing_id"])
                    assert filing["missing"] == [], filing
                    await harness.review(FILING, filing["filing_id"], revision=filing["revision"])
            await asyncio.sleep(0.1)
        ids = await running
        assert set(ids) == {"AIM", "VMS", "SA"} and set(ids.values()) == decided
        for product, filing_id in ids.items():
            filing = (await console.get(f"{FILINGS}/{filing_id}")).json()
            assert filing["product"] == product and filing["status"] == "APPROVED"
            assert filing["enterprise"]["enterprise_name"] == "喜鹊商城有限公司"
            assert filing["materials"]["business_license"]["file_type"] == "pdf"
        # Taken as they are when asked again (nothing created twice), and sending is open.
        assert await call(lambda: campaign.approved_filings(client, ("AIM",))) == {"AIM": ids["AIM"]}
        setup = await harness.prerequisites(console)
        response = await console.post("/v1/aim/send-tasks", json=setup.task(recipients(1)))
        assert response.status_code == 200, response.text
