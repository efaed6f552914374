"""AIM template materials: ``upload_aim_template_material``, ``list_aim_template_materials``,
``delete_template_material``, ``set_primary_video_thumbnail``, ``show_template_video_thumbnail``, and the
Magpie-only ``download_aim_template_material`` (the ``obs_file_url`` of a material). The rules are in
``magpie_gateway.aim_materials``; another tenant's material is answered 404 like an unknown one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pymongo.errors import DuplicateKeyError

from magpie_gateway import codes
from magpie_gateway.aim_materials import (
    FILE_TYPES,
    IMAGE_RATES,
    LISTED_BY_DEFAULT,
    MAX_DELETE_IDS,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    QUOTA_BYTES,
    RESOURCE_TYPES,
    RULES,
    THUMBNAIL,
    VIDEO,
    clean_text,
    decode_stream,
    fetch_url,
    list_thumbnail_view,
    material_view,
    new_resource_id,
    templates_using,
    url_file_name,
    used_bytes,
)
from magpie_gateway.aim_models import (
    DeleteTemplateMaterialRequestBody,
    ListAimTemplateMaterialsResponse,
    NullDataResponse,
    SetPrimaryVideoThumbnailRequestBody,
    ShowTemplateVideoThumbnailResponse,
    UploadAimTemplateMaterialRequestBody,
    UploadAimTemplateMaterialResponse,
)
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail, not_found
from magpie_gateway.context import GatewayContext, get_context
from magpie_gateway.pagination import page
from magpie_gateway.timefmt import utc_now
from magpie_gateway.validation import invalid, regex_filter

router = APIRouter(tags=["AIM template materials"])

OK_STATUS = "200"
OK_MESSAGE = "success"


def _ok(data: Any) -> dict[str, Any]:
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": data}


def _base_url(request: Request) -> str:
    return str(request.base_url)


async def _video(context: GatewayContext, tenant_id: str, aim_resource_id: str | None) -> dict[str, Any]:
    """The tenant's video whose ``aim_resource_id`` is given; 404 unknown, 400 when it is not a video."""
    resource_id = (aim_resource_id or "").strip()
    if not resource_id:
        raise invalid("aim_resource_id is required")
    doc = await context.collections.aim_materials.find_one({"tenant_id": tenant_id, "aim_resource_id": resource_id})
    if doc is None:
        raise not_found(f"material resource {resource_id}")
    if doc["resource_type"] != VIDEO:
        raise invalid(f"aim_resource_id {resource_id} is a {doc['resource_type']}, not a video")
    return doc


@router.post(
    "/v1/aim/template-materials",
    response_model=UploadAimTemplateMaterialResponse,
    summary="upload_aim_template_material",
)
async def upload_aim_template_material(
    body: UploadAimTemplateMaterialRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    resource_type = (body.resource_type or "").strip().lower()
    if resource_type not in RESOURCE_TYPES:
        raise invalid(f"resource_type must be one of {' | '.join(RESOURCE_TYPES)}")
    file_type = (body.file_type or "").strip().lower()
    if file_type not in FILE_TYPES:
        raise invalid(f"file_type must be one of {' | '.join(FILE_TYPES)}")
    image_rate = (body.image_rate or "").strip() or None
    if image_rate is not None and image_rate not in IMAGE_RATES:
        raise invalid(f"image_rate must be one of {' | '.join(IMAGE_RATES)}")
    if resource_type == "image" and image_rate is None:
        raise invalid("image_rate is required for an image")
    description = clean_text("description", body.description, max_chars=MAX_DESCRIPTION_CHARS)
    video: dict[str, Any] | None = None
    if resource_type == THUMBNAIL:
        video_id = (body.material_id or "").strip()
        if not video_id:
            raise invalid("material_id (the material_id of the video) is required for a thumbnail")
        video = await context.collections.aim_materials.find_one({"_id": video_id, "tenant_id": tenant})
        if video is None:
            raise not_found(f"material {video_id}")
        if video["resource_type"] != VIDEO:
            raise invalid(f"material {video_id} is a {video['resource_type']}: thumbnails belong to videos")
    rule = RULES[resource_type]
    if file_type == "stream":
        name = clean_text("file_name", body.file_name, max_chars=MAX_NAME_CHARS, required=True) or ""
        data = decode_stream(body.file_stream, rule, name)
    else:
        url = (body.file_url or "").strip()
        if not url:
            raise invalid("file_url is required when file_type is url")
        default_name = url_file_name(url, resource_type)
        name = clean_text("file_name", body.file_name or default_name, max_chars=MAX_NAME_CHARS, required=True) or ""
        data = await fetch_url(url, rule, allow_loopback=context.config.allow_loopback_callbacks)
    if await used_bytes(context.collections, tenant) + len(data) > QUOTA_BYTES:
        raise fail(codes.MATERIAL_QUOTA_EXCEEDED, f"materials may take {QUOTA_BYTES // 1024**3} GB in all")
    stored = await context.files.put(tenant, rule, name, data, prefix="MF")  # type by content: 400 / 413
    doc: dict[str, Any] = {
        "_id": f"MT{stored.file_id[2:]}",
        "tenant_id": tenant,
        "resource_type": resource_type,
        "file_id": stored.file_id,
        "file_name": stored.name,
        "extension": stored.extension,
        "mime": stored.mime,
        "size": stored.size,
        "image_rate": image_rate,
        "description": description,
        "source": file_type,
        "source_url": (body.file_url or "").strip() if file_type == "url" else None,
        "created_at": utc_now(),
        "operator": principal.user_name or principal.user_id,
    }
    if video is not None:
        has_primary = await context.collections.aim_materials.find_one(
            {"tenant_id": tenant, "video_id": video["_id"], "is_primary": 1}, {"_id": 1}
        )
        doc |= {"video_id": video["_id"], "is_primary": 0 if has_primary else 1, "is_auto_gen": 1}
    try:
        while True:  # aim_resource_id is unique across tenants
            doc["aim_resource_id"] = new_resource_id()
            try:
                await context.collections.aim_materials.insert_one(doc)
                break
            except DuplicateKeyError:
                continue
    except BaseException:
        await context.files.delete(tenant, stored.file_id)
        raise
    return _ok({"material_id": doc["_id"], "aim_resource_id": doc["aim_resource_id"]})


@router.get(
    "/v1/aim/template-materials",
    response_model=ListAimTemplateMaterialsResponse,
    summary="list_aim_template_materials",
)
async def list_aim_template_materials(
    request: Request,
    resource_type: str | None = None,
    file_name: str | None = None,
    material_id: str | None = None,
    aim_resource_id: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    if offset is not None and offset < 0:
        raise invalid("offset (the page number, from 1) must be >= 1")
    page_no = max(offset or 1, 1)
    paging = page(0, limit)
    query: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if resource_type:
        kind = resource_type.strip().lower()
        if kind not in RESOURCE_TYPES:
            raise invalid(f"resource_type must be one of {' | '.join(RESOURCE_TYPES)}")
        query["resource_type"] = kind
    else:
        query["resource_type"] = {"$in": list(LISTED_BY_DEFAULT)}
    if file_name:
        query["file_name"] = regex_filter(file_name)
    if material_id:
        query["_id"] = material_id.strip()
    if aim_resource_id:
        query["aim_resource_id"] = aim_resource_id.strip()
    collection = context.collections.aim_materials
    total = await collection.count_documents(query)
    skip = (page_no - 1) * paging.limit
    docs: list[dict[str, Any]] = []
    if skip < total:
        cursor = collection.find(query).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(paging.limit)
        docs = await cursor.to_list(None)
    video_ids = [d["_id"] for d in docs if d["resource_type"] == VIDEO]
    primaries: dict[str, dict[str, Any]] = {}
    if video_ids:
        async for thumb in collection.find(
            {"tenant_id": principal.tenant_id, "video_id": {"$in": video_ids}, "is_primary": 1}
        ):
            primaries[thumb["video_id"]] = thumb
    base = _base_url(request)
    return _ok(
        {
            "page_info": {"offset": page_no, "limit": paging.limit, "total": total},
            "results": [material_view(d, base, primaries.get(d["_id"])) for d in docs],
        }
    )


@router.post("/v1/aim/template-materials/delete", response_model=NullDataResponse, summary="delete_template_material")
async def delete_template_material(
    body: DeleteTemplateMaterialRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    ids = list(dict.fromkeys(i.strip() for i in body.material_ids or [] if i and i.strip()))
    if not ids:
        raise invalid("material_ids must name at least one material")
    if len(ids) > MAX_DELETE_IDS:
        raise invalid(f"at most {MAX_DELETE_IDS} material_ids per request")
    collection = context.collections.aim_materials
    docs = await collection.find({"_id": {"$in": ids}, "tenant_id": tenant}).to_list(None)
    missing = sorted(set(ids) - {d["_id"] for d in docs})
    if missing:
        raise not_found(f"materials {', '.join(missing)}")
    videos = [d["_id"] for d in docs if d["resource_type"] == VIDEO]
    if videos:
        known = {d["_id"] for d in docs}
        docs += [
            d
            for d in await collection.find({"tenant_id": tenant, "video_id": {"$in": videos}}).to_list(None)
            if d["_id"] not in known
        ]
    used = await templates_using(context.collections, tenant, {d["aim_resource_id"] for d in docs})
    if used:
        resource, tpl_id = sorted(used.items())[0]
        raise fail(codes.MATERIAL_IN_USE, f"resource {resource} is used by AIM template {tpl_id}")
    await collection.delete_many({"_id": {"$in": [d["_id"] for d in docs]}, "tenant_id": tenant})
    for doc in docs:
        try:
            await context.files.delete(tenant, doc["file_id"])
        except Exception:  # the bytes are already gone: nothing left to free
            pass
    # A video that lost its primary thumbnail (and keeps others) gets its newest remaining one as primary.
    orphaned = {
        d["video_id"] for d in docs if d.get("is_primary") and d.get("video_id") and d["video_id"] not in videos
    }
    for video_id in orphaned:
        newest = await collection.find_one(
            {"tenant_id": tenant, "video_id": video_id}, sort=[("created_at", -1), ("_id", -1)]
        )
        if newest is not None:
            await collection.update_one({"_id": newest["_id"], "tenant_id": tenant}, {"$set": {"is_primary": 1}})
    return _ok(None)


@router.post(
    "/v1/aim/template-material-thumbnails", response_model=NullDataResponse, summary="set_primary_video_thumbnail"
)
async def set_primary_video_thumbnail(
    body: SetPrimaryVideoThumbnailRequestBody,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    tenant = principal.tenant_id
    thumbnail_id = (body.thumbnail_id or "").strip()
    if not thumbnail_id:
        raise invalid("thumbnail_id is required")
    video = await _video(context, tenant, body.aim_resource_id)
    collection = context.collections.aim_materials
    thumb = await collection.find_one({"_id": thumbnail_id, "tenant_id": tenant, "resource_type": THUMBNAIL})
    if thumb is None:
        raise not_found(f"thumbnail {thumbnail_id}")
    if thumb.get("video_id") != video["_id"]:
        raise invalid(f"thumbnail {thumbnail_id} is not a thumbnail of video {video['aim_resource_id']}")
    await collection.update_one({"_id": thumbnail_id, "tenant_id": tenant}, {"$set": {"is_primary": 1}})
    await collection.update_many(
        {"tenant_id": tenant, "video_id": video["_id"], "_id": {"$ne": thumbnail_id}}, {"$set": {"is_primary": 0}}
    )
    return _ok(None)


@router.get(
    "/v1/aim/template-material-thumbnails",
    response_model=ShowTemplateVideoThumbnailResponse,
    summary="show_template_video_thumbnail",
)
async def show_template_video_thumbnail(
    request: Request,
    aim_resource_id: str | None = None,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    video = await _video(context, principal.tenant_id, aim_resource_id)
    thumbs = (
        await context.collections.aim_materials.find({"tenant_id": principal.tenant_id, "video_id": video["_id"]})
        .sort([("created_at", 1), ("_id", 1)])
        .to_list(None)
    )
    base = _base_url(request)
    return _ok([list_thumbnail_view(t, base) for t in thumbs])


@router.get("/v1/aim/template-materials/{material_id}/file", summary="download_aim_template_material")
async def download_aim_template_material(
    material_id: str,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> Response:
    doc = await context.collections.aim_materials.find_one({"_id": material_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise not_found(f"material {material_id}")
    info, data = await context.files.read(principal.tenant_id, doc["file_id"])
    return Response(
        content=data,
        media_type=info.mime,
        headers={"Content-Disposition": f'attachment; filename="{doc["_id"]}.{info.extension}"'},
    )
