"""Receipt callbacks: ``add_call_back`` and ``list_aim_callbacks``.

One URL per tenant and ``url_type`` (registering again replaces it and keeps its id). Every change is produced
as ``CallbackConfigured`` on the compacted CALLBACKS topic, keyed ``<tenant_id>:<url_type>`` so compaction
keeps the latest registration of each type, for the dispatcher's receipt sender.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pymongo import ReturnDocument

from magpie.v1 import billing_pb2
from magpie_common.ids import new_id, stable_id
from magpie_common.topics import CALLBACKS
from magpie_gateway import codes
from magpie_gateway.aim_models import AddCallbackRequestBody, AddCallBackResponse, ListAimCallbacksResponse
from magpie_gateway.auth import Principal, get_principal
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext, event_meta, get_context, request_id
from magpie_gateway.timefmt import utc_now
from magpie_gateway.urls import UrlRejected, check_public_url
from magpie_gateway.validation import invalid

router = APIRouter(tags=["Callbacks"])

URL_TYPES = (0, 1, 2)  # 0 single send receipts, 1 template status, 2 batch send receipts
OK_STATUS = "200"
OK_MESSAGE = "success"


def callback_key(tenant_id: str, url_type: int) -> str:
    return f"{tenant_id}:{url_type}"


def callback_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"callback_url": doc["callback_url"], "id": doc["_id"], "url_type": doc["url_type"]}


@router.post("/v1/aim/callbacks", response_model=AddCallBackResponse, summary="add_call_back")
async def add_call_back(
    body: AddCallbackRequestBody,
    request: Request,
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    if body.url_type is None or body.url_type not in URL_TYPES:
        raise invalid("url_type must be 0 (single receipts), 1 (template status) or 2 (batch receipts)")
    url = (body.callback_url or "").strip()
    try:
        await check_public_url(url, allow_loopback=context.config.allow_loopback_callbacks)
    except UrlRejected as exc:
        raise fail(codes.URL_REJECTED, f"callback_url: {exc}") from None
    tenant = principal.tenant_id
    now = utc_now()
    doc = await context.collections.callbacks.find_one_and_update(
        {"tenant_id": tenant, "url_type": body.url_type},
        {
            "$set": {"callback_url": url, "updated_at": now},
            "$inc": {"revision": 1},
            "$setOnInsert": {"_id": new_id("CB"), "created_at": now},
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    event = billing_pb2.CallbackConfigured(
        meta=event_meta(stable_id("callback-configured", doc["_id"], doc["revision"]), tenant, request_id(request)),
        callback_id=doc["_id"],
        url_type=body.url_type,
        url=url,
        aim_url="",
        deleted=False,
    )
    await context.producer.send(CALLBACKS, callback_key(tenant, body.url_type), event)
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": callback_view(doc)}


@router.get("/v1/aim/callbacks", response_model=ListAimCallbacksResponse, summary="list_aim_callbacks")
async def list_aim_callbacks(
    principal: Principal = Depends(get_principal),
    context: GatewayContext = Depends(get_context),
) -> dict[str, Any]:
    docs = (
        await context.collections.callbacks.find({"tenant_id": principal.tenant_id}).sort("url_type", 1).to_list(None)
    )
    return {"status": OK_STATUS, "message": OK_MESSAGE, "data": [callback_view(d) for d in docs]}
