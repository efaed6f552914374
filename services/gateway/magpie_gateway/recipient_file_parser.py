"""Reading a recipient file (CSV, TXT or XLSX, up to 1,000,000 numbers) row by row into de-duplicated, columnar
chunks; blocking code, run in a worker thread.

The kind is decided by the content, never the name: a zip container (``PK\\x03\\x04``) is an xlsx workbook (first
sheet, read with python-calamine); other binary content (NUL bytes, a known binary signature) is refused
(KM.00000430); anything else is text, which must be UTF-8, UTF-8 with a BOM or GB18030 (checked over the whole file
before any row is used: KM.00000515 otherwise), split into cells like CSV with the delimiter of the first line
(tab, comma or semicolon; one column is fine).

Layout: the first non-blank row is either a header or, when its first cell is a mobile number, already data (then
the file is one column of numbers). A header names the mobile column (``mobile``, ``cust_flag``, ``phone``,
``手机号``, ``手机号码`` or ``号码``), optionally ``custom_url``, ``sms_params_1`` ... ``sms_params_N`` (the SMS
template's variables other than the link, in order) and the card template's params by name (``name`` or
``${name}``). Broken content (unreadable workbook, a row with more cells than the header, an unnamed or repeated
column, a value too long, a broken CSV quote) answers KM.00000516 naming the row; more than 1,000,000 data rows
KM.90016301; no data row KM.90016414.

Numbers are normalised (separators dropped; mainland numbers, with or without +86 / 0086 / 86, to their 11 digits;
others as ``+`` and 8-15 digits); a number that is neither is counted ``invalid`` and left out; a number seen
before is counted in ``duplicates`` and left out (the first row wins; the seen numbers are kept as ints).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import filetype

from magpie_gateway import codes
from magpie_gateway.aim_templates import param_key
from magpie_gateway.errors import EMPTY_INPUT, TOO_MANY_MOBILES, ErrorCode
from magpie_gateway.send_task_recipients import bad_url

MAX_ROWS = 1_000_000
ROWS_PER_DOC = 5_000
MAX_VALUE_CHARS = 500
MAX_COLUMNS = 64
MOBILE_HEADERS = frozenset({"mobile", "cust_flag", "phone", "手机号", "手机号码", "号码"})
CUSTOM_URL = "custom_url"
SMS_PARAM = re.compile(r"sms_params_([1-9][0-9]?)")
ZIP_MAGIC = b"PK\x03\x04"
_SEPARATORS = re.compile(r"[\s\-\u00a0\u3000()]")
_MAINLAND = re.compile(r"1[3-9]\d{9}")
_INTERNATIONAL = re.compile(r"[1-9]\d{7,14}")
_CHECK_CHUNK = 1024 * 1024


class RecipientFileError(Exception):
    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def malformed(detail: str) -> RecipientFileError:
    return RecipientFileError(codes.RECIPIENT_FILE_MALFORMED, detail)


def normalise_mobile(raw: str) -> str | None:
    """The number in its canonical form (mainland: 11 digits; other: ``+`` and 8-15 digits), or None."""
    text = _SEPARATORS.sub("", raw)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        return text if _MAINLAND.fullmatch(text) else (text[2:] if _is_86(text) else None)
    if not digits.isascii() or not digits.isdigit():
        return None
    if _is_86(digits):
        return digits[2:]
    return "+" + digits if _INTERNATIONAL.fullmatch(digits) else None


def _is_86(digits: str) -> bool:
    return len(digits) == 13 and digits.startswith("86") and bool(_MAINLAND.fullmatch(digits[2:]))


def _number_key(mobile: str) -> int:
    return -int(mobile[1:]) if mobile.startswith("+") else int(mobile)


# --- kinds and encodings ------------------------------------------------------------------------------------------
def kind_of(head: bytes) -> str:
    """``xlsx`` or ``text`` from the first bytes; KM.00000430 for other binary content."""
    if head.startswith(ZIP_MAGIC):
        return "xlsx"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise RecipientFileError(
            codes.RECIPIENT_FILE_ENCODING, "the file is UTF-16 text; save it as UTF-8 (or GB18030)"
        )
    guessed = filetype.guess(head)
    if guessed is not None:
        raise RecipientFileError(
            codes.FILE_REJECTED, f"the file is {guessed.extension}, not CSV, TXT or XLSX (decided by its content)"
        )
    if b"\x00" in head:
        raise RecipientFileError(codes.FILE_REJECTED, "the file is binary, not CSV, TXT or XLSX")
    return "text"


def _decodes(file: IO[bytes], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    file.seek(0)
    try:
        while chunk := file.read(_CHECK_CHUNK):
            if b"\x00" in chunk:
                raise RecipientFileError(codes.FILE_REJECTED, "the file is binary (NUL bytes), not CSV or TXT")
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        file.seek(0)
    return True


def text_encoding(file: IO[bytes]) -> str:
    """``utf-8-sig`` (with a BOM), ``utf-8`` or ``gb18030``: the first that decodes the whole file."""
    head = file.read(4)
    file.seek(0)
    for encoding in ("utf-8-sig", "gb18030") if head.startswith(codecs.BOM_UTF8) else ("utf-8", "gb18030"):
        if _decodes(file, encoding):
            return encoding
        if encoding == "utf-8-sig":
            break  # a BOM promises UTF-8
    raise RecipientFileError(
        codes.RECIPIENT_FILE_ENCODING, "the file is not text in UTF-8, UTF-8 with a BOM or GB18030"
    )


# --- rows ---------------------------------------------------------------------------------------------------------
Row = tuple[int, list[str]]  # (row number in the file, 1-based; its cells)


def text_rows(file: IO[bytes], encoding: str) -> Iterator[Row]:
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    first = text.readline()
    delimiter = max(("\t", ",", ";"), key=first.count) if any(d in first for d in "\t,;") else ","
    text.seek(0)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise malformed(f"row {reader.line_num}: {exc}") from None
    finally:
        text.detach()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # numbers typed into a spreadsheet cell
    return str(value)


def xlsx_rows(file: IO[bytes]) -> Iterator[Row]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(file)
        if not workbook.sheet_names:
            raise malformed("the workbook has no sheet")
        sheet = workbook.get_sheet_by_index(0)
        start = (sheet.start or (0, 0))[0]
        rows = sheet.iter_rows()
    except RecipientFileError:
        raise
    except (CalamineError, ValueError, OSError) as exc:
        raise malformed(f"the file is not a readable xlsx workbook ({type(exc).__name__})") from None
    try:
        for offset, cells in enumerate(rows):
            yield start + offset + 1, [_cell(c) for c in cells]
    except (CalamineError, ValueError) as exc:
        raise malformed(f"the workbook cannot be read past row {start + 1} ({type(exc).__name__})") from None


# --- collecting -----------------------------------------------------------------------------------------------------
@dataclass
class Layout:
    mobile: int
    names: list[str]  # the stored columns other than the mobile: card params, custom_url, sms_params_N
    positions: list[int]  # their cell positions
    width: int  # cells of the header (0: no header)


@dataclass
class ParsedFile:
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    invalid: int = 0
    columns: list[str] = field(default_factory=list)
    chunks: int = 0


Chunk = dict[str, Any]  # {"mobiles": [...], "values": {column: [...]}}


def _layout(number: int, cells: list[str]) -> tuple[Layout, bool]:
    """The layout from the first non-blank row, and whether that row is data (no header)."""
    if normalise_mobile(cells[0]) is not None:
        if any(c.strip() for c in cells[1:]):
            raise malformed(f"row {number}: columns beyond the number need a header row naming them")
        return Layout(0, [], [], 0), True
    labels = [c.strip() for c in cells]
    while labels and not labels[-1]:
        labels.pop()
    if len(labels) > MAX_COLUMNS:
        raise malformed(f"row {number}: at most {MAX_COLUMNS} columns")
    mobile = next((i for i, label in enumerate(labels) if label.lower() in MOBILE_HEADERS), None)
    if mobile is None:
        raise RecipientFileError(
            codes.RECIPIENT_FILE_MALFORMED,
            f"row {number}: no mobile column: the header must name it ({', '.join(sorted(MOBILE_HEADERS))})",
        )
    names: list[str] = []
    positions: list[int] = []
    for i, label in enumerate(labels):
        if i == mobile:
            continue
        if not label:
            raise malformed(f"row {number}: column {i + 1} has no name")
        lowered = label.lower()
        name = lowered if lowered == CUSTOM_URL or SMS_PARAM.fullmatch(lowered) else param_key(label)
        if name in names or name.lower() in MOBILE_HEADERS:
            raise malformed(f"row {number}: column {label!r} is repeated")
        names.append(name)
        positions.append(i)
    return Layout(mobile, names, positions, len(labels)), False


class Collector:
    """Rows in, chunks of ``ROWS_PER_DOC`` kept recipients out (``emit``), counts in ``result``."""

    def __init__(self, emit: Callable[[Chunk], None], *, max_rows: int = MAX_ROWS) -> None:
        self.emit = emit
        self.max_rows = max_rows
        self.result = ParsedFile()
        self.layout: Layout | None = None
        self.seen: set[int] = set()
        self.chunk: Chunk = {}

    def _new_chunk(self) -> None:
        assert self.layout is not None
        self.chunk = {"mobiles": [], "values": {name: [] for name in self.layout.names}}

    def add(self, number: int, cells: list[str]) -> None:
        if not any(c.strip() for c in cells):
            return
        if self.layout is None:
            self.layout, is_data = _layout(number, cells)
            self.result.columns = list(self.layout.names)
            self._new_chunk()
            if not is_data:
                return
        layout = self.layout
        r = self.result
        r.rows += 1
        if r.rows > self.max_rows:
            raise RecipientFileError(TOO_MANY_MOBILES, f"more than {self.max_rows} rows of numbers")
        if layout.width and len(cells) > layout.width and any(c.strip() for c in cells[layout.width :]):
            raise malformed(f"row {number} has {len(cells)} cells, the header names {layout.width} columns")
        raw = cells[layout.mobile] if layout.mobile < len(cells) else ""
        mobile = normalise_mobile(raw)
        if mobile is None:
            r.invalid += 1
            return
        key = _number_key(mobile)
        if key in self.seen:
            r.duplicates += 1
            return
        values = [cells[i].strip() if i < len(cells) else "" for i in layout.positions]
        for name, value in zip(layout.names, values, strict=True):
            if len(value) > MAX_VALUE_CHARS:
                raise malformed(f"row {number}: {name} has more than {MAX_VALUE_CHARS} characters")
            if name == CUSTOM_URL and value and bad_url(value):
                raise malformed(f"row {number}: custom_url must be an http(s) URL of at most 2048 characters")
        self.seen.add(key)
        r.valid += 1
        chunk = self.chunk
        chunk["mobiles"].append(mobile)
        for name, value in zip(layout.names, values, strict=True):
            chunk["values"][name].append(value)
        if len(chunk["mobiles"]) >= ROWS_PER_DOC:
            self.flush()

    def flush(self) -> None:
        if self.chunk.get("mobiles"):
            self.result.chunks += 1
            self.emit(self.chunk)
            self._new_chunk()

    def finish(self) -> ParsedFile:
        self.flush()
        if self.result.rows == 0:
            raise RecipientFileError(EMPTY_INPUT, "the file has no row of numbers")
        self.seen.clear()
        return self.result


def parse(file: IO[bytes], emit: Callable[[Chunk], None], *, max_rows: int | None = None) -> ParsedFile:
    """Parse a whole recipient file (blocking), handing chunks to ``emit`` as they fill up (at most ``max_rows``
    rows of numbers, ``MAX_ROWS`` by default)."""
    file.seek(0)
    head = file.read(8192)
    file.seek(0)
    if not head:
        raise RecipientFileError(EMPTY_INPUT, "the file is empty")
    collector = Collector(emit, max_rows=MAX_ROWS if max_rows is None else max_rows)
    rows = xlsx_rows(file) if kind_of(head) == "xlsx" else text_rows(file, text_encoding(file))
    try:
        for number, cells in rows:
            collector.add(number, cells)
    finally:
        rows.close()  # while the file is open (a refused row stops the reading early)
    return collector.finish()
