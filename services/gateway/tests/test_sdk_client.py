"""The official KooMessage SDK, unchanged, against the gateway served by uvicorn on a real socket (replay
protection on Redis enabled): prerequisites, review states polled quickly, a send task, its listing and details,
errors, and a replayed write."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkoomessage.v1 import (
    AddAimMsgSignatureRequest,
    AddCallBackRequest,
    AddCallbackRequestBody,
    AimPersonalTemplateContent,
    AimPersonalTemplateContentAction,
    AimPersonalTemplateFactory,
    AimPersonalTemplatePage,
    AimPersonalTemplateParam,
    AIMResolveTask,
    CreateAimMsgTemplateRequest,
    CreateAimPersonalTemplateRequest,
    CreateAimPersonalTemplateRequestBody,
    CreateAimSendTaskRequest,
    CreateAimSendTaskRequestBody,
    CreateResolveTaskParam,
    CreateSmsAppRequest,
    KooMessageClient,
    ListAimCallbacksRequest,
    ListAimMsgAppRequest,
    ListAimMsgSignatureRequest,
    ListAimMsgTemplateRequest,
    ListAimSendDetailsRequest,
    ListAimSendTasksRequest,
    ListAimTemplatesRequest,
    MsgAppRequest,
    MsgTemplateRequest,
    ShowAimMsgTemplateDetailRequest,
    SignatureRequest,
    SmsChannel,
)

from magpie.v1 import template_pb2

from .conftest import Harness, call, sdk_client, until

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def test_official_sdk_against_the_gateway(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant("sdk")
    client = sdk_client(url, tenant)
    app = await call(lambda: client.create_sms_app(CreateSmsAppRequest(body=MsgAppRequest(app_name="sdk_app"))))
    assert app.status_code == 200 and app.app_name == "sdk_app" and app.app_id
    signature = await call(
        lambda: client.add_aim_msg_signature(
            AddAimMsgSignatureRequest(
                body=SignatureRequest(
                    signature_name="喜鹊商城",
                    signature_type="PROMOTION_TYPE",
                    app_id=app.app_id,
                    signature_source=0,
                    apply_desc="demo",
                    is_involved_third="no",
                )
            )
        )
    )
    template = await call(
        lambda: client.create_aim_msg_template(
            CreateAimMsgTemplateRequest(
                body=MsgTemplateRequest(
                    signature_id=signature.signature_id,
                    template_name="会员日",
                    template_type="PROMOTION_TYPE",
                    template_content="您的优惠已到账，点击 ${1} 查看。拒收请回复R",
                )
            )
        )
    )
    page = AimPersonalTemplatePage(
        page_order=1,
        contents=[
            AimPersonalTemplateContent(type="text", content="${name}，优惠券待领取"),
            AimPersonalTemplateContent(
                type="button",
                content="领取",
                action_type="OPEN_BROWSER",
                action=AimPersonalTemplateContentAction(target="https://shop.example.com"),
            ),
        ],
    )
    card = await call(
        lambda: client.create_aim_personal_template(
            CreateAimPersonalTemplateRequest(
                body=CreateAimPersonalTemplateRequestBody(
                    card_id="StandardImageAndText",
                    tpl_name="优惠券",
                    use_id=1,
                    pages=[page],
                    params=[AimPersonalTemplateParam(type=1, name="${name}", example="张三")],
                    factorys=[AimPersonalTemplateFactory(factory_type="HUAWEI", state=1)],
                )
            )
        )
    )
    tpl_id = card.data.tpl_id
    assert card.status == "200" and len(tpl_id) == 9

    await harness.review(template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE, signature.signature_id)
    await harness.review(template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE, template.template_id)
    await harness.review(template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE, tpl_id, vendors={"HUAWEI": True})
    signatures = await until(
        lambda: [
            s
            for s in client.list_aim_msg_signature(
                ListAimMsgSignatureRequest(signature_id=signature.signature_id)
            ).result
            if s.status == "APPROVED"
        ]
    )
    assert signatures[0].signature_name == "喜鹊商城" and signatures[0].app_name == "sdk_app"
    templates = await until(
        lambda: (
            client.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id)).templates[0].tpl_state == 1
            and client.list_aim_templates(ListAimTemplatesRequest(tpl_id=tpl_id, limit=5)).templates
        )
    )
    assert templates[0].audit_state == 2 and templates[0].factory_info[0].factory_type == "HUAWEI"
    assert templates[0].factory_info[0].state == 1 and templates[0].params[0].name == "${name}"
    sms = await call(
        lambda: client.show_aim_msg_template_detail(ShowAimMsgTemplateDetailRequest(template_id=template.template_id))
    )
    assert sms.flow_status == "APPROVED" and sms.signature_id == signature.signature_id
    listed = await call(lambda: client.list_aim_msg_template(ListAimMsgTemplateRequest(limit=10)))
    assert listed.page_info.total == 1 and listed.result[0].template_id == template.template_id
    apps = await call(lambda: client.list_aim_msg_app(ListAimMsgAppRequest()))
    assert [a.app_name for a in apps.result] == ["sdk_app"]

    added = await call(
        lambda: client.add_call_back(
            AddCallBackRequest(body=AddCallbackRequestBody(callback_url="https://1.1.1.1/receipts", url_type=0))
        )
    )
    assert added.data.url_type == 0 and added.data.id
    callbacks = await call(lambda: client.list_aim_callbacks(ListAimCallbacksRequest()))
    assert [c.callback_url for c in callbacks.data] == ["https://1.1.1.1/receipts"]

    def send(tpl: str) -> Any:
        return client.create_aim_send_task(
            CreateAimSendTaskRequest(
                body=CreateAimSendTaskRequestBody(
                    task_name="SDK campaign",
                    sms_channel=SmsChannel(
                        sms_tpl_id=template.template_id, sms_sign="喜鹊商城", sms_app_name="sdk_app"
                    ),
                    resolve_task=AIMResolveTask(
                        tpl_id=tpl,
                        aim_code_type="individual",
                        generation_type="1",
                        expiration_time=7,
                        params=[
                            CreateResolveTaskParam(cust_flag="13900000001", dync_params={"name": "张三"}),
                            CreateResolveTaskParam(cust_flag="13900000002", dync_params={"name": "李四"}),
                        ],
                    ),
                )
            )
        )

    task = await call(lambda: send(tpl_id))
    assert task.task_state == "Success" and task.task_id
    assert isinstance(task.creation_time, datetime.datetime)
    assert task.submission_count == 2 and task.resolve_task.params[1].cust_flag == "13900000002"
    tasks = await call(lambda: client.list_aim_send_tasks(ListAimSendTasksRequest(task_id=task.task_id)))
    assert tasks.page_info.total == 1
    assert tasks.aim_send_tasks[0].sms_channel.sms_sign == "喜鹊商城"
    assert tasks.aim_send_tasks[0].resolve_task.tpl_id == tpl_id
    details = await call(lambda: client.list_aim_send_details(ListAimSendDetailsRequest(task_id=task.task_id)))
    assert [(d.cust_flag, d.send_status) for d in details.send_details] == [
        ("13900000001", "SENDING"),
        ("13900000002", "SENDING"),
    ]

    with pytest.raises(ClientRequestException) as unknown:
        await call(lambda: send("999999999"))
    assert unknown.value.status_code == 400
    assert unknown.value.error_code == "KM.00000426"
    assert unknown.value.request_id

    # A captured write replayed verbatim is refused; an identical read is not (polling).
    def signed(method: str, path: str, body: bytes) -> dict[str, str]:
        request = SdkRequest(
            method=method,
            schema="http",
            host=url.removeprefix("http://"),
            resource_path=path,
            query_params=[],
            header_params={"Content-Type": "application/json"},
            body=body,
        )
        Signer(BasicCredentials(tenant.access_key, tenant.secret_key)).sign(request)
        return {k: str(v) for k, v in request.header_params.items() if k != "Host"}

    callback = b'{"callback_url": "https://1.1.1.1/again", "url_type": 2}'
    write_headers = signed("POST", "/v1/aim/callbacks", callback)
    read_headers = signed("GET", "/v1/sms/apps", b"")
    async with httpx.AsyncClient(base_url=url) as raw:
        assert (await raw.post("/v1/aim/callbacks", content=callback, headers=write_headers)).status_code == 200
        replayed = await raw.post("/v1/aim/callbacks", content=callback, headers=write_headers)
        assert replayed.status_code == 401 and "already been used" in replayed.json()["error_msg"]
        for _ in range(2):
            assert (await raw.get("/v1/sms/apps", headers=read_headers)).status_code == 200

    other = (
        KooMessageClient.new_builder()
        .with_credentials(BasicCredentials(tenant.access_key, "wrong-secret"))
        .with_endpoints([url])
        .build()
    )
    with pytest.raises(ClientRequestException) as refused:
        await call(lambda: other.list_aim_msg_app(ListAimMsgAppRequest()))
    assert refused.value.status_code == 401
