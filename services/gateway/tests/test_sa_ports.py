"""Service number ports through the official SDK: registration (reviewed), listing ports and bindings, binding per
region and signature, unbinding, deleting; media uploads and downloads; and the refusals: limits, media, overlapping
bindings, states, other tenants."""

from __future__ import annotations

import datetime

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    DeletePortInfoRequest,
    ListPortInfosRequest,
    LockPortRequest,
    LockPortRequestBody,
    RegisterPortRequest,
    RegisterPortRequestBody,
    UnlockPortRequest,
    UnlockPortRequestBody,
)

from .conftest import Harness, call, eventually, sdk_client
from .sa_testkit import (
    LOGO,
    PORT,
    bmp,
    create_pub,
    error,
    images,
    live_pub,
    media,
    png,
    upload,
)

pytestmark = pytest.mark.integration


def _auth(rid: str) -> str:
    return f"{rid}:/v1/aim-sa/media/{rid}/file"


async def _approved_port(harness: Harness, client: httpx.AsyncClient, port_id: str) -> None:
    await harness.review(PORT, port_id)

    async def done() -> bool:
        rows = (await client.get("/v1/aim-sa/ports", params={"limit": 100})).json()["data"]["data"]
        return any(r["id"] == port_id and r["approve_state"] == 2 for r in rows)

    await eventually(done)


async def test_ports_through_the_sdk(served: tuple[str, Harness]) -> None:
    url, harness = served
    tenant = await harness.tenant("喜鹊科技")
    client = sdk_client(url, tenant)
    async with harness.client(tenant) as http:
        img = await images(http)
        pub = await live_pub(harness, http, img)
        other_pub = await live_pub(harness, http, img, remark="营销")

        registered = await call(
            lambda: client.register_port(
                RegisterPortRequest(
                    body=RegisterPortRequestBody(
                        port="8822053111111",
                        port_type=1,
                        sign=["喜鹊商城", "喜鹊优选"],
                        sign_check=0,
                        authorization_files=[_auth(img.licence)],
                    )
                )
            )
        )
        result = registered.data.data
        assert (result.port, result.port_type, result.sign) == ("8822053111111", 1, ["喜鹊商城", "喜鹊优选"])

        ports = await call(lambda: client.list_port_infos(ListPortInfosRequest(type=0)))
        assert ports.data.page_info.total == 1
        row = ports.data.data[0]
        port_id = row.id
        assert (row.port, row.port_type, row.sign_check, row.is_bind) == ("8822053111111", 1, 0, 0)
        assert row.sign == ["喜鹊商城", "喜鹊优选"] and row.pub_list == []
        assert row.authorization_files == {img.licence: f"/v1/aim-sa/media/{img.licence}/file"}
        assert row.pub_id is None and row.province is None and row.create_time is not None

        # only an approved port can be bound
        body = {"pub_id": pub["pub_id"], "port": "8822053111111", "province": "广东省", "sign": ["喜鹊商城"]}
        error(await http.post("/v1/aim-sa/ports/associate", json={**body, "ext_port_id": port_id}), 400, "KM.00000495")
        await _approved_port(harness, http, port_id)

        locked = await call(
            lambda: client.lock_port(
                LockPortRequest(
                    body=LockPortRequestBody(
                        pub_id=pub["pub_id"],
                        port="8822053111111",
                        province="广东省",
                        sign=["喜鹊商城"],
                        ext_port_id=port_id,
                    )
                )
            )
        )
        assert locked.data.message == "success"

        # (signature, region) identifies one binding: the same signature in an overlapping region is refused
        overlap = {**body, "ext_port_id": port_id, "province": "佛山市"}
        assert "广东省" in error(await http.post("/v1/aim-sa/ports/associate", json=overlap), 400, "KM.00000497")
        other_sign = {**overlap, "pub_id": other_pub["pub_id"], "sign": ["喜鹊优选"]}
        assert (await http.post("/v1/aim-sa/ports/associate", json=other_sign)).status_code == 200
        elsewhere = {**body, "ext_port_id": port_id, "province": "北京市,上海市"}
        assert (await http.post("/v1/aim-sa/ports/associate", json=elsewhere)).status_code == 200

        bindings = await call(lambda: client.list_port_infos(ListPortInfosRequest(type=1, limit=10)))
        assert bindings.data.page_info.total == 3
        by_province = {b.province: b for b in bindings.data.data}
        assert set(by_province) == {"广东省", "佛山市", "北京市,上海市"}
        gd = by_province["广东省"]
        assert (gd.pub_id, gd.pub_name, gd.port, gd.sign, gd.is_bind) == (
            pub["pub_id"],
            "喜鹊商城",
            "8822053111111",
            ["喜鹊商城"],
            1,
        )
        assert gd.pub_list[0].pub_name == "喜鹊商城" and gd.pub_list[0].pub_reference == "通知"
        assert gd.authorization_files == {img.licence: f"/v1/aim-sa/media/{img.licence}/file"}
        marketing = await call(
            lambda: client.list_port_infos(ListPortInfosRequest(type=1, pub_name="喜鹊", sign_search="优选"))
        )
        assert [b.province for b in marketing.data.data] == ["佛山市"]

        bound = (await call(lambda: client.list_port_infos(ListPortInfosRequest(type=0, is_bind=1)))).data.data
        assert [p.id for p in bound] == [port_id] and bound[0].is_bind == 1
        assert sorted(p.pub_reference for p in bound[0].pub_list) == ["营销", "通知"]
        assert (await call(lambda: client.list_port_infos(ListPortInfosRequest(is_bind=0)))).data.page_info.total == 0
        now = datetime.datetime.now(datetime.UTC)
        hour = datetime.timedelta(hours=1)
        window = await call(
            lambda: client.list_port_infos(
                ListPortInfosRequest(start_time=now - hour, end_time=now + hour, port="2205")
            )
        )
        assert window.data.page_info.total == 1
        assert (await call(lambda: client.list_port_infos(ListPortInfosRequest(port_type=5)))).data.page_info.total == 0

        # a bound port cannot be deleted; unbind first
        assert "unbind" in error(await http.delete(f"/v1/aim-sa/ports/{port_id}"), 400, "KM.00000496")
        unlocked = await call(lambda: client.unlock_port(UnlockPortRequest(body=UnlockPortRequestBody(id=gd.id))))
        assert unlocked.data.message == "success"
        for b in bindings.data.data:
            if b.id != gd.id:
                assert (await http.post("/v1/aim-sa/ports/disassociate", json={"id": b.id})).status_code == 200
        deleted = await call(lambda: client.delete_port_info(DeletePortInfoRequest(port_id=port_id)))
        assert (deleted.data.data.port, deleted.data.data.port_type) == ("8822053111111", 1)
        assert (await call(lambda: client.list_port_infos(ListPortInfosRequest()))).data.page_info.total == 0
        error(await http.post("/v1/aim-sa/ports/disassociate", json={"id": gd.id}), 404, "KM.00000404")


async def test_port_refusals(harness: Harness) -> None:
    acme, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(acme) as client, harness.client(other) as rival:
        img = await images(client)
        pending = await create_pub(client, img, remark="待审")  # not approved
        pub = await live_pub(harness, client, img)
        port = {
            "port": "10690001",
            "port_type": 1,
            "sign": ["喜鹊商城"],
            "sign_check": 1,
            "authorization_files": [_auth(img.licence)],
        }
        register = "/v1/aim-sa/ports"
        # limits
        assert "1-21" in error(await client.post(register, json={**port, "port": "1" * 22}), 400, "KM.00000400")
        assert "exactly 5" in error(
            await client.post(register, json={**port, "port_type": 5, "port": "123"}), 400, "KM.00000400"
        )
        assert "sign_check" in error(
            await client.post(register, json={**port, "port_type": 3, "sign_check": 0}), 400, "KM.00000400"
        )
        signs = [f"签名{i}" for i in range(6)]
        assert "1-5" in error(await client.post(register, json={**port, "sign": signs}), 400, "KM.00000400")
        assert "authorization_files" in error(
            await client.post(register, json={**port, "authorization_files": []}), 400, "KM.00000400"
        )
        # media: the tenant's own OTHER images, URL as given by the upload
        assert "OTHER" in error(
            await client.post(register, json={**port, "authorization_files": [img.logo]}), 400, "KM.00000490"
        )
        assert "resource_url" in error(
            await client.post(register, json={**port, "authorization_files": [f"{img.licence}:/elsewhere.png"]}),
            400,
            "KM.00000490",
        )
        rival_img = await images(rival)
        error(
            await client.post(register, json={**port, "authorization_files": [rival_img.licence]}), 404, "KM.00000404"
        )
        created = await client.post(register, json=port)
        assert created.status_code == 200, created.text
        port_id = created.json()["data"]["id"]
        assert "10690001" in error(await client.post(register, json=port), 400, "KM.00000494")
        # another tenant may register the same number (shared channel numbers)
        assert (
            await rival.post(register, json={**port, "authorization_files": [rival_img.licence]})
        ).status_code == 200
        await _approved_port(harness, client, port_id)

        bind = {
            "pub_id": pub["pub_id"],
            "port": "10690001",
            "province": "全国",
            "sign": ["喜鹊商城"],
            "ext_port_id": port_id,
        }
        associate = "/v1/aim-sa/ports/associate"
        assert "approved" in error(
            await client.post(associate, json={**bind, "pub_id": pending["pub_id"]}), 400, "KM.00000492"
        )
        assert "not a signature" in error(
            await client.post(associate, json={**bind, "sign": ["别的签名"]}), 400, "KM.00000400"
        )
        assert "unknown region" in error(
            await client.post(associate, json={**bind, "province": "火星"}), 400, "KM.00000400"
        )
        assert "overlap" in error(
            await client.post(associate, json={**bind, "province": "全国,北京市"}), 400, "KM.00000400"
        )
        assert "not the number" in error(
            await client.post(associate, json={**bind, "port": "10690002"}), 400, "KM.00000400"
        )
        assert "province is required" in error(
            await client.post(associate, json={**bind, "province": ""}), 400, "KM.00000400"
        )

        # other tenants: 404, and nothing listed
        error(await rival.post(associate, json=bind), 404, "KM.00000404")
        rival_bind = {**bind, "ext_port_id": (await rival.get(register)).json()["data"]["data"][0]["id"]}
        error(await rival.post(associate, json=rival_bind), 404, "KM.00000404")  # acme's pub
        locked = await client.post(associate, json=bind)
        assert locked.status_code == 200, locked.text
        binding_id = locked.json()["data"]["id"]
        error(await rival.post("/v1/aim-sa/ports/disassociate", json={"id": binding_id}), 404, "KM.00000404")
        error(await rival.delete(f"/v1/aim-sa/ports/{port_id}"), 404, "KM.00000404")
        rival_rows = (await rival.get(register, params={"type": "1"})).json()["data"]["data"]
        assert rival_rows == []
        error(await client.get(register, params={"type": "2"}), 400, "KM.00000400")
        error(await client.get(register, params={"sign_search": "x" * 19}), 400, "KM.00000400")

        # a frozen service number cannot get new bindings
        assert (
            await client.post(f"/v1/aim-sa/pubs/{pub['pub_id']}/freeze", json={"change_reason": "暂停"})
        ).status_code == 200
        assert "frozen" in error(
            await client.post(associate, json={**bind, "province": "北京市", "sign": ["喜鹊商城"]}),
            400,
            "KM.00000492",
        )
        assert (await client.get(register, params={"type": "1"})).json()["data"]["page_info"]["total"] == 1


async def test_media_uploads_and_downloads(harness: Harness) -> None:
    acme, other = await harness.tenant("acme"), await harness.tenant("other")
    async with harness.client(acme) as client, harness.client(other) as rival:
        logo = await upload(client, "pub_logo", LOGO, "logo.png")  # file_type is case-insensitive
        assert logo.status_code == 200, logo.text
        data = logo.json()["data"]
        assert (data["resource_type"], data["file_type"], data["width"], data["height"]) == (1, "PUB_LOGO", 240, 240)
        download = await client.get(data["resource_url"])
        assert download.status_code == 200 and download.content == LOGO
        assert download.headers["content-type"] == "image/png"
        error(await rival.get(data["resource_url"]), 404, "KM.00000404")

        assert (await upload(client, "OTHER", bmp(40, 30), "licence.bmp")).json()["data"]["height"] == 30
        assert "240x240" in error(await upload(client, "PUB_LOGO", png(200, 200)), 400, "KM.00000490")
        assert "1:1" in error(await upload(client, "PUB_LOGO", png(300, 240)), 400, "KM.00000490")
        error(await upload(client, "PUB_LOGO", png(240, 240, noise=True)), 413, "KM.00000413")  # over 100 KB
        assert "16:9" in error(await upload(client, "BG_IMAGE", png(1440, 1440)), 400, "KM.00000490")
        assert "1440x810" in error(await upload(client, "BG_IMAGE", png(1280, 720)), 400, "KM.00000490")
        assert "192x192" in error(await upload(client, "FASTAPP_LOGO", png(100, 100)), 400, "KM.00000490")
        gif = b"GIF89a" + bytes([0xF0, 0x00, 0xF0, 0x00]) + b"\x00" * 30
        assert "gif" in error(await upload(client, "OTHER", gif, "a.gif"), 400, "KM.00000430")
        error(await upload(client, "OTHER", b"just text", "a.png"), 400, "KM.00000430")
        error(await upload(client, "OTHER", b"", "a.png"), 400, "KM.00000430")
        assert "file_type" in error(await upload(client, "AVATAR", LOGO), 400, "KM.00000400")
        assert "file_type" in error(await upload(client, "", LOGO), 400, "KM.00000400")
        # nothing of the refused uploads was kept
        assert await harness.gateway.context.collections.sa_media.count_documents({"tenant_id": acme.tenant_id}) == 2
        assert await media(client, "BG_IMAGE", png(1920, 1080))
