"""The recipients of a ``create_aim_send_task`` body, read from its spool in two streaming passes (never held whole).

Pass 1, ``scan`` (before any check that needs the database): the body without ``resolve_task.params`` (the
"head", validated by the caller) and, over the params as they are parsed, what the checks need, in bounded memory:

- the SDK field types of every param (the first wrong one answers KM.00000400, as pydantic would);
- the first position of each kind of failure that does not depend on the tenant's templates (``cust_flag`` blank
  or longer than 64 characters, a bad ``custom_url``, a bad ``custom_short_code``), and for the checks that do:
  the first param's ``dync_params`` names and ``sms_params`` count and the first position where another param
  differs from them (so, once the templates are known, the first param that breaks a check is found exactly as
  a loop over all params would find it);
- de-duplication on ``cust_flag`` (first occurrence wins): the keys seen are ints for numeric flags (``int("1" +
  digits)``, negated with a leading ``+``; exact, ~70 MB for a million) and the positions dropped are one byte
  each (1 MB for a million), so pass 2 needs no set;
- the custom short codes of the recipients kept (at most ``MAX_CUSTOM_CODES``, beyond that the task is refused
  anyway), with their first position;
- the first ``ECHO_MAX + 1`` params as sent (the answer echoes up to 100).

Pass 2, ``recipient_batches``: the kept recipients as ``RecipientBatch`` messages of ``batch_size``, handed over
``chunk_batches`` at a time while the body is parsed (``tasks.accept`` writes their read-model documents and produces
them, chunk by chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from magpie.v1 import task_pb2
from magpie_gateway.aim_templates import param_key
from magpie_gateway.json_stream import RepeatedKey, stream_document
from magpie_gateway.resolve_tasks import CUSTOM_CODE
from magpie_gateway.validation import invalid

PARAMS_PATH = ("resolve_task", "params")
MAX_CUST_FLAG_CHARS = 64
MAX_CUSTOM_URL_CHARS = 2048
MAX_CUSTOM_CODES = 100_000
ECHO_MAX = 100
_TYPES: tuple[tuple[str, type, str], ...] = (
    ("cust_flag", str, "Input should be a valid string"),
    ("dync_params", dict, "Input should be a valid dictionary"),
    ("custom_url", str, "Input should be a valid string"),
    ("custom_short_code", str, "Input should be a valid string"),
    ("sms_params", list, "Input should be a valid list"),
)
_KINDS = {name: kind for name, kind, _ in _TYPES}


def dedup_key(mobile: str) -> int | str:
    """An exact, compact key of a stripped ``cust_flag``: an int for digits (leading zeros kept), else the text."""
    if mobile.isascii():
        if mobile.isdigit():
            return int("1" + mobile)
        if mobile[0] == "+" and mobile[1:].isdigit():
            return -int("1" + mobile[1:])
    return mobile


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def bad_url(url: str) -> bool:
    return len(url) > MAX_CUSTOM_URL_CHARS or not url.lower().startswith(("http://", "https://"))


@dataclass
class RecipientScan:
    """What pass 1 learnt about the params (see the module docstring)."""

    head: Any = None
    params_given: bool = False
    submitted: int = 0
    unique: int = 0
    duplicates: int = 0
    dropped: bytearray = field(default_factory=bytearray)  # 1 at the position of each duplicate
    type_error: tuple[tuple[str | int, ...], str] | None = None  # the first type error (loc, pydantic's message)
    flag_error: int | None = None  # first position with a blank or too long cust_flag
    first_keys: frozenset[str] | None = None
    other_keys: tuple[int, frozenset[str]] | None = None  # first position whose names differ from first_keys
    first_sms: int | None = None
    other_sms: tuple[int, int] | None = None  # first position whose sms_params count differs from first_sms
    url_error: int | None = None  # first bad custom_url
    code_error: int | None = None  # first missing or malformed custom_short_code
    codes: dict[str, int] = field(default_factory=dict)  # custom codes of kept recipients -> first position
    code_repeat: tuple[int, str] | None = None  # first kept recipient repeating a custom code
    echo: list[Any] = field(default_factory=list)


class _Scanner:
    def __init__(self, limit: int) -> None:
        self.result = RecipientScan()
        self.limit = limit
        self.seen: set[int | str] = set()
        self.keysets: dict[tuple[str, ...], frozenset[str]] = {}  # dync_params names as sent -> parameter names

    def take(self, items: list[Any], first: int) -> None:
        r = self.result
        seen = self.seen
        keysets = self.keysets
        dropped = r.dropped
        if len(r.echo) <= ECHO_MAX:
            r.echo.extend(items[: ECHO_MAX + 1 - len(r.echo)])
        position = first - 1
        for item in items:
            position += 1
            if position >= self.limit or r.type_error is not None:  # refused anyway: count only
                continue
            if type(item) is not dict:
                r.type_error = (("body", *PARAMS_PATH, position), "Input should be a valid dictionary")
                continue
            for name, value in item.items():
                kind = _KINDS.get(name)
                if kind is not None and value is not None and type(value) is not kind:
                    r.type_error = _type_error(item, position)
                    break
            if r.type_error is not None or r.flag_error is not None:
                continue
            mobile = item.get("cust_flag")
            mobile = mobile.strip() if mobile else ""
            if not mobile or len(mobile) > MAX_CUST_FLAG_CHARS:
                r.flag_error = position
                continue
            dync = item.get("dync_params")
            raw = tuple(dync) if dync else ()
            keys = keysets.get(raw)
            if keys is None:
                keys = keysets[raw] = frozenset(param_key(n) for n in raw)
            if r.first_keys is None:
                r.first_keys = keys
            elif r.other_keys is None and keys is not r.first_keys and keys != r.first_keys:
                r.other_keys = (position, keys)
            sms = item.get("sms_params")
            count = len(sms) if sms else 0
            if r.first_sms is None:
                r.first_sms = count
            elif r.other_sms is None and count != r.first_sms:
                r.other_sms = (position, count)
            if r.url_error is None:
                url = item.get("custom_url")
                if url and (url := url.strip()) and bad_url(url):
                    r.url_error = position
            code = ""
            if r.code_error is None:
                code = item.get("custom_short_code") or ""
                code = code.strip() if code else ""
                if not CUSTOM_CODE.fullmatch(code):
                    r.code_error = position
            key = dedup_key(mobile)
            if key in seen:
                dropped[position] = 1
                r.duplicates += 1
                continue
            seen.add(key)
            r.unique += 1
            if r.code_error is None and r.code_repeat is None and len(r.codes) < MAX_CUSTOM_CODES:
                if code in r.codes:
                    r.code_repeat = (position, code)
                else:
                    r.codes[code] = position


def _type_error(item: dict[str, Any], position: int) -> tuple[tuple[str | int, ...], str]:
    """The first wrong field in the model's order (as pydantic reports it)."""
    for name, kind, message in _TYPES:
        value = item.get(name)
        if value is not None and type(value) is not kind:
            return ("body", *PARAMS_PATH, position, name), message
    raise AssertionError("no wrong field")


def json_error(exc: Exception) -> Exception:
    if isinstance(exc, RepeatedKey):
        return invalid(f"body.{exc.path}: the key is repeated")
    return invalid(f"body: JSON decode error ({exc})")


def scan(file: IO[bytes], *, max_recipients: int) -> RecipientScan:
    """Pass 1 over the spooled body (``invalid`` for malformed JSON or a repeated key on the params' path)."""
    scanner = _Scanner(max_recipients + 1)
    scanner.result.dropped = bytearray(max_recipients + 1)
    try:
        document = stream_document(file, PARAMS_PATH, scanner.take)
    except (ijson.JSONError, RepeatedKey) as exc:
        raise json_error(exc) from exc
    result = scanner.result
    result.head, result.params_given, result.submitted = document.value, document.found, document.count
    del result.dropped[result.submitted :]
    scanner.seen.clear()
    return result


@dataclass(frozen=True)
class BuildSettings:
    """How pass 2 turns params into recipients (from the checked head and templates)."""

    custom: bool  # generation_type 2: custom short codes, custom_url ignored
    batch_size: int
    chunk_batches: int


Chunk = list[tuple[task_pb2.RecipientBatch, list[str]]]  # (batch, its mobiles), batch-level fields unset


def recipient_batches(
    file: IO[bytes], recipients: RecipientScan, settings: BuildSettings, emit: Callable[[Chunk], None]
) -> int:
    """Pass 2: hand the kept recipients to ``emit`` in chunks of ``settings.chunk_batches`` batches, in order, as
    the body is parsed (``emit`` runs in the parsing thread; it may block, for back-pressure, or raise to stop).
    Returns the number of recipients built."""
    builder = _BatchBuilder(recipients.dropped, settings, emit)
    try:
        stream_document(file, PARAMS_PATH, builder.take)
    except (ijson.JSONError, RepeatedKey) as exc:  # the same bytes passed pass 1: not expected
        raise json_error(exc) from exc
    if builder.batches:
        emit(builder.flush())
    return builder.unique


class _BatchBuilder:
    def __init__(self, dropped: bytearray, settings: BuildSettings, emit: Callable[[Chunk], None]) -> None:
        self.dropped = dropped
        self.settings = settings
        self.emit = emit
        self.batches: Chunk = []
        self.unique = 0
        self.batch_no = 0
        self.plain: dict[tuple[str, ...], bool] = {}  # dync_params names as sent -> already the parameter names

    def flush(self) -> Chunk:
        chunk, self.batches = self.batches, []
        return chunk

    def take(self, items: list[Any], first: int) -> None:
        dropped, plain = self.dropped, self.plain
        size, custom = self.settings.batch_size, self.settings.custom
        batches = self.batches
        batch: task_pb2.RecipientBatch | None = batches[-1][0] if batches else None
        mobiles: list[str] = batches[-1][1] if batches else []
        position = first - 1
        for item in items:
            position += 1
            if dropped[position]:
                continue
            if self.unique % size == 0:
                if len(batches) >= self.settings.chunk_batches:
                    self.emit(self.flush())
                    batches = self.batches
                batch, mobiles = task_pb2.RecipientBatch(batch_no=self.batch_no), []
                batches.append((batch, mobiles))
                self.batch_no += 1
            assert batch is not None
            mobile = item["cust_flag"].strip()
            recipient = batch.recipients.add(index=self.unique, mobile=mobile)
            sms = item.get("sms_params")
            if sms:
                recipient.sms_params.extend([text_of(v) for v in sms])
            if custom:
                recipient.custom_code = item["custom_short_code"].strip()
            else:
                url = item.get("custom_url")
                if url and (url := url.strip()):
                    recipient.custom_url = url
            dync = item.get("dync_params")
            if dync:
                raw = tuple(dync)
                as_sent = plain.get(raw)
                if as_sent is None:
                    as_sent = plain[raw] = all(param_key(n) == n for n in raw)
                try:
                    if not as_sent:
                        raise TypeError
                    recipient.params.update(dync)  # names as the template has them, text values: as they are
                except TypeError:
                    recipient.params.update({param_key(n): text_of(v) for n, v in dync.items()})
            mobiles.append(mobile)
            self.unique += 1
