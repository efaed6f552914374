"""Service-number images (``upload_media``) and the checks of the requests that reference them.

Decided for Magpie:

- ``file_type`` decides the rules (type by content, size, dimensions read from the image header):
  ``PUB_LOGO`` jpg/bmp/png, <= 100 KB, square, >= 240x240; ``BG_IMAGE`` jpg/bmp/png, <= 4 MB, >= 1440x810, 16:9
  (within 1 %); ``FASTAPP_LOGO`` jpg/bmp/png, <= 4 MB, square, >= 192x192; ``OTHER`` (authorisation letters,
  licences) jpg/bmp/png, <= 4 MB. Oversize is 413 (KM.00000413), a wrong type 400 (KM.00000430), wrong dimensions
  400 (KM.00000490).
- ``resource_id`` is 32 hex digits (KooMessage's form); ``resource_url`` is the Magpie download path
  ``/v1/aim-sa/media/{resource_id}/file`` (signed GET, the tenant's own media only). ``resource_type`` is 1 (image).
- A request may reference only the tenant's own media (another tenant's id is 404, KM.00000404), and only media
  uploaded for that use (KM.00000490 otherwise): ``logo_img`` a ``PUB_LOGO``, ``background_img`` a ``BG_IMAGE``,
  quick-app ``logo_img`` a ``FASTAPP_LOGO``, ``authorization_files`` ``OTHER`` images of at most 4 MB together.
- A port's ``authorization_files`` entry is ``resource_id:resource_url`` as the SDK documents; when the URL part
  is given it must be the resource's ``resource_url``.
- Media are kept after the pub, port or homepage referencing them changes (they may be referenced again).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from magpie_gateway import codes
from magpie_gateway.codes import fail, not_found
from magpie_gateway.db import Collections
from magpie_gateway.files import FileRule
from magpie_gateway.sa_images import image_size

PUB_LOGO = "PUB_LOGO"
BG_IMAGE = "BG_IMAGE"
FASTAPP_LOGO = "FASTAPP_LOGO"
OTHER = "OTHER"
FILE_TYPES = (PUB_LOGO, BG_IMAGE, FASTAPP_LOGO, OTHER)
RESOURCE_TYPE_IMAGE = 1
IMAGE_EXTENSIONS = frozenset({"jpg", "png", "bmp"})
AUTH_FILES_MAX_BYTES = 4 * 1024 * 1024
RATIO_TOLERANCE = 0.01


@dataclass(frozen=True)
class MediaRule:
    file_type: str
    file: FileRule
    min_width: int = 0
    min_height: int = 0
    ratio: tuple[int, int] | None = None  # width:height
    exact_ratio: bool = False

    def check_dimensions(self, name: str, size: tuple[int, int] | None) -> tuple[int, int]:
        if size is None:
            raise fail(codes.SA_MEDIA_UNSUITABLE, f"{name}: the image dimensions cannot be read")
        w, h = size
        if w < self.min_width or h < self.min_height:
            raise fail(
                codes.SA_MEDIA_UNSUITABLE,
                f"{name} is {w}x{h}; at least {self.min_width}x{self.min_height} is required for {self.file_type}",
            )
        if self.ratio is not None:
            rw, rh = self.ratio
            ok = w * rh == h * rw if self.exact_ratio else abs(w * rh / (h * rw) - 1) <= RATIO_TOLERANCE
            if not ok:
                raise fail(codes.SA_MEDIA_UNSUITABLE, f"{name} is {w}x{h}; {self.file_type} must be {rw}:{rh}")
        return w, h


def _rule(file_type: str, max_bytes: int, *args: Any, **kwargs: Any) -> MediaRule:
    # The kind in the shared ``files`` collection says the file belongs to the service-number media.
    return MediaRule(file_type, FileRule(f"sa_media_{file_type.lower()}", IMAGE_EXTENSIONS, max_bytes), *args, **kwargs)


MEDIA_RULES: dict[str, MediaRule] = {
    PUB_LOGO: _rule(PUB_LOGO, 100 * 1024, 240, 240, (1, 1), exact_ratio=True),
    BG_IMAGE: _rule(BG_IMAGE, 4 * 1024 * 1024, 1440, 810, (16, 9)),
    FASTAPP_LOGO: _rule(FASTAPP_LOGO, 4 * 1024 * 1024, 192, 192, (1, 1), exact_ratio=True),
    OTHER: _rule(OTHER, 4 * 1024 * 1024),
}


def new_resource_id() -> str:
    """32 lowercase hex digits, the form of KooMessage's SA ids (pub, menu, portal, port, media)."""
    return secrets.token_hex(16)


def media_url(resource_id: str | None) -> str | None:
    return f"/v1/aim-sa/media/{resource_id}/file" if resource_id else None


def dimensions(rule: MediaRule, name: str, data: bytes) -> tuple[int, int]:
    return rule.check_dimensions(name, image_size(data))


async def media_docs(c: Collections, tenant_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The tenant's media of ``ids``; 404 when one is unknown or another tenant's."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    docs = await c.sa_media.find({"tenant_id": tenant_id, "_id": {"$in": wanted}}).to_list(None)
    found = {d["_id"]: d for d in docs}
    for rid in wanted:
        if rid not in found:
            raise not_found(f"media resource {rid[:64]}")
    return found


def _require(field: str, doc: dict[str, Any], file_type: str) -> None:
    if doc["file_type"] != file_type:
        raise fail(
            codes.SA_MEDIA_UNSUITABLE,
            f"{field} must be a {file_type} image (upload it with file_type {file_type}); {doc['_id']} is a "
            f"{doc['file_type']}",
        )


def _total(field: str, docs: Sequence[dict[str, Any]]) -> None:
    total = sum(int(d["size"]) for d in docs)
    if total > AUTH_FILES_MAX_BYTES:
        raise fail(codes.SA_MEDIA_UNSUITABLE, f"{field} take {total} bytes together; at most {AUTH_FILES_MAX_BYTES}")


async def check_pub_media(c: Collections, tenant_id: str, info: dict[str, Any]) -> None:
    docs = await media_docs(c, tenant_id, [info["logo_img"], *info["authorization_files"]])
    _require("logo_img", docs[info["logo_img"]], PUB_LOGO)
    for rid in info["authorization_files"]:
        _require("authorization_files", docs[rid], OTHER)
    _total("authorization_files", [docs[rid] for rid in info["authorization_files"]])


async def check_portal_media(c: Collections, tenant_id: str, portal: dict[str, Any], *, prefix: str = "") -> None:
    logos = [app["logo_img"] for app in portal["fastapps"]]
    docs = await media_docs(c, tenant_id, [portal["background_img"], *logos])
    _require(f"{prefix}background_img", docs[portal["background_img"]], BG_IMAGE)
    for i, rid in enumerate(logos):
        _require(f"{prefix}fastapps[{i}].logo_img", docs[rid], FASTAPP_LOGO)


async def check_port_media(c: Collections, tenant_id: str, files: Sequence[tuple[str, str | None]]) -> list[str]:
    """The resource ids of a port's ``authorization_files`` (``resource_id:resource_url`` entries), checked."""
    ids = [rid for rid, _ in files]
    docs = await media_docs(c, tenant_id, ids)
    for rid, url in files:
        _require("authorization_files", docs[rid], OTHER)
        if url is not None and url != media_url(rid):
            raise fail(
                codes.SA_MEDIA_UNSUITABLE,
                f"authorization_files: the URL given for {rid} is not its resource_url ({media_url(rid)})",
            )
    _total("authorization_files", [docs[rid] for rid in ids])
    return ids


def url_map(ids: Iterable[str]) -> dict[str, str]:
    """``{resource_id: resource_url}`` as the SDK shows ``authorization_files``."""
    return {rid: f"/v1/aim-sa/media/{rid}/file" for rid in ids}
