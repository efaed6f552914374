"""Service numbers: media upload and the one-stop creation through the official SDK, reviews (the service number
first, then its menu and homepage), updates under review, freezing and unfreezing (reviewed); and the refusals:
names, media, limits, states, other tenants."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.formdata import FormFile
from huaweicloudsdkkoomessage.v1 import (
    CreatePubFastappModel,
    CreatePubInfoRequest,
    CreatePubInfoRequestBody,
    ExtMsg,
    FreezePubRequest,
    FreezePubRequestBody,
    ListPubInfosRequest,
    MenuInfoRequestBody,
    MenuItem,
    MenusMode,
    PortalInfoRequestBody,
    PubInfoRequestBody,
    TelModel,
    UnfreezePubRequest,
    UnfreezePubRequestBody,
    UpdatePubInfoRequest,
    UpdatePubInfoRequestBody,
    UploadMediaRequest,
    UploadMediaRequestBody,
)

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, call, eventually, sdk_client, until
from .sa_testkit import (
    BACKGROUND,
    FASTAPP_LOGO,
    LICENCE,
    LOGO,
    MENU,
    PORTAL,
    PUB,
    approve_pub,
    create_body,
    create_pub,
    error,
    images,
    live_pub,
    media,
    png,
    pub_row,
)

pytestmark = pytest.mark.integration


def _submissions(messages: list[template_pb2.TemplateSubmitted], subject: int, subject_id: str) -> list[int]:
    return [m.revision for m in messages if m.subject == subject and m.subject_id == subject_id]


async def test_service_number_through_the_sdk(served: tuple[str, Harness], tmp_path: Path) -> None:
    url, harness = served
    tenant = await harness.tenant("喜鹊科技")
    client = sdk_client(url, tenant)

    def upload(file_type: str, data: bytes, name: str) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        response = client.upload_media(
            UploadMediaRequest(body=UploadMediaRequestBody(file=FormFile(str(path)), file_type=file_type))
        )
        assert response.data.resource_type == 1
        assert len(response.data.resource_id) == 32
        assert response.data.resource_url == f"/v1/aim-sa/media/{response.data.resource_id}/file"
        return str(response.data.resource_id)

    logo = await call(lambda: upload("PUB_LOGO", LOGO, "logo.png"))
    background = await call(lambda: upload("BG_IMAGE", BACKGROUND, "bg.png"))
    fastapp_logo = await call(lambda: upload("FASTAPP_LOGO", FASTAPP_LOGO, "fastapp.png"))
    licence = await call(lambda: upload("OTHER", LICENCE, "licence.png"))

    body = CreatePubInfoRequestBody(
        pub_request_body=PubInfoRequestBody(
            logo_img=logo,
            pub_name="喜鹊商城",
            pub_abstract="此服务号用于发送服务通知类消息",
            pub_remark="通知",
            auto_get_port=1,
            signs_for_auto_get_port=["喜鹊商城"],
            areas_for_auto_get_port=["广东省", "北京市"],
            industry=5,
            authorization_files=[licence],
        ),
        portal_request_body=PortalInfoRequestBody(
            background_img=background,
            summary="记录美好生活",
            tels=[TelModel(tel="400-800-8800", usage="官方服务电话")],
            fastapps=[
                CreatePubFastappModel(
                    name="喜鹊商城",
                    logo_img=fastapp_logo,
                    description="购物快应用",
                    deeplink="hap://app/com.example.shop",
                    depend_engine_version="1040",
                )
            ],
        ),
        menu_request_body=MenuInfoRequestBody(
            menu=MenusMode(
                menu_items=[
                    MenuItem(
                        name="精选推荐",
                        action_type="OPEN_URL",
                        content="https://shop.example.com/picks",
                        ext_msg=ExtMsg(web_title="精选推荐", open_in_browser="0"),
                    ),
                    MenuItem(name="客服", action_type="CALLING", content="400-800-8800"),
                ]
            )
        ),
    )
    created = await call(lambda: client.create_pub_info(CreatePubInfoRequest(body=body)))
    data = created.data.data
    assert data.pub_name == "喜鹊商城" and len(data.log_id) == 32
    pub_id, menu_id, portal_id = data.pub_id, data.menu_id, data.portal_id
    assert len({pub_id, menu_id, portal_id}) == 3

    listed = await call(lambda: client.list_pub_infos(ListPubInfosRequest(pub_name="喜鹊")))
    assert listed.data.page_info.total == 1
    row = listed.data.data[0]
    assert (row.pub_id, row.pub_name, row.pub_remark, row.pub_abstract) == (
        pub_id,
        "喜鹊商城",
        "通知",
        "此服务号用于发送服务通知类消息",
    )
    assert (row.state, row.approve_state, row.online_time) == (1, 1, None)
    assert (row.industry, row.auto_get_port) == (5, 1)
    assert row.signs_for_auto_get_port == ["喜鹊商城"] and row.areas_for_auto_get_port == ["广东省", "北京市"]
    assert row.logo_img == logo and row.logo_url == f"/v1/aim-sa/media/{logo}/file"
    assert row.authorization_files == {licence: f"/v1/aim-sa/media/{licence}/file"}
    assert (row.company_id, row.company_name) == (tenant.tenant_id, "喜鹊科技")
    assert row.oper_time is not None

    # the service number goes to review at once; its menu and homepage when it is approved
    first = await collect(
        harness.settings,
        TEMPLATE_SUBMITTED,
        template_pb2.TemplateSubmitted,
        until=lambda ms: bool(_submissions(ms, PUB, pub_id)),
    )
    submitted = next(m for m in first if m.subject == PUB)
    assert submitted.name == "喜鹊商城" and "此服务号用于发送服务通知类消息" in submitted.texts
    assert not _submissions(first, MENU, menu_id)
    await harness.review(PUB, pub_id)
    approved = await until(
        lambda: [
            r
            for r in client.list_pub_infos(ListPubInfosRequest(approve_state=2, state=2, industry="5")).data.data
            if r.pub_id == pub_id
        ]
    )
    assert approved[0].online_time is not None
    drafts = await collect(
        harness.settings,
        TEMPLATE_SUBMITTED,
        template_pb2.TemplateSubmitted,
        until=lambda ms: bool(_submissions(ms, MENU, menu_id) and _submissions(ms, PORTAL, portal_id)),
    )
    menu_review = next(m for m in drafts if m.subject == MENU)
    assert {"精选推荐", "https://shop.example.com/picks", "客服"} <= set(menu_review.texts)
    portal_review = next(m for m in drafts if m.subject == PORTAL)
    assert "记录美好生活" in portal_review.texts and "官方服务电话" in portal_review.texts

    # online-time window
    now = datetime.datetime.now(datetime.UTC)
    window = await call(
        lambda: client.list_pub_infos(
            ListPubInfosRequest(
                start_time=now - datetime.timedelta(hours=1), end_time=now + datetime.timedelta(hours=1)
            )
        )
    )
    assert [r.pub_id for r in window.data.data] == [pub_id]
    earlier = await call(
        lambda: client.list_pub_infos(
            ListPubInfosRequest(start_time=now - datetime.timedelta(days=2), end_time=now - datetime.timedelta(days=1))
        )
    )
    assert earlier.data.page_info.total == 0

    # an update is reviewed while the approved info stays live
    updated = await call(
        lambda: client.update_pub_info(
            UpdatePubInfoRequest(
                pub_id=pub_id, body=UpdatePubInfoRequestBody(change_reason="改名", pub_name="喜鹊优选", industry=6)
            )
        )
    )
    assert len(updated.data.data.pub_update_log_id) == 32
    row = (await call(lambda: client.list_pub_infos(ListPubInfosRequest()))).data.data[0]
    assert (row.pub_name, row.industry, row.approve_state, row.state) == ("喜鹊优选", 6, 1, 2)
    assert row.pub_remark == "通知" and row.logo_img == logo  # fields not given are kept
    await harness.review(PUB, pub_id, revision=2, approved=False, reason="名称不符")
    rejected = await until(
        lambda: [r for r in client.list_pub_infos(ListPubInfosRequest(approve_state=3)).data.data if r.state == 2]
    )
    assert rejected[0].pub_id == pub_id

    # freezing is immediate, unfreezing is reviewed
    frozen = await call(
        lambda: client.freeze_pub(FreezePubRequest(pub_id=pub_id, body=FreezePubRequestBody(change_reason="暂停")))
    )
    assert frozen.data.pub_id == pub_id
    assert [r.pub_id for r in (await call(lambda: client.list_pub_infos(ListPubInfosRequest(state=4)))).data.data] == [
        pub_id
    ]
    unfrozen = await call(
        lambda: client.unfreeze_pub(
            UnfreezePubRequest(pub_id=pub_id, body=UnfreezePubRequestBody(change_reason="恢复"))
        )
    )
    assert unfrozen.data.pub_id == pub_id
    row = (await call(lambda: client.list_pub_infos(ListPubInfosRequest()))).data.data[0]
    assert (row.state, row.approve_state) == (4, 1)
    await harness.review(PUB, pub_id, revision=3)
    await until(lambda: client.list_pub_infos(ListPubInfosRequest(state=2, approve_state=2)).data.page_info.total == 1)

    # errors reach the SDK as ClientRequestException with the code
    with pytest.raises(ClientRequestException) as caught:
        await call(
            lambda: client.unfreeze_pub(
                UnfreezePubRequest(pub_id=pub_id, body=UnfreezePubRequestBody(change_reason="再次"))
            )
        )
    assert caught.value.status_code == 400 and caught.value.error_code == "KM.00000491"


async def test_state_transitions_are_checked(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as client:
        img = await images(client)
        created = await create_pub(client, img)
        pub_id = created["pub_id"]
        reason = {"change_reason": "测试"}
        # not effective yet: cannot be frozen; not frozen: cannot be unfrozen
        assert "effective" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json=reason), 400, "KM.00000491"
        )
        assert "not frozen" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json=reason), 400, "KM.00000491"
        )
        await approve_pub(harness, client, pub_id)
        assert (await client.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json=reason)).status_code == 200
        assert "already frozen" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json={"change_reason": "再冻结"}), 400, "KM.00000491"
        )
        assert "frozen" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}", json={"change_reason": "改", "pub_abstract": "新简介"}),
            400,
            "KM.00000491",
        )
        assert (await client.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json=reason)).status_code == 200
        assert "already under review" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json={"change_reason": "再解冻"}),
            400,
            "KM.00000491",
        )
        # a rejected unfreeze leaves it frozen; it may be asked again
        await harness.review(PUB, pub_id, revision=2, approved=False)

        async def rejected() -> bool:
            row = await pub_row(client, pub_id)
            return row is not None and row["approve_state"] == 3 and row["state"] == 4

        await eventually(rejected)
        assert (
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json={"change_reason": "重试"})
        ).status_code == 200
        # change reasons: required, at most 10 characters
        assert "change_reason is required" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/freeze"), 400, "KM.00000400"
        )
        assert "1-10" in error(
            await client.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json={"change_reason": "原因" * 6}),
            400,
            "KM.00000400",
        )


async def test_names_media_and_limits(harness: Harness) -> None:
    acme, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(acme) as client, harness.client(other) as rival:
        img = await images(client)
        created = await create_pub(client, img)
        # the same name within the tenant needs another remark; another tenant cannot take the name
        assert "remark" in error(await client.post("/v1/aim-sa/unify/pubs", json=create_body(img)), 400, "KM.00000423")
        second = await create_pub(client, img, remark="营销")
        assert second["pub_id"] != created["pub_id"]
        rival_img = await images(rival)
        assert "another enterprise" in error(
            await rival.post("/v1/aim-sa/unify/pubs", json=create_body(rival_img, name="喜鹊商城")), 400, "KM.00000423"
        )
        # renaming onto a name of the same tenant with the same remark is refused as well
        assert "remark" in error(
            await client.post(
                f"/v1/aim-sa/pubs/{second['pub_id']}", json={"change_reason": "改", "pub_remark": "通知"}
            ),
            400,
            "KM.00000423",
        )

        # media: only the tenant's own, and of the right file_type
        body = create_body(img, name="别名")
        body["pub_request_body"]["logo_img"] = img.background
        assert "PUB_LOGO" in error(await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000490")
        body = create_body(img, name="别名")
        body["portal_request_body"]["fastapps"][0]["logo_img"] = img.logo
        assert "fastapps[0].logo_img" in error(
            await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000490"
        )
        body = create_body(img, name="别名")
        body["pub_request_body"]["authorization_files"] = [rival_img.licence]
        assert rival_img.licence in error(await client.post("/v1/aim-sa/unify/pubs", json=body), 404, "KM.00000404")
        big = [await media(client, "OTHER", png(900, 800, noise=True)) for _ in range(2)]
        body = create_body(img, name="别名")
        body["pub_request_body"]["authorization_files"] = big
        assert "4194304" in error(await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000490")

        # every part is required and checked before anything is stored
        body = create_body(img, name="别名")
        del body["portal_request_body"]
        assert "portal_request_body" in error(await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000400")
        body = create_body(img, name="别名")
        body["menu_request_body"]["menu"]["menu_items"][0]["sub_menu_items"] = []
        assert "menu_request_body.menu.menu_items[0].sub_menu_items" in error(
            await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000400"
        )
        body = create_body(img, name="名" * 16)
        assert "pub_name" in error(await client.post("/v1/aim-sa/unify/pubs", json=body), 400, "KM.00000400")
        assert error(await client.post("/v1/aim-sa/unify/pubs"), 400, "KM.90016414")
        rows = (await client.get("/v1/aim-sa/pubs")).json()["data"]["data"]
        assert sorted(r["pub_remark"] for r in rows) == ["营销", "通知"]
        assert (await client.get("/v1/aim-sa/menus")).json()["data"]["page_info"]["total"] == 2

        # list parameters are checked
        assert "state" in error(await client.get("/v1/aim-sa/pubs", params={"state": "9"}), 400, "KM.00000400")
        assert "industry" in error(await client.get("/v1/aim-sa/pubs", params={"industry": "x"}), 400, "KM.00000400")


async def test_other_tenants_service_numbers_are_not_found(harness: Harness) -> None:
    acme, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(acme) as client, harness.client(other) as rival:
        img = await images(client)
        created = await live_pub(harness, client, img)
        pub_id = created["pub_id"]
        reason = {"change_reason": "越权"}
        error(await rival.post(f"/v1/aim-sa/pubs/{pub_id}", json={**reason, "pub_abstract": "x"}), 404, "KM.00000404")
        error(await rival.post(f"/v1/aim-sa/pubs/{pub_id}/freeze", json=reason), 404, "KM.00000404")
        error(await rival.post(f"/v1/aim-sa/pubs/{pub_id}/unfreeze", json=reason), 404, "KM.00000404")
        assert (await rival.get("/v1/aim-sa/pubs")).json()["data"]["page_info"]["total"] == 0
        row = await pub_row(client, pub_id)
        assert row is not None and row["state"] == 2
