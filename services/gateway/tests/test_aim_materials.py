"""AIM template materials through the official SDK (upload as stream and as URL, list, thumbnails, primary
thumbnail, delete) and the refusals: oversize 413, wrong type 400, bad input 400, unknown or another tenant's
material 404, a material still used by a template, a URL that is not public."""

from __future__ import annotations

import asyncio
import base64
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from huaweicloudsdkkoomessage.v1 import (
    DeleteTemplateMaterialRequest,
    DeleteTemplateMaterialRequestBody,
    ListAimTemplateMaterialsRequest,
    SetPrimaryVideoThumbnailRequest,
    SetPrimaryVideoThumbnailRequestBody,
    ShowTemplateVideoThumbnailRequest,
    UploadAimTemplateMaterialRequest,
    UploadAimTemplateMaterialRequestBody,
)

from magpie_common.config import Settings

from .conftest import Harness, call, card_body, gateway_config, harness_of, sdk_client, served_gateway

pytestmark = pytest.mark.integration


# --- sample files ------------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(padding: int = 0) -> bytes:
    """A valid 1x1 PNG (``padding`` bytes of an ancillary text chunk make it larger)."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    extra = _chunk(b"tEXt", b"pad\x00" + b"x" * padding) if padding else b""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x10mdat" + b"\x00" * 8
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def stream_body(resource_type: str, name: str, mime: str, data: bytes, **extra: Any) -> dict[str, Any]:
    body = {
        "resource_type": resource_type,
        "file_type": "stream",
        "file_name": name,
        "file_stream": data_url(mime, data),
    }
    if resource_type == "image":
        body["image_rate"] = "sixteenToNine"
    body.update(extra)
    return body


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["error_msg"])


# --- a file server on loopback (file_type=url) ---------------------------------------------------------------------
class FileServer:
    def __init__(self, files: dict[str, tuple[str, bytes]], redirects: dict[str, str]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in redirects:
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path])
                    self.end_headers()
                    return
                found = files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                mime, data = found
                self.send_response(200)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                outer.served += 1

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.served = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    files = {
        "/banner.png": ("image/png", png()),
        "/clip.mp4": ("video/mp4", MP4),
        "/huge.png": ("image/png", png(2 * 1024 * 1024)),
        "/fake.png": ("image/png", PDF),
    }
    with FileServer(files, {"/moved.png": "/banner.png"}) as server:
        yield server


# --- the SDK ---------------------------------------------------------------------------------------------------------
async def test_materials_through_the_sdk(settings: Settings, file_server: FileServer) -> None:
    config = gateway_config(replay_check=True, allow_loopback_callbacks=True)
    async with served_gateway(settings, config) as (url, harness):
        tenant = await harness.tenant("media")
        sdk = sdk_client(url, tenant)

        def upload(**fields: Any) -> Any:
            return sdk.upload_aim_template_material(
                UploadAimTemplateMaterialRequest(body=UploadAimTemplateMaterialRequestBody(**fields))
            )

        image = await call(
            lambda: upload(
                resource_type="image",
                file_type="stream",
                file_name="banner.png",
                file_stream=data_url("image/png", png()),
                image_rate="sixteenToNine",
                description="双十一横幅",
            )
        )
        assert image.status == "200" and image.message == "success"
        assert image.data.material_id.startswith("MT")
        assert image.data.aim_resource_id.isdigit() and len(image.data.aim_resource_id) == 18
        fetched = await call(
            lambda: upload(
                resource_type="image",
                file_type="url",
                file_url=f"{file_server.base}/moved.png",
                image_rate="oneToOne",
            )
        )
        assert fetched.data.aim_resource_id != image.data.aim_resource_id and file_server.served == 1
        video = await call(
            lambda: upload(resource_type="video", file_type="url", file_url=f"{file_server.base}/clip.mp4")
        )
        first = await call(
            lambda: upload(
                resource_type="thumbnail",
                material_id=video.data.material_id,
                file_type="stream",
                file_name="cover1.jpg",
                file_stream=data_url("image/jpeg", JPEG),
                image_rate="threeToFour",
            )
        )
        second = await call(
            lambda: upload(
                resource_type="thumbnail",
                material_id=video.data.material_id,
                file_type="stream",
                file_name="cover2.png",
                file_stream=data_url("image/png", png()),
            )
        )

        listed = await call(lambda: sdk.list_aim_template_materials(ListAimTemplateMaterialsRequest(limit=10)))
        assert listed.status == "200" and listed.data.page_info.total == 3
        by_id = {m.id: m for m in listed.data.results}
        assert set(by_id) == {image.data.material_id, fetched.data.material_id, video.data.material_id}
        banner = by_id[image.data.material_id]
        assert banner.resource_type == "image" and banner.file_name == "banner.png"
        assert banner.aim_resource_id == image.data.aim_resource_id and banner.image_rate == "sixteenToNine"
        assert banner.description == "双十一横幅" and banner.created_at.endswith("Z")
        assert banner.obs_object_key and banner.obs_file_url.endswith(f"/v1/aim/template-materials/{banner.id}/file")
        assert by_id[fetched.data.material_id].file_name == "moved.png"
        clip = by_id[video.data.material_id]
        assert clip.resource_type == "video" and clip.thumbnail.id == first.data.material_id
        assert clip.thumbnail.is_primary == 1 and clip.thumbnail.image_rate == "threeToFour"
        videos = await call(
            lambda: sdk.list_aim_template_materials(ListAimTemplateMaterialsRequest(resource_type="video"))
        )
        assert [m.id for m in videos.data.results] == [video.data.material_id]
        paged = await call(lambda: sdk.list_aim_template_materials(ListAimTemplateMaterialsRequest(offset=2, limit=2)))
        assert paged.data.page_info.offset == 2 and len(paged.data.results) == 1

        shown = await call(
            lambda: sdk.show_template_video_thumbnail(
                ShowTemplateVideoThumbnailRequest(aim_resource_id=video.data.aim_resource_id)
            )
        )
        assert shown.status == "200"
        assert [(t.id, t.is_primary) for t in shown.data] == [(first.data.material_id, 1), (second.data.material_id, 0)]
        cover = shown.data[1]
        assert cover.aim_resource_id == second.data.aim_resource_id and cover.domain_id == tenant.tenant_id
        assert cover.file_name == "cover2.png" and cover.size == len(png()) and cover.is_auto_gen == 1

        primary = await call(
            lambda: sdk.set_primary_video_thumbnail(
                SetPrimaryVideoThumbnailRequest(
                    body=SetPrimaryVideoThumbnailRequestBody(
                        aim_resource_id=video.data.aim_resource_id, thumbnail_id=second.data.material_id
                    )
                )
            )
        )
        assert primary.status == "200" and primary.data is None
        async with harness.client(tenant) as client:
            shown_again = (
                await client.get(
                    "/v1/aim/template-material-thumbnails", params={"aim_resource_id": video.data.aim_resource_id}
                )
            ).json()["data"]
            assert [(t["id"], t["is_primary"]) for t in shown_again] == [
                (first.data.material_id, 0),
                (second.data.material_id, 1),
            ]
            download = await client.get(f"/v1/aim/template-materials/{image.data.material_id}/file")
            assert download.status_code == 200 and download.content == png()
            assert download.headers["content-type"] == "image/png"

        deleted = await call(
            lambda: sdk.delete_template_material(
                DeleteTemplateMaterialRequest(
                    body=DeleteTemplateMaterialRequestBody(
                        material_ids=[video.data.material_id, image.data.material_id]
                    )
                )
            )
        )
        assert deleted.status == "200" and deleted.data is None
        left = await call(lambda: sdk.list_aim_template_materials(ListAimTemplateMaterialsRequest()))
        assert [m.id for m in left.data.results] == [fetched.data.material_id]
        async with harness.client(tenant) as client:
            thumbs = await client.get("/v1/aim/template-materials", params={"resource_type": "thumbnail"})
            assert thumbs.json()["data"]["results"] == []  # the video's thumbnails went with it
            error(await client.get(f"/v1/aim/template-materials/{image.data.material_id}/file"), 404, "KM.00000404")
        files = harness.gateway.context.collections.files
        assert await files.count_documents({"tenant_id": tenant.tenant_id}) == 1


# --- refusals ----------------------------------------------------------------------------------------------------
async def test_upload_refusals(harness: Harness) -> None:
    tenant = await harness.tenant("refusals")
    path = "/v1/aim/template-materials"
    async with harness.client(tenant) as client:
        big = png(2 * 1024 * 1024)
        error(await client.post(path, json=stream_body("image", "big.png", "image/png", big)), 413, "KM.00000413")
        error(
            await client.post(path, json=stream_body("video", "big.mp4", "video/mp4", MP4 + b"\0" * 7 * 2**20)),
            413,
            "KM.00000413",
        )
        thumb_big = png(100 * 1024)
        video = await client.post(path, json=stream_body("video", "clip.mp4", "video/mp4", MP4))
        assert video.status_code == 200, video.text
        video_id = video.json()["data"]["material_id"]
        error(
            await client.post(
                path, json=stream_body("thumbnail", "t.png", "image/png", thumb_big, material_id=video_id)
            ),
            413,
            "KM.00000413",
        )
        # The type is decided by the content: a PDF named .png, an image posted as a video, a gif thumbnail.
        message = error(
            await client.post(path, json=stream_body("image", "x.png", "image/png", PDF)), 400, "KM.00000430"
        )
        assert "pdf" in message
        error(await client.post(path, json=stream_body("video", "x.mp4", "video/mp4", png())), 400, "KM.00000430")
        gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
        error(
            await client.post(path, json=stream_body("thumbnail", "t.gif", "image/gif", gif, material_id=video_id)),
            400,
            "KM.00000430",
        )
        error(await client.post(path, json=stream_body("image", "empty.png", "image/png", b"")), 400, "KM.00000430")
        bad_inputs = [
            {**stream_body("image", "a.png", "image/png", png()), "file_stream": "data:image/png;base64,@@@"},
            {**stream_body("image", "a.png", "image/png", png()), "image_rate": None},
            {**stream_body("image", "a.png", "image/png", png()), "image_rate": "square"},
            {**stream_body("image", "a.png", "image/png", png()), "resource_type": "audio"},
            {**stream_body("image", "a.png", "image/png", png()), "file_type": "ftp"},
            {**stream_body("image", "a.png", "image/png", png()), "file_name": None},
            {**stream_body("image", "a.png", "image/png", png()), "file_name": "<b>.png"},
            {**stream_body("image", "a.png", "image/png", png()), "description": "two  spaces"},
            {**stream_body("image", "a.png", "image/png", png()), "file_stream": None},
            stream_body("thumbnail", "t.png", "image/png", png()),  # no material_id
            {"resource_type": "image", "file_type": "url", "image_rate": "oneToOne"},  # no file_url
            {"resource_type": "image", "file_type": "url", "image_rate": "oneToOne", "file_url": "https://x.example/a"},
        ]
        for body in bad_inputs:
            error(await client.post(path, json=body), 400, "KM.00000400")
        # A thumbnail of an image, of an unknown video.
        image = await client.post(path, json=stream_body("image", "a.png", "image/png", png()))
        image_id = image.json()["data"]["material_id"]
        error(
            await client.post(path, json=stream_body("thumbnail", "t.png", "image/png", png(), material_id=image_id)),
            400,
            "KM.00000400",
        )
        error(
            await client.post(path, json=stream_body("thumbnail", "t.png", "image/png", png(), material_id="MTnope")),
            404,
            "KM.00000404",
        )
        # file_url: loopback is not public (this gateway does not allow loopback URLs).
        message = error(
            await client.post(
                path,
                json={
                    "resource_type": "image",
                    "file_type": "url",
                    "image_rate": "oneToOne",
                    "file_url": "http://127.0.0.1:9/a.png",
                },
            ),
            400,
            "KM.00000428",
        )
        assert "public" in message
        listed = (await client.get(path)).json()["data"]
        assert listed["page_info"]["total"] == 2  # the video and the image: nothing of the refused uploads
        error(await client.get(path, params={"offset": -1}), 400, "KM.00000400")
        error(await client.get(path, params={"resource_type": "audio"}), 400, "KM.00000400")


async def test_url_refusals(settings: Settings, file_server: FileServer) -> None:
    async with harness_of(settings, gateway_config(allow_loopback_callbacks=True)) as harness:
        tenant = await harness.tenant("urls")
        path = "/v1/aim/template-materials"

        def by_url(name: str, resource_type: str = "image") -> dict[str, Any]:
            return {
                "resource_type": resource_type,
                "file_type": "url",
                "image_rate": "oneToOne",
                "file_url": f"{file_server.base}/{name}",
            }

        async with harness.client(tenant) as client:
            error(await client.post(path, json=by_url("huge.png")), 413, "KM.00000413")
            error(await client.post(path, json=by_url("fake.png")), 400, "KM.00000430")
            error(await client.post(path, json=by_url("missing.png")), 400, "KM.00000452")
            error(await client.post(path, json=by_url("banner.png", "video")), 400, "KM.00000400")  # suffix
            ok = await client.post(path, json=by_url("banner.png"))
            assert ok.status_code == 200, ok.text
            assert (await client.get(path)).json()["data"]["page_info"]["total"] == 1


async def test_other_tenants_materials_and_materials_in_use(harness: Harness) -> None:
    owner = await harness.tenant("owner")
    other = await harness.tenant("other")
    path = "/v1/aim/template-materials"
    async with harness.client(owner) as mine, harness.client(other) as theirs:
        image = (await mine.post(path, json=stream_body("image", "a.png", "image/png", png()))).json()["data"]
        video = (await mine.post(path, json=stream_body("video", "v.mp4", "video/mp4", MP4))).json()["data"]
        thumb = (
            await mine.post(
                path, json=stream_body("thumbnail", "t.png", "image/png", png(), material_id=video["material_id"])
            )
        ).json()["data"]

        # Another tenant sees nothing and can change nothing.
        assert (await theirs.get(path, params={"material_id": image["material_id"]})).json()["data"]["results"] == []
        for body in ({"material_ids": [image["material_id"]]}, {"material_ids": [thumb["material_id"]]}):
            error(await theirs.post(f"{path}/delete", json=body), 404, "KM.00000404")
        thumbs = "/v1/aim/template-material-thumbnails"
        error(await theirs.get(thumbs, params={"aim_resource_id": video["aim_resource_id"]}), 404, "KM.00000404")
        error(
            await theirs.post(
                thumbs, json={"aim_resource_id": video["aim_resource_id"], "thumbnail_id": thumb["material_id"]}
            ),
            404,
            "KM.00000404",
        )
        error(
            await theirs.post(
                path, json=stream_body("thumbnail", "t.png", "image/png", png(), material_id=video["material_id"])
            ),
            404,
            "KM.00000404",
        )
        error(await theirs.get(f"{path}/{image['material_id']}/file"), 404, "KM.00000404")
        # Their template cannot reference my material either.
        body = card_body()
        body["pages"][0]["contents"][0] |= {"src_type": 1, "src": image["aim_resource_id"]}
        error(await theirs.post("/v1/aim/templates", json=body), 400, "KM.00000400")

        # Deleting: all or nothing; bad ids.
        error(
            await mine.post(f"{path}/delete", json={"material_ids": [image["material_id"], "MTnope"]}),
            404,
            "KM.00000404",
        )
        error(await mine.post(f"{path}/delete", json={"material_ids": []}), 400, "KM.00000400")
        error(
            await mine.post(f"{path}/delete", json={"material_ids": [f"MT{i}" for i in range(101)]}), 400, "KM.00000400"
        )
        # Thumbnail requests: missing fields, an image as video, a thumbnail of another video.
        error(await mine.get(thumbs), 400, "KM.00000400")
        error(await mine.get(thumbs, params={"aim_resource_id": image["aim_resource_id"]}), 400, "KM.00000400")
        error(await mine.post(thumbs, json={"aim_resource_id": video["aim_resource_id"]}), 400, "KM.00000400")
        error(
            await mine.post(thumbs, json={"aim_resource_id": video["aim_resource_id"], "thumbnail_id": "MTnope"}),
            404,
            "KM.00000404",
        )
        video2 = (await mine.post(path, json=stream_body("video", "w.mp4", "video/mp4", MP4))).json()["data"]
        error(
            await mine.post(
                thumbs, json={"aim_resource_id": video2["aim_resource_id"], "thumbnail_id": thumb["material_id"]}
            ),
            400,
            "KM.00000400",
        )

        # A template of mine uses the image and the video's thumbnail as cover: neither can be deleted.
        body = card_body()
        body["pages"][0]["contents"][0] |= {"src_type": 1, "src": image["aim_resource_id"]}
        body["pages"][0]["contents"].append(
            {"type": "video", "src_type": 1, "src": video["aim_resource_id"], "cover": thumb["aim_resource_id"]}
        )
        wrong = card_body()
        wrong["pages"][0]["contents"][0] |= {"src_type": 1, "src": video["aim_resource_id"]}  # a video as an image
        error(await mine.post("/v1/aim/templates", json=wrong), 400, "KM.00000400")
        created = await mine.post("/v1/aim/templates", json=body)
        assert created.status_code == 200, created.text
        tpl_id = created.json()["data"]["tpl_id"]
        for material in (image, video, thumb):
            message = error(
                await mine.post(f"{path}/delete", json={"material_ids": [material["material_id"]]}), 400, "KM.00000450"
            )
            assert tpl_id in message
        assert (await mine.get(path)).json()["data"]["page_info"]["total"] == 3
        # Once the template is gone, they can be deleted.
        assert (await mine.delete(f"/v1/aim/template/{tpl_id}")).status_code == 200
        ids = [image["material_id"], video["material_id"]]
        assert (await mine.post(f"{path}/delete", json={"material_ids": ids})).status_code == 200
        assert (await mine.get(path)).json()["data"]["page_info"]["total"] == 1  # video2


async def test_deleting_the_primary_thumbnail_promotes_another(harness: Harness) -> None:
    tenant = await harness.tenant("covers")
    path = "/v1/aim/template-materials"
    async with harness.client(tenant) as client:
        video = (await client.post(path, json=stream_body("video", "v.mp4", "video/mp4", MP4))).json()["data"]
        ids = []
        for n in range(3):
            body = stream_body("thumbnail", f"t{n}.png", "image/png", png(n + 1), material_id=video["material_id"])
            ids.append((await client.post(path, json=body)).json()["data"]["material_id"])
            await asyncio.sleep(0.002)  # distinct creation times
        assert (await client.post(f"{path}/delete", json={"material_ids": [ids[0]]})).status_code == 200
        shown = await client.get(
            "/v1/aim/template-material-thumbnails", params={"aim_resource_id": video["aim_resource_id"]}
        )
        assert [(t["id"], t["is_primary"]) for t in shown.json()["data"]] == [(ids[1], 0), (ids[2], 1)]


async def test_storage_quota(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from magpie_gateway import aim_materials_api

    tenant = await harness.tenant("quota")
    path = "/v1/aim/template-materials"
    monkeypatch.setattr(aim_materials_api, "QUOTA_BYTES", len(png()) + len(MP4))
    async with harness.client(tenant) as client:
        first = await client.post(path, json=stream_body("image", "a.png", "image/png", png()))
        assert first.status_code == 200
        assert (await client.post(path, json=stream_body("video", "v.mp4", "video/mp4", MP4))).status_code == 200
        error(await client.post(path, json=stream_body("image", "b.png", "image/png", png())), 400, "KM.00000451")
        image_id = first.json()["data"]["material_id"]
        assert (await client.post(f"{path}/delete", json={"material_ids": [image_id]})).status_code == 200
        assert (await client.post(path, json=stream_body("image", "b.png", "image/png", png()))).status_code == 200


async def test_stream_forms(harness: Harness) -> None:
    """A data URL, bare base64, base64 with MIME line breaks: the same bytes stored; the type comes from them."""
    tenant = await harness.tenant("forms")
    path = "/v1/aim/template-materials"
    image = png(300)
    forms = [
        data_url("image/jpeg", image),  # a wrong declared mime type does not matter
        base64.b64encode(image).decode(),
        base64.encodebytes(image).decode(),
    ]
    async with harness.client(tenant) as client:
        for n, stream in enumerate(forms):
            body = {**stream_body("image", f"f{n}.png", "image/png", image), "file_stream": stream}
            response = await client.post(path, json=body)
            assert response.status_code == 200, response.text
            material_id = response.json()["data"]["material_id"]
            assert (await client.get(f"{path}/{material_id}/file")).content == image
        listed = (await client.get(path)).json()["data"]["results"]
        assert {m["file_type"] for m in listed} == {"png"} and len(listed) == 3
