"""IAM end to end: sub-users, access keys, policies and their enforcement on the real gateway (official SDK for the
KooMessage operations, httpx for the Magpie IAM endpoints), tasks recording their operator, the operator endpoints,
and tenant isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.routing import iter_route_contexts
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    CreateSmsAppRequest,
    ListAimMsgAppRequest,
    ListAimSendTasksRequest,
    MsgAppRequest,
    SmsChannel,
)

from magpie_gateway.auth import Principal
from magpie_gateway.errors import install_error_handlers
from magpie_gateway.iam.actions import ACTIONS, Product
from magpie_gateway.iam.authorization import authorize

from .conftest import ADMIN_TOKEN, Harness, TenantKeys, call, recipients, sdk_client

pytestmark = pytest.mark.integration

IAM = "/v1/magpie/iam"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
PASSWORD = "Sub-user-pass-1"


# --- helpers (also used by test_tokens.py) ---------------------------------------------------------------------


async def make_sub_user(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    name: str,
    *,
    policies: tuple[str, ...] = (),
    password: str | None = PASSWORD,
) -> tuple[TenantKeys, str]:
    """A sub-user of ``tenant`` (created by its main account ``client``) with ``policies`` attached and one key."""
    body: dict[str, Any] = {"name": name}
    if password is not None:
        body["password"] = password
    created = await client.post(f"{IAM}/users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    for policy in policies:
        attached = await client.put(f"{IAM}/users/{user_id}/policies/{policy}")
        assert attached.status_code == 200, attached.text
    key = await client.post(f"{IAM}/users/{user_id}/access-keys", json={"description": "ci"})
    assert key.status_code == 201, key.text
    return TenantKeys(tenant.tenant_id, key.json()["access_key"], key.json()["secret_key"]), user_id


async def make_policy(client: httpx.AsyncClient, name: str, *statements: tuple[str, list[str]]) -> str:
    document = {"Version": "1.1", "Statement": [{"Effect": e, "Action": a} for e, a in statements]}
    created = await client.post(f"{IAM}/policies", json={"name": name, "policy": document})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert fragment in body["error_msg"], body


def signed_headers(
    keys: TenantKeys, method: str, url: str, path: str, body: bytes, *, date: datetime | None = None
) -> dict[str, str]:
    """The SDK signer's headers for one request; ``date`` presets X-Sdk-Date (to test clock skew)."""
    headers = {"Content-Type": "application/json"}
    if date is not None:
        headers["X-Sdk-Date"] = date.strftime("%Y%m%dT%H%M%SZ")
    request = SdkRequest(
        method=method,
        schema="http",
        host=url.removeprefix("http://"),
        resource_path=path,
        query_params=[],
        header_params=headers,
        body=body,
    )
    Signer(BasicCredentials(keys.access_key, keys.secret_key)).sign(request)
    return {k: str(v) for k, v in request.header_params.items() if k != "Host"}


# --- the official SDK with a sub-user's keys ------------------------------------------------------------------


async def test_sdk_read_only_sub_user_reads_but_cannot_send_and_bad_signatures_are_refused(
    served: tuple[str, Harness],
) -> None:
    url, harness = served
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        setup = await harness.prerequisites(main)
        reader, _ = await make_sub_user(main, tenant, "reader", policies=("KooMessageReadOnlyAccess",))
        nobody, _ = await make_sub_user(main, tenant, "nobody")

    sdk = sdk_client(url, reader)
    apps = await call(lambda: sdk.list_aim_msg_app(ListAimMsgAppRequest()))
    assert [a.app_name for a in apps.result] == [setup.app_name] and apps.page_info.total == 1

    def send() -> Any:
        return sdk.create_aim_send_task(
            CreateAimSendTaskRequest(
                body=CreateAimSendTaskRequestBody(
                    task_name="read-only",
                    sms_channel=SmsChannel(
                        sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name
                    ),
                    resolve_task=AIMResolveTask(
                        tpl_id=setup.tpl_id,
                        aim_code_type="individual",
                        generation_type="1",
                        expiration_time=3,
                        params=[
                            CreateResolveTaskParam(cust_flag="13900000001", dync_params={"name": "a", "amount": "1"})
                        ],
                    ),
                )
            )
        )

    with pytest.raises(ClientRequestException) as denied:
        await call(send)
    assert denied.value.status_code == 403 and denied.value.error_code == "KM.00000403"
    assert "KooMessage:devSendTask:create" in denied.value.error_msg and denied.value.request_id
    with pytest.raises(ClientRequestException) as no_app:
        await call(lambda: sdk.create_sms_app(CreateSmsAppRequest(body=MsgAppRequest(app_name="x"))))
    assert no_app.value.status_code == 403 and "KooMessage:aimMsgApp:create" in no_app.value.error_msg
    tasks = await call(lambda: sdk.list_aim_send_tasks(ListAimSendTasksRequest()))
    assert tasks.page_info.total == 0  # nothing was created

    # Default deny: a sub-user without policies can do nothing, not even read.
    with pytest.raises(ClientRequestException) as default_deny:
        await call(lambda: sdk_client(url, nobody).list_aim_msg_app(ListAimMsgAppRequest()))
    assert default_deny.value.status_code == 403
    assert "not allowed by any policy attached to the user" in default_deny.value.error_msg

    # Authentication failures of a sub-user's key: wrong secret, skewed clock, replayed write -> 401 APIGW.0301.
    wrong = TenantKeys(reader.tenant_id, reader.access_key, "w" * 40)
    with pytest.raises(ClientRequestException) as bad_signature:
        await call(lambda: sdk_client(url, wrong).list_aim_msg_app(ListAimMsgAppRequest()))
    assert bad_signature.value.status_code == 401 and bad_signature.value.error_code == "APIGW.0301"
    async with httpx.AsyncClient(base_url=url) as raw:
        for minutes in (-20, 20):
            date = datetime.now(UTC) + timedelta(minutes=minutes)
            headers = signed_headers(reader, "GET", url, "/v1/sms/apps", b"", date=date)
            skewed = await raw.get("/v1/sms/apps", headers=headers)
            assert_error(skewed, 401, "APIGW.0301", "15 minutes")
        # A denied write, replayed verbatim, is refused as a replay before IAM sees it.
        body = b'{"app_name": "replayed"}'
        headers = signed_headers(reader, "POST", url, "/v1/sms/apps", body)
        assert_error(await raw.post("/v1/sms/apps", content=body, headers=headers), 403, "KM.00000403")
        replayed = await raw.post("/v1/sms/apps", content=body, headers=headers)
        assert_error(replayed, 401, "APIGW.0301", "already been used")


# --- custom policies -------------------------------------------------------------------------------------------


async def test_custom_policies_wildcards_deny_wins_and_changes_apply_at_once(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        lister = await make_policy(main, "list-everything", ("Allow", ["koomessage:*:LIST"]))
        no_apps = await make_policy(main, "no-new-apps", ("Deny", ["KooMessage:aimMsgApp:create"]))
        keys, user_id = await make_sub_user(main, tenant, "ops", policies=(lister,))
        async with harness.client(keys) as sub:
            # Allow with wildcards works (service name in any case, * in a segment).
            assert (await sub.get("/v1/sms/apps")).status_code == 200
            assert (await sub.get("/v1/aim/send-tasks")).status_code == 200
            assert_error(await sub.post("/v1/sms/apps", json={"app_name": "a1"}), 403, "KM.00000403", "aimMsgApp")

            # FullAccess + a Deny: the Deny wins for its action only.
            assert (await main.put(f"{IAM}/users/{user_id}/policies/KooMessage FullAccess")).status_code == 200
            created = await sub.post("/v1/sms/apps", json={"app_name": "made_by_sub"})
            assert created.status_code == 200, created.text
            assert (await main.put(f"{IAM}/users/{user_id}/policies/{no_apps}")).status_code == 200
            assert_error(
                await sub.post("/v1/sms/apps", json={"app_name": "a2"}),
                403,
                "KM.00000403",
                "KooMessage:aimMsgApp:create is denied by policy 'no-new-apps'",
            )
            assert (await sub.get("/v1/sms/apps")).status_code == 200

            # Editing the policy changes the decision on the next request.
            edited = await main.put(
                f"{IAM}/policies/{no_apps}",
                json={"policy": {"Version": "1.1", "Statement": [{"Effect": "Deny", "Action": ["KooMessage:*:list"]}]}},
            )
            assert edited.status_code == 200, edited.text
            assert (await sub.post("/v1/sms/apps", json={"app_name": "a3"})).status_code == 200
            assert_error(await sub.get("/v1/sms/apps"), 403, "KM.00000403", "denied by policy 'no-new-apps'")

            # Detaching restores the previous decision; the user's policy list follows.
            detached = await main.delete(f"{IAM}/users/{user_id}/policies/{no_apps}")
            assert detached.status_code == 200 and detached.json()["policies"] == [lister, "KooMessageFullAccess"]
            assert (await sub.get("/v1/sms/apps")).status_code == 200
            listed = await main.get(f"{IAM}/users/{user_id}/policies")
            assert [p["name"] for p in listed.json()["policies"]] == ["list-everything", "KooMessage FullAccess"]

            # IAM itself is not in KooMessage:*:* (no escalation); the main account's password is root-only.
            assert_error(await sub.get(f"{IAM}/users"), 403, "KM.00000403", "iam:users:listUsers")
            admin_policy = await make_policy(main, "iam-admin", ("Allow", ["iam:*:*"]))
            assert (await main.put(f"{IAM}/users/{user_id}/policies/{admin_policy}")).status_code == 200
            helper = await sub.post(f"{IAM}/users", json={"name": "made-by-delegate"})
            assert helper.status_code == 201, helper.text
            assert_error(
                await sub.put(f"{IAM}/account/password", json={"password": "Takeover-123"}),
                403,
                "KM.00000403",
                "reserved to the main account",
            )


async def test_sub_user_tasks_record_their_operator(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        setup = await harness.prerequisites(main)
        keys, user_id = await make_sub_user(main, tenant, "campaigner", policies=("KooMessageAIMDevelopment",))
        async with harness.client(keys) as sub:
            created = await sub.post("/v1/aim/send-tasks", json=setup.task(recipients(2), name="by-sub-user"))
            assert created.status_code == 200, created.text
            assert created.json()["operator"] == "campaigner"
            task_id = created.json()["task_id"]
            # Development cannot change configuration.
            assert_error(await sub.post("/v1/sms/apps", json={"app_name": "nope"}), 403, "KM.00000403")
        by_main = await main.post("/v1/aim/send-tasks", json=setup.task(recipients(1, start=50), name="by-main"))
        assert by_main.status_code == 200 and by_main.json()["operator"] == tenant.tenant_id
        listed = await main.get("/v1/aim/send-tasks", params={"task_id": task_id})
        assert [t["operator"] for t in listed.json()["aim_send_tasks"]] == ["campaigner"]
    stored = await harness.gateway.context.collections.tasks.find_one({"_id": task_id})
    assert stored is not None and stored["operator"] == "campaigner" and stored["operator_id"] == user_id


# --- the IAM endpoints -----------------------------------------------------------------------------------------


async def test_sub_users_and_access_keys_lifecycle_and_validation(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        created = await main.post(f"{IAM}/users", json={"name": "Alice", "description": "support"})
        assert created.status_code == 201, created.text
        alice = created.json()
        assert alice["name"] == "Alice" and alice["enabled"] and not alice["password_set"]
        assert alice["policies"] == [] and alice["id"].startswith("US") and alice["created_at"].endswith("Z")
        user = f"{IAM}/users/{alice['id']}"

        # Validation: each failure says why, creates nothing.
        assert_error(await main.post(f"{IAM}/users", json={"name": "alice"}), 400, "KM.00000423", "alice")
        assert_error(await main.post(f"{IAM}/users", json={"name": "acme"}), 400, "KM.00000423", "main account")
        assert_error(await main.post(f"{IAM}/users", json={"name": "9lives"}), 400, "KM.00000400", "name must be")
        assert_error(await main.post(f"{IAM}/users", json={"name": "x" * 33}), 400, "KM.00000400", "name must be")
        assert_error(await main.post(f"{IAM}/users", json={}), 400, "KM.00000400", "name")
        assert_error(await main.post(f"{IAM}/users", json={"name": "bob", "enable": False}), 400, "KM.00000400")
        weak = await main.post(f"{IAM}/users", json={"name": "bob", "password": "password"})
        assert_error(weak, 400, "KM.00000444", "at least two")
        long_text = await main.post(f"{IAM}/users", json={"name": "bob", "description": "d" * 256})
        assert_error(long_text, 400, "KM.00000400", "description")
        listed = await main.get(f"{IAM}/users")
        assert [u["name"] for u in listed.json()["users"]] == ["Alice"] and listed.json()["page_info"]["total"] == 1

        assert (await main.post(f"{IAM}/users", json={"name": "bob", "enabled": False})).status_code == 201
        page = (await main.get(f"{IAM}/users", params={"limit": 1, "offset": 1})).json()
        assert [u["name"] for u in page["users"]] == ["bob"] and page["page_info"] == {
            "offset": 1,
            "limit": 1,
            "total": 2,
        }
        assert [u["name"] for u in (await main.get(f"{IAM}/users", params={"name": "LIC"})).json()["users"]] == [
            "Alice"
        ]
        assert_error(await main.get(f"{IAM}/users", params={"limit": 0}), 400, "KM.00000400")

        updated = await main.put(user, json={"password": PASSWORD, "description": "tier 2"})
        assert (
            updated.status_code == 200 and updated.json()["password_set"] and updated.json()["description"] == "tier 2"
        )
        assert_error(await main.put(user, json={}), 400, "KM.00000400", "nothing to change")
        assert_error(await main.put(user, json={"password": "Alice12345"[:5]}), 400, "KM.00000444")

        # Access keys: at most two, secrets shown once, never listed.
        first = await main.post(f"{user}/access-keys")
        second = await main.post(f"{user}/access-keys", json={"description": "backup"})
        assert first.status_code == 201 and second.status_code == 201
        assert len(first.json()["secret_key"]) == 40 and second.json()["description"] == "backup"
        assert_error(await main.post(f"{user}/access-keys"), 400, "KM.00000443", "2 access keys")
        keys = (await main.get(f"{user}/access-keys")).json()["access_keys"]
        assert {k["access_key"] for k in keys} == {first.json()["access_key"], second.json()["access_key"]}
        assert first.json()["secret_key"] not in str(keys) and all("secret_key" not in k for k in keys)

        alice_keys = TenantKeys(tenant.tenant_id, first.json()["access_key"], first.json()["secret_key"])
        assert (await main.put(f"{user}/policies/KooMessageReadOnlyAccess")).status_code == 200
        async with harness.client(alice_keys) as sub:
            assert (await sub.get("/v1/sms/apps")).status_code == 200
            # A disabled key stops at once; enabled again it works.
            disabled = await main.put(f"{user}/access-keys/{alice_keys.access_key}", json={"enabled": False})
            assert disabled.status_code == 200 and disabled.json()["enabled"] is False
            assert_error(await sub.get("/v1/sms/apps"), 401, "APIGW.0301", "access key is disabled")
            await main.put(f"{user}/access-keys/{alice_keys.access_key}", json={"enabled": True})
            assert (await sub.get("/v1/sms/apps")).status_code == 200
            assert_error(await main.put(f"{user}/access-keys/{alice_keys.access_key}", json={}), 400, "KM.00000400")
            # A disabled user's keys stop at once too.
            await main.put(user, json={"enabled": False})
            assert_error(await sub.get("/v1/sms/apps"), 401, "APIGW.0301", "the user is disabled")
            await main.put(user, json={"enabled": True})
            assert (await sub.get("/v1/sms/apps")).status_code == 200
            # A deleted key is unknown.
            assert (await main.delete(f"{user}/access-keys/{alice_keys.access_key}")).status_code == 204
            assert_error(await sub.get("/v1/sms/apps"), 401, "APIGW.0301", "access key not found")
            assert_error(await main.delete(f"{user}/access-keys/{alice_keys.access_key}"), 404, "KM.00000404")

        # Deleting the user deletes its keys.
        other_key = TenantKeys(tenant.tenant_id, second.json()["access_key"], second.json()["secret_key"])
        assert (await main.delete(user)).status_code == 204
        assert_error(await main.get(user), 404, "KM.00000404")
        async with harness.client(other_key) as gone:
            assert_error(await gone.get("/v1/sms/apps"), 401, "APIGW.0301", "access key not found")
        assert_error(await main.get(f"{user}/access-keys"), 404, "KM.00000404")


async def test_policies_lifecycle_and_validation(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        system = (await main.get(f"{IAM}/policies", params={"type": "system"})).json()
        assert system["total"] == 16 and {p["type"] for p in system["policies"]} == {"system"}
        read_only = await main.get(f"{IAM}/policies/KooMessage SA ReadOnlyAccess")
        assert read_only.status_code == 200 and read_only.json()["id"] == "KooMessageSAReadOnlyAccess"
        assert read_only.json()["policy"]["Statement"][0]["Action"] == [
            "KooMessage:saMedia:get",
            "KooMessage:saMenu:list",
            "KooMessage:saPort:list",
            "KooMessage:saPortal:list",
            "KooMessage:saPub:list",
        ]
        assert_error(await main.get(f"{IAM}/policies", params={"type": "other"}), 400, "KM.00000400")

        # Invalid documents: 400 KM.00000441 naming the problem; nothing stored.
        for document, fragment in (
            ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:sendTask"]}]}, "service:"),
            ({"Version": "1.1", "Statement": [{"Effect": "Permit", "Action": ["KooMessage:*:*"]}]}, "Effect"),
            (
                {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:devSendTasks:*"]}]},
                "no action",
            ),
            ({"Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]}]}, "Version"),
            ('{"Version": "1.1", "Statement": [', "not valid JSON"),
            ("[]", "JSON object"),
            (None, "JSON object"),
        ):
            bad = await main.post(f"{IAM}/policies", json={"name": "bad", "policy": document})
            assert_error(bad, 400, "KM.00000441", fragment)
        assert_error(await main.post(f"{IAM}/policies", json={"name": "x"}), 400, "KM.00000400", "policy")
        broken = await main.post(
            f"{IAM}/policies", content=b'{"name": "x", "policy": {', headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["error_code"] in ("KM.00000400", "KM.90016414")
        good = {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:list"]}]}
        assert_error(
            await main.post(f"{IAM}/policies", json={"name": "KooMessage FullAccess", "policy": good}),
            400,
            "KM.00000423",
        )
        assert_error(await main.post(f"{IAM}/policies", json={"name": " ", "policy": good}), 400, "KM.00000400")
        assert (await main.get(f"{IAM}/policies", params={"type": "custom"})).json()["total"] == 0

        created = await main.post(
            f"{IAM}/policies", json={"name": "Readers", "description": "lists", "policy": json_string(good)}
        )
        assert created.status_code == 201, created.text
        policy = created.json()
        assert policy["type"] == "custom" and policy["policy"] == good and policy["id"].startswith("PL")
        assert_error(await main.post(f"{IAM}/policies", json={"name": "readers", "policy": good}), 400, "KM.00000423")
        renamed = await main.put(f"{IAM}/policies/{policy['id']}", json={"name": "Listers"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Listers"
        assert_error(await main.put(f"{IAM}/policies/{policy['id']}", json={}), 400, "KM.00000400")
        assert_error(
            await main.put(f"{IAM}/policies/{policy['id']}", json={"policy": {"Version": "1.1"}}), 400, "KM.00000441"
        )

        # System policies are read-only; an attached custom policy cannot be deleted.
        assert_error(await main.put(f"{IAM}/policies/KooMessageFullAccess", json={"name": "x"}), 400, "KM.00000445")
        assert_error(await main.delete(f"{IAM}/policies/KooMessageFullAccess"), 400, "KM.00000445")
        user_id = (await main.post(f"{IAM}/users", json={"name": "carol"})).json()["id"]
        assert (await main.put(f"{IAM}/users/{user_id}/policies/{policy['id']}")).status_code == 200
        again = await main.put(f"{IAM}/users/{user_id}/policies/{policy['id']}")
        assert again.status_code == 200 and again.json()["policies"] == [policy["id"]]
        assert_error(await main.delete(f"{IAM}/policies/{policy['id']}"), 400, "KM.00000442", "1 sub-user")
        assert_error(await main.put(f"{IAM}/users/{user_id}/policies/PLnope"), 404, "KM.00000404")
        assert_error(await main.delete(f"{IAM}/users/{user_id}/policies/KooMessageFullAccess"), 404, "KM.00000404")
        assert (await main.delete(f"{IAM}/users/{user_id}/policies/{policy['id']}")).status_code == 200
        assert (await main.delete(f"{IAM}/policies/{policy['id']}")).status_code == 204
        assert_error(await main.get(f"{IAM}/policies/{policy['id']}"), 404, "KM.00000404")

        actions = (await main.get(f"{IAM}/actions")).json()["actions"]
        send = next(a for a in actions if a["operation"] == "create_aim_send_task")
        assert send == {
            "operation": "create_aim_send_task",
            "action": "KooMessage:devSendTask:create",
            "product": "aim",
            "kind": "develop",
            "description": "send smart messages",
        }


def json_string(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document)


async def test_another_tenants_users_keys_and_policies_are_not_found(harness: Harness) -> None:
    owner = await harness.tenant("owner")
    intruder = await harness.tenant("intruder")
    async with harness.client(owner) as own:
        keys, user_id = await make_sub_user(own, owner, "victim")
        policy_id = await make_policy(own, "mine", ("Allow", ["KooMessage:*:list"]))
    user = f"{IAM}/users/{user_id}"
    async with harness.client(intruder) as other:
        own_user_id = (await other.post(f"{IAM}/users", json={"name": "mine"})).json()["id"]
        for response in (
            await other.get(user),
            await other.put(user, json={"enabled": False}),
            await other.delete(user),
            await other.get(f"{user}/access-keys"),
            await other.post(f"{user}/access-keys"),
            await other.put(f"{user}/access-keys/{keys.access_key}", json={"enabled": False}),
            await other.delete(f"{user}/access-keys/{keys.access_key}"),
            await other.get(f"{user}/policies"),
            await other.put(f"{user}/policies/KooMessageFullAccess"),
            await other.get(f"{IAM}/policies/{policy_id}"),
            await other.put(f"{IAM}/policies/{policy_id}", json={"description": "x"}),
            await other.delete(f"{IAM}/policies/{policy_id}"),
            await other.put(f"{IAM}/users/{own_user_id}/policies/{policy_id}"),
            # The owner's key does not belong to the intruder's user either.
            await other.put(f"{IAM}/users/{own_user_id}/access-keys/{keys.access_key}", json={"enabled": False}),
        ):
            assert_error(response, 404, "KM.00000404")
        assert [u["name"] for u in (await other.get(f"{IAM}/users")).json()["users"]] == ["mine"]
        assert (await other.get(f"{IAM}/policies", params={"type": "custom"})).json()["total"] == 0
    async with harness.client(owner) as own:
        victim = (await own.get(user)).json()
        assert victim["enabled"] and victim["policies"] == []
        assert (await own.get(f"{IAM}/policies/{policy_id}")).json()["description"] == ""
    async with harness.client(keys) as sub:  # still a working key (no policy: 403, not 401)
        assert_error(await sub.get("/v1/sms/apps"), 403, "KM.00000403")


async def test_operator_endpoints_manage_a_tenants_iam(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    base = f"/internal/tenants/{tenant.tenant_id}"
    async with harness.admin() as admin:
        assert_error(await admin.post(f"{base}/users", json={"name": "op"}), 403, "APIGW.0302")
        assert_error(
            await admin.post("/internal/tenants/TNnope/users", json={"name": "op"}, headers=ADMIN), 404, "KM.00000404"
        )
        assert_error(await admin.get("/internal/tenants/TNnope/users", headers=ADMIN), 404, "KM.00000404")
        created = await admin.post(f"{base}/users", json={"name": "op", "password": PASSWORD}, headers=ADMIN)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        policy = await admin.post(
            f"{base}/policies",
            json={
                "name": "apps",
                "policy": {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:aimMsgApp:*"]}]},
            },
            headers=ADMIN,
        )
        assert policy.status_code == 201, policy.text
        attached = await admin.put(f"{base}/users/{user_id}/policies/{policy.json()['id']}", headers=ADMIN)
        assert attached.status_code == 200 and attached.json()["policies"] == [policy.json()["id"]]
        key = await admin.post(f"{base}/users/{user_id}/access-keys", headers=ADMIN)
        assert key.status_code == 201
        listed = await admin.get(f"{base}/users", headers=ADMIN)
        assert [u["name"] for u in listed.json()["users"]] == ["op"]
        assert (await admin.get(f"{base}/policies", headers=ADMIN)).json()["total"] == 17
        # The operator's tenant listing shows the main account's key only.
        tenants = (await admin.get("/internal/tenants", headers=ADMIN)).json()["tenants"]
        (row,) = [t for t in tenants if t["tenant_id"] == tenant.tenant_id]
        assert row["credentials"] == [{"access_key": tenant.access_key, "enabled": True}]
        # A weak main-account password is refused at creation and on change.
        weak = await admin.post("/internal/tenants", json={"name": "weak", "password": "weak"}, headers=ADMIN)
        assert_error(weak, 400, "KM.00000444")
        assert_error(
            await admin.put(f"{base}/password", json={"password": "acmeacme"}, headers=ADMIN), 400, "KM.00000444"
        )
        assert (await admin.put(f"{base}/password", json={"password": "Acme-main-1"}, headers=ADMIN)).status_code == 204
        assert_error(
            await admin.put("/internal/tenants/TNnope/password", json={"password": "Acme-main-1"}, headers=ADMIN),
            404,
            "KM.00000404",
        )
    sub = TenantKeys(tenant.tenant_id, key.json()["access_key"], key.json()["secret_key"])
    async with harness.client(sub) as client:
        assert (await client.post("/v1/sms/apps", json={"app_name": "op_app"})).status_code == 200
        assert_error(await client.get("/v1/aim/send-tasks"), 403, "KM.00000403")
    async with harness.admin() as admin:
        assert (await admin.delete(f"{base}/users/{user_id}", headers=ADMIN)).status_code == 204
        assert (await admin.delete(f"{base}/policies/{policy.json()['id']}", headers=ADMIN)).status_code == 204
    async with harness.client(sub) as client:
        assert_error(await client.get("/v1/sms/apps"), 401, "APIGW.0301")


async def test_every_route_is_closed_to_a_sub_user_without_policies(harness: Harness) -> None:
    """Fail closed, route by route: a sub-user without policies gets 403 from every /v1 operation (before any
    validation), and one with ``KooMessage FullAccess`` still gets 403 from the IAM operations only."""
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        nobody, _ = await make_sub_user(main, tenant, "nobody")
        full, _ = await make_sub_user(main, tenant, "full", policies=("KooMessageFullAccess",))
    routes = []
    for route in iter_route_contexts(harness.gateway.app.routes):
        path = route.path or ""
        if path.startswith("/v1/"):
            summary = getattr(route.original_route, "summary", None)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                routes.append((method, re.sub(r"\{[^}]+\}", "x", path), summary))
    assert len(routes) > 80
    async with harness.client(nobody) as sub, harness.client(full) as admin_like:
        for method, path, summary in routes:
            denied = await sub.request(method, path)
            assert denied.status_code == 403, (method, path, denied.text)
            assert denied.json()["error_code"] == "KM.00000403"
            entry = ACTIONS.get(summary or "")
            answer = await admin_like.request(method, path)
            if entry is None or entry.product is Product.IAM:
                assert answer.status_code == 403, (method, path, answer.text)
            else:
                # Allowed: whatever the operation answers to an empty request (503 when a service it needs, such
                # as billing, is not running in this test), never the IAM refusal and never an internal error.
                assert answer.status_code not in (403, 500), (method, path, answer.text)


async def test_refusals_are_not_remembered_under_an_idempotency_key(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        keys, user_id = await make_sub_user(main, tenant, "late")
        async with harness.client(keys) as sub:
            headers = {"Idempotency-Key": "create-app-1"}
            assert_error(
                await sub.post("/v1/sms/apps", json={"app_name": "retry_app"}, headers=headers), 403, "KM.00000403"
            )
            # Granted afterwards, the same request with the same key runs (the refusal was not stored).
            await main.put(f"{IAM}/users/{user_id}/policies/KooMessageAIMCommonOperations")
            created = await sub.post("/v1/sms/apps", json={"app_name": "retry_app"}, headers=headers)
            assert created.status_code == 200, created.text
            assert "Idempotent-Replayed" not in created.headers
            # A caller not allowed the operation never gets another caller's stored answer.
            stored = await main.post("/v1/sms/apps", json={"app_name": "main_app"}, headers={"Idempotency-Key": "k2"})
            assert stored.status_code == 200
            await main.delete(f"{IAM}/users/{user_id}/policies/KooMessageAIMCommonOperations")
            replay = await sub.post("/v1/sms/apps", json={"app_name": "main_app"}, headers={"Idempotency-Key": "k2"})
            assert_error(replay, 403, "KM.00000403")


async def test_the_dependency_authorizes_routes_the_middleware_did_not(harness: Harness) -> None:
    """Fail closed if the middleware's route resolution ever missed a route: the dependency alone refuses."""
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        _, user_id = await make_sub_user(main, tenant, "viewer", policies=("KooMessageReadOnlyAccess",))
    app = FastAPI(dependencies=[Depends(authorize)])
    app.state.gateway = harness.gateway.context
    install_error_handlers(app)

    @app.middleware("http")
    async def as_sub_user(request: Request, call_next: Any) -> Any:
        request.state.principal = Principal("AK", tenant.tenant_id, user_id, "viewer", None)
        return await call_next(request)

    @app.post("/send", summary="create_aim_send_task")
    async def send() -> dict[str, str]:
        return {"sent": "yes"}

    @app.get("/list", summary="list_aim_send_tasks")
    async def listed(request: Request) -> dict[str, str]:
        return {"action": request.state.iam_action}

    @app.get("/unmapped", summary="some_new_operation")
    async def unmapped() -> dict[str, str]:
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert_error(await client.post("/send"), 403, "KM.00000403", "KooMessage:devSendTask:create")
        assert (await client.get("/list")).json() == {"action": "KooMessage:devSendTask:list"}
        assert_error(await client.get("/unmapped"), 403, "KM.00000403", "some_new_operation")
