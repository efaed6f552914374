"""AIM template materials: the images, videos and video thumbnails a card template shows (referenced from a
template's contents by ``src_type`` 1 + ``src`` / ``cover`` = the material's ``aim_resource_id``).

Decided for Magpie (the SDK and the seeds leave these open):

- Upload (``upload_aim_template_material``) takes the file as the SDK sends it: ``file_type`` ``stream`` (a data
  URL ``data:<mime>;base64,<content>``, or the bare base64 content) or ``url`` (Magpie downloads the file: http(s)
  only, public addresses only as for callbacks, at most 3 redirects each re-checked, 15 s, never more than the
  limit read). The type is decided by the content (``files.py``), never by the name or the declared mime type.
- Limits: image jpg/png/gif <= 2 MB (``image_rate`` required), video mp4 <= 7 MB, thumbnail jpg/png <= 100 KB
  (``material_id`` = its video's material). Oversize is 413 (KM.00000413), a wrong type 400 (KM.00000430). The
  tenant's materials may take 10 GB in all (KM.00000451 beyond).
- Names and descriptions must not contain ``<``, ``>`` or runs of spaces (the SDK's rule for this operation).
- ``material_id`` is the material's id, ``aim_resource_id`` an 18-digit number (KooMessage's form) that templates
  use. ``obs_object_key`` is the id of the stored bytes, ``obs_file_url`` the (AK/SK-signed) Magpie download path
  ``GET /v1/aim/template-materials/{material_id}/file``.
- Thumbnails: the first uploaded thumbnail of a video becomes its primary (cover) thumbnail;
  ``set_primary_video_thumbnail`` changes it. Magpie does not cut frames out of videos, so every thumbnail is an
  upload (``is_auto_gen`` 1). A video's ``thumbnail`` in the list is its primary thumbnail.
- Listing: ``offset`` is the page number counted from 1, as the SDK documents for this operation (0 is read as 1).
  Without ``resource_type`` images and videos are listed (thumbnails are listed with ``resource_type=thumbnail``).
- Deleting: all named materials or none (an unknown or another tenant's id is 404). A material a template of the
  tenant still references by resource id cannot be deleted (KM.00000450): the card would lose its image. Deleting a
  video deletes its thumbnails; deleting a primary thumbnail makes the video's newest other thumbnail primary.
  KooMessage's console has a recycle bin; the API deletes for good.
- Creating a template that references a material by resource id (``src_type`` 1) checks that the material exists,
  belongs to the tenant and is of a fitting kind (``check_material_references``). A ``src_type`` 1 value that is
  an http(s) URL is taken as the URL it is (as with ``src_type`` 2): unambiguous, and some clients mix the two.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from magpie_common.ids import now_ms
from magpie_gateway import codes
from magpie_gateway.aim_models import CreateAimPersonalTemplateRequestBody
from magpie_gateway.codes import fail
from magpie_gateway.db import Collections
from magpie_gateway.errors import REQUEST_TOO_LARGE, ApiError
from magpie_gateway.files import CHUNK, FileRule
from magpie_gateway.timefmt import iso
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid

IMAGE = "image"
VIDEO = "video"
THUMBNAIL = "thumbnail"
RESOURCE_TYPES = (IMAGE, VIDEO, THUMBNAIL)
LISTED_BY_DEFAULT = (IMAGE, VIDEO)
FILE_TYPES = ("url", "stream")
IMAGE_RATES = ("oneToOne", "sixteenToNine", "threeToOne", "fortyEightToSixtyFive", "twentyOneToNine", "threeToFour")

RULES: dict[str, FileRule] = {
    IMAGE: FileRule("aim_image", frozenset({"jpg", "png", "gif"}), 2 * 1024 * 1024),
    VIDEO: FileRule("aim_video", frozenset({"mp4"}), 7 * 1024 * 1024),
    THUMBNAIL: FileRule("aim_thumbnail", frozenset({"jpg", "png"}), 100 * 1024),
}
# The extensions a file_url may end with, per resource type ("must carry the file's suffix", SDK).
URL_SUFFIXES: dict[str, tuple[str, ...]] = {
    IMAGE: ("jpg", "jpeg", "png", "gif"),
    VIDEO: ("mp4",),
    THUMBNAIL: ("jpg", "jpeg", "png"),
}
QUOTA_BYTES = 10 * 1024**3  # "单个租户资源空间为10GB"
MAX_NAME_CHARS = 128
MAX_DESCRIPTION_CHARS = 256
MAX_DELETE_IDS = 100
FETCH_TIMEOUT_S = 15.0
MAX_REDIRECTS = 3
BUCKET_NAME = "magpie-materials"
SRC_TYPE_RESOURCE_ID = 1

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: resource ids are (ms since then) << 22 | 22 random bits


def new_resource_id() -> str:
    """An 18-digit, time-ordered ``aim_resource_id`` (like KooMessage's ``691996319597764608``)."""
    return str(((now_ms() - _EPOCH_MS) << 22) | secrets.randbits(22))


def clean_text(name: str, value: str | None, *, max_chars: int, required: bool = False) -> str | None:
    """A name or description: stripped, bounded, without ``<``, ``>`` or runs of spaces."""
    if value is None or not value.strip():
        if required:
            raise invalid(f"{name} is required")
        return None
    text = value.strip()
    if len(text) > max_chars:
        raise invalid(f"{name} must have at most {max_chars} characters")
    if "<" in text or ">" in text or "  " in text:
        raise invalid(f"{name} must not contain '<', '>' or several spaces in a row")
    return text


def too_large(name: str, max_bytes: int) -> ApiError:
    return ApiError.of(REQUEST_TOO_LARGE, f"{REQUEST_TOO_LARGE.message}: {name} exceeds {max_bytes} bytes")


def decode_stream(stream: str | None, rule: FileRule, name: str) -> bytes:
    """The bytes of a ``file_stream`` (data URL or bare base64); 413 before decoding when it is too long."""
    if stream is None or not stream.strip():
        raise invalid("file_stream is required when file_type is stream")
    text = stream.strip()
    match = _DATA_URL.match(text)
    payload = text[match.end() :] if match else text
    if len(payload) // 4 * 3 > rule.max_bytes * 1.05 + 1024:  # clearly too large (slack for line breaks)
        raise too_large(name, rule.max_bytes)
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("file_stream is not valid base64 (expected data:<mime>;base64,<content>)") from None
    if len(data) > rule.max_bytes:
        raise too_large(name, rule.max_bytes)
    return data


def url_file_name(url: str, resource_type: str) -> str:
    """The file name of a ``file_url`` (its last path segment), which must end with an accepted suffix."""
    path = unquote(urlsplit(url).path)
    name = path.rsplit("/", 1)[-1]
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in URL_SUFFIXES[resource_type]:
        accepted = ", ".join(URL_SUFFIXES[resource_type])
        raise invalid(f"file_url must end with the file's suffix ({accepted}) for a {resource_type}")
    return name


async def fetch_url(url: str, rule: FileRule, *, allow_loopback: bool) -> bytes:
    """Download ``file_url``: public http(s) only (every redirect re-checked), never more than the limit read."""
    current = url
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                await check_public_url(current, allow_loopback=allow_loopback)
            except UrlRejected as exc:
                raise fail(codes.URL_REJECTED, f"file_url: {exc}") from None
            try:
                async with client.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise fail(codes.MATERIAL_URL_UNREACHABLE, f"{url} answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > rule.max_bytes:
                        raise too_large(url, rule.max_bytes)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > rule.max_bytes:
                            raise too_large(url, rule.max_bytes)
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                raise fail(codes.MATERIAL_URL_UNREACHABLE, f"{url}: {type(exc).__name__}") from None
    raise fail(codes.MATERIAL_URL_UNREACHABLE, f"{url}: more than {MAX_REDIRECTS} redirects")


async def used_bytes(collections: Collections, tenant_id: str) -> int:
    """Bytes the tenant's materials take."""
    rows = await (
        await collections.aim_materials.aggregate(
            [{"$match": {"tenant_id": tenant_id}}, {"$group": {"_id": None, "size": {"$sum": "$size"}}}]
        )
    ).to_list(None)
    return int(rows[0]["size"]) if rows else 0


# --- views -------------------------------------------------------------------------------------------------------
def file_url(base_url: str, doc: dict[str, Any]) -> str:
    return f"{base_url.rstrip('/')}/v1/aim/template-materials/{doc['_id']}/file"


def thumbnail_view(doc: dict[str, Any], base_url: str) -> dict[str, Any]:
    """SDK ``Thumbnail`` (the ``thumbnail`` of a listed video)."""
    return {
        "id": doc["_id"],
        "created_at": iso(doc["created_at"]),
        "is_primary": doc.get("is_primary", 0),
        "resource_type": IMAGE,
        "file_name": doc["file_name"],
        "aim_resource_id": doc["aim_resource_id"],
        "obs_object_key": doc["file_id"],
        "obs_file_url": file_url(base_url, doc),
        "image_rate": doc.get("image_rate"),
        "is_auto_gen": doc.get("is_auto_gen", 1),
        "description": doc.get("description"),
        "size": doc["size"],
    }


def list_thumbnail_view(doc: dict[str, Any], base_url: str) -> dict[str, Any]:
    """SDK ``ListThumbnail`` (``show_template_video_thumbnail``)."""
    return {
        "id": doc["_id"],
        "created_at": iso(doc["created_at"]),
        "is_primary": doc.get("is_primary", 0),
        "file_name": doc["file_name"],
        "aim_resource_id": doc["aim_resource_id"],
        "obs_object_key": doc["file_id"],
        "image_rate": doc.get("image_rate"),
        "is_auto_gen": doc.get("is_auto_gen", 1),
        "description": doc.get("description"),
        "obs_bucket_name": BUCKET_NAME,
        "domain_id": doc["tenant_id"],
        "size": doc["size"],
        "obs_file_url": file_url(base_url, doc),
    }


def material_view(doc: dict[str, Any], base_url: str, thumbnail: dict[str, Any] | None) -> dict[str, Any]:
    """SDK ``Material`` (plus ``size`` and ``file_type``, Magpie extensions)."""
    return {
        "id": doc["_id"],
        "created_at": iso(doc["created_at"]),
        "resource_type": doc["resource_type"],
        "file_name": doc["file_name"],
        "aim_resource_id": doc["aim_resource_id"],
        "obs_object_key": doc["file_id"],
        "obs_file_url": file_url(base_url, doc),
        "image_rate": doc.get("image_rate"),
        "description": doc.get("description"),
        "thumbnail": thumbnail_view(thumbnail, base_url) if thumbnail else None,
        "size": doc["size"],
        "file_type": doc.get("extension"),
    }


# --- references from templates -----------------------------------------------------------------------------------
def _resource_refs(pages: Iterable[Any]) -> list[tuple[str, str, str]]:
    """(content type, field, resource id) of every content that names a material by resource id."""
    refs: list[tuple[str, str, str]] = []
    for page in pages:
        contents = page.get("contents", []) if isinstance(page, dict) else page.contents
        for item in contents:
            data = item if isinstance(item, dict) else item.model_dump()
            if data.get("src_type") != SRC_TYPE_RESOURCE_ID:
                continue
            kind = str(data.get("type") or "").strip().lower()
            for field in ("src", "cover"):
                value = str(data.get(field) or "").strip()
                if value and not value.lower().startswith(("http://", "https://")):
                    refs.append((kind, field, value))
    return refs


def _fits(kind: str, field: str, resource_type: str) -> bool:
    if kind == VIDEO and field == "src":
        return resource_type == VIDEO
    return resource_type in (IMAGE, THUMBNAIL)


async def check_material_references(
    collections: Collections, tenant_id: str, body: CreateAimPersonalTemplateRequestBody
) -> None:
    """Every ``src`` / ``cover`` given as a resource id (``src_type`` 1) names a material of the tenant that fits:
    a video's ``src`` a video, any other ``src`` and every ``cover`` an image or a thumbnail."""
    refs = _resource_refs(body.pages or [])
    if not refs:
        return
    ids = sorted({ref for _, _, ref in refs})
    docs = await collections.aim_materials.find(
        {"tenant_id": tenant_id, "aim_resource_id": {"$in": ids}}, {"aim_resource_id": 1, "resource_type": 1}
    ).to_list(None)
    types = {doc["aim_resource_id"]: doc["resource_type"] for doc in docs}
    for kind, field, ref in refs:
        found = types.get(ref)
        if found is None:
            raise invalid(f"{kind} {field} {ref} is not a material of yours (src_type 1 takes an aim_resource_id)")
        if not _fits(kind, field, found):
            raise invalid(f"{kind} {field} {ref} is a {found} material, which does not fit there")


async def templates_using(collections: Collections, tenant_id: str, resource_ids: set[str]) -> dict[str, str]:
    """resource id -> the id of a template of the tenant that references it (for the ids in ``resource_ids``)."""
    used: dict[str, str] = {}
    if not resource_ids:
        return used
    async for doc in collections.aim_templates.find({"tenant_id": tenant_id}, {"pages": 1}):
        for _, _, ref in _resource_refs(doc.get("pages") or []):
            if ref in resource_ids:
                used.setdefault(ref, doc["_id"])
    return used
