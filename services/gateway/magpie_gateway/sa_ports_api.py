"""Service number ports (通道号) and media: ``register_port``, ``list_port_infos``, ``delete_port_info``,
``lock_port`` (bind a port to a service number), ``unlock_port`` (unbind), ``upload_media``; and the Magpie-only
``download_sa_media`` (``GET /v1/aim-sa/media/{resource_id}/file``, the ``resource_url`` of uploaded media).

Decided for Magpie:

- A port is registered with its signatures (1-5, 2-18 characters), ``sign_check`` (must be 1 for prefix/suffix
  ports) and 1-5 authorisation images (``OTHER`` media, <= 4 MB together); ``port`` is digits, <= 21 (exactly 5 for
  suffix ports). The tenant cannot register the same number and type twice (KM.00000494); other tenants may
  (carriers share channel numbers between enterprises, told apart by signature). Registered ports are reviewed
  (REVIEW_SUBJECT_SA_PORT; ``approve_state`` and ``review_desc`` are Magpie extras of the list rows).
- Binding (``lock_port``) needs an approved port (KM.00000495) and an approved, not frozen service number
  (KM.00000492). ``sign`` must be a subset of the port's signatures; ``province`` names 全国, provinces or cities
  (several separated by commas, no overlaps, see ``sa_regions``). A port may be bound several times (to different
  service numbers or regions), but (signature, region) must identify one binding: a new binding sharing a
  signature with an existing binding of the port in an overlapping region is refused (KM.00000497).
  ``port`` must be the number of ``ext_port_id``.
- A bound port cannot be deleted (KM.00000496): unbind it first (``unlock_port`` with the binding's ``id``).
- Binding and unbinding publish the service number's handset snapshot before answering (``sa_publish``; if the
  broker fails, the binding change still stands and the worker publishes the snapshot later).
- ``list_port_infos``: ``type`` 0 lists ports (``id`` = the port id for ``ext_port_id`` / ``delete_port_info``,
  ``is_bind``, ``pub_list`` of the bound service numbers), ``type`` 1 bindings (``id`` = the binding id for
  ``unlock_port``, ``province``, the bound ``sign``). ``port`` is a "contains" filter, ``sign_search`` a
  case-insensitive "contains" on the signatures, ``start_time``/``end_time`` the creation window (both needed),
  ``pub_name`` applies to bindings only, ``is_bind`` to ports only.
- Ports and bindings are kept in ``sa_ports`` (``kind`` "port" / "binding").
- Media rules: see ``sa_media``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pymongo.errors import DuplicateKeyError

from magpie_gateway import codes
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context, request_id
from magpie_gateway.files import check as check_file
from magpie_gateway.files import read_upload
from magpie_gateway.pagination import fetch_page, page
from magpie_gateway.reviews import send_for_review
from magpie_gateway.sa_media import (
    FILE_TYPES,
    MEDIA_RULES,
    RESOURCE_TYPE_IMAGE,
    check_port_media,
    dimensions,
    media_url,
    new_resource_id,
    url_map,
)
from magpie_gateway.sa_models import (
    DeletePortInfoResponse,
    ListPortInfosResponse,
    LockPortRequestBody,
    MessageResponse,
    RegisterPortRequestBody,
    RegisterPortResponse,
    UnlockPortRequestBody,
    UploadMediaResponse,
)
from magpie_gateway.sa_publish import mark_pending, publish_change
from magpie_gateway.sa_regions import first_overlap, parse_regions
from magpie_gateway.sa_reviews import APPROVED, UNDER_REVIEW, port_message, pub_is_live
from magpie_gateway.sa_store import combine, get_pub, operator, pub_ids_named, pubs_by_id
from magpie_gateway.sa_validation import (
    PORT_SIGNS_MAX,
    PORT_TYPES,
    SIGN_MAX,
    int_param,
    port_info,
    required_text,
    signs,
)
from magpie_gateway.timefmt import iso, parse_window, utc_now
from magpie_gateway.validation import invalid, one_of, regex_filter

router = APIRouter(tags=["Service number ports and media"])

PORT = "port"
BINDING = "binding"


async def _get_port(context: GatewayContext, tenant_id: str, port_id: str) -> dict[str, Any]:
    doc = await context.collections.sa_ports.find_one({"_id": port_id, "tenant_id": tenant_id, "kind": PORT})
    if doc is None:
        raise not_found(f"port {port_id[:64]}")
    return doc


@router.post("/v1/aim-sa/ports", response_model=RegisterPortResponse, summary="register_port")
async def register_port(
    body: RegisterPortRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    info = port_info(body)
    c = context.collections
    tenant = principal.tenant_id
    file_ids = await check_port_media(c, tenant, info["authorization_files"])
    port_id = new_resource_id()
    doc = {
        "_id": port_id,
        "kind": PORT,
        "unique_key": f"port:{info['port_type']}:{info['port']}",
        "tenant_id": tenant,
        "port": info["port"],
        "port_type": info["port_type"],
        "sign": info["sign"],
        "sign_check": info["sign_check"],
        "authorization_files": file_ids,
        "revision": 1,
        "approve_state": UNDER_REVIEW,
        "review_desc": None,
        "bound_count": 0,
        "created_at": utc_now(),
        "operator": operator(principal),
    }
    try:
        await c.sa_ports.insert_one(doc)
    except DuplicateKeyError:
        raise fail(codes.SA_PORT_EXISTS, f"port {info['port']} (port_type {info['port_type']})") from None
    await send_for_review(
        context, port_message(doc), tenant_id=tenant, trace_id=request_id(request), collection=c.sa_ports
    )
    return {
        "data": {
            "data": {"port": doc["port"], "port_type": doc["port_type"], "sign": doc["sign"]},
            "id": port_id,  # Magpie extra: the port's id (ext_port_id / port_id)
        }
    }


def _port_row(doc: dict[str, Any], pubs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "create_time": iso(doc.get("created_at")),
        "pub_id": None,
        "port": doc["port"],
        "sign": doc["sign"],
        "authorization_files": url_map(doc.get("authorization_files", [])),
        "pub_name": None,
        "port_type": doc["port_type"],
        "sign_check": doc["sign_check"],
        "province": None,
        "is_bind": 1 if doc.get("bound_count", 0) > 0 else 0,
        "pub_list": [{"pub_name": p["pub_name"], "pub_reference": p.get("pub_remark")} for p in pubs],
        # Magpie extras
        "approve_state": doc["approve_state"],
        "review_desc": doc.get("review_desc"),
    }


def _binding_row(doc: dict[str, Any], port: dict[str, Any] | None, pub: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "create_time": iso(doc.get("created_at")),
        "pub_id": doc["pub_id"],
        "port": doc["port"],
        "sign": doc["sign"],
        "authorization_files": url_map(port.get("authorization_files", [])) if port else {},
        "pub_name": pub["pub_name"] if pub else None,
        "port_type": doc["port_type"],
        "sign_check": port["sign_check"] if port else 0,
        "province": ",".join(doc["regions"]),
        "is_bind": 1,
        "pub_list": [{"pub_name": pub["pub_name"], "pub_reference": pub.get("pub_remark")}] if pub else [],
        # Magpie extras
        "ext_port_id": doc["port_id"],
    }


@router.get("/v1/aim-sa/ports", response_model=ListPortInfosResponse, summary="list_port_infos")
async def list_port_infos(
    list_type: str | None = Query(None, alias="type"),
    port: str | None = None,
    port_type: str | None = None,
    sign_search: str | None = None,
    offset: str | None = None,
    limit: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    pub_name: str | None = None,
    is_bind: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    paging = page(offset, limit)
    kind = BINDING if int_param("type", list_type, (0, 1)) == 1 else PORT
    c = context.collections
    tenant = principal.tenant_id
    conditions: list[dict[str, Any]] = [{"tenant_id": tenant}, {"kind": kind}]
    if port:
        conditions.append({"port": regex_filter(port)})
    wanted_type = int_param("port_type", port_type, PORT_TYPES)
    if wanted_type is not None:
        conditions.append({"port_type": wanted_type})
    if sign_search:
        if len(sign_search) > SIGN_MAX:
            raise invalid(f"sign_search must have at most {SIGN_MAX} characters")
        conditions.append({"sign": regex_filter(sign_search)})
    window = parse_window("start_time", start_time, "end_time", end_time)
    if window:
        conditions.append({"created_at": {"$gte": window[0], "$lte": window[1]}})
    bound = int_param("is_bind", is_bind, (0, 1))
    if kind == PORT and bound is not None:
        conditions.append({"bound_count": {"$gt": 0}} if bound else {"bound_count": 0})
    if kind == BINDING and pub_name:
        conditions.append({"pub_id": {"$in": await pub_ids_named(c, tenant, pub_name)}})
    docs, total = await fetch_page(c.sa_ports, combine(conditions), paging)

    if kind == PORT:
        bindings = await c.sa_ports.find(
            {"tenant_id": tenant, "kind": BINDING, "port_id": {"$in": [d["_id"] for d in docs]}},
            projection={"port_id": 1, "pub_id": 1},
        ).to_list(None)
        pubs = await pubs_by_id(c, tenant, (b["pub_id"] for b in bindings))
        per_port: dict[str, list[dict[str, Any]]] = {}
        for b in bindings:
            pub = pubs.get(b["pub_id"])
            listed = per_port.setdefault(b["port_id"], [])
            if pub is not None and pub not in listed:
                listed.append(pub)
        rows = [_port_row(d, per_port.get(d["_id"], [])) for d in docs]
    else:
        ports = {
            p["_id"]: p
            for p in await c.sa_ports.find(
                {"tenant_id": tenant, "kind": PORT, "_id": {"$in": list({d["port_id"] for d in docs})}}
            ).to_list(None)
        }
        pubs = await pubs_by_id(c, tenant, (d["pub_id"] for d in docs))
        rows = [_binding_row(d, ports.get(d["port_id"]), pubs.get(d["pub_id"])) for d in docs]
    return {"data": {"page_info": paging.info(total), "data": rows}}


@router.delete("/v1/aim-sa/ports/{port_id}", response_model=DeletePortInfoResponse, summary="delete_port_info")
async def delete_port_info(
    port_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    doc = await _get_port(context, principal.tenant_id, port_id)
    result = await context.collections.sa_ports.delete_one(
        {"_id": doc["_id"], "tenant_id": principal.tenant_id, "kind": PORT, "bound_count": 0}
    )
    if result.deleted_count != 1:
        if await context.collections.sa_ports.find_one({"_id": doc["_id"], "tenant_id": principal.tenant_id}):
            raise fail(codes.SA_PORT_BOUND, f"port {doc['port']}")
        raise not_found(f"port {port_id[:64]}")
    return {"data": {"data": {"port": doc["port"], "port_type": doc["port_type"]}}}


@router.post("/v1/aim-sa/ports/associate", response_model=MessageResponse, summary="lock_port")
async def lock_port(
    body: LockPortRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    pub_id = required_text("pub_id", body.pub_id, max_len=64)
    port_id = required_text("ext_port_id", body.ext_port_id, max_len=64)
    number = required_text("port", body.port, max_len=64)
    wanted_signs = signs("sign", body.sign, max_count=PORT_SIGNS_MAX)
    regions = parse_regions("province", body.province)
    c = context.collections
    tenant = principal.tenant_id
    port = await _get_port(context, tenant, port_id)
    if number != port["port"]:
        raise invalid(f"port {number} is not the number of ext_port_id {port_id} ({port['port']})")
    pub = await get_pub(c, tenant, pub_id)
    if not pub_is_live(pub):
        raise fail(codes.SA_PUB_NOT_APPROVED, "a port can be bound only to an approved, not frozen service number")
    if port["approve_state"] != APPROVED:
        raise fail(codes.SA_PORT_NOT_APPROVED, f"port {port['port']}")
    foreign = [s for s in wanted_signs if s not in port["sign"]]
    if foreign:
        raise invalid(f"sign: {', '.join(foreign)} is not a signature of port {port['port']}")
    existing = await c.sa_ports.find({"tenant_id": tenant, "kind": BINDING, "port_id": port_id}).to_list(None)
    for other in existing:
        shared = [s for s in wanted_signs if s in other["sign"]]
        clash = first_overlap(regions, other["regions"]) if shared else None
        if clash:
            raise fail(
                codes.SA_BINDING_OVERLAP,
                f"signature {shared[0]} in {clash[0]} is already bound in {clash[1]} (binding {other['_id']})",
            )
    await mark_pending(c, tenant, pub["_id"])  # handsets show the service number for this port (sa_publish)
    counted = await c.sa_ports.update_one(
        {"_id": port_id, "tenant_id": tenant, "kind": PORT}, {"$inc": {"bound_count": 1}}
    )
    if counted.matched_count != 1:
        raise not_found(f"port {port_id[:64]}")
    binding_id = new_resource_id()
    try:
        await c.sa_ports.insert_one(
            {
                "_id": binding_id,
                "kind": BINDING,
                "unique_key": f"binding:{binding_id}",
                "tenant_id": tenant,
                "port_id": port_id,
                "port": port["port"],
                "port_type": port["port_type"],
                "sign": wanted_signs,
                "regions": regions,
                "pub_id": pub["_id"],
                "created_at": utc_now(),
                "operator": operator(principal),
            }
        )
    except BaseException:
        await c.sa_ports.update_one({"_id": port_id, "tenant_id": tenant, "kind": PORT}, {"$inc": {"bound_count": -1}})
        raise
    await publish_change(context, tenant, pub["_id"], trace_id=request_id(request), trigger="bind")
    return {"data": {"message": "success", "id": binding_id}}


@router.post("/v1/aim-sa/ports/disassociate", response_model=MessageResponse, summary="unlock_port")
async def unlock_port(
    body: UnlockPortRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    binding_id = required_text("id", body.id, max_len=64)
    c = context.collections
    tenant = principal.tenant_id
    doc = await c.sa_ports.find_one({"_id": binding_id, "tenant_id": tenant, "kind": BINDING})
    if doc is None:
        raise not_found(f"port binding {binding_id}")
    await mark_pending(c, tenant, doc["pub_id"])  # handsets stop showing the service number for it (sa_publish)
    result = await c.sa_ports.delete_one({"_id": binding_id, "tenant_id": tenant, "kind": BINDING})
    if result.deleted_count == 1:
        await c.sa_ports.update_one(
            {"_id": doc["port_id"], "tenant_id": tenant, "kind": PORT}, {"$inc": {"bound_count": -1}}
        )
    await publish_change(context, tenant, doc["pub_id"], trace_id=request_id(request), trigger="unbind")
    return {"data": {"message": "success"}}


# --- media ----------------------------------------------------------------------------------------------------------
def _file_name(upload: UploadFile) -> str:
    name = (upload.filename or "").encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in name if ch.isprintable())[:200]


@router.post("/v1/aim-sa/media/upload", response_model=UploadMediaResponse, summary="upload_media")
async def upload_media(
    file: UploadFile | None = File(None),
    file_type: str | None = Form(None),
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    kind = one_of("file_type", (file_type or "").strip().upper(), FILE_TYPES)
    if file is None:
        raise invalid("file is required (multipart form field 'file')")
    rule = MEDIA_RULES[kind]
    name = _file_name(file)
    data = await read_upload(file, rule.file.max_bytes)
    extension, mime = check_file(rule.file, name, data)
    width, height = dimensions(rule, name or "the image", data)
    tenant = principal.tenant_id
    stored = await context.files.put(tenant, rule.file, name, data, prefix="SAM")
    resource_id = new_resource_id()
    await context.collections.sa_media.insert_one(
        {
            "_id": resource_id,
            "tenant_id": tenant,
            "file_type": kind,
            "file_id": stored.file_id,
            "name": stored.name,
            "extension": extension,
            "mime": mime,
            "size": len(data),
            "width": width,
            "height": height,
            "created_at": utc_now(),
            "operator": operator(principal),
        }
    )
    url = media_url(resource_id)
    assert url is not None
    return {
        "data": {
            "resource_type": RESOURCE_TYPE_IMAGE,
            "resource_id": resource_id,
            "resource_url": url,
            # Magpie extras
            "file_type": kind,
            "width": width,
            "height": height,
            "size": len(data),
        }
    }


class ImageResponse(Response):
    media_type = "image/png"


@router.get(
    "/v1/aim-sa/media/{resource_id}/file",
    response_class=ImageResponse,
    summary="download_sa_media",
    responses={200: {"description": "The image (image/png, image/jpeg or image/bmp)"}},
)
async def download_sa_media(
    resource_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> Response:
    doc = await context.collections.sa_media.find_one({"_id": resource_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"media resource {resource_id[:64]}")
    info, data = await context.files.read(principal.tenant_id, doc["file_id"])
    return Response(content=data, media_type=info.mime)
