"""A minted link: what the edge needs to redirect, render and resolve it, in MongoDB and Redis forms.

MongoDB (collection ``links``, ``_id`` = code) keeps the full record; ``params`` is stored as a list of
``{"k", "v"}`` pairs because card parameter names are customer input and may contain ``.`` or start with ``$``.
Redis (``rkey("link", code)``) keeps a compact JSON copy with short keys, expiring with the link.

Links of resolution tasks (minted without sending, :mod:`magpie_shortlink.resolution_links`) carry two more fields:
``group`` (one shared link resolved by many handsets) and ``max_resolutions`` (how many resolutions a group link
counts; 0 = the send-task rule: the first resolution is the billable one, repeats are free). Both are omitted from
the Redis copy when they have their default, so send-task links cost nothing more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from magpie.v1 import common_pb2

H5_PATH = "/h5/"


def route_name(route: int) -> str:
    """``ROUTE_SMART`` -> ``SMART`` (unknown numbers stay numeric)."""
    try:
        return common_pb2.Route.Name(route).removeprefix("ROUTE_")
    except ValueError:
        return str(route)


def route_value(name: str) -> int:
    try:
        return common_pb2.Route.Value("ROUTE_" + name)
    except ValueError:
        return int(name) if name.isdigit() else common_pb2.ROUTE_UNSPECIFIED


def normalise_domain(link_domain: str) -> str:
    """The edge's base URL with exactly one trailing slash (empty stays empty)."""
    return link_domain.rstrip("/") + "/" if link_domain else ""


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def datetime_to_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:  # a client without tz_aware: MongoDB dates are UTC
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def iso_utc(ms: int) -> str:
    return ms_to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LinkOwner:
    """Who a code belongs to: one recipient of one task."""

    tenant_id: str
    task_id: str
    index: int


@dataclass(frozen=True)
class LinkRecord:
    code: str
    tenant_id: str
    task_id: str
    batch_no: int
    index: int
    mobile: str
    msisdn: str
    tpl_id: str
    tpl_name: str
    params: dict[str, str]
    route: int
    carrier: str
    custom_url: str
    link_domain: str  # normalised, ends with "/" (or empty)
    aim_url: str
    created_at_ms: int
    expires_at_ms: int
    group: bool = False
    max_resolutions: int = 0

    @property
    def owner(self) -> LinkOwner:
        return LinkOwner(self.tenant_id, self.task_id, self.index)

    @property
    def short_url(self) -> str:
        return self.link_domain + self.code

    @property
    def h5_url(self) -> str:
        """The landing page of this link on the edge (absolute when the task names the edge's domain)."""
        base = self.link_domain.rstrip("/") if self.link_domain else ""
        return base + H5_PATH + self.code

    @property
    def target_url(self) -> str:
        """Where a browser following the link goes: the recipient's custom URL if it is http(s), else the H5 page."""
        if self.custom_url.lower().startswith(("https://", "http://")):
            return self.custom_url
        return self.h5_url

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at_ms

    def ttl_ms(self, now_ms: int) -> int:
        return self.expires_at_ms - now_ms

    # --- MongoDB ---------------------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.code,
            "tenant_id": self.tenant_id,
            "task_id": self.task_id,
            "batch_no": self.batch_no,
            "index": self.index,
            "mobile": self.mobile,
            "msisdn": self.msisdn,
            "tpl_id": self.tpl_id,
            "tpl_name": self.tpl_name,
            "params": [{"k": k, "v": v} for k, v in self.params.items()],
            "route": route_name(self.route),
            "carrier": self.carrier,
            "custom_url": self.custom_url,
            "link_domain": self.link_domain,
            "short_url": self.short_url,
            "target_url": self.target_url,
            "aim_url": self.aim_url,
            "created_at": ms_to_datetime(self.created_at_ms),
            "expires_at": ms_to_datetime(self.expires_at_ms),
            "group": self.group,
            "max_resolutions": self.max_resolutions,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LinkRecord:
        return cls(
            code=str(doc["_id"]),
            tenant_id=doc.get("tenant_id", ""),
            task_id=doc.get("task_id", ""),
            batch_no=int(doc.get("batch_no", 0)),
            index=int(doc.get("index", 0)),
            mobile=doc.get("mobile", ""),
            msisdn=doc.get("msisdn", ""),
            tpl_id=doc.get("tpl_id", ""),
            tpl_name=doc.get("tpl_name", ""),
            params={str(p["k"]): str(p["v"]) for p in doc.get("params", [])},
            route=route_value(str(doc.get("route", ""))),
            carrier=doc.get("carrier", ""),
            custom_url=doc.get("custom_url", ""),
            link_domain=doc.get("link_domain", ""),
            aim_url=doc.get("aim_url", ""),
            created_at_ms=datetime_to_ms(doc["created_at"]),
            expires_at_ms=datetime_to_ms(doc["expires_at"]),
            group=bool(doc.get("group", False)),
            max_resolutions=int(doc.get("max_resolutions", 0)),
        )

    # --- Redis -----------------------------------------------------------------------------------------------

    def to_cache(self) -> bytes:
        extra: dict[str, Any] = {}
        if self.group:
            extra["g"] = 1
        if self.max_resolutions:
            extra["x"] = self.max_resolutions
        return orjson.dumps(
            {
                **extra,
                "t": self.tenant_id,
                "k": self.task_id,
                "b": self.batch_no,
                "i": self.index,
                "m": self.mobile,
                "n": self.msisdn,
                "pi": self.tpl_id,
                "pn": self.tpl_name,
                "p": self.params,
                "r": self.route,
                "c": self.carrier,
                "u": self.custom_url,
                "d": self.link_domain,
                "a": self.aim_url,
                "ca": self.created_at_ms,
                "e": self.expires_at_ms,
            }
        )

    @classmethod
    def from_cache(cls, code: str, raw: bytes) -> LinkRecord:
        data = orjson.loads(raw)
        return cls(
            code=code,
            tenant_id=data["t"],
            task_id=data["k"],
            batch_no=data["b"],
            index=data["i"],
            mobile=data["m"],
            msisdn=data["n"],
            tpl_id=data["pi"],
            tpl_name=data["pn"],
            params=data["p"],
            route=data["r"],
            carrier=data["c"],
            custom_url=data["u"],
            link_domain=data["d"],
            aim_url=data["a"],
            created_at_ms=data["ca"],
            expires_at_ms=data["e"],
            group=bool(data.get("g", 0)),
            max_resolutions=int(data.get("x", 0)),
        )
