"""Pure logic: URL acceptance, SMS template variables, AIM template review texts, read-model states."""

from __future__ import annotations

import pytest

from magpie.v1 import common_pb2, dispatch_pb2
from magpie_gateway.aim_models import CreateAimPersonalTemplateRequestBody
from magpie_gateway.aim_templates import param_key, texts_and_buttons, vendors_of
from magpie_gateway.errors import ApiError
from magpie_gateway.projector import _deliver, same_number
from magpie_gateway.read_model import array, counters, recipient_view, send_status
from magpie_gateway.sms_variables import link_variable, other_variables, variables
from magpie_gateway.urls import UrlRejected, check_public_url


@pytest.mark.parametrize(
    "url",
    [
        "https://1.1.1.1/cb",
        "http://8.8.8.8:8080/cb?x=1",
        "https://[2606:4700:4700::1111]/cb",
    ],
)
async def test_public_urls_are_accepted(url: str) -> None:
    await check_public_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://1.1.1.1/x",
        "https:///nohost",
        "https://1.1.1.1/a b",
        "https://127.0.0.1/cb",
        "https://localhost:8443/cb",
        "https://api.localhost/cb",
        "https://10.0.0.1/cb",
        "https://172.16.5.4/cb",
        "https://192.168.0.1/cb",
        "https://100.64.0.1/cb",  # carrier-grade NAT
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/cb",
        "https://224.0.0.1/cb",
        "https://[::1]/cb",
        "https://[fd00::1]/cb",
        "https://[::ffff:10.0.0.1]/cb",
        "https://u:p@1.1.1.1/cb",
        "https://1.1.1.1/" + "x" * 1000,
    ],
)
async def test_non_public_or_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRejected):
        await check_public_url(url)


async def test_loopback_only_when_allowed() -> None:
    await check_public_url("http://127.0.0.1:9000/cb", allow_loopback=True)
    await check_public_url("http://localhost:9000/cb", allow_loopback=True)
    with pytest.raises(UrlRejected):
        await check_public_url("http://10.0.0.1/cb", allow_loopback=True)


def test_sms_variables_and_the_link() -> None:
    content = "${2}您好，${1}前点击${3}领取，${2}"
    assert variables(content) == [2, 1, 3]
    assert link_variable(content) == 2
    assert link_variable(content, {3: "NEWTEXT"}) == 3
    assert link_variable(content, {9: "NEWTEXT"}) == 2  # declared but absent from the content
    assert link_variable("没有变量") is None
    assert other_variables(content, 3) == [1, 2]  # ascending N, as the dispatcher renders


def test_aim_template_texts_buttons_and_vendors() -> None:
    body = CreateAimPersonalTemplateRequestBody.model_validate(
        {
            "card_id": "RedPacket",
            "sub_type": 2,
            "tpl_name": "红包",
            "sms_example": "示例",
            "pages": [
                {
                    "contents": [
                        {"type": "text", "content": "标题", "content_child": "副标题"},
                        {"type": "image", "src": "1", "action_type": "open_app", "action": {"target": "app://x"}},
                        {
                            "type": "button",
                            "content": "领取",
                            "action_type": "OPEN_URL",
                            "action": {"target": "https://a"},
                        },
                        {
                            "type": "button",
                            "content": "提醒",
                            "action_type": "OPEN_POPUP",
                            "action": {"content": "确定吗"},
                        },
                    ]
                }
            ],
            "params": [{"name": "${param1}"}],
            "factorys": [{"factory_type": "huawei"}, {"factory_type": "Honor"}, {"factory_type": "OPPO", "state": 0}],
        }
    )
    texts, buttons = texts_and_buttons(body)
    assert texts == ["标题", "副标题", "领取", "提醒", "确定吗", "示例"]
    assert [(b.text, b.action, b.target) for b in buttons] == [
        ("", "OPEN_APP", "app://x"),
        ("领取", "DYNAMIC:OPEN_URL", "https://a"),  # RedPacket with sub_type 2: dynamic buttons
        ("提醒", "DYNAMIC:OPEN_POPUP", ""),
    ]
    assert vendors_of(body) == ["HUAWEI", "HONOR"]
    assert param_key("${param1}") == "param1" and param_key("amount") == "amount"
    with pytest.raises(ApiError):
        vendors_of(CreateAimPersonalTemplateRequestBody(factorys=[{"factory_type": "NOKIA"}]))  # type: ignore[list-item]


def _doc(n: int = 4) -> dict[str, object]:
    return {"n": n, "first_index": 500, "mobiles": [f"1390000000{i}" for i in range(n)], "task_id": "T", "v": 0}


def test_delivery_ranks_never_go_down() -> None:
    doc = _doc()
    event = dispatch_pb2.DeliveryEvent
    arrays = _deliver(
        doc,
        [
            (0, event(status=dispatch_pb2.DELIVERY_STATUS_DELIVERED, result_code="DELIVRD", done_at_ms=9, msg_id="m0")),
            (0, event(status=dispatch_pb2.DELIVERY_STATUS_SUBMITTED, submitted_at_ms=5, msg_id="other")),
            (1, event(status=dispatch_pb2.DELIVERY_STATUS_TIMEOUT, done_at_ms=7)),
            (1, event(status=dispatch_pb2.DELIVERY_STATUS_FAILED, result_code="UNDELIV", done_at_ms=8)),
            (2, event(status=dispatch_pb2.DELIVERY_STATUS_FAILED, result_code="UNDELIV")),
            (2, event(status=dispatch_pb2.DELIVERY_STATUS_DELIVERED, result_code="DELIVRD")),
        ],
    )
    assert arrays["dstat"][:3] == [2, 3, 3]  # delivered; failed after timeout (receipt came late); first final wins
    assert arrays["msg_id"][0] == "m0" and arrays["send_time"][0] == 5 and arrays["receive_time"][0] == 9
    assert arrays["result_code"][:3] == ["DELIVRD", "UNDELIV", "UNDELIV"]
    doc.update(arrays)
    doc["route"] = [common_pb2.ROUTE_SMART, common_pb2.ROUTE_DEGRADED, 0, common_pb2.ROUTE_INVALID]
    c = counters(doc)
    assert (c["submitted"], c["delivered"], c["failed"], c["final"], c["invalid"], c["classified"]) == (
        3,
        1,
        2,
        4,
        1,
        3,
    )
    assert recipient_view(doc, 3)["send_status"] == "INVALID" and recipient_view(doc, 3)["index"] == 503
    assert array(_doc(), "route") == [0, 0, 0, 0]


def test_send_status_mapping() -> None:
    assert send_status(0, 0) == "SENDING"
    assert send_status(common_pb2.ROUTE_SMART, dispatch_pb2.DELIVERY_STATUS_SUBMITTED) == "SENDING"
    assert send_status(common_pb2.ROUTE_SKIPPED, 0) == "SKIPPED"
    assert send_status(common_pb2.ROUTE_DEGRADED, dispatch_pb2.DELIVERY_STATUS_TIMEOUT) == "TIMEOUT"


def test_event_numbers_match_submitted_numbers() -> None:
    assert same_number("13900000001", "13900000001")
    assert same_number("13900000001", "8613900000001")
    assert same_number("+86 139 0000 0001", "13900000001")
    assert not same_number("13900000001", "13900000002")
    assert not same_number("1", "11")
