"""create_aim_send_task with bodies big enough to take the streaming paths for real (spooled to disk beyond 1 MiB,
parsed in a worker thread beyond 256 KiB): through the official SDK on a real socket with replay protection, and a
refused big body leaving no task and no recipient record."""

from __future__ import annotations

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkoomessage.v1 import (
    AIMResolveTask,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    SmsChannel,
)

from magpie.v1 import task_pb2
from magpie_common.testing import collect
from magpie_common.topics import RECIPIENTS

from .conftest import Harness, call, recipients, sdk_client

pytestmark = pytest.mark.integration

COUNT = 15_000  # ~1.3 MB of JSON


async def test_big_task_through_the_official_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
    params = [CreateResolveTaskParam(cust_flag=p["cust_flag"], dync_params=p["dync_params"]) for p in recipients(COUNT)]
    params[100:100] = [CreateResolveTaskParam(cust_flag="13900000007", dync_params={"name": "x", "amount": "y"})]
    request = CreateAimSendTaskRequest(
        body=CreateAimSendTaskRequestBody(
            task_name="大促",
            sms_channel=SmsChannel(sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name),
            resolve_task=AIMResolveTask(tpl_id=setup.tpl_id, aim_code_type="individual", params=params),
        )
    )
    response = await call(lambda: sdk_client(url, tenant).create_aim_send_task(request))
    assert response.task_state == "Success" and response.submission_count == COUNT + 1
    task_id = response.task_id
    batches = await collect(
        harness.settings,
        RECIPIENTS,
        task_pb2.RecipientBatch,
        until=lambda m: len([b for b in m if b.ctx.task_id == task_id]) >= COUNT // 500,
    )
    mine = sorted((b for b in batches if b.ctx.task_id == task_id), key=lambda b: b.batch_no)
    assert [b.batch_no for b in mine] == list(range(COUNT // 500))
    assert {b.batch_count for b in mine} == {COUNT // 500}
    assert [r.mobile for b in mine for r in b.recipients] == [p["cust_flag"] for p in recipients(COUNT)]
    read_docs = await harness.gateway.context.collections.recipient_batches.count_documents({"task_id": task_id})
    assert read_docs == COUNT // 500


async def test_a_refused_big_body_leaves_no_task(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client)
    params = [CreateResolveTaskParam(cust_flag=p["cust_flag"], dync_params=p["dync_params"]) for p in recipients(COUNT)]
    params[-1] = CreateResolveTaskParam(cust_flag="13900000008", dync_params={"name": "only"})  # the last one
    request = CreateAimSendTaskRequest(
        body=CreateAimSendTaskRequestBody(
            task_name="大促",
            sms_channel=SmsChannel(sms_tpl_id=setup.sms_template_id, sms_sign=setup.sign, sms_app_name=setup.app_name),
            resolve_task=AIMResolveTask(tpl_id=setup.tpl_id, aim_code_type="individual", params=params),
        )
    )
    with pytest.raises(ClientRequestException) as caught:
        await call(lambda: sdk_client(url, tenant).create_aim_send_task(request))
    assert caught.value.error_code == "KM.90016802" and f"params[{COUNT - 1}]" in caught.value.error_msg
    collections = harness.gateway.context.collections
    assert await collections.tasks.count_documents({"tenant_id": tenant.tenant_id}) == 0
    assert await collections.recipient_batches.count_documents({"tenant_id": tenant.tenant_id}) == 0
