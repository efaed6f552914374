"""Helpers of the service-number tests (``test_sa_*.py``): images made in memory (PNG, BMP, JPEG headers), request
bodies, and httpx shortcuts that upload media and create service numbers."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Generator
from typing import Any

import httpx

from magpie.v1 import template_pb2

from .conftest import Harness, SdkSigner, eventually

PUB = template_pb2.REVIEW_SUBJECT_SA_PUB
MENU = template_pb2.REVIEW_SUBJECT_SA_MENU
PORTAL = template_pb2.REVIEW_SUBJECT_SA_PORTAL
PORT = template_pb2.REVIEW_SUBJECT_SA_PORT


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A valid RGB PNG; ``noise`` makes it incompressible (large)."""
    row = (lambda: b"\x00" + os.urandom(width * 3)) if noise else (lambda: b"\x00" + b"\x80" * (width * 3))
    raw = b"".join(row() for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    )


def bmp(width: int, height: int, *, top_down: bool = False) -> bytes:
    """A 24-bit BMP (BITMAPINFOHEADER)."""
    row = (width * 3 + 3) // 4 * 4
    pixels = b"\x00" * row * height
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, 24, 0, len(pixels), 0, 0, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, a baseline SOF0 frame header and EOI (enough for the header reader)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


LOGO = png(240, 240)
BACKGROUND = png(1440, 810)
FASTAPP_LOGO = png(192, 192)
LICENCE = png(300, 200)


class MultipartSigner(SdkSigner):
    """Signs a multipart request as the SDK does: the payload unsigned (``X-Sdk-Content-Sha256``)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
        yield from super().auth_flow(request)


async def upload(client: httpx.AsyncClient, file_type: str, data: bytes, name: str = "image.png") -> httpx.Response:
    signer = client.auth
    assert isinstance(signer, SdkSigner)
    credentials = signer.credentials
    return await client.post(
        "/v1/aim-sa/media/upload",
        files={"file": (name, data, "application/octet-stream")},
        data={"file_type": file_type},
        auth=MultipartSigner(credentials.ak, credentials.sk),
    )


async def media(client: httpx.AsyncClient, file_type: str, data: bytes) -> str:
    response = await upload(client, file_type, data)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["resource_id"])


def menu_body() -> dict[str, Any]:
    return {
        "menu_items": [
            {
                "name": "热门生活",
                "action_type": "OPEN_SUBMENU",
                "sub_menu_items": [
                    {
                        "name": "精选推荐",
                        "action_type": "OPEN_URL",
                        "content": "https://shop.example.com/picks",
                        "ext_msg": {"web_title": "精选推荐", "open_in_browser": "0"},
                    },
                    {"name": "客服热线", "action_type": "CALLING", "content": "400-800-8800"},
                ],
            },
            {
                "name": "快应用",
                "action_type": "OPEN_QUICK",
                "content": "hap://app/com.example.shop",
                "ext_msg": {"depend_engine_ver": "1040", "third_service_name": "商城"},
            },
            {
                "name": "打开APP",
                "action_type": "OPEN_APP",
                "content": "exampleshop://home",
                "ext_msg": {
                    "package_name": "com.example.shop",
                    "app_id": "",
                    "browser_floor_url": "https://m.example.com/",
                },
            },
        ]
    }


def portal_body(background: str, fastapp_logo: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "background_img": background,
        "summary": "记录美好生活，帮助用户实现自我价值",
        "tels": [{"tel": "400-800-8800", "usage": "官方服务电话"}],
    }
    if fastapp_logo:
        body["fastapps"] = [
            {
                "name": "喜鹊商城",
                "logo_img": fastapp_logo,
                "description": "购物快应用",
                "deeplink": "hap://app/com.example.shop",
                "depend_engine_version": "1040",
            }
        ]
    return body


def pub_body(logo: str, licence: str, *, name: str = "喜鹊商城", remark: str | None = "通知") -> dict[str, Any]:
    body: dict[str, Any] = {
        "logo_img": logo,
        "pub_name": name,
        "pub_abstract": "此服务号用于发送服务通知类消息",
        "industry": 5,
        "authorization_files": [licence],
        "auto_get_port": 1,
        "signs_for_auto_get_port": ["喜鹊商城"],
        "areas_for_auto_get_port": ["广东省", "北京市"],
    }
    if remark is not None:
        body["pub_remark"] = remark
    return body


class Images:
    """The media ids a tenant needs to create a service number."""

    def __init__(self, logo: str, background: str, fastapp_logo: str, licence: str) -> None:
        self.logo = logo
        self.background = background
        self.fastapp_logo = fastapp_logo
        self.licence = licence


async def images(client: httpx.AsyncClient) -> Images:
    return Images(
        await media(client, "PUB_LOGO", LOGO),
        await media(client, "BG_IMAGE", BACKGROUND),
        await media(client, "FASTAPP_LOGO", FASTAPP_LOGO),
        await media(client, "OTHER", LICENCE),
    )


def create_body(img: Images, *, name: str = "喜鹊商城", remark: str | None = "通知") -> dict[str, Any]:
    return {
        "pub_request_body": pub_body(img.logo, img.licence, name=name, remark=remark),
        "portal_request_body": portal_body(img.background, img.fastapp_logo),
        "menu_request_body": {"menu": menu_body()},
    }


async def create_pub(client: httpx.AsyncClient, img: Images, **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/v1/aim-sa/unify/pubs", json=create_body(img, **kwargs))
    assert response.status_code == 200, response.text
    return dict(response.json()["data"]["data"])


async def pub_row(client: httpx.AsyncClient, pub_id: str) -> dict[str, Any] | None:
    rows = (await client.get("/v1/aim-sa/pubs", params={"limit": 100})).json()["data"]["data"]
    return next((r for r in rows if r["pub_id"] == pub_id), None)


async def menu_row(client: httpx.AsyncClient, menu_id: str) -> dict[str, Any]:
    rows = (await client.get("/v1/aim-sa/menus", params={"menu_id": menu_id})).json()["data"]["data"]
    assert len(rows) == 1, rows
    return dict(rows[0])


async def portal_row(client: httpx.AsyncClient, portal_id: str) -> dict[str, Any]:
    rows = (await client.get("/v1/aim-sa/portals", params={"limit": 100})).json()["data"]["portals"]
    return next(r for r in rows if r["portal_id"] == portal_id)


async def approve_pub(harness: Harness, client: httpx.AsyncClient, pub_id: str, *, revision: int = 1) -> None:
    await harness.review(PUB, pub_id, revision=revision)

    async def done() -> bool:
        row = await pub_row(client, pub_id)
        return row is not None and row["approve_state"] == 2

    await eventually(done)


async def live_pub(harness: Harness, client: httpx.AsyncClient, img: Images, **kwargs: Any) -> dict[str, Any]:
    """A service number approved with its menu and homepage."""
    created = await create_pub(client, img, **kwargs)
    await approve_pub(harness, client, created["pub_id"])
    await harness.review(MENU, created["menu_id"])
    await harness.review(PORTAL, created["portal_id"])

    async def done() -> bool:
        menu = await menu_row(client, created["menu_id"])
        portal = await portal_row(client, created["portal_id"])
        return menu["approve_state"] == 2 and portal["approve_state"] == 2

    await eventually(done)
    return created


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["error_msg"])
