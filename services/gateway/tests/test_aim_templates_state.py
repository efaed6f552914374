"""AIM templates: enabling, disabling and deleting (``update_personal_template_state``,
``delete_aim_personal_template``) through the official SDK, and the refusals: bad state values, enabling an
unapproved template, deleting a template whose tasks are running or whose links are still valid, another
tenant's template."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkoomessage.v1 import (
    DeleteAimPersonalTemplateRequest,
    ListAimTemplatesRequest,
    UpdatePersonalTemplateStateDataRequest,
    UpdatePersonalTemplateStateRequest,
)

from magpie.v1 import template_pb2
from magpie_gateway.timefmt import utc_now

from .conftest import Harness, call, card_body, eventually, recipients, sdk_client

pytestmark = pytest.mark.integration

AIM = template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE


async def create_card(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/aim/templates", json=card_body())
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["tpl_id"])


async def card(client: httpx.AsyncClient, tpl_id: str) -> dict[str, Any] | None:
    response = await client.get("/v1/aim/templates", params={"tpl_id": tpl_id})
    assert response.status_code == 200, response.text
    templates = response.json()["templates"]
    return templates[0] if templates else None


async def approved(harness: Harness, client: httpx.AsyncClient) -> str:
    tpl_id = await create_card(client)
    await harness.review(AIM, tpl_id, vendors={"HUAWEI": True, "HONOR": True, "OPPO": False})

    async def enabled() -> bool:
        found = await card(client, tpl_id)
        return found is not None and found["tpl_state"] == 1

    await eventually(enabled)
    return tpl_id


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["error_msg"])


async def test_disable_enable_and_delete_through_the_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant("cards")
    async with harness.client(tenant) as client:
        tpl_id = await approved(harness, client)
    sdk = sdk_client(url, tenant)

    disabled = await call(
        lambda: sdk.update_personal_template_state(
            UpdatePersonalTemplateStateRequest(tpl_id=tpl_id, body=UpdatePersonalTemplateStateDataRequest(tpl_state=0))
        )
    )
    assert disabled.status == "200" and disabled.message == "success" and disabled.data is None
    listed = await call(lambda: sdk.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id)))
    template = listed.templates[0]
    assert template.tpl_state == 0 and template.audit_state == 2
    assert template.disable_time and template.disable_desc == "disabled by the tenant"
    assert [(f.factory_type, f.state) for f in template.factory_info] == [("HUAWEI", 1), ("HONOR", 1), ("OPPO", 0)]

    enabled = await call(
        lambda: sdk.update_personal_template_state(
            UpdatePersonalTemplateStateRequest(tpl_id=tpl_id, body=UpdatePersonalTemplateStateDataRequest(tpl_state=1))
        )
    )
    assert enabled.status == "200"
    template = (await call(lambda: sdk.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id)))).templates[0]
    assert template.tpl_state == 1 and template.disable_time is None and template.disable_desc is None

    deleted = await call(lambda: sdk.delete_aim_personal_template(DeleteAimPersonalTemplateRequest(tpl_id=tpl_id)))
    assert deleted.status == "200" and deleted.message == "success" and deleted.data is None
    assert (await call(lambda: sdk.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id)))).templates == []

    # Deleted: the template is unknown now (another request than the SDK's DELETE, which would be a replay when
    # sent again within the same signing second).
    async with harness.client(tenant) as client:
        error(await client.delete(f"/v1/aim/template/{tpl_id}"), 404, "KM.00000404")
    with pytest.raises(ClientRequestException) as caught:
        await call(lambda: sdk.delete_aim_personal_template(DeleteAimPersonalTemplateRequest(tpl_id="100000000")))
    assert caught.value.status_code == 404 and caught.value.error_code == "KM.00000404"


async def test_state_values_and_enabling_an_unapproved_template(harness: Harness) -> None:
    tenant = await harness.tenant("states")
    async with harness.client(tenant) as client:
        tpl_id = await create_card(client)  # under review
        path = f"/v1/aim/template-state/{tpl_id}"
        for bad in ({"tpl_state": 2}, {"tpl_state": -1}, {}, {"tpl_state": None}, {"tpl_state": "on"}):
            error(await client.put(path, json=bad), 400, "KM.00000400")
        message = error(await client.put(path, json={"tpl_state": 1}), 400, "KM.80040005")
        assert "only an approved template can be enabled" in message

        # Disabling under review is allowed and survives the approval that arrives afterwards.
        assert (await client.put(path, json={"tpl_state": 0})).status_code == 200
        await harness.review(AIM, tpl_id, vendors={"HUAWEI": True})

        async def reviewed() -> dict[str, Any] | None:
            found = await card(client, tpl_id)
            return found if found and found["audit_state"] == 2 else None

        found = await eventually(reviewed)
        assert found["tpl_state"] == 0 and found["disable_time"]
        assert (await client.put(path, json={"tpl_state": 1})).status_code == 200
        assert (await card(client, tpl_id) or {})["tpl_state"] == 1

        rejected = await create_card(client)
        await harness.review(AIM, rejected, approved=False, vendors={"HUAWEI": False, "HONOR": False, "OPPO": False})

        async def is_rejected() -> bool:
            return ((await card(client, rejected)) or {}).get("audit_state") == 3

        await eventually(is_rejected)
        error(await client.put(f"/v1/aim/template-state/{rejected}", json={"tpl_state": 1}), 400, "KM.80040005")
        assert (await client.put(f"/v1/aim/template-state/{rejected}", json={"tpl_state": 0})).status_code == 200


async def test_unknown_and_other_tenants_templates_are_not_found(harness: Harness) -> None:
    owner = await harness.tenant("owner")
    other = await harness.tenant("other")
    async with harness.client(owner) as mine, harness.client(other) as theirs:
        tpl_id = await approved(harness, mine)
        for client, target in ((theirs, tpl_id), (mine, "999999999")):
            error(await client.put(f"/v1/aim/template-state/{target}", json={"tpl_state": 0}), 404, "KM.00000404")
            error(await client.delete(f"/v1/aim/template/{target}"), 404, "KM.00000404")
        assert (await card(theirs, tpl_id)) is None
        untouched = await card(mine, tpl_id)
        assert untouched is not None and untouched["tpl_state"] == 1


async def test_deleting_a_template_in_use(harness: Harness) -> None:
    tenant = await harness.tenant("busy")
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        path = f"/v1/aim/template/{setup.tpl_id}"
        sent = await client.post("/v1/aim/send-tasks", json=setup.task(recipients(3)))
        assert sent.status_code == 200, sent.text
        task_id = sent.json()["task_id"]
        assert "in progress" in error(await client.delete(path), 400, "KM.80040006")

        # Disabling stops new sends at once.
        assert (await client.put(f"/v1/aim/template-state/{setup.tpl_id}", json={"tpl_state": 0})).status_code == 200
        error(await client.post("/v1/aim/send-tasks", json=setup.task(recipients(2))), 400, "KM.00000427")

        # A completed task still blocks while its links are valid (3 days here) ...
        tasks = harness.gateway.context.collections.tasks
        await tasks.update_one({"_id": task_id}, {"$set": {"state": "COMPLETED"}})
        message = error(await client.delete(path), 400, "KM.80040006")
        assert task_id in message and "valid until" in message
        # ... and no longer once they have expired; the links of a resolve task block the same way.
        await tasks.update_one({"_id": task_id}, {"$set": {"created_at": utc_now() - timedelta(days=4)}})
        resolve_tasks = harness.gateway.context.collections.resolve_tasks
        resolving = {"tenant_id": tenant.tenant_id, "tpl_id": setup.tpl_id, "created_at": utc_now()}
        await resolve_tasks.insert_one({"_id": "RT-1", **resolving, "expires_at": utc_now() + timedelta(days=30)})
        assert "resolve task RT-1" in error(await client.delete(path), 400, "KM.80040006")
        await resolve_tasks.update_one({"_id": "RT-1"}, {"$set": {"expires_at": utc_now() - timedelta(seconds=1)}})
        assert (await client.delete(path)).status_code == 200
        assert await card(client, setup.tpl_id) is None
