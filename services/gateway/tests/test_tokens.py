"""Tokens: ``POST /v3/auth/tokens`` (password of the main account or of a sub-user; ``hw_ak_sk`` from a signed
request), ``X-Auth-Token`` on other requests (the official SDK cannot send tokens, so httpx does), validation,
revocation, expiry, lockout after wrong passwords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_TOKEN, BASE_URL, Harness, TenantKeys
from .test_iam import IAM, PASSWORD, assert_error, make_sub_user

pytestmark = pytest.mark.integration

TOKENS = "/v3/auth/tokens"
MAIN_PASSWORD = "Main-account-1"


def password_body(user: str, password: str, *, domain: dict[str, str], scope: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": domain}},
            }
        }
    }
    if scope:
        body["auth"]["scope"] = {"project": {"name": "cn-north-4"}}
    return body


def anonymous(harness: Harness) -> httpx.AsyncClient:
    return harness.admin()  # no signature, no admin header unless given


def with_token(harness: Harness, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.gateway.app),
        base_url=BASE_URL,
        headers={"X-Auth-Token": token},
        timeout=60,
    )


async def set_main_password(harness: Harness, tenant: TenantKeys, password: str = MAIN_PASSWORD) -> None:
    async with harness.admin() as admin:
        response = await admin.put(
            f"/internal/tenants/{tenant.tenant_id}/password",
            json={"password": password},
            headers={"X-Admin-Token": ADMIN_TOKEN},
        )
    assert response.status_code == 204, response.text


async def obtain(harness: Harness, user: str, password: str, domain: dict[str, str]) -> tuple[str, dict[str, Any]]:
    async with anonymous(harness) as client:
        response = await client.post(TOKENS, json=password_body(user, password, domain=domain))
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"], response.json()["token"]


def parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def test_main_account_token_works_everywhere_and_can_be_validated_and_revoked(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    await set_main_password(harness, tenant)
    before = datetime.now(UTC)
    async with anonymous(harness) as client:
        response = await client.post(TOKENS, json=password_body("acme", MAIN_PASSWORD, domain={"name": "acme"}))
    assert response.status_code == 201, response.text
    token = response.headers["X-Subject-Token"]
    assert token.startswith("MGT") and len(token) == 67
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"] == {
        "id": tenant.tenant_id,
        "name": "acme",
        "domain": {"id": tenant.tenant_id, "name": "acme"},
        "password_expires_at": "",
    }
    assert body["project"] == {"id": tenant.tenant_id, "name": "cn-north-4"}
    assert body["roles"] == [{"id": "0", "name": "te_admin"}] and body["catalog"] == []
    issued, expires = parse(body["issued_at"]), parse(body["expires_at"])
    assert expires - issued == timedelta(hours=24) and before - timedelta(seconds=1) <= issued <= datetime.now(UTC)
    stored = await harness.gateway.context.collections.tokens.find_one({"tenant_id": tenant.tenant_id})
    assert stored is not None and token not in str(stored)  # only the hash is stored

    async with with_token(harness, token) as session:
        assert (await session.get("/v1/sms/apps")).status_code == 200
        created = await session.post("/v1/sms/apps", json={"app_name": "via_token"})
        assert created.status_code == 200, created.text
        listed = await session.get("/v1/sms/apps")
        assert [a["app_name"] for a in listed.json()["result"]] == ["via_token"]
        shown = await session.get(TOKENS, headers={"X-Subject-Token": token})
        assert shown.status_code == 200 and shown.json()["token"]["expires_at"] == body["expires_at"]
        assert_error(await session.get(TOKENS), 400, "KM.00000400", "X-Subject-Token")
        assert_error(await session.get(TOKENS, headers={"X-Subject-Token": "MGTnope"}), 404, "KM.00000404")
        assert (await session.delete(TOKENS, headers={"X-Subject-Token": token})).status_code == 204
        assert_error(await session.get("/v1/sms/apps"), 401, "APIGW.0301", "invalid or has been revoked")
    # With a signature too, the signature decides (the revoked token is ignored) ...
    async with harness.client(tenant) as signed:
        assert (await signed.get("/v1/sms/apps", headers={"X-Auth-Token": token})).status_code == 200
    # ... and a bad signature is refused even with a valid token.
    fresh, _ = await obtain(harness, "acme", MAIN_PASSWORD, {"name": "acme"})
    async with harness.client(TenantKeys(tenant.tenant_id, tenant.access_key, "y" * 40)) as forged:
        refused = await forged.get("/v1/sms/apps", headers={"X-Auth-Token": fresh})
        assert_error(refused, 401, "APIGW.0301", "verify aksk signature fail")


async def test_sub_user_token_carries_its_policies(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as main:
        _, user_id = await make_sub_user(main, tenant, "Reader", policies=("KooMessageReadOnlyAccess",))
    token, body = await obtain(harness, "reader", PASSWORD, {"id": tenant.tenant_id})  # name in any case, domain id
    assert body["user"]["id"] == user_id and body["user"]["name"] == "Reader"
    assert body["roles"] == [{"id": "KooMessageReadOnlyAccess", "name": "KooMessage ReadOnlyAccess"}]
    async with with_token(harness, token) as session:
        assert (await session.get("/v1/sms/apps")).status_code == 200
        assert_error(await session.post("/v1/sms/apps", json={"app_name": "x"}), 403, "KM.00000403", "aimMsgApp")
        assert_error(await session.get(f"{IAM}/users"), 403, "KM.00000403")
        # Its own token is visible to it.
        assert (await session.get(TOKENS, headers={"X-Subject-Token": token})).status_code == 200

    # Visibility: the main account sees the sub-user's token; the sub-user does not see the main account's.
    await set_main_password(harness, tenant)
    main_token, _ = await obtain(harness, "acme", MAIN_PASSWORD, {"name": "acme"})
    async with with_token(harness, main_token) as root:
        assert (await root.get(TOKENS, headers={"X-Subject-Token": token})).status_code == 200
    async with with_token(harness, token) as session:
        assert_error(await session.get(TOKENS, headers={"X-Subject-Token": main_token}), 404, "KM.00000404")
        assert_error(await session.delete(TOKENS, headers={"X-Subject-Token": main_token}), 404, "KM.00000404")

    # Another tenant never sees it.
    other = await harness.tenant("other")
    async with harness.client(other) as foreign:
        assert_error(await foreign.get(TOKENS, headers={"X-Subject-Token": token}), 404, "KM.00000404")
        assert_error(await foreign.delete(TOKENS, headers={"X-Subject-Token": token}), 404, "KM.00000404")

    # Disabling the user revokes its tokens and refuses new ones.
    async with harness.client(tenant) as main:
        assert (await main.put(f"{IAM}/users/{user_id}", json={"enabled": False})).status_code == 200
    async with with_token(harness, token) as session:
        assert_error(await session.get("/v1/sms/apps"), 401, "APIGW.0301", "invalid or has been revoked")
    async with anonymous(harness) as client:
        refused = await client.post(TOKENS, json=password_body("Reader", PASSWORD, domain={"name": "acme"}))
        assert_error(refused, 401, "APIGW.0301", "the user is disabled")


async def test_expired_unknown_and_malformed_tokens_are_refused(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    await set_main_password(harness, tenant)
    token, _ = await obtain(harness, "acme", MAIN_PASSWORD, {"name": "acme"})
    tokens = harness.gateway.context.collections.tokens
    await tokens.update_one(
        {"tenant_id": tenant.tenant_id}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    async with with_token(harness, token) as session:
        assert_error(await session.get("/v1/sms/apps"), 401, "APIGW.0301", "the token has expired")
    for value in ("MGTunknown", "x" * 5000, ""):
        async with with_token(harness, value) as session:
            assert_error(await session.get("/v1/sms/apps"), 401, "APIGW.0301")
    async with anonymous(harness) as client:
        repeated = await client.get("/v1/sms/apps", headers=[("X-Auth-Token", token), ("X-Auth-Token", token)])
        assert_error(repeated, 401, "APIGW.0301", "repeated")
        assert_error(await client.get("/v1/sms/apps"), 401, "APIGW.0301", "Authorization header is missing")
        # An expired token cannot be shown either.
    async with harness.client(tenant) as main:
        assert_error(await main.get(TOKENS, headers={"X-Subject-Token": token}), 404, "KM.00000404")


async def test_wrong_credentials_bad_bodies_and_lockout(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    await set_main_password(harness, tenant)
    async with harness.client(tenant) as main:
        _, user_id = await make_sub_user(main, tenant, "bob")
        await make_sub_user(main, tenant, "nopass", password=None)
    async with anonymous(harness) as client:
        # Unknown domain, unknown user, wrong password, no password set: one answer.
        for user, password, domain in (
            ("bob", PASSWORD, {"name": "nowhere"}),
            ("bob", PASSWORD, {"id": "TNnope"}),
            ("bob", PASSWORD, {"id": tenant.tenant_id, "name": "not-acme"}),
            ("carol", PASSWORD, {"name": "acme"}),
            ("nopass", PASSWORD, {"name": "acme"}),
            ("acme", PASSWORD, {"name": "acme"}),
        ):
            response = await client.post(TOKENS, json=password_body(user, password, domain=domain))
            assert_error(response, 401, "APIGW.0301", "the user name or password is wrong")
            assert "X-Subject-Token" not in response.headers

        # Bad bodies: 400 naming the field.
        for body, fragment in (
            ({}, "auth"),
            ({"auth": {"identity": {"methods": ["token"]}}}, "methods must be"),
            ({"auth": {"identity": {"methods": ["password", "hw_ak_sk"]}}}, "methods must be"),
            ({"auth": {"identity": {"methods": ["password"]}}}, "password is required"),
            ({"auth": {"identity": {"methods": "password"}}}, "methods"),
            (password_body("bob", PASSWORD, domain={}), "domain needs a name or an id"),
            (password_body("", PASSWORD, domain={"name": "acme"}), "user.name is required"),
            ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "bob"}}}}}, "password"),
        ):
            response = await client.post(TOKENS, json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error_code"] in ("KM.00000400", "KM.90016414")
            assert fragment in response.json()["error_msg"], (fragment, response.json())
        empty = await client.post(TOKENS, content=b"{", headers={"Content-Type": "application/json"})
        assert empty.status_code == 400

        # Five wrong passwords lock the account, even against the right password.
        for _ in range(4):
            wrong = await client.post(TOKENS, json=password_body("bob", "Wrong-pass-1", domain={"name": "acme"}))
            assert_error(wrong, 401, "APIGW.0301", "wrong")
        right_before_lock = await client.post(TOKENS, json=password_body("bob", PASSWORD, domain={"name": "acme"}))
        assert right_before_lock.status_code == 201  # a success resets the count
        for _ in range(5):
            await client.post(TOKENS, json=password_body("bob", "Wrong-pass-1", domain={"name": "acme"}))
        locked = await client.post(TOKENS, json=password_body("bob", PASSWORD, domain={"name": "acme"}))
        assert_error(locked, 401, "APIGW.0301", "locked after 5 wrong passwords")
    # A new password unlocks it (and revokes its tokens).
    async with harness.client(tenant) as main:
        assert (await main.put(f"{IAM}/users/{user_id}", json={"password": "New-pass-2"})).status_code == 200
    token, _ = await obtain(harness, "bob", "New-pass-2", {"name": "acme"})
    assert token
    right_token = right_before_lock.headers["X-Subject-Token"]
    async with with_token(harness, right_token) as stale:
        assert_error(await stale.get("/v1/sms/apps"), 401, "APIGW.0301", "invalid or has been revoked")


async def test_token_from_an_aksk_signed_request(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    body = {"auth": {"identity": {"methods": ["hw_ak_sk"]}}}
    async with harness.client(tenant) as main:
        keys, user_id = await make_sub_user(main, tenant, "robot", policies=("KooMessageAIMReadOnlyAccess",))
        root = await main.post(TOKENS, json=body)
        assert root.status_code == 201 and root.json()["token"]["user"]["id"] == tenant.tenant_id
        assert "project" not in root.json()["token"]
    async with harness.client(keys) as robot:
        issued = await robot.post(TOKENS, json=body)
    assert issued.status_code == 201, issued.text
    assert issued.json()["token"]["methods"] == ["hw_ak_sk"]
    assert issued.json()["token"]["user"]["id"] == user_id
    token = issued.headers["X-Subject-Token"]
    async with with_token(harness, token) as session:
        assert (await session.get("/v1/aim/send-tasks")).status_code == 200
        assert_error(await session.get("/v1/magpie/filings"), 403, "KM.00000403", "KooMessage:filing:list")
        # A token cannot mint a token by hw_ak_sk: that method needs a signature.
        assert_error(await session.post(TOKENS, json=body), 401, "APIGW.0301", "signed with an access key")
    async with anonymous(harness) as client:
        assert_error(await client.post(TOKENS, json=body), 401, "APIGW.0301", "signed with an access key")
    # A wrong signature on the token endpoint is refused like anywhere else.
    async with harness.client(TenantKeys(tenant.tenant_id, tenant.access_key, "z" * 40)) as bad:
        assert_error(await bad.post(TOKENS, json=body), 401, "APIGW.0301", "verify aksk signature fail")


async def test_main_account_password_change_and_ambiguous_domain_names(harness: Harness) -> None:
    tenant = await harness.tenant("twin")
    twin = await harness.tenant("twin")
    await set_main_password(harness, tenant)
    await set_main_password(harness, twin, "Twin-password-2")
    async with anonymous(harness) as client:
        ambiguous = await client.post(TOKENS, json=password_body("twin", MAIN_PASSWORD, domain={"name": "twin"}))
        assert_error(ambiguous, 401, "APIGW.0301", "not unique")
    token, _ = await obtain(harness, "twin", MAIN_PASSWORD, {"id": tenant.tenant_id})
    async with with_token(harness, token) as session:
        assert_error(
            await session.put(f"{IAM}/account/password", json={"password": "short"}), 400, "KM.00000444", "8-64"
        )
        changed = await session.put(f"{IAM}/account/password", json={"password": "Changed-pass-3"})
        assert changed.status_code == 204
        # Changing the password revoked the main account's tokens, this one included.
        assert_error(await session.get("/v1/sms/apps"), 401, "APIGW.0301", "revoked")
    await obtain(harness, "twin", "Changed-pass-3", {"id": tenant.tenant_id})
    # The twin's password is untouched.
    await obtain(harness, "twin", "Twin-password-2", {"id": twin.tenant_id})
