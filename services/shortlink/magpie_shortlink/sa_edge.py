"""Service numbers (SA) on handsets: what the messaging app asks the edge when it shows an SMS, and the clicks.

HTTP contract
-------------
``GET /v1/sa/profile?port=<sender>&sign=<signature>&region=<province>&city=<city>``
    The service number to show above an SMS received from ``port`` (the sender number, digits) whose signature is
    ``sign`` (with or without 【】), for a handset in ``region`` (optional: a province code of GB/T 2260, two digits
    ``44`` or six ``440000``/``440300``, or its name ``广东省``) and ``city`` (optional: the city's name, ``深圳市``).
    200 ``{"pub_id", "version", "name", "remark", "intro", "industry", "company_name", "verified": true,
    "logo_url", "menu_id", "menus": [{"id", "name", "action_type", "content", "ext", "children": [...]}],
    "homepage": {"portal_id", "background_url", "summary", "hotlines": [{"tel", "usage"}], "quick_apps":
    [{"name", "logo_url", "description", "deeplink", "depend_engine_version"}]} | null, "binding": {"binding_id",
    "port", "port_type", "sign", "regions"}}``; 404 when no shown service number is bound for them; 400 bad query.
``POST /v1/sa/clicks``
    body ``{"pub_id", "click_id", "menu_id" | "homepage": true | "shortcut", "device"?, "port"?, "sign"?,
    "region"?}``: one click (page view) on the service number: a menu entry (its ``id`` from the profile), the
    homepage, or a shortcut button under an SMS (named as the handset names it). ``click_id`` (1-64 characters of
    ``A-Z a-z 0-9 . _ : -``) is chosen by the handset, unique per click; posting it again records nothing more.
    ``device`` is a device id (string) or ``{"id", "brand", "model", "os_name", "os_version", "app_version"}``
    (all optional strings; the User-Agent fills what is missing, as for ``/v1/resolve``). 200 ``{"pub_id",
    "click_id", "target", "recorded": true, "duplicate": bool}`` once the SaClicked event is acknowledged by Kafka
    (SA_CLICKS, key pub_id; billing charges one SA_CLICK per click_id); 400 malformed body; 404 unknown or not
    shown service number, unknown menu entry, no homepage; 503 the event could not be made durable (retry with the
    same click_id).
``GET /v1/sa/media/{sha256}``
    An image of a profile (logo, background, quick-app logos), ``Cache-Control: public, max-age=31536000,
    immutable`` (content-addressed); 404 unknown or incomplete.

Decided for Magpie:

- Matching (product spec §2 Port: "when the sent SMS signature equals the port signature, the handset shows
  homepage and menu"): a binding matches when its port matches the sender (``port_type`` 1: equal; 3 prefix: the
  sender starts with the port; 5 suffix: the sender ends with the port's five digits), the signature is one of
  the binding's signatures, and one of its regions covers the handset (``全国``; the province; the city when the
  handset gives it: a city binding is not shown to a handset that gives only its province). The signature is
  always compared, whatever the port's ``sign_check``. A frozen service number, or one not (yet) effective, is not
  shown. When several match (different enterprises may share a carrier port), the most specific wins: region
  (city > province > 全国), then port (equal > longer prefix > suffix), then the earliest binding.
- Clicks are accepted only for a shown service number (a frozen one is not billed). Every menu entry counts,
  submenu openers included ("each menu click = 1 PV"). Shortcut buttons are not managed by Magpie (no SDK
  operation): the handset's name for the button is recorded as given. Idempotency: ``SET NX`` of
  ``sa-click:<pub_id>:<click_id>`` (``P`` until the event is acknowledged, then ``D``; kept ``CLICK_DEDUP_S``);
  the event id is stable (``stable_id("sa-click", pub_id, click_id)``) and billing's unit id is derived from the
  same pair, so a retry after a crash, or without Redis, never bills twice.
- The edge is public, like ``/v1/resolve``: abuse control (rate limits per client) belongs to the ingress.
- Image URLs are absolute, built from the request's base URL (run behind a proxy with forwarded headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.responses import JSONResponse, Response

from magpie.v1 import common_pb2, sa_pb2
from magpie_common.ids import now_ms, stable_id
from magpie_common.kafka import ConsumerLoop, EventProducer
from magpie_common.topics import SA_CLICKS
from magpie_shortlink.config import SERVICE_NAME
from magpie_shortlink.edge import (
    ERR_BAD_REQUEST,
    ERR_NOT_FOUND,
    ERR_UNAVAILABLE,
    HANDSET_FIELDS,
    NO_STORE,
    EdgeError,
    json_error,
    trace_id_of,
)
from magpie_shortlink.handsets import describe as describe_handset
from magpie_shortlink.sa_directory import Entry, SaDirectory, sign_key

log = logging.getLogger(__name__)

CLICK_DEDUP_S = 7 * 86400
MAX_CLICK_BODY = 8 * 1024
MAX_PORT = 32
MAX_SIGN = 30
MAX_NAME = 64
PENDING = b"P"
DONE = b"D"
IMAGE_CACHE = {"Cache-Control": "public, max-age=31536000, immutable"}

SA_PROFILES = Counter("magpie_shortlink_sa_profiles_total", "Service-number profile requests", ["result"])
SA_CLICK_COUNT = Counter("magpie_shortlink_sa_clicks_total", "Service-number clicks", ["target", "result"])

# GB/T 2260 province codes (first two digits of every administrative code).
PROVINCE_CODES: dict[str, str] = {
    "11": "北京市",
    "12": "天津市",
    "13": "河北省",
    "14": "山西省",
    "15": "内蒙古自治区",
    "21": "辽宁省",
    "22": "吉林省",
    "23": "黑龙江省",
    "31": "上海市",
    "32": "江苏省",
    "33": "浙江省",
    "34": "安徽省",
    "35": "福建省",
    "36": "江西省",
    "37": "山东省",
    "41": "河南省",
    "42": "湖北省",
    "43": "湖南省",
    "44": "广东省",
    "45": "广西壮族自治区",
    "46": "海南省",
    "50": "重庆市",
    "51": "四川省",
    "52": "贵州省",
    "53": "云南省",
    "54": "西藏自治区",
    "61": "陕西省",
    "62": "甘肃省",
    "63": "青海省",
    "64": "宁夏回族自治区",
    "65": "新疆维吾尔自治区",
    "71": "台湾省",
    "81": "香港特别行政区",
    "82": "澳门特别行政区",
}
PROVINCES = frozenset(PROVINCE_CODES.values())
NATIONWIDE = "全国"
PORT_NORMAL, PORT_PREFIX, PORT_SUFFIX = 1, 3, 5

_DIGITS = re.compile(r"[0-9]+")
_CLICK_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _bad(message: str) -> EdgeError:
    return EdgeError(400, ERR_BAD_REQUEST, message)


def _text(name: str, value: Any, limit: int, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise _bad(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise _bad(f"{name} is required")
    if len(value) > limit or any(not ch.isprintable() for ch in value):
        raise _bad(f"{name} must be at most {limit} printable characters")
    return value


def parse_port(value: str | None) -> str:
    port = _text("port", value, MAX_PORT, required=True)
    if not _DIGITS.fullmatch(port):
        raise _bad("port must be the sender number (digits only)")
    return port


def parse_sign(value: str | None) -> str:
    sign = sign_key(_text("sign", value, MAX_SIGN, required=True))
    if not sign:
        raise _bad("sign is required (the SMS signature, with or without 【】)")
    return sign


def parse_region(value: str | None) -> str:
    """The handset's province name from a GB/T 2260 code or a name; "" when not given."""
    region = _text("region", value, MAX_NAME)
    if not region:
        return ""
    if _DIGITS.fullmatch(region) and len(region) in (2, 6):
        province = PROVINCE_CODES.get(region[:2])
        if province is not None:
            return province
    elif region in PROVINCES:
        return region
    raise _bad("region must be a province code (44 or 440000) or a province name (广东省)")


def port_rank(route: dict[str, Any], sender: str) -> tuple[int, int] | None:
    """How well a binding's port matches the sender, None when it does not."""
    port, kind = route["port"], int(route["port_type"])
    if kind == PORT_PREFIX:
        return (2, len(port)) if sender.startswith(port) else None
    if kind == PORT_SUFFIX:
        return (1, len(port)) if sender.endswith(port) else None
    return (3, len(port)) if sender == port else None


def region_rank(regions: list[str], province: str, city: str) -> int | None:
    """How specifically a binding's regions cover the handset, None when they do not."""
    best: int | None = None
    for region in regions:
        if region == NATIONWIDE:
            rank = 1
        elif province and region == province:
            rank = 2
        elif city and region == city:
            rank = 3
        else:
            continue
        best = rank if best is None else max(best, rank)
    return best


@dataclass(frozen=True)
class Match:
    entry: Entry
    route: dict[str, Any]
    rank: tuple[int, int, int, int]


def best_match(entries: list[Entry], sender: str, province: str, city: str) -> Match | None:
    best: Match | None = None
    for entry in entries:
        if not entry.shown:
            continue
        for route in entry.routes:
            ports = port_rank(route, sender)
            regions = region_rank(route["regions"], province, city)
            if ports is None or regions is None:
                continue
            candidate = Match(entry, route, (regions, ports[0], ports[1], -int(route.get("bound_at_ms") or 0)))
            if best is None or candidate.rank > best.rank:
                best = candidate
    return best


def find_menu_item(items: list[dict[str, Any]], item_id: str) -> dict[str, Any] | None:
    for item in items:
        if item["id"] == item_id:
            return item
        found = find_menu_item(item.get("children") or [], item_id)
        if found is not None:
            return found
    return None


# --- answers --------------------------------------------------------------------------------------------------------
def _image_url(base: str, image: dict[str, Any] | None) -> str | None:
    return f"{base}v1/sa/media/{image['sha256']}" if image else None


def _menu_view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "name": item["name"],
        "action_type": item["action_type"],
        "content": item["content"],
        "ext": item["ext"],
        "children": [_menu_view(child) for child in item.get("children") or []],
    }


def profile_view(match: Match, sign: str, base: str) -> dict[str, Any]:
    card = match.entry.card
    page = card.get("homepage")
    homepage = None
    if page is not None:
        homepage = {
            "portal_id": page["portal_id"],
            "background_url": _image_url(base, page.get("background")),
            "summary": page["summary"],
            "hotlines": page["hotlines"],
            "quick_apps": [
                {
                    "name": app["name"],
                    "logo_url": _image_url(base, app.get("logo")),
                    "description": app["description"],
                    "deeplink": app["deeplink"],
                    "depend_engine_version": app["depend_engine_version"],
                }
                for app in page["quick_apps"]
            ],
        }
    route = match.route
    signs = [s for s in route["signs"] if sign_key(s) == sign]
    return {
        "pub_id": card["pub_id"],
        "version": match.entry.version,
        "name": card["name"],
        "remark": card["remark"],
        "intro": card["intro"],
        "industry": card["industry"],
        "company_name": card["company_name"],
        "verified": True,
        "logo_url": _image_url(base, card.get("logo")),
        "menu_id": card["menu_id"],
        "menus": [_menu_view(item) for item in card["menus"]],
        "homepage": homepage,
        "binding": {
            "binding_id": route["binding_id"],
            "port": route["port"],
            "port_type": route["port_type"],
            "sign": signs[0] if signs else sign,
            "regions": route["regions"],
        },
    }


@dataclass(frozen=True)
class Click:
    pub_id: str
    click_id: str
    target: sa_pb2.SaClickTarget.ValueType
    menu_id: str
    shortcut: str
    device_id: str
    handset: dict[str, str]
    port: str
    sign: str
    region: str


def parse_click(body: bytes) -> Click:
    if len(body) > MAX_CLICK_BODY:
        raise _bad(f"request body larger than {MAX_CLICK_BODY} bytes")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"malformed JSON body: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object")
    pub_id = _text("pub_id", data.get("pub_id"), MAX_NAME, required=True)
    click_id = data.get("click_id")
    if not isinstance(click_id, str) or not _CLICK_ID.fullmatch(click_id):
        raise _bad("click_id is required: 1-64 characters among A-Z a-z 0-9 . _ : -")
    menu_id = _text("menu_id", data.get("menu_id"), MAX_NAME)
    homepage = data.get("homepage", False)
    if homepage is None:
        homepage = False
    if not isinstance(homepage, bool):
        raise _bad("homepage must be true or false")
    shortcut = _text("shortcut", data.get("shortcut"), MAX_NAME)
    chosen = [name for name, given in (("menu_id", menu_id), ("homepage", homepage), ("shortcut", shortcut)) if given]
    if len(chosen) != 1:
        raise _bad("give exactly one of menu_id, homepage (true) or shortcut")
    target = {
        "menu_id": sa_pb2.SA_CLICK_TARGET_MENU,
        "homepage": sa_pb2.SA_CLICK_TARGET_HOMEPAGE,
        "shortcut": sa_pb2.SA_CLICK_TARGET_SHORTCUT,
    }[chosen[0]]
    device = data.get("device")
    device_id = ""
    handset: dict[str, str] = {}
    if isinstance(device, str):
        device_id = _text("device", device, 128)
    elif isinstance(device, dict):
        device_id = _text("device.id", device.get("id"), 128)
        for name in HANDSET_FIELDS:
            value = _text(f"device.{name}", device.get(name), 80)
            if value:
                handset[name] = value
    elif device is not None:
        raise _bad("device must be a device id (string) or an object")
    port = _text("port", data.get("port"), MAX_PORT)
    if port and not _DIGITS.fullmatch(port):
        raise _bad("port must be the sender number (digits only)")
    return Click(
        pub_id=pub_id,
        click_id=click_id,
        target=target,
        menu_id=menu_id,
        shortcut=shortcut,
        device_id=device_id,
        handset=handset,
        port=port,
        sign=_text("sign", data.get("sign"), MAX_SIGN),
        region=_text("region", data.get("region"), MAX_NAME),
    )


def click_event_id(pub_id: str, click_id: str) -> str:
    return stable_id("sa-click", pub_id, click_id)


TARGET_NAMES = {
    sa_pb2.SA_CLICK_TARGET_MENU: "menu",
    sa_pb2.SA_CLICK_TARGET_HOMEPAGE: "homepage",
    sa_pb2.SA_CLICK_TARGET_SHORTCUT: "shortcut",
}


class SaEdge:
    def __init__(self, directory: SaDirectory, producer: EventProducer) -> None:
        self.directory = directory
        self.producer = producer

    def click_key(self, pub_id: str, click_id: str) -> str:
        return self.directory.settings.rkey("sa-click", pub_id, click_id)

    async def profile(self, sender: str, sign: str, province: str, city: str) -> Match:
        try:
            entries = await self.directory.entries_for_sign(sign)
        except Exception as exc:
            log.exception("service-number lookup failed")
            raise EdgeError(503, ERR_UNAVAILABLE, "service-number storage unavailable, retry later") from exc
        match = best_match(entries, sender, province, city)
        if match is None:
            SA_PROFILES.labels("miss").inc()
            raise EdgeError(404, ERR_NOT_FOUND, "no service number for this sender, signature and region")
        SA_PROFILES.labels("hit").inc()
        return match

    async def _claim(self, key: str) -> bool:
        """Whether this click must be produced: first time, or a retry of one whose event is not yet durable."""
        try:
            if await self.directory.redis.set(key, PENDING, nx=True, ex=CLICK_DEDUP_S):
                return True
            return await self.directory.redis.get(key) != DONE
        except RedisError as exc:
            log.warning("redis click marker unavailable; producing (stable event id)", extra={"error": repr(exc)})
            return True

    async def _confirm(self, key: str) -> None:
        try:
            await self.directory.redis.set(key, DONE, xx=True, keepttl=True)
        except RedisError as exc:
            log.warning("redis click marker not confirmed", extra={"error": repr(exc)})

    async def click(self, click: Click, *, user_agent: str, trace_id: str) -> dict[str, Any]:
        target = TARGET_NAMES[click.target]
        try:
            entry = await self.directory.entry_for_pub(click.pub_id)
        except Exception as exc:
            log.exception("service-number lookup failed")
            raise EdgeError(503, ERR_UNAVAILABLE, "service-number storage unavailable, retry later") from exc
        if entry is None or not entry.shown:
            SA_CLICK_COUNT.labels(target, "not_shown").inc()
            raise EdgeError(404, ERR_NOT_FOUND, "unknown service number, or not shown")
        item_name = ""
        if click.target == sa_pb2.SA_CLICK_TARGET_MENU:
            item = find_menu_item(entry.card["menus"], click.menu_id)
            if item is None:
                SA_CLICK_COUNT.labels(target, "unknown_item").inc()
                raise EdgeError(404, ERR_NOT_FOUND, f"the service number has no menu entry {click.menu_id}")
            item_name = item["name"]
        elif click.target == sa_pb2.SA_CLICK_TARGET_HOMEPAGE and entry.card.get("homepage") is None:
            SA_CLICK_COUNT.labels(target, "unknown_item").inc()
            raise EdgeError(404, ERR_NOT_FOUND, "the service number has no homepage")
        key = self.click_key(click.pub_id, click.click_id)
        if not await self._claim(key):
            SA_CLICK_COUNT.labels(target, "duplicate").inc()
            return self.answer(click, target, duplicate=True)
        described = await describe_handset(user_agent, click.handset)
        at = now_ms()
        event = sa_pb2.SaClicked(
            meta=common_pb2.EventMeta(
                event_id=click_event_id(click.pub_id, click.click_id),
                tenant_id=entry.tenant_id,
                occurred_at_ms=at,
                producer=SERVICE_NAME,
                trace_id=trace_id,
            ),
            pub_id=click.pub_id,
            click_id=click.click_id,
            target=click.target,
            menu_item_id=click.menu_id,
            menu_item_name=item_name,
            shortcut=click.shortcut,
            port=click.port,
            sign=click.sign,
            region=click.region,
            device_id=click.device_id,
            handset=described,
            user_agent=user_agent[:512],
            at_ms=at,
            profile_version=entry.version,
        )
        try:
            await self.producer.send(SA_CLICKS, click.pub_id, event)
        except Exception as exc:
            log.exception("SA click event not produced", extra={"pub_id": click.pub_id})
            raise EdgeError(503, ERR_UNAVAILABLE, "the click could not be recorded, retry later") from exc
        await self._confirm(key)
        SA_CLICK_COUNT.labels(target, "recorded").inc()
        return self.answer(click, target, duplicate=False)

    @staticmethod
    def answer(click: Click, target: str, *, duplicate: bool) -> dict[str, Any]:
        return {
            "pub_id": click.pub_id,
            "click_id": click.click_id,
            "target": target,
            "recorded": True,
            "duplicate": duplicate,
        }


def sa_router(sa: SaEdge) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/sa/profile")
    async def profile(
        request: Request,
        port: str | None = None,
        sign: str | None = None,
        region: str | None = None,
        city: str | None = None,
    ) -> Response:
        try:
            sender, wanted = parse_port(port), parse_sign(sign)
            province, city_name = parse_region(region), _text("city", city, MAX_NAME)
            match = await sa.profile(sender, wanted, province, city_name)
        except EdgeError as error:
            return json_error(error.status, error.error_code, error.error_msg)
        return JSONResponse(profile_view(match, wanted, str(request.base_url)), headers=NO_STORE)

    @router.post("/v1/sa/clicks")
    async def clicks(request: Request) -> Response:
        try:
            click = parse_click(await request.body())
            answer = await sa.click(
                click, user_agent=request.headers.get("user-agent", ""), trace_id=trace_id_of(request)
            )
        except EdgeError as error:
            return json_error(error.status, error.error_code, error.error_msg)
        return JSONResponse(answer, headers=NO_STORE)

    @router.get("/v1/sa/media/{sha256}")
    async def media(sha256: str) -> Response:
        if not _SHA256.fullmatch(sha256):
            return json_error(404, ERR_NOT_FOUND, "unknown image")
        try:
            found = await sa.directory.image(sha256)
        except Exception:
            log.exception("SA image lookup failed")
            return json_error(503, ERR_UNAVAILABLE, "image storage unavailable, retry later")
        if found is None:
            return json_error(404, ERR_NOT_FOUND, "unknown image")
        mime, data = found
        return Response(data, media_type=mime, headers={**IMAGE_CACHE, "ETag": f'"{sha256}"'})

    return router


def consume_during_lifespan(app: FastAPI, make_loop: Callable[[], ConsumerLoop[Any]], *, retry_s: float = 2.0) -> None:
    """Run a consumer loop while the app is served (uvicorn's lifespan), restarting it after a failure; stop it
    (finishing and committing the batch in hand) when the server shuts down."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        stopping = asyncio.Event()
        current: list[ConsumerLoop[Any]] = []

        async def supervise() -> None:
            while not stopping.is_set():
                loop = make_loop()
                current[:] = [loop]
                try:
                    await loop.run()
                except Exception:
                    log.exception("SA publication consumer failed; restarting", extra={"retry_s": retry_s})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), retry_s)

        task = asyncio.create_task(supervise(), name="sa-publications")
        try:
            async with inner(application) as state:
                yield state
        finally:
            stopping.set()
            for loop in current:
                loop.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)

    app.router.lifespan_context = lifespan
