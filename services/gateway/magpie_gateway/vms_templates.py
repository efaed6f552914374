"""VMS templates: the rules of a template's resources, its media, its review by the three carriers and its release
to the dispatcher.

Rules (product spec §2 and the console guide, seed 001 §8.1; each broken rule has its own code, ``codes.py``):

- ``title`` 1-20 characters without 【】, [] or double quotes (KM.00000484); ``tpl_name`` 1-100 characters;
  ``expiration_time`` whole days 1-9999; ``remarks`` at most 200 characters; ``callbackurl`` a public http(s) URL.
- ``reslist`` 1-10 resources of type ``txt`` (source ``txt``) or a medium (source ``file``: base64 content, or
  ``url``: Magpie downloads it, public addresses only, at most 2 MB, 10 s). ``index`` ``"F-E"`` is given for every
  resource or for none (then each resource is its own frame, in order); at most 8 frames, numbered from 1 without
  gaps, each with 1 or 2 elements (2 only with a text among them, in at most 2 frames) - KM.00000480.
- At least one text and one medium: neither pure text nor pure media (KM.00000480).
- The first text starts with 【signature】 (2-16 letters, digits or Chinese characters); no other 【】 or [] in any
  text (KM.00000484). The system appends the footer (opt-out text): templates must not carry one.
- Params are ``#p_N#`` (N 1-100) in texts only, at most 12 distinct ones (KM.00000483); their order is their first
  appearance (the order of ``dync_params`` in a send task).
- Media: image jpg/jpeg/png/gif, audio mp3/wav, video mp4/3gp, each at most 2 MB; the content decides: a file whose
  bytes are not of the declared family (image, audio, video) is refused (KM.00000482). The template (texts in UTF-8
  plus media) is at most 1.9 MB = 1,992,294 bytes (KM.00000481).

Media are stored with the gateway's file store (GridFS, kinds ``vms_image`` / ``vms_audio`` / ``vms_video``).

States (``state`` in the document) and the SDK's ``audit_state``: ``reviewing`` 1, ``approved`` 0 (at least one
carrier approved; sends go only to the numbers of approving carriers, enforced by the VMS channel),
``rejected`` 2 (every carrier rejected), ``disabled`` 3, expired 5 (shown once ``valid_until`` has passed), and
``draft`` 6 (``is_draft=1``: stored, never reviewed; 6 is a Magpie extension, the SDK has no draft value).
``status_detail`` has one entry per carrier (``cmcc``, ``cucc``, ``ctcc``) with the same numbers.

Review: ``TemplateSubmitted`` with subject ``REVIEW_SUBJECT_VMS_TEMPLATE`` and ``vendors`` = the three carriers;
each carrier's decision comes back in ``TemplateReviewed.vendors``. Once a decision is applied:

- approved by at least one carrier: the template is *released* on VMS_TEMPLATES for the dispatcher's vms role:
  every medium in 512 KiB pieces (``VmsMediaChunk``, key ``media:<sha256>:<seq>``, content-addressed and immutable)
  then the template itself (``VmsTemplateReleased``, key ``tpl:<tpl_id>``). A Kafka record is 1 MB at most by
  default and a medium may have 2 MB, hence the pieces;
- a ``callbackurl`` gets the template status (``VmsTemplateStatus`` on VMS_TEMPLATE_STATUS, posted by the
  dispatcher's VMS receipts: ``{tpl_id, audit_state, audit_desc, status_detail, var_info}``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import filetype
import httpx
from filetype.types import Type as FileType

from magpie.v1 import template_pb2, vms_pb2
from magpie_common.ids import stable_id
from magpie_common.topics import VMS_TEMPLATE_STATUS, VMS_TEMPLATES
from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta
from magpie_gateway.files import FileRule
from magpie_gateway.reviews import ReviewTarget, register_review_target
from magpie_gateway.timefmt import iso, utc_now
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid
from magpie_gateway.vms_models import ResourceInfo

CARRIERS = ("CMCC", "CUCC", "CTCC")
MAX_TITLE_CHARS = 20
MAX_NAME_CHARS = 100
MAX_REMARKS_CHARS = 200
MAX_RESOURCE_NAME_CHARS = 100
MAX_EXPIRATION_DAYS = 9999
MAX_RESOURCES = 10
MAX_FRAMES = 8
MAX_DOUBLE_FRAMES = 2
MAX_PARAMS = 12
MAX_MEDIA_BYTES = 2 * 1024 * 1024
MAX_TEMPLATE_BYTES = int(1.9 * 1024 * 1024)
MAX_URL_CHARS = 1024
URL_TIMEOUT_S = 10.0
CHUNK_BYTES = 512 * 1024

STATE_DRAFT = "draft"
STATE_REVIEWING = "reviewing"
STATE_APPROVED = "approved"
STATE_REJECTED = "rejected"
STATE_DISABLED = "disabled"

AUDIT_USABLE = 0
AUDIT_REVIEWING = 1
AUDIT_REJECTED = 2
AUDIT_DISABLED = 3
AUDIT_EXPIRED = 5
AUDIT_DRAFT = 6
AUDIT_STATES = {
    STATE_APPROVED: AUDIT_USABLE,
    STATE_REVIEWING: AUDIT_REVIEWING,
    STATE_REJECTED: AUDIT_REJECTED,
    STATE_DISABLED: AUDIT_DISABLED,
    STATE_DRAFT: AUDIT_DRAFT,
}
RESTAGS = "三网一般"  # resource tag: the three-network channel, general content

# family -> (declared types, types the content may have, the file-store rule)
FAMILIES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "image": (frozenset({"jpg", "jpeg", "png", "gif"}), frozenset({"jpg", "png", "gif"})),
    "audio": (frozenset({"mp3", "wav"}), frozenset({"mp3", "wav"})),
    "video": (frozenset({"mp4", "3gp"}), frozenset({"mp4", "3gp"})),
}
RULES = {family: FileRule(f"vms_{family}", real, MAX_MEDIA_BYTES) for family, (_, real) in FAMILIES.items()}

PARAM = re.compile(r"#p_(\d+)#")
SIGN = re.compile(r"^【([0-9A-Za-z\u4e00-\u9fff]{2,16})】")
BRACKETS = ("【", "】", "[", "]")
QUOTES = ('"', "“", "”", "＂")
INDEX = re.compile(r"^(\d{1,2})-(\d{1,2})$")


class ThreeGpp(FileType):  # type: ignore[misc]
    """3GPP / 3GPP2 video: an ISO base media file whose major brand is 3gp* or 3g2*. (``filetype``'s own 3gp
    matcher looks for ``ftyp3gp`` at offset 0, which no real file has: the box size comes first.)"""

    MIME = "video/3gpp"
    EXTENSION = "3gp"

    def __init__(self) -> None:
        super().__init__(mime=ThreeGpp.MIME, extension=ThreeGpp.EXTENSION)

    def match(self, buf: bytes) -> bool:
        return len(buf) >= 12 and bytes(buf[4:8]) == b"ftyp" and bytes(buf[8:11]) in (b"3gp", b"3g2")


if not any(isinstance(t, ThreeGpp) for t in filetype.types):
    filetype.add_type(ThreeGpp())


def family_of(declared: str) -> str | None:
    for family, (types, _) in FAMILIES.items():
        if declared in types:
            return family
    return None


@dataclass
class Element:
    frame: int
    position: int
    type: str  # txt, or the real media type after checking
    name: str
    text: str = ""
    family: str = ""
    data: bytes = b""
    file_id: str = ""
    sha256: str = ""
    mime: str = ""

    @property
    def size(self) -> int:
        return len(self.text.encode()) if self.type == "txt" else len(self.data)


@dataclass
class ParsedTemplate:
    elements: list[Element]
    params: list[str]
    sign: str
    size: int
    texts: list[str] = field(default_factory=list)


# --- parsing and checks ------------------------------------------------------------------------------------------
def check_title(title: str | None) -> str:
    text = (title or "").strip()
    if not text:
        raise fail(codes.VMS_CONTENT_INVALID, "title is required")
    if len(text) > MAX_TITLE_CHARS:
        raise fail(codes.VMS_CONTENT_INVALID, f"title must have at most {MAX_TITLE_CHARS} characters")
    if any(ch in text for ch in BRACKETS + QUOTES):
        raise fail(codes.VMS_CONTENT_INVALID, "title must not contain 【】, [] or double quotes")
    return text


def _layout(resources: list[ResourceInfo]) -> list[tuple[int, int]]:
    """(frame, position) of every resource, checking the frame rules."""
    if not resources:
        raise fail(codes.VMS_FRAMES_INVALID, "reslist must have at least one resource")
    if len(resources) > MAX_RESOURCES:
        raise fail(codes.VMS_FRAMES_INVALID, f"reslist must have at most {MAX_RESOURCES} resources")
    given = [bool(r.index and r.index.strip()) for r in resources]
    if any(given) and not all(given):
        raise fail(codes.VMS_FRAMES_INVALID, "index must be given for every resource or for none")
    if not any(given):
        if len(resources) > MAX_FRAMES:
            raise fail(codes.VMS_FRAMES_INVALID, f"at most {MAX_FRAMES} frames (one per resource without index)")
        return [(i + 1, 1) for i in range(len(resources))]
    layout: list[tuple[int, int]] = []
    for r in resources:
        match = INDEX.match((r.index or "").strip())
        if match is None:
            raise fail(codes.VMS_FRAMES_INVALID, f"index {r.index!r} must look like 1-1 (frame-element)")
        layout.append((int(match.group(1)), int(match.group(2))))
    if len(set(layout)) != len(layout):
        raise fail(codes.VMS_FRAMES_INVALID, "index values must be unique")
    frames: dict[int, list[int]] = {}
    for frame, position in layout:
        frames.setdefault(frame, []).append(position)
    if sorted(frames) != list(range(1, len(frames) + 1)):
        raise fail(codes.VMS_FRAMES_INVALID, "frames must be numbered from 1 without gaps (no empty frame)")
    if len(frames) > MAX_FRAMES:
        raise fail(codes.VMS_FRAMES_INVALID, f"at most {MAX_FRAMES} frames")
    for frame, positions in frames.items():
        if sorted(positions) != list(range(1, len(positions) + 1)) or len(positions) > 2:
            raise fail(codes.VMS_FRAMES_INVALID, f"frame {frame} must hold element 1, or elements 1 and 2")
    doubles = [f for f, p in frames.items() if len(p) == 2]
    if len(doubles) > MAX_DOUBLE_FRAMES:
        raise fail(codes.VMS_FRAMES_INVALID, f"at most {MAX_DOUBLE_FRAMES} frames may hold two elements")
    return layout


def _decode_base64(content: str, name: str) -> bytes:
    text = "".join(content.split())
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]  # tolerate a data: URL prefix
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise fail(codes.VMS_MEDIA_REJECTED, f"{name}: content is not valid base64") from None


async def _download(url: str, name: str, *, allow_loopback: bool) -> bytes:
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise fail(codes.VMS_URL_UNREACHABLE, f"{name}: the URL must have at most {MAX_URL_CHARS} characters")
    try:
        await check_public_url(url, allow_loopback=allow_loopback)
    except UrlRejected as exc:
        raise fail(codes.URL_REJECTED, f"{name}: {exc}") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async with (
            asyncio.timeout(URL_TIMEOUT_S),
            httpx.AsyncClient(follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise fail(codes.VMS_URL_UNREACHABLE, f"{name}: the URL answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_MEDIA_BYTES:
                    raise fail(codes.VMS_MEDIA_REJECTED, f"{name}: larger than {MAX_MEDIA_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise fail(codes.VMS_URL_UNREACHABLE, f"{name}: no complete answer within {URL_TIMEOUT_S:g}s") from None
    except httpx.HTTPError as exc:
        raise fail(codes.VMS_URL_UNREACHABLE, f"{name}: {type(exc).__name__}") from None
    return b"".join(chunks)


def _check_media(element: Element, declared: str) -> None:
    data = element.data
    if not data:
        raise fail(codes.VMS_MEDIA_REJECTED, f"{element.name}: the file is empty")
    if len(data) > MAX_MEDIA_BYTES:
        raise fail(codes.VMS_MEDIA_REJECTED, f"{element.name}: larger than {MAX_MEDIA_BYTES} bytes (2 MB)")
    kind = filetype.guess(data[:8192])
    real = None if kind is None else ("jpg" if kind.extension == "jpeg" else kind.extension)
    allowed = FAMILIES[element.family][1]
    if real not in allowed:
        raise fail(
            codes.VMS_MEDIA_REJECTED,
            f"{element.name}: declared {declared} but the content is {real or 'of an unknown type'}; "
            f"{element.family} must be {'/'.join(sorted(FAMILIES[element.family][0]))}",
        )
    element.type = real or declared
    element.mime = kind.mime if kind is not None else ""
    element.sha256 = hashlib.sha256(data).hexdigest()


def _check_texts(elements: list[Element]) -> tuple[str, list[str]]:
    """The signature of the first text and the params (first appearance order)."""
    texts = [e for e in elements if e.type == "txt"]
    first = texts[0].text
    match = SIGN.match(first)
    if match is None:
        raise fail(
            codes.VMS_CONTENT_INVALID,
            "the first text must start with 【signature】 (2-16 letters, digits or Chinese characters)",
        )
    for position, element in enumerate(texts):
        body = element.text[match.end() :] if position == 0 else element.text
        if any(ch in body for ch in BRACKETS):
            raise fail(codes.VMS_CONTENT_INVALID, f"{element.name}: 【】 and [] are only allowed around the signature")
    params: list[str] = []
    for element in texts:
        for found in PARAM.finditer(element.text):
            number = int(found.group(1))
            if not 1 <= number <= 100:
                raise fail(codes.VMS_PARAMS_INVALID, f"{found.group(0)}: N of #p_N# must be between 1 and 100")
            if found.group(0) not in params:
                params.append(found.group(0))
    if len(params) > MAX_PARAMS:
        raise fail(codes.VMS_PARAMS_INVALID, f"at most {MAX_PARAMS} params, found {len(params)}")
    return match.group(1), params


async def parse_reslist(resources: list[ResourceInfo] | None, *, allow_loopback: bool) -> ParsedTemplate:
    """Check the resources and load their media (not stored yet): the template as it will be kept."""
    items = resources or []
    layout = _layout(items)
    elements: list[Element] = []
    for number, (resource, (frame, position)) in enumerate(zip(items, layout, strict=True), start=1):
        declared = (resource.type or "").strip().lower()
        source = (resource.source or "").strip().lower()
        name = (resource.name or "").strip() or f"resource {number}"
        if len(name) > MAX_RESOURCE_NAME_CHARS:
            raise fail(codes.VMS_FRAMES_INVALID, f"resource {number}: name longer than {MAX_RESOURCE_NAME_CHARS}")
        content = resource.content or ""
        if declared == "txt":
            if source != "txt":
                raise fail(codes.VMS_FRAMES_INVALID, f"{name}: a txt resource must have source txt")
            if not content.strip():
                raise fail(codes.VMS_FRAMES_INVALID, f"{name}: the text is empty")
            elements.append(Element(frame, position, "txt", name, text=content))
            continue
        family = family_of(declared)
        if family is None:
            raise fail(
                codes.VMS_MEDIA_REJECTED,
                f"{name}: type must be txt, jpg, jpeg, png, gif, mp3, wav, mp4 or 3gp (got {resource.type!r})",
            )
        if PARAM.search(content):
            raise fail(codes.VMS_PARAMS_INVALID, f"{name}: params are only supported in texts")
        element = Element(frame, position, declared, name, family=family)
        if source == "file":
            element.data = _decode_base64(content, name)
        elif source == "url":
            element.data = await _download(content, name, allow_loopback=allow_loopback)
        else:
            raise fail(codes.VMS_FRAMES_INVALID, f"{name}: a medium must have source file or url")
        _check_media(element, declared)
        elements.append(element)
    by_frame: dict[int, list[Element]] = {}
    for element in elements:
        by_frame.setdefault(element.frame, []).append(element)
    for frame, members in by_frame.items():
        if len(members) == 2 and not any(e.type == "txt" for e in members):
            raise fail(codes.VMS_FRAMES_INVALID, f"frame {frame}: two elements must include a text")
    has_text = any(e.type == "txt" for e in elements)
    has_media = any(e.type != "txt" for e in elements)
    if not (has_text and has_media):
        raise fail(codes.VMS_FRAMES_INVALID, "a template must mix text with media (not pure text or pure media)")
    elements.sort(key=lambda e: (e.frame, e.position))
    sign, params = _check_texts(elements)
    size = sum(e.size for e in elements)
    if size > MAX_TEMPLATE_BYTES:
        raise fail(codes.VMS_TEMPLATE_TOO_LARGE, f"{size} bytes, at most {MAX_TEMPLATE_BYTES}")
    return ParsedTemplate(elements, params, sign, size, [e.text for e in elements if e.type == "txt"])


async def store_media(context: GatewayContext, tenant_id: str, parsed: ParsedTemplate) -> None:
    """Store every medium (GridFS); sets each element's ``file_id``."""
    for element in parsed.elements:
        if element.type != "txt":
            stored = await context.files.put(tenant_id, RULES[element.family], element.name, element.data, prefix="VMF")
            element.file_id = stored.file_id


async def drop_media(context: GatewayContext, tenant_id: str, parsed: ParsedTemplate) -> None:
    for element in parsed.elements:
        if element.file_id:
            try:
                await context.files.delete(tenant_id, element.file_id)
            except Exception:  # best effort: the template was not created
                pass


def element_docs(parsed: ParsedTemplate) -> list[dict[str, Any]]:
    docs = []
    for e in parsed.elements:
        doc: dict[str, Any] = {"frame": e.frame, "position": e.position, "type": e.type, "name": e.name}
        if e.type == "txt":
            doc["text"] = e.text
        else:
            doc.update(family=e.family, file_id=e.file_id, sha256=e.sha256, size=len(e.data), mime=e.mime)
        docs.append(doc)
    return docs


def parse_days(value: str | int | None) -> int:
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRATION_DAYS:
        raise invalid(f"expiration_time must be a whole number of days between 1 and {MAX_EXPIRATION_DAYS}")
    return int(text)


def valid_until(created_at: datetime, days: int) -> datetime:
    return created_at + timedelta(days=days)


# --- views -------------------------------------------------------------------------------------------------------
def is_expired(doc: dict[str, Any], now: datetime | None = None) -> bool:
    until = doc.get("valid_until")
    return until is not None and doc["state"] != STATE_DRAFT and _aware(until) <= (now or utc_now())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def audit_state(doc: dict[str, Any], now: datetime | None = None) -> int:
    if is_expired(doc, now):
        return AUDIT_EXPIRED
    return AUDIT_STATES[doc["state"]]


def status_detail(doc: dict[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
    expired = is_expired(doc, now)
    return [
        {
            "carrier": entry["carrier"],
            "status": AUDIT_EXPIRED if expired and entry["status"] == AUDIT_USABLE else entry["status"],
            "desc": entry.get("desc") or None,
        }
        for entry in doc.get("status_detail", [])
    ]


def var_info(doc: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": name, "type": "txt"} for name in doc.get("params", [])]


def template_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "tpl_id": doc["_id"],
        "audit_state": audit_state(doc),
        "audit_desc": doc.get("audit_desc") or None,
        "tpl_size": doc["size"],
        "valid_time": iso(doc.get("valid_until")),
        "status_detail": status_detail(doc),
        "preview_url": None,
        "tpl_name": doc["tpl_name"],
        "title": doc["title"],
        "tpl_sign": doc.get("sign"),
        "create_time": iso(doc["created_at"]),
        "var_info": var_info(doc),
        "restags": RESTAGS,
    }


def initial_status_detail(state: str) -> list[dict[str, Any]]:
    status = AUDIT_REVIEWING if state == STATE_REVIEWING else AUDIT_DRAFT
    return [{"carrier": c.lower(), "status": status, "desc": ""} for c in CARRIERS]


def usable_carriers(doc: dict[str, Any]) -> list[str]:
    return [e["carrier"].upper() for e in doc.get("status_detail", []) if e["status"] == AUDIT_USABLE]


# --- review ------------------------------------------------------------------------------------------------------
def review_message(doc: dict[str, Any]) -> template_pb2.TemplateSubmitted:
    return template_pb2.TemplateSubmitted(
        subject=template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE,
        subject_id=doc["_id"],
        revision=doc["revision"],
        name=doc["tpl_name"],
        use_template_type="vms",
        texts=[doc["title"], *(e["text"] for e in doc["elements"] if e["type"] == "txt")],
        vendors=list(CARRIERS),
        param_count=len(doc["params"]),
        param_names=list(doc["params"]),
    )


def _review_update(doc: dict[str, Any], review: template_pb2.TemplateReviewed) -> dict[str, Any]:
    decisions = {v.vendor.strip().upper(): v for v in review.vendors}
    detail = []
    for carrier in CARRIERS:
        decision = decisions.get(carrier)
        if decision is not None:
            approved, reason = decision.approved, decision.reason
        elif not decisions:
            approved, reason = review.approved, review.reason
        else:
            approved, reason = False, "not reviewed by this carrier"
        detail.append(
            {"carrier": carrier.lower(), "status": AUDIT_USABLE if approved else AUDIT_REJECTED, "desc": reason}
        )
    any_approved = any(e["status"] == AUDIT_USABLE for e in detail)
    return {
        "status_detail": detail,
        "state": STATE_APPROVED if any_approved else STATE_REJECTED,
        "audit_desc": review.reason,
    }


def release_records(
    doc: dict[str, Any], media: dict[str, bytes], trace_id: str = ""
) -> list[tuple[str, vms_pb2.VmsTemplateRecord]]:
    """The records releasing an approved template: media pieces first, then the template."""
    tenant = doc["tenant_id"]
    records: list[tuple[str, vms_pb2.VmsTemplateRecord]] = []
    for sha, data in media.items():
        count = max(1, -(-len(data) // CHUNK_BYTES))
        for seq in range(count):
            chunk = vms_pb2.VmsMediaChunk(
                meta=event_meta(stable_id("vms-media", sha, seq), tenant, trace_id),
                sha256=sha,
                seq=seq,
                count=count,
                data=data[seq * CHUNK_BYTES : (seq + 1) * CHUNK_BYTES],
                size=len(data),
            )
            records.append((f"media:{sha}:{seq}", vms_pb2.VmsTemplateRecord(chunk=chunk)))
    until = doc.get("valid_until")
    released = vms_pb2.VmsTemplateReleased(
        meta=event_meta(stable_id("vms-template", doc["_id"], doc["revision"]), tenant, trace_id),
        tpl_id=doc["_id"],
        revision=doc["revision"],
        title=doc["title"],
        sign=doc.get("sign", ""),
        params=list(doc["params"]),
        carriers=usable_carriers(doc),
        valid_until_ms=int(_aware(until).timestamp() * 1000) if until is not None else 0,
        size=doc["size"],
    )
    for e in doc["elements"]:
        released.elements.add(
            frame=e["frame"],
            position=e["position"],
            type=e["type"],
            text=e.get("text", ""),
            name=e.get("name", ""),
            media_sha256=e.get("sha256", ""),
            media_size=e.get("size", 0),
            mime=e.get("mime", ""),
        )
    records.append((f"tpl:{doc['_id']}", vms_pb2.VmsTemplateRecord(template=released)))
    return records


def status_event(doc: dict[str, Any], trace_id: str = "") -> vms_pb2.VmsTemplateStatus:
    state = audit_state(doc)
    event = vms_pb2.VmsTemplateStatus(
        meta=event_meta(
            stable_id("vms-template-status", doc["_id"], doc["revision"], state), doc["tenant_id"], trace_id
        ),
        tpl_id=doc["_id"],
        revision=doc["revision"],
        callback_url=doc.get("callbackurl") or "",
        audit_state=state,
        audit_desc=doc.get("audit_desc") or "",
    )
    for entry in status_detail(doc):
        event.status_detail.add(carrier=entry["carrier"], status=entry["status"], desc=entry["desc"] or "")
    for var in var_info(doc):
        event.var_info.add(name=var["name"], type=var["type"])
    return event


async def release(context: GatewayContext, doc: dict[str, Any]) -> None:
    """Publish an approved template (and its media) on VMS_TEMPLATES; durable when this returns."""
    media: dict[str, bytes] = {}
    for element in doc["elements"]:
        if element["type"] != "txt" and element["sha256"] not in media:
            _, data = await context.files.read(doc["tenant_id"], element["file_id"])
            media[element["sha256"]] = data
    records = release_records(doc, media)
    # One medium at a time keeps the producer's buffer small (pieces of 512 KiB).
    for key, record in records:
        await context.producer.send(VMS_TEMPLATES, key, record)


async def _after_review(
    context: GatewayContext | None, doc: dict[str, Any], review: template_pb2.TemplateReviewed
) -> None:
    if context is None:
        return
    if doc["state"] == STATE_APPROVED:
        await release(context, doc)
    if doc.get("callbackurl"):
        await context.producer.send(VMS_TEMPLATE_STATUS, doc["_id"], status_event(doc))


register_review_target(
    template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE,
    ReviewTarget(collection="vms_templates", label="vms_template", update=_review_update, after=_after_review),
)
