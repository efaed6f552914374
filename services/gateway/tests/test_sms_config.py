"""SMS apps, signatures (and their files) and SMS templates beyond creation: update (back to review), delete,
signature files, template variables; through the official SDK on a real socket, and the rules and tenant isolation
through the signed httpx client."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.formdata import FormFile
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkoomessage.v1 import (
    DeleteAimMsgSignatureRequest,
    DeleteAimMsgTemplateRequest,
    ListAimMsgAppDetailRequest,
    ListAimMsgSignatureDetailRequest,
    MsgAppRequest,
    MsgTemplateRequest,
    ShowAimMsgSignatureFileInfoRequest,
    ShowAimMsgTemplateDetailRequest,
    ShowAimMsgTemplateVariableRequest,
    SignatureRequest,
    UpdateAimMsgAppRequest,
    UpdateAimMsgSignatureRequest,
    UpdateAimMsgTemplateRequest,
    UploadAimMsgSignatureFileRequest,
    UploadAimMsgSignatureFileRequestBody,
    VariableAttributes,
)

from magpie.v1 import template_pb2
from magpie_common.testing import collect
from magpie_common.topics import TEMPLATE_SUBMITTED

from .conftest import BASE_URL, Harness, SdkSigner, TenantKeys, call, eventually, sdk_client, until

pytestmark = pytest.mark.integration

SIGNATURE = template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE
TEMPLATE = template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE


def png(width: int = 2, height: int = 2) -> bytes:
    """A small, valid PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def status_of(client: httpx.AsyncClient, path: str, field: str) -> Any:
    return (await client.get(path)).json().get(field)


class MultipartSigner(SdkSigner):
    """Signs like the SDK does for multipart bodies: ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` is signed too."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
        request.read()
        raw_query = request.url.query.decode()
        query = [(unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)]
        sdk_request = SdkRequest(
            method=request.method,
            schema=request.url.scheme,
            host=request.url.netloc.decode(),
            resource_path=request.url.raw_path.decode().split("?")[0],
            query_params=query,
            header_params={
                "Content-Type": request.headers["content-type"],
                "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD",
            },
            body=request.content,  # not hashed: the payload is declared unsigned
        )
        Signer(self.credentials).sign(sdk_request)
        for name in ("X-Sdk-Date", "Authorization"):
            request.headers[name] = sdk_request.header_params[name]
        yield request


async def upload(harness: Harness, tenant: TenantKeys, name: str, data: bytes, desc: str = "licence") -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.gateway.app),
        base_url=BASE_URL,
        auth=MultipartSigner(tenant.access_key, tenant.secret_key),
    ) as client:
        return await client.post(
            "/v1/sms/signatures/files", params={"file_desc": desc}, files={"file": (name, data, "image/png")}
        )


# --- through the official SDK ----------------------------------------------------------------------------------
async def test_sdk_update_and_delete_of_apps_signatures_templates(served: tuple[str, Harness], tmp_path: Path) -> None:
    url, harness = served
    tenant = await harness.tenant("sdk-sms")
    sdk = sdk_client(url, tenant)
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)

    # update_aim_msg_app: rename and set the uplink; the app's signatures and templates show the new name.
    renamed = await call(
        lambda: sdk.update_aim_msg_app(
            UpdateAimMsgAppRequest(
                app_id=setup.app_id, body=MsgAppRequest(app_name="shop_renamed", up_link_addr="https://1.1.1.1/mo")
            )
        )
    )
    assert (renamed.app_id, renamed.app_name) == (setup.app_id, "shop_renamed")
    app = await call(lambda: sdk.list_aim_msg_app_detail(ListAimMsgAppDetailRequest(app_id=setup.app_id)))
    assert (app.app_name, app.up_link_addr) == ("shop_renamed", "https://1.1.1.1/mo")

    # upload_aim_msg_signature_file (multipart) and show_aim_msg_signature_file_info.
    image = tmp_path / "licence.png"
    image.write_bytes(png())
    with image.open("rb") as stream:
        uploaded = await call(
            lambda: sdk.upload_aim_msg_signature_file(
                UploadAimMsgSignatureFileRequest(
                    file_desc="营业执照", body=UploadAimMsgSignatureFileRequestBody(file=FormFile(stream))
                )
            )
        )
    assert uploaded.file_id.startswith("SF")
    info = await call(
        lambda: sdk.show_aim_msg_signature_file_info(ShowAimMsgSignatureFileInfoRequest(file_id=uploaded.file_id))
    )
    assert (info.file_id, info.file_name) == (uploaded.file_id, "licence.png")

    # update_aim_msg_signature: only once rejected; back to review with revision 2.
    with pytest.raises(ClientRequestException) as pending:
        await call(
            lambda: sdk.update_aim_msg_signature(
                UpdateAimMsgSignatureRequest(
                    signature_id=setup.signature_id, body=SignatureRequest(signature_name="喜鹊优选")
                )
            )
        )
    assert (pending.value.status_code, pending.value.error_code) == (400, "KM.00000470")
    await harness.review(SIGNATURE, setup.signature_id, approved=False, reason="licence missing")
    await until(
        lambda: (
            sdk.list_aim_msg_signature_detail(ListAimMsgSignatureDetailRequest(signature_id=setup.signature_id)).status
            == "REJECTED"
        )
    )
    updated = await call(
        lambda: sdk.update_aim_msg_signature(
            UpdateAimMsgSignatureRequest(
                signature_id=setup.signature_id,
                body=SignatureRequest(signature_name="喜鹊优选", file_id=uploaded.file_id, apply_desc="licence added"),
            )
        )
    )
    assert (updated.signature_id, updated.signature_name) == (setup.signature_id, "喜鹊优选")
    signature = await call(
        lambda: sdk.list_aim_msg_signature_detail(ListAimMsgSignatureDetailRequest(signature_id=setup.signature_id))
    )
    assert (signature.status, signature.file_id, signature.app_name) == (
        "PENDING_REVIEW",
        uploaded.file_id,
        "shop_renamed",
    )
    assert signature.review_desc is None and signature.apply_desc == "licence added"
    resubmitted = await collect(
        harness.settings,
        TEMPLATE_SUBMITTED,
        template_pb2.TemplateSubmitted,
        until=lambda ms: any(m.subject_id == setup.signature_id and m.revision == 2 for m in ms),
    )
    second = next(m for m in resubmitted if m.subject_id == setup.signature_id and m.revision == 2)
    assert second.name == "喜鹊优选" and second.texts[0] == "喜鹊优选"
    # A late decision about revision 1 is ignored; the decision about revision 2 applies.
    await harness.review(SIGNATURE, setup.signature_id, approved=True, revision=1)
    await harness.review(SIGNATURE, setup.signature_id, approved=True, revision=2)
    await until(
        lambda: (
            sdk.list_aim_msg_signature_detail(ListAimMsgSignatureDetailRequest(signature_id=setup.signature_id)).status
            == "APPROVED"
        )
    )

    # update_aim_msg_template after a rejection: new content and variable types; show_aim_msg_template_variable.
    await harness.review(TEMPLATE, setup.sms_template_id, approved=False, reason="opt-out text")
    await until(
        lambda: (
            sdk.show_aim_msg_template_detail(
                ShowAimMsgTemplateDetailRequest(template_id=setup.sms_template_id)
            ).flow_status
            == "REJECTED"
        )
    )
    new_content = "${2}您好，您的订单${1}已于${3}发货，详情 ${4} 拒收请回复R"
    changed = await call(
        lambda: sdk.update_aim_msg_template(
            UpdateAimMsgTemplateRequest(
                template_id=setup.sms_template_id,
                body=MsgTemplateRequest(
                    template_name="发货通知",
                    template_content=new_content,
                    variable_attributes=[
                        VariableAttributes(variable_index=1, variable_type="CHARDIGIT"),
                        VariableAttributes(variable_index=2, variable_type="TEXT", variable_desc="客户称呼"),
                        VariableAttributes(variable_index=3, variable_type="DATETIME"),
                        VariableAttributes(variable_index=4, variable_type="NEWTEXT"),
                    ],
                ),
            )
        )
    )
    assert (changed.template_id, changed.template_name) == (setup.sms_template_id, "发货通知")
    detail = await call(
        lambda: sdk.show_aim_msg_template_detail(ShowAimMsgTemplateDetailRequest(template_id=setup.sms_template_id))
    )
    assert (detail.flow_status, detail.template_content, detail.app_name) == (
        "PENDING_REVIEW",
        new_content,
        "shop_renamed",
    )
    variables = await call(
        lambda: sdk.show_aim_msg_template_variable(ShowAimMsgTemplateVariableRequest(template_id=setup.sms_template_id))
    )
    assert variables.total == 4
    assert [(v.id, v.variable_index, v.variable_type, v.variable_length) for v in variables.results] == [
        (1, 1, "CHARDIGIT", 20),
        (2, 2, "TEXT", 20),
        (3, 3, "DATETIME", 20),
        (4, 4, "NEWTEXT", 256),
    ]
    assert variables.results[1].variable_desc == "客户称呼"

    # delete_aim_msg_template, then delete_aim_msg_signature (which takes its remaining templates along).
    async with harness.client(tenant) as client:
        other = await client.post(
            "/v1/sms/templates",
            json={"signature_id": setup.signature_id, "template_name": "其他", "template_content": "您好${1}"},
        )
    other_id = other.json()["template_id"]
    deleted = await call(
        lambda: sdk.delete_aim_msg_template(DeleteAimMsgTemplateRequest(template_id=setup.sms_template_id))
    )
    assert deleted.status_code == 200
    with pytest.raises(ClientRequestException) as gone:
        await call(
            lambda: sdk.show_aim_msg_template_detail(ShowAimMsgTemplateDetailRequest(template_id=setup.sms_template_id))
        )
    assert (gone.value.status_code, gone.value.error_code) == (404, "KM.00000404")
    removed = await call(
        lambda: sdk.delete_aim_msg_signature(DeleteAimMsgSignatureRequest(signature_id=setup.signature_id))
    )
    assert removed.status_code == 200
    for request in (
        lambda: sdk.list_aim_msg_signature_detail(ListAimMsgSignatureDetailRequest(signature_id=setup.signature_id)),
        lambda: sdk.show_aim_msg_template_detail(ShowAimMsgTemplateDetailRequest(template_id=other_id)),
    ):
        with pytest.raises(ClientRequestException) as missing:
            await call(request)
        assert missing.value.status_code == 404


# --- rules and isolation through the httpx client -------------------------------------------------------------
async def test_app_update_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        first = (
            await client.post("/v1/sms/apps", json={"app_name": "one", "up_link_addr": "https://1.1.1.1/mo"})
        ).json()
        await client.post("/v1/sms/apps", json={"app_name": "two"})
        path = f"/v1/sms/apps/{first['app_id']}"
        taken = await client.put(path, json={"app_name": "TWO"})
        assert (taken.status_code, taken.json()["error_code"]) == (400, "KM.00000423")
        bad = await client.put(path, json={"app_name": "bad name"})
        assert (bad.status_code, bad.json()["error_code"]) == (400, "KM.00000400")
        private = await client.put(path, json={"up_link_addr": "http://192.168.1.1/mo"})
        assert (private.status_code, private.json()["error_code"]) == (400, "KM.00000428")
        # Only the uplink given: the name stays; an empty uplink removes it; changing case of the own name is fine.
        kept = await client.put(path, json={"up_link_addr": ""})
        assert kept.json() == {"app_name": "one", "app_id": first["app_id"]}
        assert await status_of(client, path, "up_link_addr") is None
        same = await client.put(path, json={"app_name": "ONE"})
        assert same.status_code == 200 and await status_of(client, path, "app_name") == "ONE"
        unknown = await client.put("/v1/sms/apps/APPNOTHING", json={"app_name": "x"})
        assert (unknown.status_code, unknown.json()["error_code"]) == (404, "KM.00000404")


async def test_signature_files_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        ok = await upload(harness, tenant, "licence.png", png())
        assert ok.status_code == 200, ok.text
        gif = await upload(harness, tenant, "a.gif", b"GIF89a" + b"\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32)
        assert gif.status_code == 200, gif.text
        # The type is decided by the content: a PDF named .png is refused.
        pdf = await upload(harness, tenant, "fake.png", b"%PDF-1.4\n" + b"0" * 100)
        assert (pdf.status_code, pdf.json()["error_code"]) == (400, "KM.00000430")
        empty = await upload(harness, tenant, "empty.png", b"")
        assert (empty.status_code, empty.json()["error_code"]) == (400, "KM.00000430")
        large = await upload(harness, tenant, "large.png", png() + b"\x00" * (2 * 1024 * 1024))
        assert (large.status_code, large.json()["error_code"]) == (413, "KM.00000413")
        missing = await client.post("/v1/sms/signatures/files", json={"file": "x"})
        assert (missing.status_code, missing.json()["error_code"]) == (400, "KM.00000400")
        no_id = await client.get("/v1/sms/signatures/files")
        assert (no_id.status_code, no_id.json()["error_code"]) == (400, "KM.00000400")
        shown = await client.get("/v1/sms/signatures/files", params={"file_id": ok.json()["file_id"]})
        assert shown.json() == {"file_id": ok.json()["file_id"], "file_name": "licence.png"}
        # Signatures may only name the tenant's signature files; a third party's rights need the power of attorney.
        app_id = (await client.post("/v1/sms/apps", json={"app_name": "files"})).json()["app_id"]
        base = {"signature_type": "NOTIFY_TYPE", "app_id": app_id, "signature_source": 0}
        unknown_file = await client.post(
            "/v1/sms/signatures", json={**base, "signature_name": "喜鹊", "file_id": "SFNOTHING"}
        )
        assert (unknown_file.status_code, unknown_file.json()["error_code"]) == (404, "KM.00000404")
        third = await client.post(
            "/v1/sms/signatures", json={**base, "signature_name": "喜鹊", "is_involved_third": "yes"}
        )
        assert (third.status_code, third.json()["error_code"]) == (400, "KM.00000400")
        with_files = await client.post(
            "/v1/sms/signatures",
            json={
                **base,
                "signature_name": "喜鹊",
                "is_involved_third": "yes",
                "file_id": ok.json()["file_id"],
                "power_attorney_file_id": gif.json()["file_id"],
            },
        )
        assert with_files.status_code == 200, with_files.text

    other = await harness.tenant("other")
    async with harness.client(other) as client:
        foreign = await client.get("/v1/sms/signatures/files", params={"file_id": ok.json()["file_id"]})
        assert (foreign.status_code, foreign.json()["error_code"]) == (404, "KM.00000404")


async def test_signature_and_template_update_rules(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)
        sig_path = f"/v1/sms/signatures/{setup.signature_id}"
        tpl_path = f"/v1/sms/templates/{setup.sms_template_id}"
        await harness.review(SIGNATURE, setup.signature_id, approved=False)
        await harness.review(TEMPLATE, setup.sms_template_id, approved=False)
        await eventually(lambda: _all_rejected(client, sig_path, tpl_path))
        # Signature: the KooMessage name rules, the app cannot move, unknown files, a taken name.
        empty = await client.put(sig_path, json={"signature_name": ""})
        assert empty.json()["error_code"] == "KM.00001075"
        long = await client.put(sig_path, json={"signature_name": "喜" * 17})
        assert long.json()["error_code"] == "KM.00001076"
        bad_type = await client.put(sig_path, json={"signature_type": "OTHER"})
        assert bad_type.json()["error_code"] == "KM.00000400"
        other_app = (await client.post("/v1/sms/apps", json={"app_name": "second"})).json()["app_id"]
        moved = await client.put(sig_path, json={"app_id": other_app})
        assert moved.json()["error_code"] == "KM.00000400"
        no_file = await client.put(sig_path, json={"file_id": "SFNOTHING"})
        assert no_file.status_code == 404
        twin = await client.post(
            "/v1/sms/signatures",
            json={"signature_name": "喜鹊双胞", "signature_type": "NOTIFY_TYPE", "app_id": setup.app_id},
        )
        clash = await client.put(sig_path, json={"signature_name": "喜鹊双胞"})
        assert clash.json()["error_code"] == "KM.00000423"
        # Failed attempts changed nothing: still rejected, revision 1.
        assert await status_of(client, sig_path, "status") == "REJECTED"
        assert twin.status_code == 200
        renamed = await client.put(sig_path, json={"signature_name": "喜鹊新名"})
        assert renamed.json() == {"signature_id": setup.signature_id, "signature_name": "喜鹊新名"}
        again = await client.put(sig_path, json={"signature_name": "喜鹊再改"})
        assert again.json()["error_code"] == "KM.00000470"
        # The templates of the signature carry its new name.
        templates = harness.gateway.context.collections.sms_templates
        doc = await templates.find_one({"_id": setup.sms_template_id})
        assert doc is not None and doc["signature_name"] == "喜鹊新名"

        # Template: rules of the content and the types; another app's signature; not modifiable once pending.
        long_content = await client.put(tpl_path, json={"template_content": "x" * 20_001})
        assert long_content.json()["error_code"] == "KM.00000400"
        bad_kind = await client.put(
            tpl_path, json={"variable_attributes": [{"variable_index": 1, "variable_type": "X"}]}
        )
        assert bad_kind.json()["error_code"] == "KM.00000400"
        universal = await client.put(tpl_path, json={"universal_template": "1"})
        assert universal.json()["error_code"] == "KM.00000429"
        foreign_sig = await client.post(
            "/v1/sms/signatures",
            json={"signature_name": "别的应用", "signature_type": "NOTIFY_TYPE", "app_id": other_app},
        )
        cross = await client.put(tpl_path, json={"signature_id": foreign_sig.json()["signature_id"]})
        assert cross.json()["error_code"] == "KM.00000400"
        unknown_sig = await client.put(tpl_path, json={"signature_id": "SIGNOTHING"})
        assert unknown_sig.json()["error_code"] == "KM.00000424"
        moved_tpl = await client.put(tpl_path, json={"signature_id": twin.json()["signature_id"]})
        assert moved_tpl.status_code == 200, moved_tpl.text
        detail = (await client.get(tpl_path)).json()
        assert (detail["signature_id"], detail["flow_status"]) == (twin.json()["signature_id"], "PENDING_REVIEW")
        assert detail["template_content"] == "尊敬的会员，您的专属优惠已到账，点击 ${1} 查看。拒收请回复R"
        pending = await client.put(tpl_path, json={"template_name": "x"})
        assert pending.json()["error_code"] == "KM.00000470"
        doc = await templates.find_one({"_id": setup.sms_template_id})
        assert doc is not None and doc["revision"] == 2 and doc["signature_name"] == "喜鹊双胞"


async def _all_rejected(client: httpx.AsyncClient, sig_path: str, tpl_path: str) -> bool:
    return (
        await status_of(client, sig_path, "status") == "REJECTED"
        and await status_of(client, tpl_path, "flow_status") == "REJECTED"
    )


async def test_another_tenants_ids_answer_404(harness: Harness) -> None:
    owner = await harness.tenant("owner")
    async with harness.client(owner) as client:
        setup = await harness.prerequisites(client, approve=False)
    intruder = await harness.tenant("intruder")
    async with harness.client(intruder) as client:
        attempts = [
            client.put(f"/v1/sms/apps/{setup.app_id}", json={"app_name": "stolen"}),
            client.put(f"/v1/sms/signatures/{setup.signature_id}", json={"signature_name": "偷来的"}),
            client.delete(f"/v1/sms/signatures/{setup.signature_id}"),
            client.put(f"/v1/sms/templates/{setup.sms_template_id}", json={"template_name": "stolen"}),
            client.delete(f"/v1/sms/templates/{setup.sms_template_id}"),
            client.get(f"/v1/sms/templates/{setup.sms_template_id}/variable"),
        ]
        for attempt in attempts:
            response = await attempt
            assert (response.status_code, response.json()["error_code"]) == (404, "KM.00000404"), response.text
    async with harness.client(owner) as client:
        assert (await client.get(f"/v1/sms/apps/{setup.app_id}")).json()["app_name"] == setup.app_name
        assert (await client.get(f"/v1/sms/signatures/{setup.signature_id}")).json()["signature_name"] == setup.sign
        assert (await client.get(f"/v1/sms/templates/{setup.sms_template_id}/variable")).json()["total"] == 1


async def test_lists_filter_and_page(harness: Harness) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)
        for name in ("喜鹊二号", "喜鹊三号"):
            await client.post(
                "/v1/sms/signatures",
                json={"signature_name": name, "signature_type": "NOTIFY_TYPE", "app_id": setup.app_id},
            )
        page = (await client.get("/v1/sms/signatures", params={"limit": 2, "offset": "1"})).json()
        assert page["page_info"] == {"offset": 1, "limit": 2, "total": 3}
        assert [s["signature_name"] for s in page["result"]] == ["喜鹊二号", setup.sign]
        typed = (
            await client.get("/v1/sms/signatures", params={"signature_type": "NOTIFY_TYPE", "signature_name": "三"})
        ).json()
        assert [s["signature_name"] for s in typed["result"]] == ["喜鹊三号"]
        beyond = (await client.get("/v1/sms/signatures", params={"offset": 5})).json()
        assert beyond == {"result": [], "page_info": {"offset": 5, "limit": 10, "total": 3}}
        templates = (
            await client.get("/v1/sms/templates", params={"template_name": "会员", "app_name": setup.app_name})
        ).json()
        assert [t["template_id"] for t in templates["result"]] == [setup.sms_template_id]
        none = (await client.get("/v1/sms/templates", params={"flow_status": "APPROVED"})).json()
        assert none["page_info"]["total"] == 0
        apps = (await client.get("/v1/sms/apps", params={"app_name": "SHOP"})).json()
        assert [a["app_id"] for a in apps["result"]] == [setup.app_id]
        bad = await client.get("/v1/sms/apps", params={"limit": 0})
        assert bad.json()["error_code"] == "KM.00000400"


async def test_a_resubmission_the_broker_refuses_restores_the_previous_version(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await harness.tenant()
    async with harness.client(tenant) as client:
        setup = await harness.prerequisites(client, approve=False)
        await harness.review(SIGNATURE, setup.signature_id, approved=False, reason="blurred licence")
        sig_path = f"/v1/sms/signatures/{setup.signature_id}"

        async def rejected() -> bool:
            return await status_of(client, sig_path, "status") == "REJECTED"

        await eventually(rejected)

    async def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(harness.gateway.context.producer, "send", broker_down)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.gateway.app, raise_app_exceptions=False),
        base_url=BASE_URL,
        auth=SdkSigner(tenant.access_key, tenant.secret_key),
    ) as client:
        failed = await client.put(sig_path, json={"signature_name": "喜鹊新名"})
        assert failed.status_code == 500 and failed.json()["error_code"] == "KM.00000500"
    doc = await harness.gateway.context.collections.signatures.find_one({"_id": setup.signature_id})
    assert doc is not None
    assert (doc["signature_name"], doc["status"], doc["revision"], doc["review_desc"]) == (
        setup.sign,
        "REJECTED",
        1,
        "blurred licence",
    )
