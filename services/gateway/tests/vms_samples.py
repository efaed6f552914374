"""Small but real media files (recognised by their content) and VMS template / task bodies for the VMS tests."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any


def png(extra: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    text = chunk(b"tEXt", b"c\x00" + b"x" * extra) if extra else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def gif() -> bytes:
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


def wav() -> bytes:
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    data = b"\x80" * 800
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    )


def mp4() -> bytes:
    return struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isommp41" + struct.pack(">I", 8) + b"free"


def three_gp() -> bytes:
    return struct.pack(">I", 20) + b"ftyp3gp4" + struct.pack(">I", 0) + b"3gp4" + struct.pack(">I", 8) + b"free"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text(content: str, index: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": "txt", "name": "text", "source": "txt", "content": content}
    if index:
        resource["index"] = index
    return resource


def media(kind: str, data: bytes, index: str | None = None, name: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": kind, "name": name or f"media.{kind}", "source": "file", "content": b64(data)}
    if index:
        resource["index"] = index
    return resource


def template_body(
    *,
    content: str = "【喜鹊汽车】#p_1#您好，新车试驾邀请：#p_2#",
    reslist: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "expiration_time": "30",
        "tpl_name": "新车试驾",
        "title": "新车上市",
        "reslist": reslist
        if reslist is not None
        else [media("3gp", three_gp(), "1-1"), text(content, "1-2"), media("png", png(), "2-1")],
    }
    body.update(extra)
    return body


def params(*values: str) -> list[dict[str, str]]:
    return [
        {"param_name": f"#p_{i}#", "content_type": "txt", "content_source": "txt", "content_detail": value}
        for i, value in enumerate(values, start=1)
    ]
