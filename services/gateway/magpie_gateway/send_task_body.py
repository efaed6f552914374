"""The body of ``create_aim_send_task`` read from its spool instead of by FastAPI (which would hold a million
recipients as pydantic objects, ~2.8 GB): pass 1 of ``send_task_recipients`` (in a worker thread for a big body),
the head (everything but ``resolve_task.params``) validated by the SDK model, errors worded as FastAPI's.

The route declares the body only for the OpenAPI document (``openapi_body``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from magpie_gateway import codes, recipient_files
from magpie_gateway.auth.body_spool import BodySpool, of_scope
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import EMPTY_INPUT, ApiError, validation_error_to_api_error
from magpie_gateway.recipient_files import FileRecipients
from magpie_gateway.recipient_source import THREAD_BYTES, InlineRecipients, RecipientSource
from magpie_gateway.send_task_builder import MAX_RECIPIENTS, Prerequisites, check_recipients
from magpie_gateway.send_task_recipients import scan
from magpie_gateway.task_models import CreateAimSendTaskRequestBody


async def spool_of(request: Request) -> BodySpool:
    """The request's spool (the signature middleware made it); a request it did not see is spooled here."""
    spool = of_scope(request.scope)
    if spool is not None:
        return spool
    spool = BodySpool()
    async for chunk in request.stream():
        spool.write(chunk)
    spool.rewind()
    return spool


def validated(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        raise validation_error_to_api_error(errors) from exc


async def read_send_task(spool: BodySpool) -> tuple[CreateAimSendTaskRequestBody, InlineRecipients]:
    """The checked head and the recipients of the body (pass 1 done)."""
    if spool.size == 0:
        raise ApiError.of(EMPTY_INPUT, "The input is empty: a JSON request body is required")
    file = spool.rewind()
    if spool.size > THREAD_BYTES:
        result = await asyncio.to_thread(scan, file, max_recipients=MAX_RECIPIENTS)
    else:
        result = scan(file, max_recipients=MAX_RECIPIENTS)
    body: CreateAimSendTaskRequestBody = validated(CreateAimSendTaskRequestBody, result.head)
    if result.type_error is not None:
        loc, message = result.type_error
        raise validation_error_to_api_error([{"loc": loc, "msg": message}])
    return body, InlineRecipients(file, spool.size, result)


Check = Callable[[Prerequisites, bool], Awaitable[None]]


def inline_check(recipients: InlineRecipients) -> Check:
    async def check(prerequisites: Prerequisites, custom: bool) -> None:
        check_recipients(recipients.scan, prerequisites, custom)

    return check


async def source_of(
    context: GatewayContext, tenant_id: str, body: CreateAimSendTaskRequestBody, inline: InlineRecipients
) -> tuple[RecipientSource, Check]:
    """The inline params, or the recipient file named by ``resolve_task.recipient_file_id`` (404 when the tenant
    has no such file; KM.00000516 when params are given too)."""
    file_id = ((body.resolve_task.recipient_file_id if body.resolve_task else None) or "").strip()
    if not file_id:
        return inline, inline_check(inline)
    if inline.submitted:
        raise fail(
            codes.RECIPIENT_FILE_MALFORMED, "give resolve_task.params or resolve_task.recipient_file_id, not both"
        )
    source = FileRecipients(context.collections, await recipient_files.find(context.collections, tenant_id, file_id))
    return source, source.check()


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` references replaced by the definitions (self-contained)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON request body of a route that reads it itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(model.model_json_schema())}},
        }
    }
