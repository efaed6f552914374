"""Service numbers without infrastructure: image headers, regions, and the request checks (pub info, menus,
homepage, ports) with their error messages."""

from __future__ import annotations

from typing import Any

import pytest

from magpie_gateway.errors import ApiError
from magpie_gateway.sa_images import image_size
from magpie_gateway.sa_media import MEDIA_RULES
from magpie_gateway.sa_models import Menus, PortalInfoRequestBody, PubInfoRequestBody, RegisterPortRequestBody
from magpie_gateway.sa_regions import first_overlap, overlaps, parse_regions
from magpie_gateway.sa_validation import change_reason, menu_items, port_info, portal_info, pub_info, width

from .sa_testkit import bmp, jpeg_header, menu_body, png


def refused(fn: Any, *args: Any, code: str = "KM.00000400", **kwargs: Any) -> str:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kwargs)
    assert caught.value.error_code == code, caught.value.error_msg
    return caught.value.error_msg


# --- images ---------------------------------------------------------------------------------------------------------
def test_image_sizes_from_headers() -> None:
    assert image_size(png(240, 120)) == (240, 120)
    assert image_size(bmp(30, 20)) == (30, 20)
    assert image_size(bmp(30, 20, top_down=True)) == (30, 20)
    assert image_size(jpeg_header(1920, 1080)) == (1920, 1080)
    assert image_size(b"GIF89a" + bytes([0x40, 0x01, 0xF0, 0x00]) + b"\x00" * 10) == (320, 240)
    assert image_size(b"\xff\xd8\xff\xd9") is None  # no frame
    assert image_size(png(10, 10)[:20]) is None  # truncated
    assert image_size(b"not an image") is None


def test_media_rules_check_dimensions_and_ratio() -> None:
    logo, background, other = MEDIA_RULES["PUB_LOGO"], MEDIA_RULES["BG_IMAGE"], MEDIA_RULES["OTHER"]
    assert logo.check_dimensions("logo", (240, 240)) == (240, 240)
    assert "at least 240x240" in refused(logo.check_dimensions, "logo", (200, 200), code="KM.00000490")
    assert "1:1" in refused(logo.check_dimensions, "logo", (300, 240), code="KM.00000490")
    assert background.check_dimensions("bg", (1920, 1080)) == (1920, 1080)
    assert background.check_dimensions("bg", (1440, 811)) == (1440, 811)  # within 1 %
    assert "16:9" in refused(background.check_dimensions, "bg", (1440, 1440), code="KM.00000490")
    assert other.check_dimensions("licence", (10, 700)) == (10, 700)
    assert "cannot be read" in refused(other.check_dimensions, "licence", None, code="KM.00000490")


# --- regions --------------------------------------------------------------------------------------------------------
def test_regions_overlap() -> None:
    assert overlaps("全国", "佛山市")
    assert overlaps("广东省", "佛山市") and overlaps("佛山市", "广东省")
    assert overlaps("北京市", "北京市")
    assert not overlaps("广东省", "北京市")
    assert overlaps("吉林市", "吉林省")  # 吉林市 is a city of 吉林省
    assert not overlaps("佛山市", "广州市")
    assert first_overlap(["广州市", "北京市"], ["上海市", "广东省"]) == ("广州市", "广东省")
    assert first_overlap(["广州市"], ["深圳市"]) is None


def test_region_parsing() -> None:
    assert parse_regions("province", "佛山市") == ["佛山市"]
    assert parse_regions("province", "广东省, 北京市，上海市、重庆市") == ["广东省", "北京市", "上海市", "重庆市"]
    assert parse_regions("areas", ["湖北省", "长沙市"]) == ["湖北省", "长沙市"]
    assert parse_regions("areas", [], default=("全国",)) == ["全国"]
    assert "is required" in refused(parse_regions, "province", " ")
    assert "unknown region" in refused(parse_regions, "province", "火星")
    assert "overlap" in refused(parse_regions, "province", "广东省,佛山市")
    assert "overlap" in refused(parse_regions, "province", ["全国", "北京市"])


# --- text -----------------------------------------------------------------------------------------------------------
def test_width_counts_chinese_twice() -> None:
    assert width("abc") == 3
    assert width("热门生活") == 8
    assert width("a热😀") == 5


def test_change_reason_is_one_to_ten_characters() -> None:
    assert change_reason(" 业务调整 ") == "业务调整"
    assert "1-10" in refused(change_reason, "这个原因写得实在是太长了啦")
    assert "required" in refused(change_reason, None)
    assert "control" in refused(change_reason, "a\x00b")
    assert "Unicode" in refused(change_reason, "bad\ud800")


# --- pub info -------------------------------------------------------------------------------------------------------
def _pub(**overrides: Any) -> PubInfoRequestBody:
    values: dict[str, Any] = {
        "logo_img": "a" * 32,
        "pub_name": "喜鹊商城",
        "pub_abstract": "服务通知",
        "authorization_files": ["b" * 32],
    }
    values.update(overrides)
    return PubInfoRequestBody(**values)


def test_pub_info_defaults_and_limits() -> None:
    info = pub_info(_pub())
    assert info["industry"] == 11 and info["auto_get_port"] == 0
    assert info["signs_for_auto_get_port"] == [] and info["areas_for_auto_get_port"] == []
    auto = pub_info(_pub(auto_get_port=1, signs_for_auto_get_port=["喜鹊商城"]))
    assert auto["areas_for_auto_get_port"] == ["全国"]
    assert "1-15" in refused(pub_info, _pub(pub_name="名" * 16))
    assert "pub_abstract" in refused(pub_info, _pub(pub_abstract="介" * 76))
    assert "industry" in refused(pub_info, _pub(industry=12))
    assert "auto_get_port" in refused(pub_info, _pub(auto_get_port=2))
    assert "signs_for_auto_get_port is required" in refused(pub_info, _pub(auto_get_port=1))
    assert "2-18" in refused(pub_info, _pub(auto_get_port=1, signs_for_auto_get_port=["喜"]))
    assert "twice" in refused(pub_info, _pub(auto_get_port=1, signs_for_auto_get_port=["喜鹊", "喜鹊"]))
    assert "brackets" in refused(pub_info, _pub(auto_get_port=1, signs_for_auto_get_port=["【喜鹊】"]))
    assert "overlap" in refused(
        pub_info, _pub(auto_get_port=1, signs_for_auto_get_port=["喜鹊"], areas_for_auto_get_port=["全国", "北京市"])
    )
    assert "1-6" in refused(pub_info, _pub(authorization_files=[str(i) * 32 for i in range(7)]))
    assert "1-6" in refused(pub_info, _pub(authorization_files=[]))


def test_pub_info_update_merges_given_fields() -> None:
    current = pub_info(_pub(pub_remark="旧备注"))
    merged = pub_info(PubInfoRequestBody(pub_name="新名字"), current)
    assert merged["pub_name"] == "新名字" and merged["pub_remark"] == "旧备注"
    assert merged["logo_img"] == current["logo_img"]


# --- menus ----------------------------------------------------------------------------------------------------------
def _menu(items: list[dict[str, Any]]) -> Menus:
    return Menus(menu_items=items)


URL_ITEM = {
    "name": "官网",
    "action_type": "OPEN_URL",
    "content": "https://example.com",
    "ext_msg": {"web_title": "官网", "open_in_browser": "1", "package_name": "dropped"},
}


def test_menu_normalization() -> None:
    items = menu_items(Menus.model_validate(menu_body()))
    assert [i["name"] for i in items] == ["热门生活", "快应用", "打开APP"]
    sub = items[0]["sub_menu_items"]
    assert items[0]["content"] is None and items[0]["ext_msg"] == {}
    assert sub[0]["ext_msg"] == {"open_in_browser": "0", "web_title": "精选推荐"}
    assert sub[1] == {
        "name": "客服热线",
        "action_type": "CALLING",
        "content": "400-800-8800",
        "ext_msg": {},
        "sub_menu_items": [],
    }
    assert items[2]["ext_msg"] == {
        "package_name": "com.example.shop",
        "app_id": "",
        "browser_floor_url": "https://m.example.com/",
    }
    assert menu_items(_menu([URL_ITEM]))[0]["ext_msg"] == {"open_in_browser": "1", "web_title": "官网"}
    assert menu_items(_menu([])) == []


def test_menu_limits() -> None:
    four = [{**URL_ITEM, "name": f"m{i}"} for i in range(4)]
    assert "at most 3" in refused(menu_items, _menu(four))
    # top-level names: 24 / 12 / 8 wide for 1 / 2 / 3 menus
    assert menu_items(_menu([{**URL_ITEM, "name": "一二三四五六七八九十十二"}]))
    assert "1-8" in refused(
        menu_items, _menu([{**URL_ITEM, "name": "一二三四五"}, {**URL_ITEM, "name": "b"}, {**URL_ITEM, "name": "c"}])
    )
    subs = [{**URL_ITEM, "name": f"s{i}"} for i in range(6)]
    assert "1-5" in refused(
        menu_items, _menu([{"name": "更多", "action_type": "OPEN_SUBMENU", "sub_menu_items": subs}])
    )
    assert "1-5" in refused(menu_items, _menu([{"name": "更多", "action_type": "OPEN_SUBMENU", "sub_menu_items": []}]))
    nested = {"name": "更多", "action_type": "OPEN_SUBMENU", "sub_menu_items": [{**URL_ITEM}]}
    assert "cannot open another submenu" in refused(
        menu_items, _menu([{"name": "外层", "action_type": "OPEN_SUBMENU", "sub_menu_items": [nested]}])
    )
    assert "only with action_type OPEN_SUBMENU" in refused(
        menu_items, _menu([{**URL_ITEM, "sub_menu_items": [URL_ITEM]}])
    )
    assert "used twice" in refused(menu_items, _menu([URL_ITEM, {**URL_ITEM}]))
    assert "action_type" in refused(menu_items, _menu([{**URL_ITEM, "action_type": "OPEN_DOOR"}]))
    assert "required" in refused(menu_items, Menus())


def test_menu_actions() -> None:
    def one(item: dict[str, Any]) -> str:
        return refused(menu_items, _menu([item]))

    assert "http:// or https://" in one({**URL_ITEM, "content": "ftp://example.com"})
    assert "1-999" in one({**URL_ITEM, "content": "https://example.com/" + "a" * 980})
    assert "web_title" in one({**URL_ITEM, "ext_msg": {"open_in_browser": "0"}})
    assert "open_in_browser" in one({**URL_ITEM, "ext_msg": {"web_title": "官网"}})
    assert "digits" in one({"name": "电话", "action_type": "CALLING", "content": "call-me"})
    assert "package_name" in one({"name": "应用", "action_type": "OPEN_APP", "content": "app://x", "ext_msg": {}})
    assert "scheme" in one(
        {"name": "应用", "action_type": "OPEN_APP", "content": "no scheme", "ext_msg": {"package_name": "p"}}
    )
    assert "third_service_name" in one(
        {"name": "快", "action_type": "OPEN_QUICK", "content": "hap://app/x", "ext_msg": {"depend_engine_ver": "1"}}
    )
    assert "content must be empty" in one(
        {"name": "更多", "action_type": "OPEN_SUBMENU", "content": "x", "sub_menu_items": [URL_ITEM]}
    )


# --- homepage -------------------------------------------------------------------------------------------------------
def test_portal_limits() -> None:
    base: dict[str, Any] = {"background_img": "c" * 32, "summary": "简介"}
    portal = portal_info(PortalInfoRequestBody(**base))
    assert portal == {"background_img": "c" * 32, "summary": "简介", "tels": [], "fastapps": [], "hw_pubs": []}
    tel = {"tel": "400-800-8800", "usage": "客服"}
    assert "at most 5" in refused(portal_info, PortalInfoRequestBody(**base, tels=[tel] * 6))
    assert "digits" in refused(portal_info, PortalInfoRequestBody(**base, tels=[{"tel": "-400", "usage": "客服"}]))
    assert "p.tels[0].usage" in refused(
        portal_info, PortalInfoRequestBody(**base, tels=[{"tel": "400", "usage": "用" * 16}]), prefix="p."
    )
    app = {
        "name": "快应用",
        "logo_img": "d" * 32,
        "description": "描述",
        "deeplink": "hap://app/x",
        "depend_engine_version": "1",
    }
    assert "at most 10" in refused(portal_info, PortalInfoRequestBody(**base, fastapps=[app] * 11))
    assert "description" in refused(
        portal_info, PortalInfoRequestBody(**base, fastapps=[{**app, "description": "描" * 20}])
    )
    assert "summary" in refused(portal_info, PortalInfoRequestBody(background_img="c" * 32, summary="简" * 76))
    assert "background_img is required" in refused(portal_info, PortalInfoRequestBody(summary="简介"))


# --- ports ----------------------------------------------------------------------------------------------------------
def _port(**overrides: Any) -> RegisterPortRequestBody:
    values: dict[str, Any] = {
        "port": "8822053111111",
        "port_type": 1,
        "sign": ["华为云KooMessage"],
        "sign_check": 0,
        "authorization_files": ["e" * 32 + ":/v1/aim-sa/media/" + "e" * 32 + "/file"],
    }
    values.update(overrides)
    return RegisterPortRequestBody(**values)


def test_port_limits() -> None:
    info = port_info(_port())
    assert info["authorization_files"] == [("e" * 32, "/v1/aim-sa/media/" + "e" * 32 + "/file")]
    assert port_info(_port(authorization_files=["f" * 32]))["authorization_files"] == [("f" * 32, None)]
    assert "1-21" in refused(port_info, _port(port="1" * 22))
    assert "digits" in refused(port_info, _port(port="88a"))
    assert "exactly 5" in refused(port_info, _port(port="123456", port_type=5, sign_check=1))
    assert port_info(_port(port="12345", port_type=5, sign_check=1))["port_type"] == 5
    assert "sign_check must be 1" in refused(port_info, _port(port_type=3, sign_check=0))
    assert "port_type" in refused(port_info, _port(port_type=2))
    assert "1-5" in refused(port_info, _port(sign=[f"签名{i}" for i in range(6)]))
    assert "2-18" in refused(port_info, _port(sign=["x" * 19]))
    assert "1-5" in refused(port_info, _port(authorization_files=[f"{i}" * 32 for i in range(6)]))
    assert "twice" in refused(port_info, _port(authorization_files=["a" * 32, "a" * 32]))
