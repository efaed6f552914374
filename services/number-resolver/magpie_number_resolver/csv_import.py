"""CSV uploads of the internal import API: bounded body, strict decoding, header check, rows with line numbers.

- Content-Type ``text/csv`` (``application/csv`` and ``text/plain`` are accepted too); the ``charset`` parameter
  picks the encoding (default UTF-8; a UTF-8 byte-order mark is skipped; ``gbk``/``gb18030`` for Excel exports).
- Body larger than the limit (default 50 MB): 413, detected from Content-Length or while streaming (the body is
  never buffered beyond the limit).
- Bytes that are not valid in the encoding: 400 naming the byte offset and line. Malformed quoting (a quote inside
  an unquoted field, text after a closing quote, an unterminated quote): 400 naming the line. Control characters
  (NUL included) pass the CSV layer and are rejected per row by the field rules.
- First non-empty row is the header: column names are case-insensitive and trimmed; every required column must be
  present, unknown or repeated columns are rejected (a typo would silently drop data).
- Blank lines are skipped; line numbers are the file's physical line numbers (header = line 1; a quoted field
  spanning lines counts from the line where the record starts).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})


class UploadError(Exception):
    """An upload that cannot be processed at all (answered with ``status`` and an error code)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def too_large(limit: int) -> UploadError:
    return UploadError(413, "KM.00000413", f"upload larger than {limit} bytes ({limit // (1 << 20)} MB); split it")


def bad_request(message: str) -> UploadError:
    return UploadError(400, "KM.00000400", message)


def charset_of(content_type: str | None) -> str:
    """The codec of a CSV upload from its Content-Type; raises 415 for other media types, 400 for bad charsets."""
    if not content_type:
        raise UploadError(415, "KM.00000415", "Content-Type must be text/csv")
    media, _, params = content_type.partition(";")
    if media.strip().lower() not in CSV_MEDIA_TYPES:
        raise UploadError(415, "KM.00000415", f"Content-Type must be text/csv, got {media.strip()!r}")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise bad_request(f"unknown charset {charset!r}") from None
    return "utf-8-sig" if codec == "utf-8" else codec


async def read_limited(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes without reading past it."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise bad_request("invalid Content-Length") from None
        if declared > limit:
            raise too_large(limit)
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            raise too_large(limit)
    return bytes(buffer)


def decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise bad_request(
            f"the upload is not valid {charset.removesuffix('-sig')}: byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start} (line {line}); save the file as UTF-8 or name its charset in Content-Type"
        ) from None


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    error: str

    def as_json(self) -> dict[str, object]:
        return {"line": self.line, "error": self.error}


class CsvRows:
    """Iterates the data rows of a decoded CSV text, yielding :class:`Row` or :class:`Rejection` per record."""

    def __init__(self, text: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        self._reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        self.required = tuple(required)
        self.optional = tuple(optional)
        self.columns: tuple[str, ...] = ()
        self._started = False

    def _next_record(self) -> tuple[int, list[str]] | None:
        start = self._reader.line_num + 1
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise bad_request(f"line {start}: malformed CSV ({exc})") from None
        return start, record

    def header(self) -> tuple[str, ...]:
        """Read and check the header row; raises 400 (empty input when the file has no header)."""
        while True:
            item = self._next_record()
            if item is None:
                raise UploadError(400, "KM.90016414", "the upload is empty (expected a header row)")
            line, record = item
            if any(cell.strip() for cell in record):
                break
        columns = tuple(cell.strip().lower() for cell in record)
        known = set(self.required) | set(self.optional)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise bad_request(
                f"line {line}: unknown column(s) {', '.join(map(repr, unknown))}; "
                f"columns are {', '.join(self.required)} and optionally {', '.join(self.optional) or 'none'}"
            )
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise bad_request(f"line {line}: repeated column(s) {', '.join(repeated)}")
        missing = [c for c in self.required if c not in columns]
        if missing:
            raise bad_request(f"line {line}: missing required column(s) {', '.join(missing)}")
        self.columns = columns
        self._started = True
        return columns

    def __iter__(self) -> Iterator[Row | Rejection]:
        if not self._started:
            self.header()
        width = len(self.columns)
        while True:
            item = self._next_record()
            if item is None:
                return
            line, record = item
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) != width:
                yield Rejection(line, f"expected {width} fields, got {len(record)}")
                continue
            yield Row(line, dict(zip(self.columns, record, strict=True)))
