"""Server-side verification of the Huawei Cloud SDK ``SDK-HMAC-SHA256`` request signature.

This mirrors ``huaweicloudsdkcore.signer.signer.Signer`` (huaweicloudsdkcore 3.1.219) from what the server
receives on the wire:

* canonical request = ``METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nPAYLOAD_HASH`` where

  - URI: the raw path is percent-decoded, split on ``/``, every segment re-encoded with
    ``quote(segment, safe="~")`` and joined; a trailing ``/`` is appended when missing (so ``/v1/x`` and
    ``/v1/x/`` sign identically, and an encoded ``%2F`` inside a segment signs like a real ``/``);
  - QUERY: every ``key=value`` pair percent-decoded (``+`` is a literal plus, as the SDK always sends
    ``%20`` for a space and ``%2B`` for a plus), sorted by ``(key, value)``, both re-encoded with
    ``quote(..., safe="~")`` and joined with ``&`` (a bare ``key`` counts as ``key=``);
  - HEADERS: ``name:value`` for every signed header, lower-case name, stripped value, each followed by
    ``\\n``; header bytes are read as UTF-8 (the SDK sends non-ASCII header values as UTF-8 bytes);
  - PAYLOAD_HASH: hex SHA-256 of the body, the constant hash of ``b""`` for an empty body, or the signed
    ``X-Sdk-Content-Sha256`` header value (``UNSIGNED-PAYLOAD`` for multipart/octet-stream uploads);
* string to sign = ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<hex sha256(canonical request)>``;
* signature = hex HMAC-SHA256(secret key, string to sign);
* ``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<a;b;c>, Signature=<hex>``.

Beyond what the SDK needs, the verifier insists that ``x-sdk-date`` is a signed header (otherwise the
clock-skew window would be meaningless), compares signatures in constant time, and honours
``X-Sdk-Content-Sha256`` only when it is itself signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "x-sdk-date"
CONTENT_SHA256_HEADER = "x-sdk-content-sha256"
AUTHORIZATION_HEADER = "authorization"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
DEFAULT_MAX_SKEW = timedelta(minutes=15)

_MAX_AUTHORIZATION_LENGTH = 8192
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^`|~0-9a-z]+")
_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_HEX_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")

HeaderInput = Mapping[str, str] | Iterable[tuple[bytes, bytes]]
"""Either raw ASGI header pairs (bytes, as on the wire) or an already-decoded ``name -> value`` mapping."""


class SignatureError(Exception):
    """Base class of every signature verification failure; ``reason`` is safe to return to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedAuthorizationError(SignatureError):
    """The Authorization header is missing, unparsable, uses another algorithm, or signs too little."""


class MissingDateError(SignatureError):
    """The ``X-Sdk-Date`` header is absent."""


class InvalidDateError(SignatureError):
    """The ``X-Sdk-Date`` header is not ``YYYYMMDDTHHMMSSZ``."""


class ClockSkewError(SignatureError):
    """``X-Sdk-Date`` is further from the server clock than the allowed window."""


class SignatureMismatchError(SignatureError):
    """The recomputed signature (or the declared payload hash) does not match."""


class BodyDigest(NamedTuple):
    """A body known by its size and hex SHA-256 (hashed while it streamed in), in place of its bytes."""

    size: int
    sha256_hex: str


Body = bytes | BodyDigest


class AuthorizationHeader(NamedTuple):
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> AuthorizationHeader:
    """Parse ``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex``.

    Raises ``MalformedAuthorizationError`` for anything else (other algorithms included).
    """
    if header is None or not header.strip():
        raise MalformedAuthorizationError("Authorization header is missing")
    if len(header) > _MAX_AUTHORIZATION_LENGTH:
        raise MalformedAuthorizationError("Authorization header is too long")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise MalformedAuthorizationError(f"unsupported signing algorithm, expected {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in ("Access", "SignedHeaders", "Signature"):
            raise MalformedAuthorizationError("Authorization header has an unexpected field")
        if name in fields:
            raise MalformedAuthorizationError(f"Authorization header repeats {name}")
        fields[name] = value.strip()
    missing = [name for name in ("Access", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise MalformedAuthorizationError(f"Authorization header lacks {', '.join(missing)}")
    signature = fields["Signature"]
    if not _SIGNATURE_RE.fullmatch(signature):
        raise MalformedAuthorizationError("Signature must be 64 lower-case hex digits")
    signed_headers = tuple(fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME_RE.fullmatch(name) for name in signed_headers):
        raise MalformedAuthorizationError("SignedHeaders must be lower-case header names separated by ';'")
    if len(set(signed_headers)) != len(signed_headers):
        raise MalformedAuthorizationError("SignedHeaders repeats a header")
    return AuthorizationHeader(fields["Access"], signed_headers, signature)


def _decode_header_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def normalize_headers(headers: HeaderInput) -> dict[str, list[str]]:
    """Lower-case names mapped to their values in arrival order (raw bytes are decoded as UTF-8)."""
    result: dict[str, list[str]] = {}
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            result.setdefault(name.lower(), []).append(value)
        return result
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        result.setdefault(name, []).append(_decode_header_bytes(raw_value))
    return result


def canonical_uri(path: str) -> str:
    """The SDK's canonical URI of a raw (possibly percent-encoded) request path."""
    encoded = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    if not encoded.endswith("/"):
        encoded += "/"
    return encoded


def canonical_query_string(query_string: str) -> str:
    """The SDK's canonical query string of a raw query string (without the leading ``?``)."""
    pairs: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    pairs.sort()
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def canonical_headers(headers: Mapping[str, list[str]], signed_headers: Iterable[str]) -> str:
    lines = []
    for name in signed_headers:
        values = headers.get(name)
        if not values:
            raise MalformedAuthorizationError(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:{','.join(value.strip() for value in values)}")
    return "\n".join(lines) + "\n"


def payload_hash(
    body: Body,
    headers: Mapping[str, list[str]],
    signed_headers: Iterable[str],
    *,
    allow_unsigned_payload: bool = True,
) -> str:
    """The payload hash the SDK put in the canonical request (``body``: the bytes, or their ``BodyDigest``)."""
    if isinstance(body, BodyDigest):
        if not body.size:
            return EMPTY_BODY_SHA256
        actual = body.sha256_hex
    elif not body:
        return EMPTY_BODY_SHA256
    else:
        actual = hashlib.sha256(body).hexdigest()
    declared_values = headers.get(CONTENT_SHA256_HEADER)
    if not declared_values or CONTENT_SHA256_HEADER not in signed_headers:
        return actual
    declared = declared_values[-1].strip()
    if declared == UNSIGNED_PAYLOAD:
        if not allow_unsigned_payload:
            raise SignatureMismatchError("unsigned payloads are not accepted")
        return declared
    if not _HEX_SHA256_RE.fullmatch(declared) or not hmac.compare_digest(declared.lower(), actual):
        raise SignatureMismatchError("body does not match X-Sdk-Content-Sha256")
    return declared


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, list[str]],
    signed_headers: tuple[str, ...],
    body: Body,
    *,
    allow_unsigned_payload: bool = True,
) -> str:
    """Rebuild the SDK's canonical request; ``headers`` as returned by ``normalize_headers``."""
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query_string),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash(body, headers, signed_headers, allow_unsigned_payload=allow_unsigned_payload),
        )
    )


def string_to_sign(canonical: str, signed_at: datetime) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{signed_at.strftime(DATE_FORMAT)}\n{digest}"


def compute_signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_sdk_date(value: str) -> datetime:
    """Parse ``X-Sdk-Date`` (``YYYYMMDDTHHMMSSZ``, UTC) into an aware datetime."""
    text = value.strip()
    if not _DATE_RE.fullmatch(text):
        raise InvalidDateError("X-Sdk-Date must look like 20240131T235959Z")
    try:
        return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidDateError("X-Sdk-Date is not a valid date") from exc


def check_clock_skew(signed_at: datetime, now: datetime, max_skew: timedelta) -> None:
    if abs(now - signed_at) > max_skew:
        minutes = max_skew.total_seconds() / 60
        raise ClockSkewError(f"X-Sdk-Date is more than {minutes:g} minutes away from the server time")


def verify(
    method: str,
    path: str,
    query_string: str,
    headers: HeaderInput,
    body: Body,
    secret_key: str,
    *,
    authorization: AuthorizationHeader | None = None,
    now: datetime | None = None,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    allow_unsigned_payload: bool = True,
) -> None:
    """Verify an ``SDK-HMAC-SHA256`` signed request as received by the server.

    ``path`` is the raw request path (ASGI ``raw_path``), ``query_string`` the raw query without ``?``; ``body`` the
    bytes or, for a body spooled as it arrived, its ``BodyDigest``.
    ``authorization`` may be passed when already parsed (it is otherwise read from ``headers``).
    ``now`` defaults to the current UTC time. Returns normally when the signature is valid and raises a
    ``SignatureError`` subclass otherwise.
    """
    normalized = normalize_headers(headers)
    if authorization is None:
        values = normalized.get(AUTHORIZATION_HEADER)
        authorization = parse_authorization(values[0] if values and len(values) == 1 else None)
    date_values = normalized.get(DATE_HEADER)
    if not date_values:
        raise MissingDateError("X-Sdk-Date header is missing")
    if len(date_values) != 1:
        raise InvalidDateError("X-Sdk-Date header is repeated")
    if DATE_HEADER not in authorization.signed_headers:
        raise MalformedAuthorizationError("SignedHeaders must include x-sdk-date")
    signed_at = parse_sdk_date(date_values[0])
    check_clock_skew(signed_at, now if now is not None else datetime.now(UTC), max_skew)
    canonical = canonical_request(
        method,
        path,
        query_string,
        normalized,
        authorization.signed_headers,
        body,
        allow_unsigned_payload=allow_unsigned_payload,
    )
    expected = compute_signature(secret_key, string_to_sign(canonical, signed_at))
    if not hmac.compare_digest(expected.encode("ascii"), authorization.signature.encode("ascii")):
        raise SignatureMismatchError("verify aksk signature fail")
