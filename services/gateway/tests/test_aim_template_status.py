"""AIM template status: review decisions and enable / disable produce ``AimTemplateStatus`` on AIM_TEMPLATE_STATUS
(keyed by tpl_id) and nothing else does; end to end, the dispatcher's receipts role POSTs KooMessage's
template-status body to the URL a tenant registered with url_type 1 through the official SDK."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from huaweicloudsdkkoomessage.v1 import (
    AddCallBackRequest,
    AddCallbackRequestBody,
    UpdatePersonalTemplateStateDataRequest,
    UpdatePersonalTemplateStateRequest,
)
from standardwebhooks import Webhook

from magpie.v1 import template_pb2, template_status_pb2
from magpie_common.config import Settings
from magpie_common.topics import AIM_TEMPLATE_STATUS, topic_name
from magpie_dispatcher.receipts import ReceiptsComponents, ReceiptsConfig, build_receipts, tenant_signing_secret

from .conftest import Harness, call, card_body, eventually, gateway_config, sdk_client, served_gateway

pytestmark = pytest.mark.integration

AIM = template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE
Status = template_status_pb2.AimTemplateStatus


async def statuses(settings: Settings) -> list[tuple[str, Status]]:
    """Every record of AIM_TEMPLATE_STATUS produced so far (read up to the end offsets), with its key."""
    name = topic_name(settings, AIM_TEMPLATE_STATUS)
    consumer = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)  # type: ignore[arg-type]
    await consumer.start()
    found: list[tuple[str, Status]] = []
    try:
        partitions = [TopicPartition(name, p) for p in range(AIM_TEMPLATE_STATUS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "AIM_TEMPLATE_STATUS not read to its end"
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    message = Status()
                    message.ParseFromString(record.value or b"")
                    found.append(((record.key or b"").decode(), message))
    finally:
        await consumer.stop()
    return found


async def of_template(settings: Settings, tpl_id: str, count: int) -> list[Status]:
    """The status events of ``tpl_id`` once there are ``count`` (in order: one key, one partition)."""

    async def enough() -> list[Status] | None:
        events = [event for key, event in await statuses(settings) if key == tpl_id]
        assert all(event.tpl_id == tpl_id for event in events)
        return events if len(events) >= count else None

    result: list[Status] = await eventually(enough)
    return result


def vendors(event: Status) -> list[tuple[str, int]]:
    return [(v.factory_type, v.state) for v in event.factory_info]


async def create_card(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/aim/templates", json=card_body())
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["tpl_id"])


async def set_state(client: httpx.AsyncClient, tpl_id: str, tpl_state: int) -> httpx.Response:
    return await client.put(f"/v1/aim/template-state/{tpl_id}", json={"tpl_state": tpl_state})


async def test_review_decision_and_state_changes_produce_status_events(harness: Harness) -> None:
    tenant = await harness.tenant("status")
    async with harness.client(tenant) as client:
        tpl_id = await create_card(client)
        # Nothing is produced while the template is under review.
        assert [key for key, _ in await statuses(harness.settings)] == []
        await harness.review(AIM, tpl_id, vendors={"HUAWEI": True, "HONOR": True, "OPPO": False}, reason="审核通过")
        (approved,) = await of_template(harness.settings, tpl_id, 1)
        assert approved.meta.tenant_id == tenant.tenant_id and approved.meta.producer
        assert (approved.change, approved.revision, approved.tpl_state, approved.audit_state) == ("review", 1, 1, 2)
        assert approved.audit_desc == "审核通过"
        assert vendors(approved) == [("HUAWEI", 1), ("HONOR", 1), ("OPPO", 2)]
        assert [v.reason for v in approved.factory_info] == ["", "", "rejected by vendor"]

        for state in (0, 0, 1):  # disable, disable again (no change), enable
            response = await set_state(client, tpl_id, state)
            assert response.status_code == 200, response.text
        events = await of_template(harness.settings, tpl_id, 4)
        assert len(events) == 4
        _, disabled, repeated, enabled = events
        assert (disabled.change, disabled.tpl_state, disabled.audit_state) == ("disable", 0, 2)
        assert vendors(disabled) == vendors(approved) and disabled.audit_desc == "审核通过"
        # The repeat is the same event (the receipts outbox posts it once); the enable is a new one.
        assert repeated.meta.event_id == disabled.meta.event_id and repeated.tpl_state == 0
        assert (enabled.change, enabled.tpl_state) == ("enable", 1)
        assert len({approved.meta.event_id, disabled.meta.event_id, enabled.meta.event_id}) == 3

        # The same decision delivered again produces the same event again (posted once downstream).
        await harness.review(AIM, tpl_id, vendors={"HUAWEI": True, "HONOR": True, "OPPO": False}, reason="审核通过")
        events = await of_template(harness.settings, tpl_id, 5)
        assert events[4].meta.event_id == approved.meta.event_id


async def test_disabled_under_review_then_rejected(harness: Harness) -> None:
    tenant = await harness.tenant("rejected")
    other = await harness.tenant("other")
    async with harness.client(tenant) as client, harness.client(other) as stranger:
        tpl_id = await create_card(client)
        # Refused requests produce nothing: another tenant's template, a bad value, enabling an unapproved one.
        foreign = await set_state(stranger, tpl_id, 0)
        assert (foreign.status_code, foreign.json()["error_code"]) == (404, "KM.00000404")
        bad = await set_state(client, tpl_id, 7)
        assert (bad.status_code, bad.json()["error_code"]) == (400, "KM.00000400")
        early = await set_state(client, tpl_id, 1)
        assert (early.status_code, early.json()["error_code"]) == (400, "KM.80040005")
        # Disabling while under review is stored but has no callback value (audit_state 1): nothing produced.
        disabled = await set_state(client, tpl_id, 0)
        assert disabled.status_code == 200, disabled.text
        assert await statuses(harness.settings) == []

        await harness.review(AIM, tpl_id, approved=False, reason="含敏感词")
        (rejected,) = await of_template(harness.settings, tpl_id, 1)
        assert (rejected.change, rejected.tpl_state, rejected.audit_state, rejected.audit_desc) == (
            "review",
            0,
            3,
            "含敏感词",
        )
        assert vendors(rejected) == [("HUAWEI", 2), ("HONOR", 2), ("OPPO", 2)]


async def test_deleting_produces_nothing(harness: Harness) -> None:
    tenant = await harness.tenant("deleting")
    async with harness.client(tenant) as client:
        tpl_id = await create_card(client)
        await harness.review(AIM, tpl_id, vendors={"HUAWEI": True})
        await of_template(harness.settings, tpl_id, 1)
        deleted = await client.delete(f"/v1/aim/template/{tpl_id}")
        assert deleted.status_code == 200, deleted.text
        # The delete was answered: an event it produced would already be on the topic.
        assert len(await statuses(harness.settings)) == 1
        gone = await set_state(client, tpl_id, 0)
        assert (gone.status_code, gone.json()["error_code"]) == (404, "KM.00000404")
        assert len(await statuses(harness.settings)) == 1


# --- end to end: SDK registration -> review -> the dispatcher's receipts role -> the customer's server -----------


class Hooks:
    """The customer's callback server: every POST's path, headers and raw body."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []

    def on(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for p, headers, body in self.posts if p == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        self.posts.append((lines[0].split(" ")[1], headers, body))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()
            await server.wait_closed()


@contextlib.asynccontextmanager
async def receipts_role(settings: Settings, config: ReceiptsConfig) -> AsyncIterator[ReceiptsComponents]:
    components = await build_receipts(settings, config)
    tasks = [asyncio.create_task(w) for w in components.workers()]
    try:
        yield components
    finally:
        components.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await components.close()


async def consumed(settings: Settings, group: str) -> bool:
    """Whether consumer group ``group`` committed AIM_TEMPLATE_STATUS up to its end."""
    name = topic_name(settings, AIM_TEMPLATE_STATUS)
    consumer = AIOKafkaConsumer(**settings.kafka_client_options(), group_id=group, enable_auto_commit=False)  # type: ignore[arg-type]
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(AIM_TEMPLATE_STATUS.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if ends[tp] and (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def test_callback_received_after_sdk_registration_and_review(settings: Settings) -> None:
    master = "whsec_" + "dGVtcGxhdGUtc3RhdHVzLXNpZ25pbmcta2V5LTMy"
    config = ReceiptsConfig(poll_ms=50, retry_base_ms=200, signing_secret=master, allow_loopback=True)
    hooks = Hooks()
    async with (
        hooks.running() as hook_url,
        served_gateway(settings, gateway_config(allow_loopback_callbacks=True)) as (url, harness),
        receipts_role(settings, config) as receipts,
    ):
        tenant = await harness.tenant("listening")
        quiet = await harness.tenant("quiet")  # send receipts only: no url_type 1 URL
        sdk, quiet_sdk = sdk_client(url, tenant), sdk_client(url, quiet)
        registered = await call(
            lambda: sdk.add_call_back(
                AddCallBackRequest(body=AddCallbackRequestBody(callback_url=hook_url + "/status", url_type=1))
            )
        )
        assert (registered.status, registered.data.url_type) == ("200", 1)
        await call(
            lambda: quiet_sdk.add_call_back(
                AddCallBackRequest(body=AddCallbackRequestBody(callback_url=hook_url + "/quiet", url_type=0))
            )
        )

        async def stored() -> bool:
            mine = await receipts.registry.stored(tenant.tenant_id)
            theirs = await receipts.registry.stored(quiet.tenant_id)
            return [(c.url_type, c.url) for c in mine] == [(1, hook_url + "/status")] and len(theirs) == 1

        await eventually(stored)

        async with harness.client(quiet) as quiet_client:
            quiet_tpl = await create_card(quiet_client)
        await harness.review(AIM, quiet_tpl, vendors={"HUAWEI": True})
        async with harness.client(tenant) as client:
            tpl_id = await create_card(client)
        await harness.review(AIM, tpl_id, vendors={"HUAWEI": True, "HONOR": True, "OPPO": False}, reason="审核通过")

        async def posted(count: int) -> list[tuple[dict[str, str], bytes]] | None:
            hits = hooks.on("/status")
            return hits if len(hits) >= count else None

        ((headers, body),) = await eventually(lambda: posted(1))
        assert orjson.loads(body) == {
            "tpl_id": tpl_id,
            "tpl_state": 1,
            "audit_state": 2,
            "audit_desc": "审核通过",
            "factory_info": [
                {"factory_type": "HuaWei", "state": 1},
                {"factory_type": "HONOR", "state": 1},
                {"factory_type": "OPPO", "state": 2},
            ],
        }
        Webhook(tenant_signing_secret(master, tenant.tenant_id)).verify(body, headers)

        # The tenant disables it through the SDK: a second callback.
        await call(
            lambda: sdk.update_personal_template_state(
                UpdatePersonalTemplateStateRequest(
                    tpl_id=tpl_id, body=UpdatePersonalTemplateStateDataRequest(tpl_state=0)
                )
            )
        )
        hits = await eventually(lambda: posted(2))
        disabled: dict[str, Any] = orjson.loads(hits[1][1])
        assert (disabled["tpl_id"], disabled["tpl_state"], disabled["audit_state"]) == (tpl_id, 0, 2)

        # The tenant without a template-status URL got nothing, once its event was consumed.
        async def all_consumed() -> bool:
            return await consumed(settings, receipts.loop.group_id)

        await eventually(all_consumed)
        assert [path for path, _, _ in hooks.posts] == ["/status", "/status"]
