"""create_aim_send_task with custom short codes and the tenant's short-link domains (SDK ``generation_type`` 2,
``domain``, ``params[].custom_short_code``): through the official SDK against the served gateway, which asks the
real shortlink service whether the codes are free; the error codes; and the whole pipeline (gateway ->
number-resolver -> shortlink minting -> edge) including a code two tasks race for, which fails one recipient with
KM.90016482 in the send details."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    KooMessageClient,
    ListAimSendDetailsRequest,
    ListAimSendTasksRequest,
    SmsChannel,
)

from magpie.v1 import dispatch_pb2, task_pb2
from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_common.testing import collect
from magpie_common.topics import DELIVERY, DISPATCH, RECIPIENTS
from magpie_gateway import send_task_builder
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.testing import serve as serve_resolver
from magpie_shortlink.config import ShortlinkConfig
from magpie_shortlink.wiring import Components, build

from .conftest import Harness, Setup, call, free_port, gateway_config, sdk_client, served_gateway, until
from .test_resolve_tasks import approved_domain

pytestmark = pytest.mark.integration

TOKEN = "send-task-codes-token"
DOMAIN = "s.shop.example"
CARD = {"name": "会员", "amount": "10"}


@contextlib.asynccontextmanager
async def shortlink_service(settings: Settings) -> AsyncIterator[tuple[str, Components]]:
    """The shortlink service (edge with its internal API, and the mint role) served on a free port; the minting
    loop is not running (``start_minting``)."""
    port = free_port()
    config = ShortlinkConfig(http_port=port, secret="codes-secret", internal_token=TOKEN)
    components = await build(settings, config)
    assert components.app is not None
    server = http_server(components.app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", components
    finally:
        if components.loop is not None:
            components.loop.stop()
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await components.close()


@dataclass
class Stack:
    url: str  # the gateway
    edge: str  # the shortlink edge
    harness: Harness
    shortlink: Components


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with shortlink_service(settings) as (edge_url, shortlink):
        config = gateway_config(
            replay_check=True, shortlink_url=edge_url, shortlink_internal_token=TOKEN, link_domain=edge_url + "/"
        )
        async with served_gateway(settings, config) as (url, harness):
            yield Stack(url, edge_url, harness, shortlink)


def sdk_task(
    setup: Setup, codes: list[tuple[str, str | None]], *, domain: str | None = DOMAIN, generation: str = "2"
) -> CreateAimSendTaskRequest:
    """The SDK request of a task to ``codes`` = [(mobile, custom_short_code)]."""
    return CreateAimSendTaskRequest(
        body=CreateAimSendTaskRequestBody(
            task_name="custom codes",
            sms_channel=SmsChannel(sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name),
            resolve_task=AIMResolveTask(
                tpl_id=setup.tpl_id,
                resolve_times=1,
                aim_code_type="individual",
                generation_type=generation,
                domain=domain,
                expiration_time=2,
                params=[
                    CreateResolveTaskParam(cust_flag=mobile, dync_params=dict(CARD), custom_short_code=code)
                    for mobile, code in codes
                ],
            ),
        )
    )


def raw_task(setup: Setup, params: list[dict[str, Any]], **resolve: Any) -> dict[str, Any]:
    """A create_aim_send_task body with custom codes on ``DOMAIN`` unless ``resolve`` says otherwise."""
    body = setup.task([{"dync_params": dict(CARD), **p} for p in params])
    body["resolve_task"].update({"generation_type": "2", "domain": DOMAIN, **resolve})
    return body


async def recipient_batch(harness: Harness, task_id: str) -> task_pb2.RecipientBatch:
    batches = await collect(
        harness.settings, RECIPIENTS, task_pb2.RecipientBatch, until=lambda m: any(b.ctx.task_id == task_id for b in m)
    )
    (batch,) = [b for b in batches if b.ctx.task_id == task_id]
    return batch


async def test_custom_codes_through_the_sdk(stack: Stack) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        await approved_domain(harness, client, DOMAIN, custom_short_code=True)
    sdk = sdk_client(stack.url, tenant)
    request = sdk_task(setup, [("13900000001", "Spring01"), ("13900000002", "spring01"), ("13900000001", "Dup01")])
    request.body.resolve_task.domain = "S.Shop.Example."
    created = await call(lambda: sdk.create_aim_send_task(request))
    assert created.task_state == "Success" and created.task_id
    assert created.submission_count == 3 and created.support_resolve_count == -1
    resolve = created.resolve_task
    assert (resolve.generation_type, resolve.domain, resolve.aim_code_type) == ("2", DOMAIN, "individual")
    assert (resolve.resolve_times, resolve.expiration_time, resolve.tpl_id) == (1, 2, setup.tpl_id)
    assert [p.custom_short_code for p in resolve.params] == ["Spring01", "spring01", "Dup01"]

    batch = await recipient_batch(harness, created.task_id)
    assert batch.ctx.link_domain == f"https://{DOMAIN}/"
    # The duplicate cust_flag is dropped with its code; codes are case-sensitive.
    assert [(r.mobile, r.custom_code) for r in batch.recipients] == [
        ("13900000001", "Spring01"),
        ("13900000002", "spring01"),
    ]

    listed = await call(lambda: sdk.list_aim_send_tasks(ListAimSendTasksRequest(task_id=created.task_id)))
    (task,) = listed.aim_send_tasks
    assert (task.resolve_task.domain, task.resolve_task.aim_code_type, task.submission_count) == (
        DOMAIN,
        "individual",
        3,
    )
    async with harness.client(tenant) as client:  # generation_type is not in the SDK's list model: the raw JSON
        raw = (await client.get("/v1/aim/send-tasks", params={"task_id": created.task_id})).json()
    assert raw["aim_send_tasks"][0]["resolve_task"]["generation_type"] == "2"

    # A standard task may name a domain registered for standard codes: its links are on that domain.
    async with harness.client(tenant) as client:
        await approved_domain(harness, client, "std.shop.example", custom_short_code=False)
    standard = await call(
        lambda: sdk.create_aim_send_task(
            sdk_task(setup, [("13900000003", None)], domain="std.shop.example", generation="1")
        )
    )
    assert (standard.resolve_task.generation_type, standard.resolve_task.domain) == ("1", "std.shop.example")
    batch = await recipient_batch(harness, standard.task_id)
    assert batch.ctx.link_domain == "https://std.shop.example/" and batch.recipients[0].custom_code == ""

    # A code already held by a link (here a resolution task's, minted at once) is refused through the SDK.
    async with harness.client(tenant) as client:
        minted = await client.post(
            "/v1/aim/resolve-tasks",
            json={
                "tpl_id": setup.tpl_id,
                "sms_signs": [setup.sign],
                "generation_type": "2",
                "domain": DOMAIN,
                "params": [{"cust_flag": "13900000009", "dync_params": CARD, "custom_short_code": "Taken01"}],
            },
        )
        assert minted.json()["task_state"] == "success", minted.text
    with pytest.raises(ClientRequestException) as taken:
        await call(
            lambda: sdk.create_aim_send_task(sdk_task(setup, [("13900000004", "Free01"), ("13900000005", "Taken01")]))
        )
    assert (taken.value.status_code, taken.value.error_code) == (400, "KM.90016482")
    assert "params[1].custom_short_code Taken01" in taken.value.error_msg


async def test_custom_code_and_domain_errors(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = stack.harness
    tenant = await harness.tenant()
    other = await harness.tenant("other")
    async with harness.client(other) as client:
        await approved_domain(harness, client, "other.shop.example", custom_short_code=True)
        other_setup = await harness.prerequisites(client, suffix="_o")
        # A link of another tenant holds "Other01" (a resolution task's link, minted at once).
        minted = await client.post(
            "/v1/aim/resolve-tasks",
            json={
                "tpl_id": other_setup.tpl_id,
                "sms_signs": [other_setup.sign],
                "generation_type": "2",
                "domain": "other.shop.example",
                "params": [{"cust_flag": "13900000008", "dync_params": CARD, "custom_short_code": "Other01"}],
            },
        )
        assert minted.json()["task_state"] == "success", minted.text
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        await approved_domain(harness, client, DOMAIN, custom_short_code=True)
        await approved_domain(harness, client, "std.shop.example", custom_short_code=False)
        pending = await client.post(
            "/v1/magpie/domains", json={"domain": "pending.shop.example", "custom_short_code": True}
        )
        assert pending.status_code == 200, pending.text
        one = [{"cust_flag": "13900000001", "custom_short_code": "Abc123"}]

        async def error(body: dict[str, Any]) -> tuple[int, str]:
            response = await client.post("/v1/aim/send-tasks", json=body)
            return response.status_code, response.json().get("error_code", "")

        bad = (400, "KM.00000400")
        assert await error(raw_task(setup, one, domain=None)) == bad  # a custom-code task needs a domain
        assert await error(raw_task(setup, one, domain="  ")) == bad
        assert await error(raw_task(setup, one, domain="bad_domain!")) == bad
        assert await error(raw_task(setup, one, generation_type="3")) == bad
        assert await error(raw_task(setup, one, generation_type=2)) == bad  # a string, as the SDK sends it
        assert await error(raw_task(setup, one, domain=["s.shop.example"])) == bad
        assert await error(raw_task(setup, [{"cust_flag": "13900000001", "custom_short_code": 123456}])) == bad
        assert await error(raw_task(setup, [{"cust_flag": "13900000001"}])) == bad  # the code is required
        for code in ("", "ab", "abcdefghijk", "ab-12", "码码码", "ab 12"):
            assert await error(raw_task(setup, [{"cust_flag": "13900000001", "custom_short_code": code}])) == bad, code
        twice = [
            {"cust_flag": "13900000001", "custom_short_code": "Abc123"},
            {"cust_flag": "13900000002", "custom_short_code": "Abc123"},
        ]
        assert await error(raw_task(setup, twice)) == (400, "KM.90016482")
        # The domain: not the tenant's (unknown, another tenant's), not approved yet, or registered for the other
        # kind of code.
        unusable = (400, "KM.00000461")
        assert await error(raw_task(setup, one, domain="unknown.shop.example")) == unusable
        assert await error(raw_task(setup, one, domain="other.shop.example")) == unusable
        assert await error(raw_task(setup, one, domain="pending.shop.example")) == unusable
        assert await error(raw_task(setup, one, domain="std.shop.example")) == unusable
        assert await error(raw_task(setup, one, generation_type="1")) == unusable  # custom domain, standard codes
        # A route of the edge can never be a link.
        assert await error(raw_task(setup, [{"cust_flag": "13900000001", "custom_short_code": "healthz"}])) == (
            400,
            "KM.90016482",
        )
        # The code space is global (the edge finds links by path): another tenant's link takes a code too.
        taken = await client.post(
            "/v1/aim/send-tasks", json=raw_task(setup, [{"cust_flag": "13900000001", "custom_short_code": "Other01"}])
        )
        assert (taken.status_code, taken.json()["error_code"]) == (400, "KM.90016482")
        assert "params[0].custom_short_code Other01 already in use" in taken.json()["error_msg"]
        monkeypatch.setattr(send_task_builder, "MAX_CUSTOM_CODES", 2)
        three = [{"cust_flag": f"1390000000{i}", "custom_short_code": f"Lim{i}00"} for i in range(3)]
        assert await error(raw_task(setup, three)) == (400, "KM.90016416")
        assert await error(raw_task(setup, three[:2])) == (200, "")
        listed = await client.get("/v1/aim/send-tasks")
        assert listed.json()["page_info"]["total"] == 1  # the refused requests wrote nothing


async def test_without_the_shortlink_service_a_custom_task_is_refused_with_503(
    served: tuple[str, Harness],
) -> None:
    url, harness = served  # no MAGPIE_SHORTLINK_INTERNAL_TOKEN: the codes cannot be checked
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
        await approved_domain(harness, client, DOMAIN, custom_short_code=True)
    sdk = sdk_client(url, tenant)
    with pytest.raises(ServerResponseException) as unavailable:
        await call(lambda: sdk.create_aim_send_task(sdk_task(setup, [("13900000001", "Abc123")])))
    assert (unavailable.value.status_code, unavailable.value.error_code) == (503, "KM.00000460")
    async with harness.client(tenant) as client:
        assert (await client.get("/v1/aim/send-tasks")).json()["page_info"]["total"] == 0


# --- the whole pipeline ------------------------------------------------------------------------------------------


async def start_minting(shortlink: Components) -> asyncio.Task[None]:
    loop = shortlink.consumer_loop()
    task = asyncio.create_task(loop.run())
    while not loop.ready:
        await asyncio.sleep(0.05)
    return task


def details(sdk: KooMessageClient, task_id: str) -> list[Any]:
    return list(sdk.list_aim_send_details(ListAimSendDetailsRequest(task_id=task_id)).send_details or [])


async def test_pipeline_mints_custom_codes_on_the_domain_and_fails_a_raced_code(settings: Settings) -> None:
    async with (
        shortlink_service(settings) as (edge_url, shortlink),
        serve_resolver(settings, ResolverConfig(), worker=True),
        served_gateway(
            settings,
            gateway_config(
                replay_check=True, shortlink_url=edge_url, shortlink_internal_token=TOKEN, link_domain=edge_url + "/"
            ),
        ) as (url, harness),
    ):
        tenant = await harness.tenant()
        async with harness.client(tenant) as client:
            setup = await harness.prerequisites(client)
            await approved_domain(harness, client, DOMAIN, custom_short_code=True)
        sdk = sdk_client(url, tenant)
        # Two tasks created before anything is minted both pass the gateway's check for "Race01": the minter
        # gives it to the first batch it handles, and fails the other task's recipient.
        first = await call(
            lambda: sdk.create_aim_send_task(sdk_task(setup, [("13900000001", "Race01"), ("13900000002", "Mine02")]))
        )
        second = await call(lambda: sdk.create_aim_send_task(sdk_task(setup, [("13900000003", "Race01")])))
        minting = await start_minting(shortlink)
        try:
            dispatched = await collect(
                settings,
                DISPATCH,
                dispatch_pb2.DispatchBatch,
                until=lambda m: (
                    {b.ctx.task_id for b in m} >= {first.task_id} and sum(len(b.recipients) for b in m) == 2
                ),
            )
            refused = await collect(settings, DELIVERY, dispatch_pb2.DeliveryBatch, until=lambda m: len(m) >= 1)
        finally:
            shortlink.loop.stop()  # type: ignore[union-attr]
            await asyncio.wait_for(minting, 30)

        links = {r.short_code: (b.ctx.task_id, r.mobile, r.short_url) for b in dispatched for r in b.recipients}
        assert links["Mine02"] == (first.task_id, "13900000002", f"https://{DOMAIN}/Mine02")
        winner_task, winner_mobile, winner_url = links["Race01"]
        assert winner_url == f"https://{DOMAIN}/Race01"
        (event,) = [e for b in refused for e in b.events]
        assert event.status == dispatch_pb2.DELIVERY_STATUS_FAILED and event.result_code == "KM.90016482"
        loser_task = second.task_id if winner_task == first.task_id else first.task_id
        assert event.task_id == loser_task and event.mobile != winner_mobile

        # The loser's recipient is final: FAILED with the reason in the send details; the task completes if that
        # was its only recipient.
        def failed_in_details() -> list[Any]:
            rows = details(sdk, loser_task)
            return [r for r in rows if r.send_status == "FAILED"]

        (row,) = await until(failed_in_details)
        assert (row.cust_flag, row.result_code) == (event.mobile, "KM.90016482")
        assert row.receive_time is not None
        winners = await call(lambda: details(sdk, winner_task))
        assert {(r.cust_flag, r.send_status) for r in winners if r.cust_flag == winner_mobile} == {
            (winner_mobile, "SENDING")
        }

        # A code held by a minted link is refused when the next task asks for it.
        with pytest.raises(ClientRequestException) as taken:
            await call(lambda: sdk.create_aim_send_task(sdk_task(setup, [("13900000004", "Mine02")])))
        assert taken.value.error_code == "KM.90016482"

        # The tenant's domain pointed at the edge serves the links (the edge finds them by path).
        async with httpx.AsyncClient(base_url=edge_url, headers={"Host": DOMAIN}) as handset:
            clicked = await handset.get("/Mine02")
            assert clicked.status_code == 302 and clicked.headers["location"] == f"https://{DOMAIN}/h5/Mine02"
            resolved = await handset.post(
                "/v1/resolve", json={"code": "Mine02"}, headers={"User-Agent": "test-handset"}
            )
            assert resolved.status_code == 200 and resolved.json()["tpl_id"] == setup.tpl_id
