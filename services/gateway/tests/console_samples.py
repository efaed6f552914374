"""Small real files for the console-feature tests (the gateway decides types by content: these carry the right
magic bytes), and an httpx multipart helper."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

import httpx
import openpyxl
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from .conftest import SdkSigner


def pdf(size: int = 2048, text: str = "filing") -> bytes:
    body = f"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% {text}\n".encode()
    return body + b"%" * max(0, size - len(body) - 6) + b"\n%%EOF"


def jpg(size: int = 1024) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * size + b"\xff\xd9"


def png(size: int = 1024) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * size


def zip_file() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("special.txt", "special material")
    return buffer.getvalue()


def rar() -> bytes:
    return b"Rar!\x1a\x07\x00" + b"\x00" * 64


def xlsx(rows: list[list[Any]], *, header: list[Any] | None = None) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("links")
    if header is not None:
        sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class MultipartSigner(SdkSigner):
    """Signs a multipart request as the SDK does: ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` (signed too)."""

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
            header_params={"Content-Type": request.headers["content-type"], "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"},
            body=request.content,
        )
        Signer(self.credentials).sign(sdk_request)
        for name in ("X-Sdk-Date", "Authorization"):
            request.headers[name] = sdk_request.header_params[name]
        yield request


def multipart_auth(client: httpx.AsyncClient) -> MultipartSigner:
    """The multipart signer of the same access key as ``client`` (a harness client)."""
    signer = client.auth
    assert isinstance(signer, SdkSigner)
    return MultipartSigner(signer.credentials.ak, signer.credentials.sk)


async def upload(client: httpx.AsyncClient, path: str, name: str, data: bytes | None, **fields: str) -> httpx.Response:
    """POST a multipart form (``file`` unless ``data`` is None, plus the form fields), signed like the SDK."""
    files = {"file": (name, data, "application/octet-stream")} if data is not None else None
    return await client.post(path, data=fields, files=files, auth=multipart_auth(client))
