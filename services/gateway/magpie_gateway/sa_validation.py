"""Checks of the service-number requests (pub info, menus, homepage, ports); every failure is ``KM.00000400`` with a
message naming the field. The functions return the normalized values that are stored.

Lengths follow the KooMessage API reference: pub name and remark 1-15 characters, introductions (pub abstract,
homepage summary) 1-75, change reasons 1-10 (the console's rule, product-spec §2). Where the SDK says "a Chinese
character counts 2" (menu names, hotline usage, quick app fields) the *width* is measured: every non-ASCII
character (Chinese, emoji) counts 2, ASCII 1.

Menus: at most 3 top-level items; a top-level item either opens a submenu of 1-5 items (``OPEN_SUBMENU``, no
content) or acts itself; submenu items cannot open submenus. Top-level names may be 24 / 12 / 8 wide for 1 / 2 / 3
items, submenu names 16; all names of a menu must differ. Actions: ``OPEN_URL`` (http(s) URL shorter than 1000
characters, ``ext_msg.web_title`` 1-20 and ``ext_msg.open_in_browser`` 0|1 required), ``CALLING`` (a phone number:
digits and ``-``, starting and ending with a digit, <= 20), ``OPEN_APP`` (deeplink <= 1000, ``ext_msg.package_name``
1-50 required; ``app_id`` <= 60, ``browser_floor_url`` (http(s)) and ``third_service_name`` optional: the SDK marks
``third_service_name`` as required for OPEN_APP but its own example omits it), ``OPEN_QUICK`` (quick-app deeplink
<= 1000, ``ext_msg.depend_engine_ver`` and ``ext_msg.third_service_name`` 1-50 required). ``ext_msg`` fields that do
not belong to the action are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from magpie_gateway.sa_models import (
    ExtMsg,
    MenuItem,
    Menus,
    PortalInfoRequestBody,
    PubInfoRequestBody,
    RegisterPortRequestBody,
    SubMenuItem,
)
from magpie_gateway.sa_regions import NATIONWIDE, parse_regions
from magpie_gateway.validation import invalid

# --- limits ---------------------------------------------------------------------------------------------------------
PUB_NAME_MAX = 15
PUB_REMARK_MAX = 15
ABSTRACT_MAX = 75
CHANGE_REASON_MAX = 10
INDUSTRIES = range(1, 12)  # 1 finance ... 10 carriers, 11 other
DEFAULT_INDUSTRY = 11
PUB_AUTH_FILES_MAX = 6
AUTO_PORT_SIGNS_MAX = 10
SIGN_MIN, SIGN_MAX = 2, 18

MENU_TOP_MAX = 3
MENU_SUB_MAX = 5
TOP_NAME_WIDTH = {1: 24, 2: 12, 3: 8}
SUB_NAME_WIDTH = 16
URL_MAX = 999  # "字符长度小于1000"
CONTENT_MAX = 1000
WEB_TITLE_MAX = 20
EXT_FIELD_MAX = 50
APP_ID_MAX = 60

TELS_MAX = 5
TEL_MAX = 20
TEL_USAGE_WIDTH = 30
FASTAPPS_MAX = 10
FASTAPP_NAME_WIDTH = 30
FASTAPP_DESCRIPTION_WIDTH = 38
FASTAPP_ENGINE_WIDTH = 50
HW_PUBS_MAX = 10

PORT_MAX = 21
SUFFIX_PORT_LENGTH = 5
PORT_TYPES = (1, 3, 5)  # normal, prefix, suffix
PORT_SIGNS_MAX = 5
PORT_AUTH_FILES_MAX = 5

ACTIONS = ("OPEN_SUBMENU", "OPEN_URL", "CALLING", "OPEN_APP", "OPEN_QUICK")
_TEL = re.compile(r"\d(?:[\d-]*\d)?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_DIGITS = re.compile(r"\d+")
_BRACKETS = set("【】[]")


# --- text -----------------------------------------------------------------------------------------------------------
def width(value: str) -> int:
    """Display width as KooMessage counts it: non-ASCII characters (Chinese, emoji) 2, ASCII 1."""
    return sum(2 if ord(ch) > 0x7F else 1 for ch in value)


def text(
    name: str,
    value: str | None,
    *,
    max_len: int,
    min_len: int = 1,
    required: bool = True,
    wide: bool = False,
) -> str | None:
    """A stripped text of ``min_len``..``max_len`` characters (``wide``: display width); None when optional and
    absent. Control characters and text that is not valid Unicode are refused."""
    if value is None or not value.strip():
        if required:
            raise invalid(f"{name} is required")
        return None
    value = value.strip()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{name} is not valid Unicode text") from None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise invalid(f"{name} must not contain control characters")
    size = width(value) if wide else len(value)
    if not min_len <= size <= max_len:
        unit = " (a Chinese character counts 2)" if wide else ""
        raise invalid(f"{name} must have {min_len}-{max_len} characters{unit}")
    return value


def required_text(name: str, value: str | None, *, max_len: int, min_len: int = 1, wide: bool = False) -> str:
    result = text(name, value, max_len=max_len, min_len=min_len, wide=wide)
    assert result is not None
    return result


def change_reason(value: str | None) -> str:
    return required_text("change_reason", value, max_len=CHANGE_REASON_MAX)


def http_url(name: str, value: str | None, *, max_len: int, required: bool = True) -> str | None:
    url = text(name, value, max_len=max_len, required=required)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in url):
        raise invalid(f"{name} must be an http:// or https:// URL")
    return url


def deeplink(name: str, value: str | None) -> str:
    link = required_text(name, value, max_len=CONTENT_MAX)
    if not _SCHEME.fullmatch(link):
        raise invalid(f"{name} must be a link with a scheme, such as hap://app/com.example.app")
    return link


def phone(name: str, value: str | None) -> str:
    number = required_text(name, value, max_len=TEL_MAX)
    if not _TEL.fullmatch(number):
        raise invalid(f"{name} may contain only digits and '-', and must start and end with a digit")
    return number


def string_list(name: str, values: Sequence[str] | None, *, max_count: int, min_count: int = 0) -> list[str]:
    items = list(values or [])
    if not min_count <= len(items) <= max_count:
        raise invalid(f"{name} must have {min_count}-{max_count} entries")
    return items


def signs(name: str, values: Sequence[str] | None, *, max_count: int) -> list[str]:
    """1-``max_count`` distinct signatures of 2-18 characters, without 【】 or []."""
    result: list[str] = []
    for i, raw in enumerate(string_list(name, values, max_count=max_count, min_count=1)):
        sign = required_text(f"{name}[{i}]", raw, min_len=SIGN_MIN, max_len=SIGN_MAX)
        if _BRACKETS & set(sign):
            raise invalid(f"{name}[{i}] must not contain brackets (【】 or [])")
        if sign in result:
            raise invalid(f"{name}: the signature {sign} is listed twice")
        result.append(sign)
    return result


def resource_ids(name: str, values: Sequence[str] | None, *, max_count: int, min_count: int = 1) -> list[str]:
    result: list[str] = []
    for i, raw in enumerate(string_list(name, values, max_count=max_count, min_count=min_count)):
        rid = required_text(f"{name}[{i}]", raw, max_len=64)
        if rid in result:
            raise invalid(f"{name}: {rid} is listed twice")
        result.append(rid)
    return result


def _pick(name: str, value: int | None, allowed: Sequence[int], default: int | None = None) -> int:
    if value is None:
        if default is None:
            raise invalid(f"{name} is required ({' | '.join(map(str, allowed))})")
        return default
    if value not in allowed:
        raise invalid(f"{name} must be one of {' | '.join(map(str, allowed))}")
    return value


def int_param(name: str, value: str | None, allowed: Sequence[int]) -> int | None:
    """An optional integer query parameter restricted to ``allowed``."""
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise invalid(f"{name} must be one of {' | '.join(map(str, allowed))}") from None
    if number not in allowed:
        raise invalid(f"{name} must be one of {' | '.join(map(str, allowed))}")
    return number


# --- service number -------------------------------------------------------------------------------------------------
PUB_FIELDS = (
    "logo_img",
    "pub_name",
    "pub_abstract",
    "pub_remark",
    "auto_get_port",
    "signs_for_auto_get_port",
    "areas_for_auto_get_port",
    "industry",
    "authorization_files",
)


def pub_info(body: PubInfoRequestBody, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The normalized service-number info: ``body`` alone (create) or ``body``'s given fields over ``current``
    (update). Media references are checked separately (``sa_media.check_pub_media``)."""
    given = body.model_dump(include=set(PUB_FIELDS), exclude_none=True)
    merged: dict[str, Any] = {**(current or {}), **given}
    auto = _pick("auto_get_port", merged.get("auto_get_port"), (0, 1), default=0)
    info: dict[str, Any] = {
        "pub_name": required_text("pub_name", merged.get("pub_name"), max_len=PUB_NAME_MAX),
        "pub_remark": text("pub_remark", merged.get("pub_remark"), max_len=PUB_REMARK_MAX, required=False),
        "pub_abstract": required_text("pub_abstract", merged.get("pub_abstract"), max_len=ABSTRACT_MAX),
        "logo_img": required_text("logo_img", merged.get("logo_img"), max_len=64),
        "authorization_files": resource_ids(
            "authorization_files", merged.get("authorization_files"), max_count=PUB_AUTH_FILES_MAX
        ),
        "industry": _pick("industry", merged.get("industry"), INDUSTRIES, default=DEFAULT_INDUSTRY),
        "auto_get_port": auto,
        "signs_for_auto_get_port": [],
        "areas_for_auto_get_port": [],
    }
    if auto == 1:
        if not merged.get("signs_for_auto_get_port"):
            raise invalid("signs_for_auto_get_port is required when auto_get_port is 1")
        info["signs_for_auto_get_port"] = signs(
            "signs_for_auto_get_port", merged.get("signs_for_auto_get_port"), max_count=AUTO_PORT_SIGNS_MAX
        )
        info["areas_for_auto_get_port"] = parse_regions(
            "areas_for_auto_get_port", merged.get("areas_for_auto_get_port"), default=(NATIONWIDE,)
        )
    return info


# --- menus ----------------------------------------------------------------------------------------------------------
def _ext(name: str, ext: ExtMsg | None, action: str) -> dict[str, Any]:
    msg = ext or ExtMsg()
    if action == "OPEN_URL":
        mode = msg.open_in_browser.strip() if msg.open_in_browser is not None else ""
        if mode not in ("0", "1"):
            raise invalid(f"{name}.ext_msg.open_in_browser is required for OPEN_URL (0 webView, 1 browser)")
        return {
            "open_in_browser": mode,
            "web_title": required_text(f"{name}.ext_msg.web_title", msg.web_title, max_len=WEB_TITLE_MAX),
        }
    if action == "OPEN_APP":
        result: dict[str, Any] = {
            "package_name": required_text(f"{name}.ext_msg.package_name", msg.package_name, max_len=EXT_FIELD_MAX),
            "app_id": text(f"{name}.ext_msg.app_id", msg.app_id, max_len=APP_ID_MAX, required=False) or "",
        }
        floor = http_url(
            f"{name}.ext_msg.browser_floor_url", msg.browser_floor_url, max_len=CONTENT_MAX, required=False
        )
        if floor:
            result["browser_floor_url"] = floor
        service = text(
            f"{name}.ext_msg.third_service_name", msg.third_service_name, max_len=EXT_FIELD_MAX, required=False
        )
        if service:
            result["third_service_name"] = service
        return result
    if action == "OPEN_QUICK":
        return {
            "depend_engine_ver": required_text(
                f"{name}.ext_msg.depend_engine_ver", msg.depend_engine_ver, max_len=EXT_FIELD_MAX
            ),
            "third_service_name": required_text(
                f"{name}.ext_msg.third_service_name", msg.third_service_name, max_len=EXT_FIELD_MAX
            ),
        }
    return {}


def _content(name: str, item: MenuItem | SubMenuItem, action: str) -> str | None:
    if action == "OPEN_SUBMENU":
        if item.content is not None and item.content.strip():
            raise invalid(f"{name}.content must be empty for OPEN_SUBMENU")
        return None
    if action == "OPEN_URL":
        return http_url(f"{name}.content", item.content, max_len=URL_MAX)
    if action == "CALLING":
        return phone(f"{name}.content", item.content)
    return deeplink(f"{name}.content", item.content)


def _item(name: str, item: MenuItem | SubMenuItem, *, top: bool, name_width: int) -> dict[str, Any]:
    label = required_text(f"{name}.name", item.name, max_len=name_width, wide=True)
    action = (item.action_type or "").strip().upper()
    if action not in ACTIONS:
        raise invalid(f"{name}.action_type must be one of {' | '.join(ACTIONS)}")
    if action == "OPEN_SUBMENU" and (not top or not isinstance(item, MenuItem)):
        raise invalid(f"{name}: submenu items cannot open another submenu")
    subs: list[dict[str, Any]] = []
    if isinstance(item, MenuItem) and action == "OPEN_SUBMENU":
        children = item.sub_menu_items or []
        if not 1 <= len(children) <= MENU_SUB_MAX:
            raise invalid(f"{name}.sub_menu_items must have 1-{MENU_SUB_MAX} items for OPEN_SUBMENU")
        subs = [
            _item(f"{name}.sub_menu_items[{j}]", child, top=False, name_width=SUB_NAME_WIDTH)
            for j, child in enumerate(children)
        ]
    elif item.sub_menu_items:
        raise invalid(f"{name}.sub_menu_items is allowed only with action_type OPEN_SUBMENU")
    return {
        "name": label,
        "action_type": action,
        "content": _content(name, item, action),
        "ext_msg": _ext(name, item.ext_msg, action),
        "sub_menu_items": subs,
    }


def menu_items(menu: Menus, *, field: str = "menu") -> list[dict[str, Any]]:
    """The normalized items of a menu (0-3 top-level items, see the module docstring)."""
    if "menu_items" not in menu.model_fields_set:
        raise invalid(f"{field}.menu_items is required")
    items = menu.menu_items
    if len(items) > MENU_TOP_MAX:
        raise invalid(f"{field}.menu_items may have at most {MENU_TOP_MAX} top-level menus")
    top_width = TOP_NAME_WIDTH.get(len(items), TOP_NAME_WIDTH[1])
    result = [_item(f"{field}.menu_items[{i}]", item, top=True, name_width=top_width) for i, item in enumerate(items)]
    names = [entry["name"] for entry in result] + [s["name"] for entry in result for s in entry["sub_menu_items"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise invalid(f"{field}: menu names must differ ({', '.join(duplicates)} used twice)")
    return result


def menu_texts(items: Sequence[dict[str, Any]]) -> list[str]:
    """Every text of a menu the reviewer reads: names, URLs, titles, deeplinks."""
    texts: list[str] = []
    for item in items:
        texts.append(item["name"])
        if item.get("content"):
            texts.append(item["content"])
        texts.extend(str(v) for v in item.get("ext_msg", {}).values() if v)
        texts.extend(menu_texts(item.get("sub_menu_items", [])))
    return texts


def menu_names(items: Sequence[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


# --- homepage (portal) ------------------------------------------------------------------------------------------------
def portal_info(body: PortalInfoRequestBody, *, prefix: str = "") -> dict[str, Any]:
    """The normalized homepage: background image, summary, 0-5 hotlines, 0-10 quick apps, hw_pubs (reserved).
    ``prefix`` (e.g. ``portal_request_body.``) is put before the field names in error messages."""
    p = prefix
    tels = []
    for i, tel in enumerate(body.tels or []):
        if i >= TELS_MAX:
            raise invalid(f"{p}tels may have at most {TELS_MAX} hotlines")
        tels.append(
            {
                "tel": phone(f"{p}tels[{i}].tel", tel.tel),
                "usage": required_text(f"{p}tels[{i}].usage", tel.usage, max_len=TEL_USAGE_WIDTH, wide=True),
            }
        )
    fastapps = []
    for i, app in enumerate(body.fastapps or []):
        if i >= FASTAPPS_MAX:
            raise invalid(f"{p}fastapps may have at most {FASTAPPS_MAX} quick apps")
        name = f"{p}fastapps[{i}]"
        fastapps.append(
            {
                "name": required_text(f"{name}.name", app.name, max_len=FASTAPP_NAME_WIDTH, wide=True),
                "logo_img": required_text(f"{name}.logo_img", app.logo_img, max_len=64),
                "description": required_text(
                    f"{name}.description", app.description, max_len=FASTAPP_DESCRIPTION_WIDTH, wide=True
                ),
                "deeplink": deeplink(f"{name}.deeplink", app.deeplink),
                "depend_engine_version": required_text(
                    f"{name}.depend_engine_version", app.depend_engine_version, max_len=FASTAPP_ENGINE_WIDTH, wide=True
                ),
            }
        )
    hw_pubs = [
        required_text(f"{p}hw_pubs[{i}]", v, max_len=64)
        for i, v in enumerate(string_list(f"{p}hw_pubs", body.hw_pubs, max_count=HW_PUBS_MAX))
    ]
    return {
        "background_img": required_text(f"{p}background_img", body.background_img, max_len=64),
        "summary": required_text(f"{p}summary", body.summary, max_len=ABSTRACT_MAX),
        "tels": tels,
        "fastapps": fastapps,
        "hw_pubs": hw_pubs,
    }


def portal_texts(portal: dict[str, Any]) -> list[str]:
    texts = [portal["summary"]]
    texts.extend(t["usage"] for t in portal["tels"])
    for app in portal["fastapps"]:
        texts.extend((app["name"], app["description"], app["deeplink"]))
    return texts


# --- ports ----------------------------------------------------------------------------------------------------------
def port_number(value: str | None, port_type: int) -> str:
    port = required_text("port", value, max_len=PORT_MAX)
    if not _DIGITS.fullmatch(port):
        raise invalid("port may contain only digits")
    if port_type == 5 and len(port) != SUFFIX_PORT_LENGTH:
        raise invalid(f"port must have exactly {SUFFIX_PORT_LENGTH} digits for port_type 5 (suffix)")
    return port


def port_info(body: RegisterPortRequestBody) -> dict[str, Any]:
    """The normalized port registration; ``authorization_files`` as ``(resource_id, resource_url | None)``."""
    port_type = _pick("port_type", body.port_type, PORT_TYPES)
    sign_check = _pick("sign_check", body.sign_check, (0, 1))
    if port_type in (3, 5) and sign_check != 1:
        raise invalid("sign_check must be 1 for prefix (3) and suffix (5) ports")
    files: list[tuple[str, str | None]] = []
    for i, raw in enumerate(
        string_list("authorization_files", body.authorization_files, max_count=PORT_AUTH_FILES_MAX, min_count=1)
    ):
        entry = required_text(f"authorization_files[{i}]", raw, max_len=1200)
        rid, sep, url = entry.partition(":")
        rid = rid.strip()
        if not rid:
            raise invalid(f"authorization_files[{i}] must look like resource_id:resource_url")
        if any(rid == seen for seen, _ in files):
            raise invalid(f"authorization_files: {rid} is listed twice")
        files.append((rid, url.strip() if sep and url.strip() else None))
    return {
        "port": port_number(body.port, port_type),
        "port_type": port_type,
        "sign": signs("sign", body.sign, max_count=PORT_SIGNS_MAX),
        "sign_check": sign_check,
        "authorization_files": files,
    }
