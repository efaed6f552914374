"""One smart-message campaign through the official SDK, end to end on real processes and real infrastructure."""

from __future__ import annotations

import time

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    ListAimSendDetailsRequest,
    SmsChannel,
)

from magpie_devstack import campaign
from magpie_devstack.receipts import ReceiptCollector
from magpie_devstack.stack import Stack

from .conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

FINAL_STATES = {"DELIVERED", "FAILED", "TIMEOUT", "SKIPPED", "INVALID"}


def all_details(client: campaign.KooMessageClient, task_id: str) -> list[dict[str, object]]:
    details: list[dict[str, object]] = []
    offset = 0
    while True:
        page = client.list_aim_send_details(ListAimSendDetailsRequest(task_id=task_id, offset=offset, limit=100))
        items = [d.to_dict() for d in page.send_details or []]
        details.extend(items)
        if len(items) < 100:
            return details
        offset += 100


def test_campaign_end_to_end(stack: Stack) -> None:
    with ReceiptCollector() as receipts:
        tenant = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "e2e")
        campaign.buy_package(stack.url("billing"), tenant.tenant_id, "AIM_SMS", 150)
        population = campaign.Population.synthetic(300, seed=5)
        campaign.seed_devices(stack.url("number-resolver"), population)
        client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
        pre = campaign.prerequisites(client, callback_url=receipts.url)
        assert set(pre.filing_ids) == {"AIM"}  # approved by template-review, like the templates
        task_id = campaign.send(client, pre, population)

        handsets = campaign.Handsets(stack.simulator_url, stack.url("shortlink"))
        capable = {s.mobile for s in population.subscribers if s.kind == "capable"}
        deadline = time.monotonic() + 120
        while True:
            handsets.resolve(handsets.delivered_links(capable))
            details = all_details(client, task_id)
            if len(details) == 300 and all(d["send_status"] in FINAL_STATES for d in details):
                break
            assert time.monotonic() < deadline, {d["send_status"] for d in details}
            time.sleep(1)

        by_mobile = {str(d["cust_flag"]): d for d in details}
        for subscriber in population.subscribers:
            status = by_mobile[subscriber.mobile]["send_status"]
            if subscriber.kind == "invalid":
                assert status == "INVALID"
            else:  # capable: smart; incapable and unknown: degraded to plain SMS (the default fallback)
                assert status in {"DELIVERED", "FAILED"}
        delivered = [d for d in details if d["send_status"] == "DELIVERED"]
        assert delivered and len(delivered) < len(details)
        assert len(handsets.resolved) > 0

        # Receipts reach the customer's callback URL: one sms receipt per sent message, shortchain per resolution.
        sent = sum(1 for d in details if d["send_status"] in {"DELIVERED", "FAILED"})
        deadline = time.monotonic() + 30
        while (receipts.count("sms") < sent or receipts.count("shortchain") < len(handsets.resolved)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert receipts.count("sms") == sent
        assert receipts.count("shortchain") == len(handsets.resolved)

        # Billing: exactly the delivered segments plus the resolutions; packages first, the rest on demand.
        deadline = time.monotonic() + 30
        while True:
            summary = campaign.billing_summary(stack.url("billing"), tenant.tenant_id)
            products = {p["product"]: p for p in summary["products"]}
            sms_units = products.get("AIM_SMS", {}).get("charged", 0)
            resolution_units = products.get("AIM_RESOLUTION", {}).get("charged", 0)
            parts = campaign.carrier_parts(stack.simulator_url)
            expected_sms = sum(parts[str(d["cust_flag"])] for d in delivered)
            if sms_units == expected_sms and resolution_units == len(handsets.resolved):
                break
            assert time.monotonic() < deadline, (summary, expected_sms, len(handsets.resolved))
            time.sleep(0.5)
        assert products["AIM_SMS"]["from_packages"] == min(150, expected_sms)
        assert products["AIM_SMS"]["on_demand"] == max(0, expected_sms - 150)

        # The carrier saw each message once.
        duplicates = httpx.get(f"{stack.simulator_url}/duplicates", timeout=10).json()
        assert duplicates.get("duplicates") == []


def test_bad_input(stack: Stack) -> None:
    # Without an approved enterprise filing nothing is sent (the dev stack keeps the production default).
    newcomer = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "e2e-no-filing")
    unfiled = campaign.sdk_client(stack.gateway_url, newcomer.access_key, newcomer.secret_key)
    with pytest.raises(ClientRequestException) as no_filing:
        unfiled.create_aim_send_task(
            CreateAimSendTaskRequest(
                body=CreateAimSendTaskRequestBody(
                    task_name="no filing",
                    sms_channel=SmsChannel(sms_tpl_id="1", sms_sign="喜鹊商城", sms_app_name="demo_app"),
                    resolve_task=AIMResolveTask(
                        tpl_id="1",
                        aim_code_type="individual",
                        expiration_time=1,
                        params=[CreateResolveTaskParam(cust_flag="13800138000", dync_params={})],
                    ),
                )
            )
        )
    assert no_filing.value.status_code == 400 and no_filing.value.error_code == "KM.00000514"

    tenant = campaign.provision_tenant(stack.gateway_url, ADMIN_TOKEN, "e2e-bad")
    client = campaign.sdk_client(stack.gateway_url, tenant.access_key, tenant.secret_key)
    pre = campaign.prerequisites(client, suffix="_b")

    # A wrong secret: 401 with an error body the SDK understands.
    bad = campaign.sdk_client(stack.gateway_url, tenant.access_key, "not-the-secret")
    with pytest.raises(ClientRequestException) as wrong:
        campaign.task_progress(bad, "anything")
    assert wrong.value.status_code == 401
    assert wrong.value.error_code

    # An unknown card template: 400 with a KM.* code; nothing is sent.
    with pytest.raises(ClientRequestException) as unknown:
        client.create_aim_send_task(
            CreateAimSendTaskRequest(
                body=CreateAimSendTaskRequestBody(
                    task_name="unknown template",
                    sms_channel=SmsChannel(
                        sms_tpl_id=pre.sms_template_id, sms_sign=pre.sign_name, sms_app_name=pre.app_name
                    ),
                    resolve_task=AIMResolveTask(
                        tpl_id="999999999",
                        aim_code_type="individual",
                        expiration_time=1,
                        params=[CreateResolveTaskParam(cust_flag="13800138000", dync_params={})],
                    ),
                )
            )
        )
    assert unknown.value.status_code == 400
    assert unknown.value.error_code.startswith("KM.")


async def test_one_record_of_every_topic_decodes_with_the_generated_classes(stack: Stack) -> None:
    """After the campaign above, every topic of the flow holds records that the classes from proto/ decode."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from magpie.v1 import billing_pb2, dispatch_pb2, link_pb2, resolve_pb2, task_pb2, template_pb2
    from magpie_common import topics

    expected = {
        topics.TEMPLATE_SUBMITTED: template_pb2.TemplateSubmitted,
        topics.TEMPLATE_REVIEWED: template_pb2.TemplateReviewed,
        topics.TASK_ACCEPTED: task_pb2.TaskAccepted,
        topics.RECIPIENTS: task_pb2.RecipientBatch,
        topics.CLASSIFIED: resolve_pb2.ClassifiedBatch,
        topics.DISPATCH: dispatch_pb2.DispatchBatch,
        topics.DELIVERY: dispatch_pb2.DeliveryBatch,
        topics.LINK: link_pb2.LinkEvent,
        topics.USAGE: billing_pb2.UsageEvent,
        topics.CALLBACKS: billing_pb2.CallbackConfigured,
    }
    settings = stack.settings()
    for topic, message_type in expected.items():
        name = topics.topic_name(settings, topic)
        consumer = AIOKafkaConsumer(**settings.kafka_client_options(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            batch = await consumer.getmany(timeout_ms=5000, max_records=1)
            records = [r for rs in batch.values() for r in rs]
            assert records, f"no record on {name}"
            message = message_type()
            message.ParseFromString(records[0].value)
            # Every event carries its envelope with a stable id (what consumers deduplicate on).
            assert message.meta.event_id and message.meta.producer, f"{name}: {message}"
        finally:
            await consumer.stop()
