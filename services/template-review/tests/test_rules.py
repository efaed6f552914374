"""Table-driven tests of every automatic rule."""

from __future__ import annotations

from typing import Any

import pytest

from magpie.v1 import template_pb2
from magpie_template_review.catalog import CARRIER, KM_SENSITIVE_WORDS, KM_SIGNATURE_EMPTY, KM_SIGNATURE_LENGTH, Rule
from magpie_template_review.rules import (
    AutoReview,
    Reviewer,
    has_opt_out,
    malformed_variables,
    parse_action,
)
from magpie_template_review.submission import Button, Submission
from magpie_template_review.words import SensitiveWords

AIM = template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE
SMS = template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE
SIGNATURE = template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE

ALL_VENDORS = ("HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO", "MEIZU", "SAMSUNG")


@pytest.fixture(scope="module")
def reviewer() -> Reviewer:
    return Reviewer(SensitiveWords.load())


def aim(**overrides: Any) -> Submission:
    fields: dict[str, Any] = {
        "subject": AIM,
        "subject_id": "100000001",
        "revision": 1,
        "name": "双十一会员日",
        "use_template_type": "StandardImageAndText",
        "texts": ("会员日专享", "全场满300减50，点击查看详情", "立即查看"),
        "vendors": ("HUAWEI", "XIAOMI"),
        "param_count": 2,
        "param_names": ("param1", "param2"),
        "buttons": (Button("立即查看", "OPEN_BROWSER", "https://shop.example.com/${param1}"),),
    }
    fields.update(overrides)
    return Submission(**fields)


def sms(content: str, kind: str = "NOTIFY_TYPE", **overrides: Any) -> Submission:
    fields: dict[str, Any] = {
        "subject": SMS,
        "subject_id": "sms-1",
        "revision": 1,
        "name": "验证码",
        "use_template_type": kind,
        "texts": (content,),
    }
    fields.update(overrides)
    return Submission(**fields)


def signature(name: str, **overrides: Any) -> Submission:
    return Submission(subject=SIGNATURE, subject_id="sig-1", revision=1, name=name, **overrides)


def vendor_results(review: AutoReview) -> dict[str, bool]:
    return {v.vendor: v.approved for v in review.verdicts}


# --- AIM templates --------------------------------------------------------------------------------------------
AIM_CASES: list[tuple[str, Submission, bool, list[str], dict[str, bool]]] = [
    ("approved", aim(), True, [], {"HUAWEI": True, "XIAOMI": True}),
    ("all vendors", aim(vendors=ALL_VENDORS), True, [], dict.fromkeys(ALL_VENDORS, True)),
    (
        "vendor ids are case-insensitive and deduplicated",
        aim(vendors=("huawei", " Xiaomi ", "HUAWEI", "")),
        True,
        [],
        {"HUAWEI": True, "XIAOMI": True},
    ),
    ("no vendor", aim(vendors=()), False, [Rule.AIM_NO_VENDORS], {}),
    (
        "unknown vendor rejected alone",
        aim(vendors=("HUAWEI", "NOKIA")),
        True,
        [Rule.AIM_UNKNOWN_VENDOR],
        {"HUAWEI": True, "NOKIA": False},
    ),
    ("20 params", aim(param_count=20), True, [], {"HUAWEI": True, "XIAOMI": True}),
    ("21 params", aim(param_count=21), False, [Rule.AIM_PARAM_LIMIT], {"HUAWEI": False, "XIAOMI": False}),
    (
        "param names count too",
        aim(param_count=0, param_names=tuple(f"p{i}" for i in range(21))),
        False,
        [Rule.AIM_PARAM_LIMIT],
        {"HUAWEI": False, "XIAOMI": False},
    ),
    ("negative param count", aim(param_count=-1), False, [Rule.AIM_PARAM_LIMIT], {"HUAWEI": False, "XIAOMI": False}),
    (
        "e-commerce coupon: 40 params",
        aim(use_template_type="ECOMMERCE_COUPON", param_count=40, vendors=("HUAWEI",)),
        True,
        [],
        {"HUAWEI": True},
    ),
    (
        "e-commerce coupon (card_id spelling): 40 params",
        aim(use_template_type="EcommerceCouponVertical", param_count=40, vendors=("HUAWEI",)),
        True,
        [],
        {"HUAWEI": True},
    ),
    (
        "e-commerce coupon: 41 params",
        aim(use_template_type="ECOMMERCE_COUPON", param_count=41, vendors=("HUAWEI",)),
        False,
        [Rule.AIM_PARAM_LIMIT],
        {"HUAWEI": False},
    ),
    (
        "e-commerce coupon renders on Huawei only",
        aim(use_template_type="ecommerce_coupon", vendors=("HUAWEI", "OPPO", "VIVO")),
        True,
        [Rule.AIM_ECOMMERCE_COUPON_HUAWEI_ONLY],
        {"HUAWEI": True, "OPPO": False, "VIVO": False},
    ),
    (
        "OPPO with a DIAL_PHONE button: OPPO rejected, others approve",
        aim(vendors=("HUAWEI", "OPPO", "VIVO"), buttons=(Button("拨打", "DIAL_PHONE", "4000000000"),)),
        True,
        [Rule.AIM_OPPO_BUTTON_ACTION],
        {"HUAWEI": True, "OPPO": False, "VIVO": True},
    ),
    (
        "OPPO with OPEN_URL",
        aim(vendors=("OPPO", "HUAWEI"), buttons=(Button("看看", "OPEN_URL", "https://a.example.com"),)),
        True,
        [Rule.AIM_OPPO_BUTTON_ACTION],
        {"OPPO": False, "HUAWEI": True},
    ),
    (
        "OPPO alone with a banned button: nothing approved",
        aim(vendors=("OPPO",), buttons=(Button("复制", "COPY_PARAMETER", "${param1}"),)),
        False,
        [Rule.AIM_OPPO_BUTTON_ACTION],
        {"OPPO": False},
    ),
    (
        "OPPO with the three allowed actions",
        aim(
            vendors=("OPPO", "HUAWEI"),
            buttons=(
                Button("a", "OPEN_BROWSER", "https://a.example.com"),
                Button("b", "open_quick", "hap://app/x"),
                Button("c", "OPEN_APP", "weixin://"),
            ),
        ),
        True,
        [],
        {"OPPO": True, "HUAWEI": True},
    ),
    (
        "DIAL_PHONE without OPPO is fine",
        aim(vendors=("HUAWEI", "XIAOMI"), buttons=(Button("拨打", "DIAL", "4000000000"),)),
        True,
        [],
        {"HUAWEI": True, "XIAOMI": True},
    ),
    (
        "dynamic button: only HUAWEI approves",
        aim(vendors=("HUAWEI", "HONOR", "XIAOMI"), buttons=(Button("领取", "DYNAMIC", ""),)),
        True,
        [Rule.AIM_DYNAMIC_BUTTON_HUAWEI_ONLY],
        {"HUAWEI": True, "HONOR": False, "XIAOMI": False},
    ),
    (
        "dynamic button with its event type, OPPO selected: one rule, OPPO rejected",
        aim(vendors=("HUAWEI", "OPPO"), buttons=(Button("领取", "DYNAMIC:OPEN_URL", "https://a.example.com"),)),
        True,
        [Rule.AIM_DYNAMIC_BUTTON_HUAWEI_ONLY],
        {"HUAWEI": True, "OPPO": False},
    ),
    (
        "dynamic button, Huawei only selected",
        aim(vendors=("HUAWEI",), buttons=(Button("领取", "dynamic", ""),)),
        True,
        [],
        {"HUAWEI": True},
    ),
    (
        "dynamic button without Huawei: nothing approved",
        aim(vendors=("XIAOMI",), buttons=(Button("领取", "DYNAMIC", ""),)),
        False,
        [Rule.AIM_DYNAMIC_BUTTON_HUAWEI_ONLY],
        {"XIAOMI": False},
    ),
    (
        "unknown button action",
        aim(buttons=(Button("飞", "TELEPORT", ""),)),
        False,
        [Rule.AIM_UNKNOWN_BUTTON_ACTION],
        {"HUAWEI": False, "XIAOMI": False},
    ),
    (
        "dynamic button with an unknown event type",
        aim(vendors=("HUAWEI",), buttons=(Button("飞", "DYNAMIC:TELEPORT", ""),)),
        False,
        [Rule.AIM_UNKNOWN_BUTTON_ACTION],
        {"HUAWEI": False},
    ),
    (
        "sensitive word in a text",
        aim(texts=("会员日", "网上赌 博，注册即送"), vendors=("HUAWEI", "OPPO")),
        False,
        [Rule.SENSITIVE_WORD],
        {"HUAWEI": False, "OPPO": False},
    ),
    (
        "sensitive word in the name",
        aim(name="ＣＡＳＩＮＯ night"),
        False,
        [Rule.SENSITIVE_WORD],
        {"HUAWEI": False, "XIAOMI": False},
    ),
    (
        "sensitive word in a button text",
        aim(buttons=(Button("刷单返利", "OPEN_BROWSER", "https://a.example.com"),)),
        False,
        [Rule.SENSITIVE_WORD],
        {"HUAWEI": False, "XIAOMI": False},
    ),
    (
        "several rules at once",
        aim(vendors=("HUAWEI", "OPPO"), param_count=25, buttons=(Button("拨打", "DIAL_PHONE", "1"),)),
        False,
        [Rule.AIM_PARAM_LIMIT, Rule.AIM_OPPO_BUTTON_ACTION],
        {"HUAWEI": False, "OPPO": False},
    ),
]


@pytest.mark.parametrize(
    ("submission", "approved", "rule_ids", "vendors"),
    [case[1:] for case in AIM_CASES],
    ids=[case[0] for case in AIM_CASES],
)
def test_aim_rules(
    reviewer: Reviewer, submission: Submission, approved: bool, rule_ids: list[str], vendors: dict[str, bool]
) -> None:
    review = reviewer.review(submission)
    assert review.rule_ids == rule_ids
    assert review.approved is approved
    assert vendor_results(review) == vendors
    for verdict in review.verdicts:
        assert (verdict.reason == "") is verdict.approved  # every rejection says why


def test_oppo_rejection_reason_names_the_rule_and_button(reviewer: Reviewer) -> None:
    review = reviewer.review(aim(vendors=("HUAWEI", "OPPO"), buttons=(Button("拨打", "DIAL_PHONE", "1"),)))
    oppo = next(v for v in review.verdicts if v.vendor == "OPPO")
    assert "[AIM_OPPO_BUTTON_ACTION]" in oppo.reason
    assert "拨打" in oppo.reason and "OPEN_QUICK" in oppo.reason


@pytest.mark.parametrize(
    ("raw", "dynamic", "action", "known"),
    [
        ("OPEN_BROWSER", False, "OPEN_BROWSER", True),
        (" open_app ", False, "OPEN_APP", True),
        ("DIAL", False, "DIAL_PHONE", True),
        ("VIEW_PIC", False, "VIEW_PIC", True),
        ("DYNAMIC", True, "", True),
        ("dynamic:open_url", True, "OPEN_URL", True),
        ("DYNAMIC:NOPE", True, "NOPE", False),
        ("", False, "", False),
        ("OPEN_SOMETHING", False, "OPEN_SOMETHING", False),
    ],
)
def test_parse_action(raw: str, dynamic: bool, action: str, known: bool) -> None:
    parsed = parse_action(raw)
    assert (parsed.dynamic, parsed.action, parsed.known) == (dynamic, action, known)


# --- sensitive words ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "submission",
    [
        aim(texts=("ＶＩＰ专享", "真人荷官 在线发牌")),
        sms("您好，恭喜您中奖，请点击${1}领取"),
        signature("刷单返利"),
    ],
    ids=["aim", "sms template", "signature"],
)
def test_sensitive_words_reject_with_km_code(reviewer: Reviewer, submission: Submission) -> None:
    review = reviewer.review(submission)
    assert not review.approved
    assert Rule.SENSITIVE_WORD in review.rule_ids
    assert KM_SENSITIVE_WORDS in review.reason
    assert all(KM_SENSITIVE_WORDS in v.reason for v in review.verdicts)


def test_sensitive_words_listed_in_reason(reviewer: Reviewer) -> None:
    review = reviewer.review(sms("欢迎来到 网上赌场，首次注册送彩金"))
    assert "网上赌场 (gambling)" in review.reason and "彩金 (gambling)" in review.reason


# --- SMS templates --------------------------------------------------------------------------------------------
SMS_CASES: list[tuple[str, Submission, list[str]]] = [
    ("notification", sms("您的验证码是${1}，5分钟内有效。"), []),
    ("notification, lowercase type", sms("您的订单${1}已发货", kind="notification"), []),
    ("promotion with 回T退订", sms("双十一大促，全场五折 ${1} 回T退订", kind="PROMOTION_TYPE"), []),
    ("promotion with 拒收请回复R", sms("新品上市，详情${1}。拒收请回复R", kind="promotion"), []),
    (
        "promotion without opt-out",
        sms("双十一大促，全场五折 ${1}", kind="PROMOTION_TYPE"),
        [Rule.SMS_PROMOTION_OPT_OUT],
    ),
    ("empty", sms(""), [Rule.SMS_TEMPLATE_EMPTY]),
    ("blank", sms("   \n"), [Rule.SMS_TEMPLATE_EMPTY]),
    (
        "no texts at all",
        Submission(subject=SMS, subject_id="s", revision=1, use_template_type="NOTIFY_TYPE"),
        [Rule.SMS_TEMPLATE_EMPTY],
    ),
    ("20,000 chars", sms("好" * 20_000), []),
    ("20,001 chars", sms("好" * 20_001), [Rule.SMS_TEMPLATE_TOO_LONG]),
    ("${0}", sms("验证码${0}"), [Rule.SMS_TEMPLATE_VARIABLE]),
    ("${name}", sms("您好${name}"), [Rule.SMS_TEMPLATE_VARIABLE]),
    ("unterminated", sms("您好${1"), [Rule.SMS_TEMPLATE_VARIABLE]),
    ("unknown type", sms("您好", kind="ADVERT"), [Rule.SMS_TEMPLATE_TYPE]),
    ("missing type", sms("您好", kind=""), [Rule.SMS_TEMPLATE_TYPE]),
    (
        "several",
        sms("大促${x} " + "好" * 20_000, kind="PROMOTION_TYPE"),
        [Rule.SMS_TEMPLATE_TOO_LONG, Rule.SMS_TEMPLATE_VARIABLE, Rule.SMS_PROMOTION_OPT_OUT],
    ),
]


@pytest.mark.parametrize(
    ("submission", "rule_ids"), [case[1:] for case in SMS_CASES], ids=[case[0] for case in SMS_CASES]
)
def test_sms_template_rules(reviewer: Reviewer, submission: Submission, rule_ids: list[str]) -> None:
    review = reviewer.review(submission)
    assert review.rule_ids == rule_ids
    assert review.approved is (not rule_ids)
    assert [v.vendor for v in review.verdicts] == [CARRIER]


@pytest.mark.parametrize(
    ("content", "bad"),
    [
        ("${1}${2}${10}", []),
        ("价格 $100 {不是变量}", []),
        ("${01}", ["${01}"]),
        ("${-1}", ["${-1}"]),
        ("${ 1}", ["${ 1}"]),
        ("${}", ["${}"]),
        ("a${1}b${x}c${2", ["${x}", "${2"]),
    ],
)
def test_malformed_variables(content: str, bad: list[str]) -> None:
    assert malformed_variables(content) == bad


@pytest.mark.parametrize(
    "content",
    [
        "回T退订",
        "回TD退订",
        "回复T退订",
        "回复TD退订",
        "回复 TD 退订",
        "回Ｔ退订",
        "回N退订",
        "回0退订",
        "回T取关",
        "回复R拒收",
        "回复“TD”退订",
        "回复退订",
        "退订回T",
        "退订回TD",
        "退订请回复TD",
        "如需退订请回复T",
        "拒收请回复R",
        "拒收回R",
        "取关回T",
        "Reply STOP to opt out",
    ],
)
def test_opt_out_variants_accepted(content: str) -> None:
    assert has_opt_out("全场五折，点击${1}。" + content)


@pytest.mark.parametrize(
    "content",
    ["全场五折", "订单已回退，订单号${1}", "回复查询余额", "拒收", "退订", "回来看看，新品已上"],
)
def test_text_without_opt_out(content: str) -> None:
    assert not has_opt_out(content)


# --- SMS signatures -------------------------------------------------------------------------------------------
SIGNATURE_CASES: list[tuple[str, Submission, list[str], str]] = [
    ("chinese", signature("华为云"), [], ""),
    ("letters and digits", signature("Magpie2024"), [], ""),
    ("2 chars", signature("喜鹊"), [], ""),
    ("16 chars", signature("喜" * 16), [], ""),
    ("signature in the first text", signature("", texts=("喜鹊科技",)), [], ""),
    ("empty", signature(""), [Rule.SMS_SIGNATURE_EMPTY], KM_SIGNATURE_EMPTY),
    ("blank", signature("   "), [Rule.SMS_SIGNATURE_EMPTY], KM_SIGNATURE_EMPTY),
    ("1 char", signature("鹊"), [Rule.SMS_SIGNATURE_LENGTH], KM_SIGNATURE_LENGTH),
    ("17 chars", signature("喜" * 17), [Rule.SMS_SIGNATURE_LENGTH], KM_SIGNATURE_LENGTH),
    ("brackets", signature("【喜鹊科技】"), [Rule.SMS_SIGNATURE_BRACKETS], ""),
    ("ascii brackets", signature("[Magpie]"), [Rule.SMS_SIGNATURE_BRACKETS], ""),
    ("space", signature("喜鹊 科技"), [Rule.SMS_SIGNATURE_CHARSET], ""),
    ("punctuation", signature("喜鹊-科技!"), [Rule.SMS_SIGNATURE_CHARSET], ""),
    ("full-width letters", signature("ＭＡＧＰＩＥ"), [Rule.SMS_SIGNATURE_CHARSET], ""),
    (
        "brackets and too long",
        signature("【" + "喜" * 15 + "】"),
        [Rule.SMS_SIGNATURE_BRACKETS, Rule.SMS_SIGNATURE_LENGTH],
        KM_SIGNATURE_LENGTH,
    ),
]


@pytest.mark.parametrize(
    ("submission", "rule_ids", "code"),
    [case[1:] for case in SIGNATURE_CASES],
    ids=[case[0] for case in SIGNATURE_CASES],
)
def test_signature_rules(reviewer: Reviewer, submission: Submission, rule_ids: list[str], code: str) -> None:
    review = reviewer.review(submission)
    assert review.rule_ids == rule_ids
    assert review.approved is (not rule_ids)
    assert [v.vendor for v in review.verdicts] == [CARRIER]
    if code:
        assert code in review.reason


def test_unsupported_subject_raises(reviewer: Reviewer) -> None:
    with pytest.raises(ValueError):
        reviewer.review(Submission(subject=0, subject_id="x", revision=1))


def test_submission_from_message() -> None:
    message = template_pb2.TemplateSubmitted(
        subject=AIM,
        subject_id="123456789",
        revision=3,
        name="n",
        use_template_type="RedPacket",
        texts=["a", "b"],
        vendors=["HUAWEI", "oppo"],
        param_count=2,
        param_names=["p1", "p2"],
        buttons=[template_pb2.TemplateButton(text="t", action="OPEN_APP", target="weixin://")],
    )
    sub = Submission.from_message(message)
    assert sub.requested_vendors() == ("HUAWEI", "OPPO")
    assert sub.buttons == (Button("t", "OPEN_APP", "weixin://"),)
    assert (sub.subject_id, sub.revision, sub.texts, sub.param_names) == ("123456789", 3, ("a", "b"), ("p1", "p2"))
