"""Files of the console features (filing materials, domain and jump-link materials, export files).

Uploads go through ``FileStore`` (type decided by the content, size limits per ``FileRule``): an upload is stored
once and referenced by ``file_id``; a filing material uploaded for one product can be referenced by the filings of
the other products (KooMessage: "shared data is not re-uploaded across products").

Generated export files (CSV is plain text, which content sniffing cannot recognise) are written here with the same
metadata document ``FileStore`` uses (collection ``files``, bytes in the GridFS bucket ``blobs``), so
``context.files.info/read/delete`` work on them too; ``stream`` yields a stored file in chunks for downloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO, Any
from urllib.parse import quote

from fastapi import UploadFile
from fastapi.responses import StreamingResponse
from gridfs import AsyncGridFSBucket
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.codes import fail
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import ApiError
from magpie_gateway.files import BUCKET, CHUNK, FileRule, StoredFile, read_upload
from magpie_gateway.timefmt import iso, utc_now
from magpie_gateway.validation import invalid

MB = 1024 * 1024


class ConsoleFile(BaseModel):
    """A stored file as the console operations show it."""

    file_id: str = Field(description="id to reference the file with", examples=["CF01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    file_name: str = Field(description="the name it was uploaded with", examples=["business_license.pdf"])
    file_type: str = Field(description="type decided by the content (pdf, jpg, png, rar, zip, xlsx, csv)")
    file_size: int = Field(description="size in bytes", examples=[183204])


class UploadedFile(ConsoleFile):
    purpose: str = Field(description="what the file was uploaded for (decides the accepted types and size)")
    create_time: str | None = Field(None, description="upload time (UTC)", examples=["2026-11-22T08:00:00Z"])


def file_view(stored: StoredFile) -> dict[str, Any]:
    return {
        "file_id": stored.file_id,
        "file_name": stored.name,
        "file_type": stored.extension,
        "file_size": stored.size,
    }


async def upload(
    context: GatewayContext, tenant_id: str, rule: FileRule, file: UploadFile | None, *, purpose: str
) -> dict[str, Any]:
    """Store a multipart upload under ``rule`` (413 above the size, 400 of another type) and describe it."""
    if file is None:
        raise invalid("file is required (multipart/form-data field 'file')")
    data = await read_upload(file, rule.max_bytes)
    stored = await context.files.put(tenant_id, rule, file.filename or "", data, prefix="CF")
    return {**file_view(stored), "purpose": purpose, "create_time": iso(utc_now())}


async def referenced(
    context: GatewayContext, tenant_id: str, file_id: str, *, kind: str, accepted: frozenset[str], what: str
) -> StoredFile:
    """The tenant's stored file ``file_id`` of ``kind`` whose type is one of ``accepted`` (KM.00000505 if not)."""
    try:
        stored = await context.files.info(tenant_id, file_id, kind=kind)
    except ApiError:
        raise fail(codes.CONSOLE_FILE_UNUSABLE, f"{what}: file {file_id} does not exist") from None
    if stored.extension not in accepted:
        raise fail(
            codes.CONSOLE_FILE_UNUSABLE,
            f"{what}: file {file_id} is a {stored.extension} file; accepted: {'/'.join(sorted(accepted))}",
        )
    return stored


class GeneratedFiles:
    """Export files written by the gateway itself (metadata compatible with ``FileStore``)."""

    def __init__(self, database: AsyncDatabase) -> None:
        self._meta = database["files"]
        self._bucket = AsyncGridFSBucket(database, bucket_name=BUCKET)

    async def put(self, tenant_id: str, kind: str, name: str, extension: str, mime: str, source: IO[bytes]) -> str:
        """Upload ``source`` (read from its current position) as a new file; its id."""
        file_id = new_id("EF")
        await self._bucket.upload_from_stream_with_id(
            file_id, name, source, metadata={"tenant_id": tenant_id, "kind": kind}
        )
        size = source.tell()
        await self._meta.insert_one(
            {
                "_id": file_id,
                "tenant_id": tenant_id,
                "kind": kind,
                "name": name,
                "extension": extension,
                "mime": mime,
                "size": size,
                "created_at": utc_now(),
            }
        )
        return file_id

    async def delete(self, file_id: str) -> None:
        """Remove a file whatever its tenant (the caller owns the reference); idempotent."""
        await self._meta.delete_one({"_id": file_id})
        try:
            await self._bucket.delete(file_id)
        except Exception:  # already gone
            pass

    async def chunks(self, file_id: str) -> AsyncIterator[bytes]:
        stream = await self._bucket.open_download_stream(file_id)
        try:
            while True:
                chunk = await stream.read(CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            await stream.close()


def download_response(context: GatewayContext, stored: StoredFile) -> StreamingResponse:
    """Stream a stored file to the client, as an attachment with its name."""
    files = GeneratedFiles(context.collections.database)
    ascii_name = stored.name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(stored.name)}"
    return StreamingResponse(
        files.chunks(stored.file_id),
        media_type=stored.mime,
        headers={"Content-Disposition": disposition, "Content-Length": str(stored.size)},
    )


def rule(kind: str, extensions: set[str], max_mb: int) -> FileRule:
    return FileRule(kind, frozenset(extensions), max_mb * MB)
