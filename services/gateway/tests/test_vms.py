"""VMS (智能信息基础版) through the official SDK: templates (review by the three carriers, release to the
dispatcher), send tasks (commands to the dispatcher, task status from the delivery events) and callback URLs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from huaweicloudsdkkoomessage.v1 import (
    AddVmsCallBackRequest,
    AddVmsCallBackRequestBody,
    ContentParam,
    CreateVmsSendTaskRequest,
    CreateVmsSendTaskRequestBody,
    CreateVmsTemplateRequest,
    CreateVmsTemplateRequestBody,
    IndividualContentParam,
    IndividualParam,
    ListVmsCallbacksRequest,
    ListVmsSendTasksRequest,
    ListVmsTemplateStatusRequest,
    ResourceInfo,
)

from magpie.v1 import billing_pb2, common_pb2, dispatch_pb2, template_pb2, vms_pb2
from magpie_common.testing import collect
from magpie_common.topics import VMS_CALLBACKS, VMS_DELIVERY, VMS_SEND, VMS_TEMPLATES

from .conftest import Harness, call, eventually, sdk_client, until
from .vms_samples import b64, params, png, template_body, three_gp

pytestmark = pytest.mark.integration

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
VMS = template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE


async def approved_template(
    harness: Harness, client: Any, body: dict[str, Any] | None = None, vendors: dict[str, bool] | None = None
) -> str:
    """A template of the client's tenant, approved by the carriers (default: all three)."""
    response = await client.post("/v1/aim-basic/templates", json=body or template_body())
    assert response.status_code == 200, response.text
    tpl_id: str = response.json()["tplid"]
    await harness.review(VMS, tpl_id, vendors=vendors or {"CMCC": True, "CUCC": True, "CTCC": True})

    async def usable() -> bool:
        listed = (await client.get("/v1/aim-basic/templates", params={"tpl_id": tpl_id})).json()
        return bool(listed["data"]["templates"][0]["audit_state"] == 0)

    await eventually(usable)
    return tpl_id


def delivery(task_id: str, tenant_id: str, events: list[tuple[int, str, int, str]]) -> dispatch_pb2.DeliveryBatch:
    """A DeliveryBatch as the dispatcher's vms role produces it: (index, mobile, status, result_code)."""
    batch = dispatch_pb2.DeliveryBatch()
    batch.meta.event_id = f"d-{task_id}-{len(events)}-{events[0][2]}"
    for index, mobile, status, code in events:
        batch.events.add(
            event_id=f"{task_id}-{index}-{status}",
            tenant_id=tenant_id,
            task_id=task_id,
            index=index,
            mobile=mobile,
            msg_id=f"m-{index}",
            status=status,  # type: ignore[arg-type]
            result_code=code,
            route=common_pb2.ROUTE_VMS,
        )
    return batch


# --- the SDK against the served gateway -------------------------------------------------------------------------
async def test_sdk_template_lifecycle_review_and_release(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    sdk = sdk_client(url, tenant)
    video = three_gp()
    image = png(200)
    created = await call(
        lambda: sdk.create_vms_template(
            CreateVmsTemplateRequest(
                body=CreateVmsTemplateRequestBody(
                    expiration_time="30",
                    tpl_name="新车试驾",
                    title="新车上市",
                    remarks="三网合一通道",
                    reslist=[
                        ResourceInfo(index="1-1", type="3gp", name="promo.3gp", source="file", content=b64(video)),
                        ResourceInfo(
                            index="1-2", type="txt", name="text", source="txt", content="【喜鹊汽车】#p_1#您好，#p_2#"
                        ),
                        ResourceInfo(index="2-1", type="png", name="car.png", source="file", content=b64(image)),
                        ResourceInfo(index="3-1", type="txt", name="more", source="txt", content="到店试驾 #p_1#"),
                    ],
                )
            )
        )
    )
    tpl_id = created.tplid
    assert tpl_id
    listed = await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=tpl_id)))
    assert listed.status == "200" and listed.data.page_info.total == 1
    view = listed.data.templates[0]
    text_bytes = len("【喜鹊汽车】#p_1#您好，#p_2#".encode()) + len("到店试驾 #p_1#".encode())
    assert (view.tpl_id, view.tpl_name, view.title, view.tpl_sign) == (tpl_id, "新车试驾", "新车上市", "喜鹊汽车")
    assert view.audit_state == 1 and view.tpl_size == len(video) + len(image) + text_bytes
    assert [(d.carrier, d.status) for d in view.status_detail] == [("cmcc", 1), ("cucc", 1), ("ctcc", 1)]
    assert [(v.name, v.type) for v in view.var_info] == [("#p_1#", "txt"), ("#p_2#", "txt")]
    assert ISO.match(view.create_time) and ISO.match(view.valid_time) and view.restags == "三网一般"

    await harness.review(VMS, tpl_id, approved=True, vendors={"CMCC": True, "CUCC": True, "CTCC": False})

    def approved() -> Any:
        got = sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=tpl_id)).data.templates[0]
        return got if got.audit_state == 0 else None

    view = await until(approved)
    assert [(d.carrier, d.status) for d in view.status_detail] == [("cmcc", 0), ("cucc", 0), ("ctcc", 2)]
    assert view.status_detail[2].desc == "rejected by vendor"

    # Released for the dispatcher: the media in pieces, then the template naming the approving carriers.
    records = await collect(
        harness.settings,
        VMS_TEMPLATES,
        vms_pb2.VmsTemplateRecord,
        until=lambda got: any(r.WhichOneof("record") == "template" for r in got),
    )
    released = next(r.template for r in records if r.WhichOneof("record") == "template")
    assert (released.tpl_id, released.revision, released.sign) == (tpl_id, 1, "喜鹊汽车")
    assert list(released.carriers) == ["CMCC", "CUCC"] and list(released.params) == ["#p_1#", "#p_2#"]
    assert [(e.frame, e.position, e.type) for e in released.elements] == [
        (1, 1, "3gp"),
        (1, 2, "txt"),
        (2, 1, "png"),
        (3, 1, "txt"),
    ]
    chunks = {c.chunk.sha256: c.chunk.data for c in records if c.WhichOneof("record") == "chunk"}
    assert {chunks[e.media_sha256] for e in released.elements if e.type != "txt"} == {video, image}

    # Filters: params, name, public templates (Magpie has none), a creation window.
    assert (
        await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(has_param=False)))
    ).data.templates == []
    named = await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_name="试驾", limit=5)))
    assert [t.tpl_id for t in named.data.templates] == [tpl_id] and named.data.page_info.limit == 5
    public = await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_type="public")))
    assert public.data.templates == [] and public.data.page_info.total == 0
    window = ListVmsTemplateStatusRequest(begin_time="2020-01-01T00:00:00Z", end_time="2020-01-02T00:00:00Z")
    assert (await call(lambda: sdk.list_vms_template_status(window))).data.page_info.total == 0


async def test_sdk_draft_is_stored_but_not_reviewed(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    sdk = sdk_client(url, tenant)
    body = template_body(content="【喜鹊汽车】静态内容，欢迎试驾", is_draft=1)
    request = CreateVmsTemplateRequestBody(
        expiration_time=body["expiration_time"],
        tpl_name=body["tpl_name"],
        title=body["title"],
        reslist=[ResourceInfo(**r) for r in body["reslist"]],
        is_draft=1,
    )
    tpl_id = (await call(lambda: sdk.create_vms_template(CreateVmsTemplateRequest(body=request)))).tplid
    view = (await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(tpl_id=tpl_id)))).data
    assert view.templates[0].audit_state == 6 and view.templates[0].var_info == []
    assert {d.status for d in view.templates[0].status_detail} == {6}
    static = await call(lambda: sdk.list_vms_template_status(ListVmsTemplateStatusRequest(has_param=False)))
    assert [t.tpl_id for t in static.data.templates] == [tpl_id]


async def test_sdk_send_task_status_follows_the_delivery_events(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    sdk = sdk_client(url, tenant)
    async with harness.client(tenant) as client:
        tpl_id = await approved_template(harness, client)
    mobiles = ["13900000001", "13900000002", "13900000003", "13900000001"]  # the repeat is sent once
    created = await call(
        lambda: sdk.create_vms_send_task(
            CreateVmsSendTaskRequest(
                body=CreateVmsSendTaskRequestBody(
                    task_name="试驾邀请",
                    tpl_id=tpl_id,
                    expiration_time=2,
                    mobiles=mobiles,
                    dync_params=[
                        ContentParam(
                            param_name="#p_2#", content_type="txt", content_source="txt", content_detail="周六"
                        ),
                        ContentParam(
                            param_name="#p_1#", content_type="txt", content_source="txt", content_detail="张先生"
                        ),
                    ],
                    exdata="campaign-7",
                )
            )
        )
    )
    assert created.status == "200" and created.data.ret_code == "0" and created.data.desc == "success"
    task_id = created.data.task_id
    sent = await collect(harness.settings, VMS_SEND, vms_pb2.VmsSendBatch, until=lambda got: len(got) >= 1)
    assert len(sent) == 1
    command = sent[0]
    assert (command.task_id, command.tpl_id, command.tpl_revision, command.batch_count) == (task_id, tpl_id, 1, 1)
    assert list(command.params) == ["张先生", "周六"]  # in the template's param order, matched by name
    assert [(r.index, r.mobile) for r in command.recipients] == [(0, mobiles[0]), (1, mobiles[1]), (2, mobiles[2])]
    assert command.meta.tenant_id == tenant.tenant_id and command.exdata == "campaign-7"
    assert 7_100_000 < command.expires_at_ms - command.meta.occurred_at_ms <= 7_200_000  # 2 hours

    listed = await call(lambda: sdk.list_vms_send_tasks(ListVmsSendTasksRequest(task_id=task_id)))
    task = listed.data.aim_basic_send_tasks[0]
    assert (task.task_name, task.tpl_id, task.tpl_name, task.task_state) == (
        "试驾邀请",
        tpl_id,
        "新车试驾",
        "submit_success",
    )
    assert (task.total_count, task.success_count, task.failed_count, task.timeout_count) == (3, 0, 0, 0)
    assert ISO.match(task.create_time) and ISO.match(task.send_time) and task.exdata == "campaign-7"

    submitted = delivery(task_id, tenant.tenant_id, [(i, mobiles[i], 1, "OK") for i in range(3)])
    await harness.producer.send(VMS_DELIVERY, f"{task_id}:0", submitted)
    await until(
        lambda: (
            sdk.list_vms_send_tasks(ListVmsSendTasksRequest(task_id=task_id)).data.aim_basic_send_tasks[0].task_state
            == "processing"
        )
    )
    finals = delivery(
        task_id,
        tenant.tenant_id,
        [(0, mobiles[0], 2, "DELIVRD"), (1, mobiles[1], 3, "UNDELIV"), (2, "8613900000003", 4, "TIMEOUT")],
    )
    await harness.producer.send(VMS_DELIVERY, f"{task_id}:0", finals)
    await harness.producer.send(VMS_DELIVERY, f"{task_id}:0", submitted)  # late and replayed: changes nothing
    await harness.producer.send(VMS_DELIVERY, f"{task_id}:0", finals)

    def complete() -> Any:
        got = sdk.list_vms_send_tasks(ListVmsSendTasksRequest(task_status="sending_complete")).data
        return got if got.page_info.total == 1 else None

    done = (await until(complete)).aim_basic_send_tasks[0]
    assert (done.total_count, done.success_count, done.failed_count, done.timeout_count) == (3, 1, 1, 1)

    # Individual params: each group of numbers with its own values.
    individual = await call(
        lambda: sdk.create_vms_send_task(
            CreateVmsSendTaskRequest(
                body=CreateVmsSendTaskRequestBody(
                    task_name="个性化",
                    tpl_id=tpl_id,
                    individual_params=[
                        IndividualParam(
                            mobiles=["18600000001", "18600000002"],
                            dync_params=[
                                IndividualContentParam("#p_1#", "txt", "txt", "王女士"),
                                IndividualContentParam("#p_2#", "txt", "txt", "周日"),
                            ],
                        ),
                        IndividualParam(
                            mobiles=["18900000003"],
                            dync_params=[
                                IndividualContentParam("#p_1#", "txt", "txt", "李先生"),
                                IndividualContentParam("#p_2#", "txt", "txt", "周一"),
                            ],
                        ),
                    ],
                )
            )
        )
    )
    second = individual.data.task_id
    sent = await collect(
        harness.settings, VMS_SEND, vms_pb2.VmsSendBatch, until=lambda got: any(b.task_id == second for b in got)
    )
    command = next(b for b in sent if b.task_id == second)
    assert [(r.mobile, list(r.params)) for r in command.recipients] == [
        ("18600000001", ["王女士", "周日"]),
        ("18600000002", ["王女士", "周日"]),
        ("18900000003", ["李先生", "周一"]),
    ]
    assert list(command.params) == []
    both = await call(lambda: sdk.list_vms_send_tasks(ListVmsSendTasksRequest(tpl_id=tpl_id, offset=0, limit=10)))
    assert [t.task_id for t in both.data.aim_basic_send_tasks] == [second, task_id] and both.data.page_info.total == 2
    named = await call(lambda: sdk.list_vms_send_tasks(ListVmsSendTasksRequest(task_name="个性")))
    assert [t.task_id for t in named.data.aim_basic_send_tasks] == [second]
    old = ListVmsSendTasksRequest(send_begin_time="2020-01-01T00:00:00Z", send_end_time="2020-01-02T00:00:00Z")
    assert (await call(lambda: sdk.list_vms_send_tasks(old))).data.page_info.total == 0


async def test_sdk_callbacks(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant()
    sdk = sdk_client(url, tenant)

    def add(url_type: int, target: str, remark: str | None = None) -> Any:
        body = AddVmsCallBackRequestBody(url_type=url_type, callback_url=target, remark=remark)
        return sdk.add_vms_call_back(AddVmsCallBackRequest(body=body))

    first = await call(lambda: add(0, "https://1.1.1.1/vms/status", "状态报告"))
    assert (first.status, first.message) == ("200", "success")
    await call(lambda: add(1, "https://8.8.8.8/vms/replies"))
    await call(lambda: add(0, "https://1.1.1.1/vms/status-v2"))  # replaces the status URL
    listed = await call(lambda: sdk.list_vms_callbacks(ListVmsCallbacksRequest()))
    assert listed.status == "200"
    assert [(c.url_type, c.callback_url, c.remark) for c in listed.data.callbacks] == [
        (0, "https://1.1.1.1/vms/status-v2", None),
        (1, "https://8.8.8.8/vms/replies", None),
    ]
    events = await collect(
        harness.settings, VMS_CALLBACKS, billing_pb2.CallbackConfigured, until=lambda got: len(got) >= 3
    )
    assert [(e.meta.tenant_id, e.url_type, e.url) for e in events if e.url_type == 0] == [
        (tenant.tenant_id, 0, "https://1.1.1.1/vms/status"),
        (tenant.tenant_id, 0, "https://1.1.1.1/vms/status-v2"),
    ]
    other = sdk_client(url, await harness.tenant("other"))
    assert (await call(lambda: other.list_vms_callbacks(ListVmsCallbacksRequest()))).data.callbacks == []


# --- errors, limits and tenant isolation (httpx client signing like the SDK) --------------------------------------
def _code(response: Any) -> str:
    assert 400 <= response.status_code < 500, response.text
    return str(response.json()["error_code"])


async def test_template_rules_have_their_codes(harness: Harness) -> None:
    tenant = await harness.tenant()
    from .vms_samples import gif, media, mp4, text, wav

    cases: list[tuple[dict[str, Any], str]] = [
        (template_body(title="【新车】上市"), "KM.00000484"),
        (template_body(title='新车"上市"'), "KM.00000484"),
        (template_body(content="欢迎试驾 #p_1#"), "KM.00000484"),  # no 【signature】 first
        (template_body(content="【喜鹊汽车】欢迎【试驾】"), "KM.00000484"),
        (template_body(reslist=[text("【喜鹊】只有文字")]), "KM.00000480"),
        (template_body(reslist=[media("png", png()), media("gif", gif())]), "KM.00000480"),
        (template_body(reslist=[text("【喜鹊】九帧")] + [media("png", png())] * 8), "KM.00000480"),
        (template_body(reslist=[text("【喜鹊】x", "1-1"), media("png", png())]), "KM.00000480"),
        (
            template_body(reslist=[text("【喜鹊】x", "1-1"), media("png", png(), "2-1"), media("gif", gif(), "2-2")]),
            "KM.00000480",
        ),
        (template_body(reslist=[text("【喜鹊】x", "1-1"), media("png", png(), "3-1")]), "KM.00000480"),
        (
            template_body(
                reslist=[
                    text("【喜鹊】a", "1-1"),
                    media("png", png(), "1-2"),
                    text("b", "2-1"),
                    media("png", png(), "2-2"),
                    text("c", "3-1"),
                    media("png", png(), "3-2"),
                ]
            ),
            "KM.00000480",
        ),
        (template_body(reslist=[text("【喜鹊】x", "1-1"), media("png", png(), "1-1")]), "KM.00000480"),
        (template_body(content="【喜鹊汽车】" + "".join(f"#p_{i}#" for i in range(1, 14))), "KM.00000483"),
        (template_body(content="【喜鹊汽车】#p_101#"), "KM.00000483"),
        (template_body(reslist=[text("【喜鹊】x"), media("png", wav())]), "KM.00000482"),
        (template_body(reslist=[text("【喜鹊】x"), media("mp3", mp4())]), "KM.00000482"),
        (
            template_body(
                reslist=[text("【喜鹊】x"), {"type": "png", "name": "p", "source": "file", "content": "@@@"}]
            ),
            "KM.00000482",
        ),
        (template_body(reslist=[text("【喜鹊】x"), media("bmp", png())]), "KM.00000482"),
        (template_body(reslist=[text("【喜鹊】x"), media("png", png(2 * 1024 * 1024))]), "KM.00000482"),
        (
            template_body(reslist=[text("【喜鹊】x"), media("png", png(1_000_000)), media("png", png(1_000_000))]),
            "KM.00000481",
        ),
        (template_body(expiration_time="0"), "KM.00000400"),
        (template_body(expiration_time="ten"), "KM.00000400"),
        (template_body(tpl_name=""), "KM.00000400"),
        (template_body(is_draft=3), "KM.00000400"),
        (template_body(callbackurl="http://10.0.0.1/status"), "KM.00000428"),
        (
            template_body(
                reslist=[
                    text("【喜鹊】x"),
                    {"type": "png", "name": "p", "source": "url", "content": "http://127.0.0.1:9/a.png"},
                ]
            ),
            "KM.00000428",
        ),
    ]
    async with harness.client(tenant) as client:
        for body, expected in cases:
            response = await client.post("/v1/aim-basic/templates", json=body)
            assert _code(response) == expected, (body.get("title"), response.text)
        listed = (await client.get("/v1/aim-basic/templates")).json()
        assert listed["data"]["templates"] == []  # nothing half-created
        files = await harness.gateway.context.collections.files.count_documents({"tenant_id": tenant.tenant_id})
        assert files == 0  # no medium stored for a refused template
        bad_window = await client.get("/v1/aim-basic/templates", params={"begin_time": "2024-01-01T00:00:00Z"})
        assert _code(bad_window) == "KM.00000400"
        assert _code(await client.get("/v1/aim-basic/templates", params={"tpl_type": "shared"})) == "KM.00000400"


async def test_url_resources_are_downloaded(settings: Any) -> None:
    import asyncio

    from .conftest import gateway_config, harness_of

    image = png(50)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
        body, status = (image, b"200 OK") if b"/car.png" in line else (b"missing", b"404 Not Found")
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with harness_of(settings, gateway_config(allow_loopback_callbacks=True)) as harness:
            tenant = await harness.tenant()
            from .vms_samples import text

            async with harness.client(tenant) as client:
                good = template_body(
                    reslist=[
                        text("【喜鹊】看图"),
                        {"type": "png", "name": "car", "source": "url", "content": f"http://127.0.0.1:{port}/car.png"},
                    ]
                )
                created = await client.post("/v1/aim-basic/templates", json=good)
                assert created.status_code == 200, created.text
                tpl_id = created.json()["tplid"]
                view = (await client.get("/v1/aim-basic/templates", params={"tpl_id": tpl_id})).json()["data"][
                    "templates"
                ][0]
                assert view["tpl_size"] == len(image) + len("【喜鹊】看图".encode())
                missing = template_body(
                    reslist=[
                        text("【喜鹊】看图"),
                        {"type": "png", "name": "x", "source": "url", "content": f"http://127.0.0.1:{port}/gone.png"},
                    ]
                )
                assert _code(await client.post("/v1/aim-basic/templates", json=missing)) == "KM.00000489"
    finally:
        server.close()
        await server.wait_closed()


async def test_send_task_rules_have_their_codes(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        tpl_id = await approved_template(harness, client)
        static_body = template_body(content="【喜鹊汽车】欢迎试驾")
        static_id = await approved_template(harness, client, static_body)
        reviewing = (await client.post("/v1/aim-basic/templates", json=template_body())).json()["tplid"]
        rejected = (await client.post("/v1/aim-basic/templates", json=template_body())).json()["tplid"]
        await harness.review(VMS, rejected, approved=False, vendors={"CMCC": False, "CUCC": False, "CTCC": False})
        draft = (await client.post("/v1/aim-basic/templates", json=template_body(is_draft=1))).json()["tplid"]

        async def is_rejected() -> bool:
            got = (await client.get("/v1/aim-basic/templates", params={"tpl_id": rejected})).json()
            return bool(got["data"]["templates"][0]["audit_state"] == 2)

        await eventually(is_rejected)

        def task(**fields: Any) -> dict[str, Any]:
            body: dict[str, Any] = {
                "task_name": "t",
                "tpl_id": tpl_id,
                "mobiles": ["13900000001"],
                "dync_params": params("a", "b"),
            }
            body.update(fields)
            return {k: v for k, v in body.items() if v is not None}

        individual = [{"mobiles": ["13900000001"], "dync_params": params("a", "b")}]
        cases: list[tuple[dict[str, Any], str]] = [
            (task(tpl_id="VMS-unknown"), "KM.00000485"),
            (task(tpl_id=reviewing), "KM.00000486"),
            (task(tpl_id=rejected), "KM.00000486"),
            (task(tpl_id=draft), "KM.00000486"),
            (task(individual_params=individual), "KM.00000487"),
            (task(mobiles=None, dync_params=None), "KM.00000487"),
            (task(tpl_id=static_id, mobiles=None, dync_params=None, individual_params=individual), "KM.00000487"),
            (task(mobiles=["13900000001", "1390000abc"]), "KM.00000487"),
            (task(mobiles=["1" * 21]), "KM.00000487"),
            (task(mobiles=[f"139{i:08d}" for i in range(5001)]), "KM.90016301"),
            (task(dync_params=params("only one")), "KM.00000488"),
            (task(tpl_id=static_id, dync_params=params("x")), "KM.00000488"),
            (task(dync_params=[{**params("a", "b")[0], "content_type": "jpg"}, params("a", "b")[1]]), "KM.00000488"),
            (task(dync_params=params("a", "")), "KM.00000488"),
            (
                task(
                    mobiles=None, dync_params=None, individual_params=[{"mobiles": [], "dync_params": params("a", "b")}]
                ),
                "KM.00000487",
            ),
            (task(expiration_time=0), "KM.00000400"),
            (task(expiration_time=73), "KM.00000400"),
            (task(task_name="x" * 33), "KM.00000400"),
            (task(task_name=None), "KM.00000400"),
        ]
        for body, expected in cases:
            response = await client.post("/v1/aim-basic/send-tasks", json=body)
            assert _code(response) == expected, (body, response.text)
        listed = (await client.get("/v1/aim-basic/send-tasks")).json()
        assert listed["data"]["aim_basic_send_tasks"] == []  # nothing half-created
        assert _code(await client.get("/v1/aim-basic/send-tasks", params={"task_status": "done"})) == "KM.00000400"
        assert _code(await client.get("/v1/aim-basic/send-tasks", params={"limit": 0})) == "KM.00000400"
        # A static template: group sends without params.
        ok = await client.post(
            "/v1/aim-basic/send-tasks", json={"task_name": "静态", "tpl_id": static_id, "mobiles": ["13900000009"]}
        )
        assert ok.status_code == 200, ok.text


async def test_expired_template_cannot_send(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        tpl_id = await approved_template(harness, client, vendors={"CMCC": True, "CUCC": False, "CTCC": True})
        from datetime import UTC, datetime, timedelta

        await harness.gateway.context.collections.vms_templates.update_one(
            {"_id": tpl_id}, {"$set": {"valid_until": datetime.now(UTC) - timedelta(seconds=1)}}
        )
        view = (await client.get("/v1/aim-basic/templates", params={"tpl_id": tpl_id})).json()["data"]["templates"][0]
        assert view["audit_state"] == 5
        assert [d["status"] for d in view["status_detail"]] == [5, 2, 5]
        response = await client.post(
            "/v1/aim-basic/send-tasks",
            json={"task_name": "t", "tpl_id": tpl_id, "mobiles": ["13900000001"], "dync_params": params("a", "b")},
        )
        assert _code(response) == "KM.00000486"


async def test_callback_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        cases = [
            ({"url_type": 2, "callback_url": "https://1.1.1.1/x"}, "KM.00000400"),
            ({"callback_url": "https://1.1.1.1/x"}, "KM.00000400"),
            ({"url_type": 0, "callback_url": "http://192.168.1.5/x"}, "KM.00000428"),
            ({"url_type": 0, "callback_url": "ftp://1.1.1.1/x"}, "KM.00000428"),
            ({"url_type": 0, "callback_url": ""}, "KM.00000428"),
            ({"url_type": 1, "callback_url": "https://1.1.1.1/x", "remark": "r" * 201}, "KM.00000400"),
        ]
        for body, expected in cases:
            assert _code(await client.post("/v1/aim-basic/callbacks", json=body)) == expected, body
        assert (await client.get("/v1/aim-basic/callbacks")).json()["data"]["callbacks"] == []


async def test_tenants_never_see_each_other(harness: Harness) -> None:
    owner, stranger = await harness.tenant("owner"), await harness.tenant("stranger")
    async with harness.client(owner) as client:
        tpl_id = await approved_template(harness, client)
        created = await client.post(
            "/v1/aim-basic/send-tasks",
            json={"task_name": "t", "tpl_id": tpl_id, "mobiles": ["13900000001"], "dync_params": params("a", "b")},
        )
        task_id = created.json()["data"]["task_id"]
        await client.post("/v1/aim-basic/callbacks", json={"url_type": 0, "callback_url": "https://1.1.1.1/x"})
    async with harness.client(stranger) as client:
        # The owner's template is unknown to the stranger: not listed, and not usable (as if it did not exist).
        listed = (await client.get("/v1/aim-basic/templates", params={"tpl_id": tpl_id})).json()["data"]
        assert listed["templates"] == [] and listed["page_info"]["total"] == 0
        response = await client.post(
            "/v1/aim-basic/send-tasks",
            json={"task_name": "t", "tpl_id": tpl_id, "mobiles": ["13900000001"], "dync_params": params("a", "b")},
        )
        assert _code(response) == "KM.00000485"
        tasks = (await client.get("/v1/aim-basic/send-tasks", params={"task_id": task_id})).json()["data"]
        assert tasks["aim_basic_send_tasks"] == [] and tasks["page_info"]["total"] == 0
        assert (await client.get("/v1/aim-basic/callbacks")).json()["data"]["callbacks"] == []
    # Delivery events claiming the owner's task for another tenant are ignored.
    fake = delivery(task_id, stranger.tenant_id, [(0, "13900000001", 2, "DELIVRD")])
    assert not await harness.gateway.context.collections.vms_tasks.find_one({"_id": task_id, "success_count": 1})
    from magpie_gateway.vms_projector import VmsProjector

    await VmsProjector(harness.gateway.context.collections).apply(task_id, list(fake.events))
    doc = await harness.gateway.context.collections.vms_tasks.find_one({"_id": task_id})
    assert doc is not None and doc["success_count"] == 0
