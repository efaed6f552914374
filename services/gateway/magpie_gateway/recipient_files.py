"""Recipient files (Magpie extension, as KooMessage's console takes them): stored once parsed, used by send tasks.

Storage (MongoDB, so any gateway replica serves any file): ``recipient_files`` holds the metadata (tenant, name,
counts, columns, ``state``), ``recipient_file_rows`` the de-duplicated valid rows, ``ROWS_PER_DOC`` per document,
columnar (``mobiles`` and one list per column), numbered ``n`` from 0. An upload writes its metadata as
``UPLOADING`` and its rows with an ``expires_at`` an hour ahead (a TTL index removes what a crashed upload left),
then marks the file ``READY`` and clears ``expires_at``; a refused file has its documents deleted before the
answer. Only ``READY`` files of the caller's tenant are ever found (another tenant's ``file_id`` is 404).

A send task names a file with ``resolve_task.recipient_file_id`` instead of ``resolve_task.params``:
``FileRecipients`` checks the file's columns against the templates (the card template's params exactly:
KM.90016802; ``sms_params_1..N`` for the SMS template's N variables other than the link: KM.00001376; custom short
codes need inline params: KM.00000516) and reads the rows document by document into ``RecipientBatch`` messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import IO, Any

from magpie.v1 import task_pb2
from magpie_gateway import codes
from magpie_gateway.codes import fail, not_found
from magpie_gateway.db import Collections
from magpie_gateway.errors import CARD_PARAMS_MISMATCH, SMS_PARAMS_COUNT_MISMATCH, ApiError
from magpie_gateway.recipient_file_parser import (
    CUSTOM_URL,
    ROWS_PER_DOC,
    SMS_PARAM,
    Chunk,
    ParsedFile,
    RecipientFileError,
    parse,
)
from magpie_gateway.recipient_source import RecipientSource
from magpie_gateway.send_task_builder import Prerequisites
from magpie_gateway.send_task_recipients import BuildSettings
from magpie_gateway.send_task_recipients import Chunk as BatchChunk
from magpie_gateway.timefmt import iso, utc_now

UPLOADING = "UPLOADING"
READY = "READY"
UPLOAD_LEASE = timedelta(hours=1)
DOCS_PER_INSERT = 4  # 20,000 rows per insert_many
MAX_FILE_BYTES = 64 * 1024 * 1024


def view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "file_id": doc["_id"],
        "file_name": doc.get("file_name"),
        "rows": doc["rows"],
        "valid": doc["valid"],
        "duplicates": doc["duplicates"],
        "invalid": doc["invalid"],
        "columns": doc["columns"],
        "size": doc.get("size"),
        "created_at": iso(doc.get("created_at")),
    }


async def store(
    collections: Collections,
    *,
    tenant_id: str,
    file_id: str,
    file_name: str | None,
    file: IO[bytes],
    size: int,
) -> dict[str, Any]:
    """Parse ``file`` (in a worker thread) and store its rows; the stored metadata. ``RecipientFileError`` for a
    file that cannot be used (nothing of it is left)."""
    now = utc_now()
    expires = now + UPLOAD_LEASE
    meta = {"_id": file_id, "tenant_id": tenant_id, "file_name": file_name, "state": UPLOADING, "size": size}
    meta |= {"created_at": now, "expires_at": expires}
    rows, loop = collections.recipient_file_rows, asyncio.get_running_loop()
    await collections.recipient_files.delete_one({"_id": file_id, "tenant_id": tenant_id, "state": UPLOADING})
    await rows.delete_many({"file_id": file_id})  # what an interrupted attempt with the same id left
    await collections.recipient_files.insert_one(meta)
    pending: list[dict[str, Any]] = []
    count = 0

    async def insert(docs: list[dict[str, Any]]) -> None:
        await rows.insert_many(docs, ordered=False)

    def emit(chunk: Chunk) -> None:
        nonlocal count
        pending.append({"_id": f"{file_id}:{count}", "file_id": file_id, "n": count, **chunk, "expires_at": expires})
        count += 1
        if len(pending) >= DOCS_PER_INSERT:
            docs = pending[:]
            pending.clear()
            asyncio.run_coroutine_threadsafe(insert(docs), loop).result()

    try:
        parsed: ParsedFile = await asyncio.to_thread(parse, file, emit)
        if pending:
            await insert(pending)
        await rows.update_many({"file_id": file_id}, {"$unset": {"expires_at": ""}})
        done = {"state": READY, "rows": parsed.rows, "valid": parsed.valid, "duplicates": parsed.duplicates}
        done |= {"invalid": parsed.invalid, "columns": parsed.columns, "docs": parsed.chunks}
        await collections.recipient_files.update_one({"_id": file_id}, {"$set": done, "$unset": {"expires_at": ""}})
    except BaseException:
        await rows.delete_many({"file_id": file_id})
        await collections.recipient_files.delete_one({"_id": file_id})
        raise
    return {**meta, **done}


def refused(exc: RecipientFileError) -> ApiError:
    return fail(exc.code, exc.detail)


async def find(collections: Collections, tenant_id: str, file_id: str) -> dict[str, Any]:
    doc = await collections.recipient_files.find_one({"_id": file_id, "tenant_id": tenant_id, "state": READY})
    if doc is None:
        raise not_found(f"recipient file {file_id}")
    return doc


async def delete(collections: Collections, tenant_id: str, file_id: str) -> None:
    doc = await find(collections, tenant_id, file_id)
    await collections.recipient_files.delete_one({"_id": doc["_id"]})
    await collections.recipient_file_rows.delete_many({"file_id": doc["_id"]})


class FileRecipients(RecipientSource):
    """The recipients of a stored file (see the module docstring)."""

    def __init__(self, collections: Collections, doc: dict[str, Any]) -> None:
        self.collections = collections
        self.doc = doc
        self.file_id: str = doc["_id"]
        self.submitted = int(doc["rows"])
        self.unique = int(doc["valid"])
        self.duplicates = int(doc["duplicates"])
        self.invalid = int(doc["invalid"])
        self.columns: list[str] = list(doc["columns"])

    def check(self) -> Callable[[Prerequisites, bool], Awaitable[None]]:
        async def check(prerequisites: Prerequisites, custom: bool) -> None:
            check_columns(self.columns, prerequisites, custom)

        return check

    async def chunks(self, settings: BuildSettings) -> AsyncIterator[BatchChunk]:
        pending: BatchChunk = []
        cursor = self.collections.recipient_file_rows.find({"file_id": self.file_id}).sort("n", 1)
        async for doc in cursor:
            pending.extend(await asyncio.to_thread(file_batches, doc, settings))
            if len(pending) >= settings.chunk_batches:
                yield pending
                pending = []
        if pending:
            yield pending


def check_columns(columns: list[str], prerequisites: Prerequisites, custom: bool) -> None:
    if custom:
        raise fail(codes.RECIPIENT_FILE_MALFORMED, "custom short codes (generation_type 2) need inline params")
    card_params = sorted(p["key"] for p in prerequisites.aim_template.get("params", []))
    card_columns = sorted(c for c in columns if c != CUSTOM_URL and not SMS_PARAM.fullmatch(c))
    if card_columns != card_params:
        raise ApiError.of(
            CARD_PARAMS_MISMATCH,
            f"{CARD_PARAMS_MISMATCH.message}: the file has columns {card_columns}, the template expects {card_params}",
        )
    sms_count = len(prerequisites.other_variables)
    sms_columns = sorted(c for c in columns if SMS_PARAM.fullmatch(c))
    if sms_columns != sorted(f"sms_params_{i}" for i in range(1, sms_count + 1)):
        raise ApiError.of(
            SMS_PARAMS_COUNT_MISMATCH,
            f"{SMS_PARAMS_COUNT_MISMATCH.message}: the file has {sms_columns or 'no sms_params columns'}, "
            f"the SMS template needs sms_params_1 to sms_params_{sms_count}"
            if sms_count
            else f"{SMS_PARAMS_COUNT_MISMATCH.message}: the SMS template takes no sms_params, the file has "
            f"{sms_columns}",
        )


def file_batches(doc: dict[str, Any], settings: BuildSettings) -> BatchChunk:
    """The RecipientBatches of one rows document (``ROWS_PER_DOC`` is a multiple of the batch size)."""
    mobiles: list[str] = doc["mobiles"]
    values: dict[str, list[str]] = doc.get("values") or {}
    card = [(name, column) for name, column in values.items() if name != CUSTOM_URL and not SMS_PARAM.fullmatch(name)]
    sms = [values[f"sms_params_{i}"] for i in range(1, len(values) + 1) if f"sms_params_{i}" in values]
    urls = values.get(CUSTOM_URL)
    first = int(doc["n"]) * ROWS_PER_DOC
    size = settings.batch_size
    out: BatchChunk = []
    for start in range(0, len(mobiles), size):
        index = first + start
        batch = task_pb2.RecipientBatch(batch_no=index // size)
        for i in range(start, min(start + size, len(mobiles))):
            recipient = batch.recipients.add(index=first + i, mobile=mobiles[i])
            if urls is not None and urls[i]:
                recipient.custom_url = urls[i]
            if sms:
                recipient.sms_params.extend(column[i] for column in sms)
            if card:
                recipient.params.update({name: column[i] for name, column in card})
        out.append((batch, mobiles[start : start + size]))
    return out
