"""Rendering of the SMS text (pure): signature, link variable, sms_params in ascending variable order, segments."""

from __future__ import annotations

import pytest

from magpie.v1 import dispatch_pb2
from magpie_common.sms_text import SmsEncoding, split
from magpie_dispatcher.render import CompiledTemplate, RenderError, fill, render, render_text, variable_numbers
from magpie_dispatcher.testing import context

URL = "https://mgp.example/AbCdEfGhIj"


def person(*sms_params: str, short_url: str = URL) -> dispatch_pb2.DispatchRecipient:
    return dispatch_pb2.DispatchRecipient(index=0, mobile="13800000000", short_url=short_url, sms_params=sms_params)


def test_signature_in_brackets_and_link_substituted() -> None:
    ctx = context("t", template="点击 ${1} 查看", sign="喜鹊")
    assert render_text(ctx, person()) == f"【喜鹊】点击 {URL} 查看"


def test_params_fill_the_other_variables_in_ascending_order_whatever_the_link_position() -> None:
    # link in the middle: sms_params[0] -> ${1}, sms_params[1] -> ${3}
    assert fill("${3}/${2}/${1}", 2, URL, ["a", "b"]) == f"b/{URL}/a"
    # link first
    assert fill("${1} ${2} ${3}", 1, URL, ["x", "y"]) == f"{URL} x y"
    # link last, variables numbered with gaps and out of textual order
    assert fill("${10} then ${4} then ${7}", 10, URL, ["four", "seven"]) == f"{URL} then four then seven"


def test_a_variable_used_twice_gets_the_same_value() -> None:
    assert fill("${1}-${2}-${1}", 2, URL, ["v"]) == f"v-{URL}-v"


def test_values_are_not_expanded_again() -> None:
    assert fill("${1} ${2}", 1, URL, ["${1}"]) == f"{URL} ${{1}}"


def test_missing_or_extra_params_are_errors() -> None:
    with pytest.raises(RenderError, match="1 variable"):
        fill("${1} ${2}", 1, URL, [])
    with pytest.raises(RenderError, match="2 sms_params"):
        fill("${1} ${2}", 1, URL, ["a", "b"])


def test_link_variable_and_short_link_must_match() -> None:
    with pytest.raises(RenderError, match="no short link"):
        fill("${1}", 1, "", [])
    with pytest.raises(RenderError, match="no link variable"):
        fill("static text ${2}", 1, URL, ["x"])
    assert fill("no variables", 1, "", []) == "no variables"


def test_empty_signature_or_template_is_an_error() -> None:
    with pytest.raises(RenderError, match="signature"):
        render_text(context("t", sign=""), person())
    with pytest.raises(RenderError, match="template"):
        render_text(context("t", template=""), person())


def test_variable_numbers() -> None:
    assert variable_numbers("${3} $1 ${1} ${03} ${1000} {2}") == [1, 3]


def test_segments_count_the_whole_text_signature_included() -> None:
    short = render(context("t", template="${1}", sign="AB"), person(short_url="x" * 10))
    assert (short.encoding, short.segments) == (SmsEncoding.UCS2, 1)  # 【】 are not GSM-7
    # 70 UCS-2 units fit one SMS (【喜鹊】 counts 4); one unit more makes 2 parts of at most 67.
    body = "字" * 63 + "${1}"
    sms = render(context("t", template=body, sign="喜鹊"), person(short_url="abc"))
    assert len(sms.text) == 4 + 63 + 3 == 70 and sms.segments == 1
    sms = render(context("t", template=body, sign="喜鹊"), person(short_url="abcd"))
    assert sms.segments == 2 and len(split(sms.text)) == 2
    long = render(context("t", template="字" * 190 + "${1}", sign="喜鹊"), person(short_url="u"))
    assert long.segments == 3 == len(split(long.text))


@pytest.mark.parametrize(
    ("template", "link_param", "short_url", "params"),
    [
        ("${3}/${2}/${1}", 2, URL, ["a", "b"]),
        ("${1} ${2} ${3}", 1, URL, ["x", "y"]),
        ("${10} then ${4} then ${7}", 10, URL, ["four", "seven"]),
        ("${1}-${2}-${1}", 2, URL, ["v"]),
        ("${1} ${2}", 1, URL, ["${1}"]),
        ("no variables", 1, "", []),
        ("${1}", 1, URL, []),
    ],
)
def test_compiled_template_renders_like_render_text(
    template: str, link_param: int, short_url: str, params: list[str]
) -> None:
    ctx = context("t", template=template, sign="喜鹊", link_param=link_param)
    who = person(*params, short_url=short_url)
    assert CompiledTemplate(ctx).text(who) == render_text(ctx, who)


@pytest.mark.parametrize(
    ("template", "short_url", "params"),
    [("${1} ${2}", URL, []), ("${1} ${2}", URL, ["a", "b"]), ("${1}", "", []), ("static ${2}", URL, ["x"])],
)
def test_compiled_template_refuses_what_render_text_refuses(template: str, short_url: str, params: list[str]) -> None:
    ctx = context("t", template=template)
    who = person(*params, short_url=short_url)
    with pytest.raises(RenderError):
        render_text(ctx, who)
    with pytest.raises(RenderError):
        CompiledTemplate(ctx).text(who)
