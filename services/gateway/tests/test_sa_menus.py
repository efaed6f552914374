"""Service number menus and homepages through the official SDK: listing, changing (a new draft under review while the
approved version stays live), pushing ("催审"), the frozen state; and the refusals: limits, states, other tenants."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkoomessage.v1 import (
    ExtMsg,
    FreezePubRequest,
    FreezePubRequestBody,
    ListMenusRequest,
    ListPortalInfosRequest,
    MenuItem,
    Menus,
    PushMenuInfoRequest,
    PushPortalInfoRequest,
    TelModel,
    UpdateMenuRequest,
    UpdateMenuRequestBody,
    UpdatePortalFastappModel,
    UpdatePortalInfoRequest,
    UpdatePortalInfoRequestBody,
)

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import Harness, call, eventually, sdk_client, until
from .sa_testkit import (
    MENU,
    PORTAL,
    approve_pub,
    create_pub,
    error,
    images,
    live_pub,
    menu_body,
    menu_row,
    portal_body,
    portal_row,
)

pytestmark = pytest.mark.integration


def _revisions(messages: list[template_pb2.TemplateSubmitted], subject: int, subject_id: str) -> list[int]:
    return [m.revision for m in messages if m.subject == subject and m.subject_id == subject_id]


async def test_menus_and_homepages_through_the_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant("喜鹊科技")
    client = sdk_client(url, tenant)
    async with harness.client(tenant) as http:
        img = await images(http)
        created = await create_pub(http, img)
    pub_id, menu_id, portal_id = created["pub_id"], created["menu_id"], created["portal_id"]

    menus = await call(lambda: client.list_menus(ListMenusRequest(pub_id=pub_id)))
    assert menus.data.page_info.total == 1
    menu = menus.data.data[0]
    assert (menu.menu_id, menu.pub_id, menu.pub_name) == (menu_id, pub_id, "喜鹊商城")
    assert (menu.menu_state, menu.approve_state, menu.online_time) == (1, 1, None)
    assert menu.logo_img == img.logo and menu.logo_url == f"/v1/aim-sa/media/{img.logo}/file"
    assert (menu.company_id, menu.company_name) == (tenant.tenant_id, "喜鹊科技")
    top = menu.menu.menu_items[0]
    assert (top.name, top.action_type, top.content) == ("热门生活", "OPEN_SUBMENU", None)
    assert top.sub_menu_items[0].ext_msg.web_title == "精选推荐"
    assert menu.menu.menu_items[1].ext_msg.third_service_name == "商城"

    # pushing needs an approved service number; the approval submits the drafts by itself. (Refusals go through
    # httpx: the SDK's identical signed request in the same second would be refused as a replay.)
    async with harness.client(tenant) as http:
        error(await http.post(f"/v1/aim-sa/menus/{menu_id}/push"), 400, "KM.00000492")
        error(await http.post(f"/v1/aim-sa/portals/{portal_id}/push"), 400, "KM.00000492")
    await harness.review(template_pb2.REVIEW_SUBJECT_SA_PUB, pub_id)
    await collect(
        harness.settings,
        TEMPLATE_SUBMITTED,
        template_pb2.TemplateSubmitted,
        until=lambda ms: bool(_revisions(ms, MENU, menu_id) and _revisions(ms, PORTAL, portal_id)),
    )
    await harness.review(MENU, menu_id)
    await harness.review(PORTAL, portal_id)
    live = await until(lambda: client.list_menus(ListMenusRequest(state=2)).data.data)
    assert live[0].menu_id == menu_id and live[0].approve_state == 2 and live[0].online_time is not None
    now = datetime.datetime.now(datetime.UTC)
    hour = datetime.timedelta(hours=1)
    in_window = await call(
        lambda: client.list_menus(
            ListMenusRequest(online_begin_time=(now - hour).isoformat(), online_end_time=(now + hour).isoformat())
        )
    )
    assert in_window.data.page_info.total == 1
    assert (await call(lambda: client.list_menus(ListMenusRequest(menu_name="热门")))).data.page_info.total == 1
    assert (await call(lambda: client.list_menus(ListMenusRequest(menu_name="没有")))).data.page_info.total == 0
    assert (await call(lambda: client.list_menus(ListMenusRequest(state=1)))).data.page_info.total == 0

    # a change is a new draft, reviewed at once; the approved menu stays live meanwhile
    new_items = [
        MenuItem(
            name="会员中心",
            action_type="OPEN_URL",
            content="https://shop.example.com/vip",
            ext_msg=ExtMsg(web_title="会员", open_in_browser="1"),
        )
    ]
    updated = await call(
        lambda: client.update_menu(
            UpdateMenuRequest(
                menu_id=menu_id, body=UpdateMenuRequestBody(menu=Menus(menu_items=new_items), change_reason="业务调整")
            )
        )
    )
    assert updated.data.menu_id == menu_id and len(updated.data.log_id) == 32
    menu = (await call(lambda: client.list_menus(ListMenusRequest(menu_id=menu_id)))).data.data[0]
    assert (menu.menu_state, menu.approve_state) == (2, 1)
    assert [i.name for i in menu.menu.menu_items] == ["会员中心"]
    assert menu.menu.menu_items[0].ext_msg.open_in_browser == "1"

    pushed = await call(lambda: client.push_menu_info(PushMenuInfoRequest(menu_id=menu_id)))
    assert pushed.data.data.log_id == updated.data.log_id and "submitted" in pushed.data.data.message
    sent = await collect(
        harness.settings,
        TEMPLATE_SUBMITTED,
        template_pb2.TemplateSubmitted,
        until=lambda ms: _revisions(ms, MENU, menu_id).count(2) >= 2,
    )
    assert "https://shop.example.com/vip" in next(m for m in sent if m.subject == MENU and m.revision == 2).texts
    await harness.review(MENU, menu_id, revision=2)
    await until(lambda: client.list_menus(ListMenusRequest(menu_id=menu_id)).data.data[0].approve_state == 2)
    # The same signed POST within the same second as the SDK's push above would be refused as a replay (the
    # signature covers method, path, body and X-Sdk-Date, which has a one-second resolution).
    await asyncio.sleep(1.1)
    async with harness.client(tenant) as http:
        assert "already approved" in error(await http.post(f"/v1/aim-sa/menus/{menu_id}/push"), 400, "KM.00000493")

    # the homepage
    portals = await call(lambda: client.list_portal_infos(ListPortalInfosRequest(pub_name="喜鹊")))
    assert portals.data.page_info.total == 1
    portal = portals.data.portals[0]
    assert (portal.portal_id, portal.pub_id, portal.pub_name, portal.state, portal.approve_state) == (
        portal_id,
        pub_id,
        "喜鹊商城",
        2,
        2,
    )
    assert portal.background_img == img.background
    assert portal.background_img_url == f"/v1/aim-sa/media/{img.background}/file"
    assert json.loads(portal.tels) == [{"tel": "400-800-8800", "usage": "官方服务电话"}]
    fastapps = json.loads(portal.fastapps)
    assert (
        fastapps[0]["name"] == "喜鹊商城" and fastapps[0]["logo_img_url"] == f"/v1/aim-sa/media/{img.fastapp_logo}/file"
    )
    assert portal.online_time is not None and portal.create_time is not None and portal.creator
    assert (await call(lambda: client.list_portal_infos(ListPortalInfosRequest(state=1)))).data.page_info.total == 0

    changed = await call(
        lambda: client.update_portal_info(
            UpdatePortalInfoRequest(
                portal_id=portal_id,
                body=UpdatePortalInfoRequestBody(
                    change_reason="换简介",
                    background_img=img.background,
                    summary="新的主页介绍",
                    tels=[TelModel(tel="95588", usage="客服")],
                    fastapps=[
                        UpdatePortalFastappModel(
                            name="喜鹊优选",
                            logo_img=img.fastapp_logo,
                            description="优选快应用",
                            deeplink="hap://app/com.example.pick",
                            depend_engine_version="1050",
                        )
                    ],
                ),
            )
        )
    )
    portal = changed.data.portal
    assert (portal.portal_id, portal.summary, portal.change_reason, portal.approve_state, portal.state) == (
        portal_id,
        "新的主页介绍",
        "换简介",
        1,
        2,
    )
    assert json.loads(portal.tels) == [{"tel": "95588", "usage": "客服"}]
    pushed_portal = await call(lambda: client.push_portal_info(PushPortalInfoRequest(portal_id=portal_id)))
    assert len(pushed_portal.data.data.log_id) == 32 and pushed_portal.data.data.message
    await harness.review(PORTAL, portal_id, revision=2, approved=False, reason="图片不清晰")
    await until(lambda: client.list_portal_infos(ListPortalInfosRequest()).data.portals[0].approve_state == 3)
    await asyncio.sleep(1.1)  # not the same second as the SDK's push above (it would be a replay)
    async with harness.client(tenant) as http:
        assert "rejected" in error(await http.post(f"/v1/aim-sa/portals/{portal_id}/push"), 400, "KM.00000493")

    # a frozen service number's menu and homepage show state 4 and cannot be changed or pushed
    await call(
        lambda: client.freeze_pub(FreezePubRequest(pub_id=pub_id, body=FreezePubRequestBody(change_reason="暂停")))
    )
    assert (await call(lambda: client.list_menus(ListMenusRequest(state=4)))).data.data[0].menu_state == 4
    assert (await call(lambda: client.list_portal_infos(ListPortalInfosRequest(state=4)))).data.portals[0].state == 4
    assert (await call(lambda: client.list_menus(ListMenusRequest(state=2)))).data.page_info.total == 0
    with pytest.raises(ClientRequestException) as caught:
        await call(
            lambda: client.update_menu(
                UpdateMenuRequest(
                    menu_id=menu_id, body=UpdateMenuRequestBody(menu=Menus(menu_items=new_items), change_reason="再改")
                )
            )
        )
    assert caught.value.error_code == "KM.00000491"


async def test_drafts_wait_for_the_service_number(harness: Harness) -> None:
    tenant = await harness.tenant("acme")
    async with harness.client(tenant) as client:
        img = await images(client)
        created = await create_pub(client, img)
        menu_id = created["menu_id"]
        # changed before the service number is approved: stored, reviewed after its approval
        body = {"change_reason": "调整", "menu": {"menu_items": menu_body()["menu_items"][1:]}}
        response = await client.put(f"/v1/aim-sa/menus/{menu_id}", json=body)
        assert response.status_code == 200, response.text
        assert (await menu_row(client, menu_id))["approve_state"] == 1
        await approve_pub(harness, client, created["pub_id"])
        sent = await collect(
            harness.settings,
            TEMPLATE_SUBMITTED,
            template_pb2.TemplateSubmitted,
            until=lambda ms: 2 in _revisions(ms, MENU, menu_id),
        )
        assert _revisions(sent, MENU, menu_id) == [2]  # only the latest draft was sent
        await harness.review(MENU, menu_id, revision=1)  # stale: ignored
        await harness.review(MENU, menu_id, revision=2, approved=False, reason="链接无法访问")

        async def rejected() -> bool:
            row = await menu_row(client, menu_id)
            return row["approve_state"] == 3 and row["menu_state"] == 1

        await eventually(rejected)
        row = await menu_row(client, menu_id)
        assert row["review_desc"] == "链接无法访问" and row["online_time"] is None


async def test_menu_and_homepage_refusals(harness: Harness) -> None:
    acme, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(acme) as client, harness.client(other) as rival:
        img = await images(client)
        created = await live_pub(harness, client, img)
        menu_id, portal_id = created["menu_id"], created["portal_id"]
        menu = {"change_reason": "调整", "menu": menu_body()}
        portal = {"change_reason": "调整", **portal_body(img.background, img.fastapp_logo)}

        # other tenants: 404 for every menu / homepage operation, nothing listed
        error(await rival.put(f"/v1/aim-sa/menus/{menu_id}", json=menu), 404, "KM.00000404")
        error(await rival.post(f"/v1/aim-sa/menus/{menu_id}/push"), 404, "KM.00000404")
        error(await rival.put(f"/v1/aim-sa/portals/{portal_id}", json=portal), 404, "KM.00000404")
        error(await rival.post(f"/v1/aim-sa/portals/{portal_id}/push"), 404, "KM.00000404")
        assert (await rival.get("/v1/aim-sa/menus", params={"menu_id": menu_id})).json()["data"]["data"] == []
        assert (await rival.get("/v1/aim-sa/portals")).json()["data"]["portals"] == []
        rival_img = await images(rival)
        stolen = {"change_reason": "调整", **portal_body(rival_img.background)}
        error(await client.put(f"/v1/aim-sa/portals/{portal_id}", json=stolen), 404, "KM.00000404")

        # limits
        too_many = {"change_reason": "调整", "menu": {"menu_items": [menu_body()["menu_items"][1]] * 4}}
        assert "at most 3" in error(await client.put(f"/v1/aim-sa/menus/{menu_id}", json=too_many), 400, "KM.00000400")
        long_url = menu_body()
        long_url["menu_items"][0]["sub_menu_items"][0]["content"] = "https://example.com/" + "a" * 990
        assert "1-999" in error(
            await client.put(f"/v1/aim-sa/menus/{menu_id}", json={"change_reason": "调整", "menu": long_url}),
            400,
            "KM.00000400",
        )
        wide = menu_body()
        wide["menu_items"][0]["name"] = "一二三四五"  # 10 wide with 3 top-level menus (at most 8)
        assert "1-8" in error(
            await client.put(f"/v1/aim-sa/menus/{menu_id}", json={"change_reason": "调整", "menu": wide}),
            400,
            "KM.00000400",
        )
        assert "change_reason" in error(
            await client.put(f"/v1/aim-sa/menus/{menu_id}", json={"menu": menu_body()}), 400, "KM.00000400"
        )
        assert "1-10" in error(
            await client.put(f"/v1/aim-sa/portals/{portal_id}", json={**portal, "change_reason": "很" * 11}),
            400,
            "KM.00000400",
        )
        wrong_media = {"change_reason": "调整", **portal_body(img.logo)}
        assert "BG_IMAGE" in error(
            await client.put(f"/v1/aim-sa/portals/{portal_id}", json=wrong_media), 400, "KM.00000490"
        )
        tels = {**portal, "tels": [{"tel": "400", "usage": "客服"}] * 6}
        assert "at most 5" in error(await client.put(f"/v1/aim-sa/portals/{portal_id}", json=tels), 400, "KM.00000400")
        assert "state" in error(await client.get("/v1/aim-sa/menus", params={"state": "7"}), 400, "KM.00000400")
        # nothing was changed by the refused requests
        assert (await menu_row(client, menu_id))["approve_state"] == 2
        assert (await portal_row(client, portal_id))["approve_state"] == 2
