"""Small request checks shared by the endpoints; failures are ``KM.00000400`` with a precise message."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from magpie_gateway.errors import INVALID_PARAMETER, ApiError


def invalid(detail: str) -> ApiError:
    return ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: {detail}")


def required_text(name: str, value: str | None, *, max_chars: int | None = None) -> str:
    """A non-blank string of at most ``max_chars`` characters (returned stripped)."""
    if value is None or not value.strip():
        raise invalid(f"{name} is required")
    text = value.strip()
    if max_chars is not None and len(text) > max_chars:
        raise invalid(f"{name} must have at most {max_chars} characters")
    return text


def optional_text(name: str, value: str | None, *, max_chars: int) -> str | None:
    if value is None:
        return None
    if len(value) > max_chars:
        raise invalid(f"{name} must have at most {max_chars} characters")
    return value


def one_of(name: str, value: str | None, allowed: tuple[str, ...], *, default: str | None = None) -> str:
    if value is None or value == "":
        if default is None:
            raise invalid(f"{name} is required ({' | '.join(allowed)})")
        return default
    if value not in allowed:
        raise invalid(f"{name} must be one of {' | '.join(allowed)}")
    return value


def optional_one_of(name: str, value: str | None, allowed: Collection[str]) -> str | None:
    """An optional choice (a list filter): None when not given (None or ""), else ``value`` if it is one of
    ``allowed``, otherwise 400 "``name`` must be one of a | b"."""
    if not value:
        return None
    if value not in allowed:
        raise invalid(f"{name} must be one of {' | '.join(allowed)}")
    return value


def regex_filter(value: str) -> dict[str, Any]:
    """A case-insensitive "contains" filter for a name query parameter."""
    return {"$regex": re.escape(value), "$options": "i"}


def list_filter(
    tenant_id: str,
    *,
    equal: Mapping[str, Any] | None = None,
    contains: Mapping[str, str | None] | None = None,
    created: tuple[datetime, datetime] | None = None,
    within: Mapping[str, tuple[datetime, datetime] | None] | None = None,
) -> dict[str, Any]:
    """The MongoDB filter of a list endpoint: always the tenant, then every given (non-empty) ``equal`` value, a
    case-insensitive "contains" for every given ``contains`` value, the creation window when there is one (as
    ``timefmt.parse_window`` gives it) and, likewise, the window of every other time field in ``within``."""
    query: dict[str, Any] = {"tenant_id": tenant_id}
    for field, value in (equal or {}).items():
        if value is not None and value != "":
            query[field] = value
    for field, text in (contains or {}).items():
        if text:
            query[field] = regex_filter(text)
    for field, window in {"created_at": created, **(within or {})}.items():
        if window is not None:
            query[field] = {"$gte": window[0], "$lte": window[1]}
    return query
