"""``offset`` / ``limit`` query parameters and the SDK's ``page_info`` object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection

from magpie_gateway.errors import INVALID_PARAMETER, ApiError

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# KooMessage: "offset+limit must be <= 10000; beyond that the query answers empty" (send tasks and details).
MAX_WINDOW = 10_000


class PageInfo(BaseModel):
    """The response model of ``Page.info`` (the console's list endpoints)."""

    offset: int = Field(examples=[0])
    limit: int = Field(examples=[10])
    total: int = Field(examples=[1])


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int

    def info(self, total: int) -> dict[str, Any]:
        return {"offset": self.offset, "limit": self.limit, "total": total}

    @property
    def beyond_window(self) -> bool:
        return self.offset + self.limit > MAX_WINDOW


def _as_int(name: str, value: int | str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    try:
        return int(value.strip())
    except ValueError:
        raise ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: {name} must be an integer") from None


def page(offset: int | str | None, limit: int | str | None, *, default_limit: int = DEFAULT_LIMIT) -> Page:
    """Validate paging parameters (``offset`` >= 0, 1 <= ``limit`` <= 1000); strings are accepted because the
    SDK types some offsets as strings (``ListAimMsgSignatureRequest.offset``)."""
    off = _as_int("offset", offset, 0)
    lim = _as_int("limit", limit, default_limit)
    if off < 0:
        raise ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: offset must be >= 0")
    if not 1 <= lim <= MAX_LIMIT:
        raise ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: limit must be between 1 and {MAX_LIMIT}")
    return Page(off, lim)


async def fetch_page(
    collection: AsyncCollection,
    query: dict[str, Any],
    paging: Page,
    *,
    sort: Sequence[tuple[str, int]] = (("created_at", -1), ("_id", -1)),
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``query`` (always tenant-scoped by the caller) and the total count of matching documents."""
    total = await collection.count_documents(query)
    if paging.offset >= total:
        return [], total
    cursor = collection.find(query).sort(list(sort)).skip(paging.offset).limit(paging.limit)
    return await cursor.to_list(None), total
