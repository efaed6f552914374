"""``${N}`` variables of SMS templates: which one receives the smart message's short link, the order in which
``sms_params`` / ``template_params`` fill them, the rules their values follow, and the rendered text.

Fill order (the dispatcher renders with the same rule): values fill the variables in ascending ``N``;
``values[0]`` fills the lowest ``N``. A variable used several times gets the same value each time, and a value is
inserted verbatim (a value containing ``${1}`` is never expanded again).

Value rules per declared ``variable_type`` (``MsgTemplateRequest.variable_attributes``), as KooMessage documents
them for ``template_params``:

=========  ======  ==========================================================================================
type       length  accepted values
=========  ======  ==========================================================================================
PHONE      1-15    digits, ``+``, ``-`` (mobile, fixed line, 95xxx / 400 / 800 numbers)
CHARDIGIT  1-20    letters and digits only (codes, order numbers, passwords)
DATETIME   1-20    a date (``yyyyMMdd``, ``yyyy-MM-dd``, ``yyyy/MM/dd``, ``yyyy年MM月dd日``) or a time
                   (``HH:mm:ss``, ``HH:mm``, ``HH点mm分``, ``HH点mm``)
MONEY      1-20    digits, ``.``, ``,`` and Chinese numerals (also IP addresses); currency signs belong in the
                   template
TEXT       1-20    anything but ``.``, ``。``, ``'``, ``<``, ``>``, ``{``, ``}``
NEWTEXT    1-256   the link variable (a URL)
(none)     1-256   variables without a declared type: any text (Magpie's choice: the SDK does not require types)
=========  ======  ==========================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VARIABLE = re.compile(r"\$\{(\d{1,3})\}")
# KooMessage's variable type for the resolution identifier (the short link): MsgTemplateRequest.variable_attributes.
LINK_VARIABLE_TYPE = "NEWTEXT"
VARIABLE_TYPES = frozenset({"PHONE", "NEWTEXT", "CHARDIGIT", "DATETIME", "MONEY", "TEXT"})


@dataclass(frozen=True)
class ValueRule:
    max_chars: int
    pattern: re.Pattern[str] | None
    describe: str


_DATE = r"\d{8}|\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{4}年\d{1,2}月\d{1,2}日"
_NUMERALS = "零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟元角分整"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?|\d{1,2}点\d{1,2}分?"
VALUE_RULES: dict[str, ValueRule] = {
    "PHONE": ValueRule(15, re.compile(r"[0-9+\-]+"), "digits, + or -"),
    "CHARDIGIT": ValueRule(20, re.compile(r"[A-Za-z0-9]+"), "letters and digits"),
    "DATETIME": ValueRule(20, re.compile(rf"(?:{_DATE})|(?:{_TIME})"), "a date or a time"),
    "MONEY": ValueRule(20, re.compile(rf"[0-9.,{_NUMERALS}]+"), "an amount"),
    "TEXT": ValueRule(20, re.compile(r"[^.。'<>{}]+"), "text without . 。 ' < > { }"),
    LINK_VARIABLE_TYPE: ValueRule(256, None, "a link"),
}
UNTYPED_RULE = ValueRule(256, None, "text")


def variables(content: str) -> list[int]:
    """The distinct variable numbers of ``content`` in order of first appearance."""
    seen: dict[int, None] = {}
    for match in VARIABLE.finditer(content):
        seen.setdefault(int(match.group(1)), None)
    return list(seen)


def link_variable(content: str, variable_types: Mapping[int, str] | None = None) -> int | None:
    """N of the variable that receives the short link, None when the template has no variable.

    The variable declared with type NEWTEXT (KooMessage's "resolution identifier") when the template declares
    one that occurs in the content; otherwise the first ``${N}`` of the content.
    """
    found = variables(content)
    if not found:
        return None
    for number in found:
        if (variable_types or {}).get(number, "").upper() == LINK_VARIABLE_TYPE:
            return number
    return found[0]


def other_variables(content: str, link: int | None) -> list[int]:
    """The variables that ``sms_params`` fill: every variable but the link, in ascending N (``sms_params[0]`` fills
    the lowest). The dispatcher renders with the same rule."""
    return sorted(number for number in variables(content) if number != link)


def variable_types(attributes: Iterable[tuple[int | None, str | None]]) -> dict[int, str]:
    return {index: (kind or "").upper() for index, kind in attributes if index is not None}


def declared(template: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The stored ``variable_attributes`` of a template by variable number (types upper-cased)."""
    out: dict[int, dict[str, Any]] = {}
    for attribute in template.get("variable_attributes") or []:
        index = attribute.get("variable_index")
        if index is None:
            continue
        out[int(index)] = {
            "variable_type": (attribute.get("variable_type") or "").upper() or None,
            "variable_desc": attribute.get("variable_desc"),
        }
    return out


def rule_of(variable_type: str | None) -> ValueRule:
    return VALUE_RULES.get((variable_type or "").upper(), UNTYPED_RULE)


def value_problem(variable_type: str | None, value: str) -> str | None:
    """Why ``value`` cannot fill a variable of ``variable_type``, or None when it can."""
    rule = rule_of(variable_type)
    if not value:
        return "must not be empty"
    if len(value) > rule.max_chars:
        return f"must have at most {rule.max_chars} characters"
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        return f"must be {rule.describe}"
    return None


def variable_list(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The template's variables in fill order (ascending N), as ``VariableAttributesResponse`` objects."""
    types = declared(template)
    out = []
    for position, number in enumerate(sorted(variables(template.get("template_content") or "")), start=1):
        attribute = types.get(number, {})
        kind = attribute.get("variable_type")
        out.append(
            {
                "id": position,
                "variable_index": number,
                "variable_length": rule_of(kind).max_chars,
                "variable_type": kind,
                "variable_desc": attribute.get("variable_desc"),
            }
        )
    return out


def fill(content: str, numbers: Sequence[int], values: Sequence[str]) -> str:
    """``content`` with variable ``numbers[i]`` replaced by ``values[i]`` (each exactly once, never re-expanded)."""
    by_number = dict(zip(numbers, values, strict=True))
    return VARIABLE.sub(lambda match: by_number.get(int(match.group(1)), match.group(0)), content)
