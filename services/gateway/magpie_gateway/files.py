"""Uploaded files (signature licences, template materials, service-number media, filing documents, exports):
bytes in MongoDB GridFS, metadata in the ``files`` collection, always scoped to the tenant.

The type of an upload is decided by its content (``filetype`` reads the magic bytes), never by its name or the
client's Content-Type: a ``.png`` that is really a zip is refused. Limits are per use (``FileRule``).

``read_upload`` reads a multipart ``UploadFile`` without ever holding more than the limit plus one chunk, so an
oversize upload is refused with a clear error (KM.00000413) instead of being buffered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import filetype
from fastapi import UploadFile
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from magpie_common.ids import new_id
from magpie_gateway import codes
from magpie_gateway.codes import fail, not_found
from magpie_gateway.errors import REQUEST_TOO_LARGE, ApiError
from magpie_gateway.timefmt import utc_now

BUCKET = "blobs"
CHUNK = 256 * 1024


@dataclass(frozen=True)
class FileRule:
    """What one kind of upload accepts: file types (extensions as ``filetype`` names them) and a size limit."""

    kind: str
    extensions: frozenset[str]
    max_bytes: int

    def describe(self) -> str:
        return f"{'/'.join(sorted(self.extensions))} up to {self.max_bytes // 1024} KB"


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    tenant_id: str
    kind: str
    name: str
    extension: str
    mime: str
    size: int

    def view(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_name": self.name,
            "file_type": self.extension,
            "file_size": self.size,
        }


def sniff(data: bytes) -> tuple[str, str] | None:
    """(extension, mime) from the content, or None when the type is not recognised."""
    kind = filetype.guess(data[:8192])
    if kind is None:
        return None
    extension = "jpg" if kind.extension == "jpeg" else kind.extension
    return extension, kind.mime


def check(rule: FileRule, name: str, data: bytes) -> tuple[str, str]:
    """Validate ``data`` against ``rule``: not empty, within the size limit, of an accepted type."""
    if not data:
        raise fail(codes.FILE_REJECTED, f"{name or 'the file'} is empty")
    if len(data) > rule.max_bytes:
        raise ApiError.of(
            REQUEST_TOO_LARGE, f"{REQUEST_TOO_LARGE.message}: {name or 'the file'} exceeds {rule.max_bytes} bytes"
        )
    found = sniff(data)
    accepted = {("jpg" if e == "jpeg" else e) for e in rule.extensions}
    if found is None or found[0] not in accepted:
        seen = found[0] if found else "unknown"
        raise fail(codes.FILE_REJECTED, f"{name or 'the file'} is of type {seen}; accepted: {rule.describe()}")
    return found


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The bytes of a multipart upload, refusing (413) as soon as more than ``max_bytes`` arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await upload.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise ApiError.of(
                REQUEST_TOO_LARGE,
                f"{REQUEST_TOO_LARGE.message}: {upload.filename or 'the file'} exceeds {max_bytes} bytes",
            )
        chunks.append(chunk)


class FileStore:
    """Tenant-scoped file storage: GridFS for the bytes, the ``files`` collection for what the API shows."""

    def __init__(self, database: AsyncDatabase) -> None:
        self._meta = database["files"]
        self._bucket = AsyncGridFSBucket(database, bucket_name=BUCKET)

    async def put(self, tenant_id: str, rule: FileRule, name: str, data: bytes, *, prefix: str = "F") -> StoredFile:
        extension, mime = check(rule, name, data)
        file_id = new_id(prefix)
        await self._bucket.upload_from_stream_with_id(
            file_id, name or file_id, data, metadata={"tenant_id": tenant_id, "kind": rule.kind}
        )
        stored = StoredFile(file_id, tenant_id, rule.kind, name or f"{file_id}.{extension}", extension, mime, len(data))
        await self._meta.insert_one(
            {
                "_id": file_id,
                "tenant_id": tenant_id,
                "kind": rule.kind,
                "name": stored.name,
                "extension": extension,
                "mime": mime,
                "size": len(data),
                "created_at": utc_now(),
            }
        )
        return stored

    async def info(self, tenant_id: str, file_id: str, *, kind: str | None = None) -> StoredFile:
        """The file's metadata; 404 for an unknown id, another tenant's, or one of another kind."""
        query: dict[str, Any] = {"_id": file_id, "tenant_id": tenant_id}
        if kind is not None:
            query["kind"] = kind
        doc = await self._meta.find_one(query)
        if doc is None:
            raise not_found(f"file {file_id}")
        return StoredFile(
            doc["_id"], doc["tenant_id"], doc["kind"], doc["name"], doc["extension"], doc["mime"], doc["size"]
        )

    async def read(self, tenant_id: str, file_id: str, *, kind: str | None = None) -> tuple[StoredFile, bytes]:
        info = await self.info(tenant_id, file_id, kind=kind)
        stream = await self._bucket.open_download_stream(file_id)
        return info, await stream.read()

    async def delete(self, tenant_id: str, file_id: str, *, kind: str | None = None) -> None:
        await self.info(tenant_id, file_id, kind=kind)
        await self._meta.delete_one({"_id": file_id, "tenant_id": tenant_id})
        try:
            await self._bucket.delete(file_id)
        except Exception:  # already gone: deleting is idempotent
            pass
