"""``${N}`` variables of SMS templates and which of them receives the smart message's short link."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

VARIABLE = re.compile(r"\$\{(\d{1,3})\}")
# KooMessage's variable type for the resolution identifier (the short link): MsgTemplateRequest.variable_attributes.
LINK_VARIABLE_TYPE = "NEWTEXT"
VARIABLE_TYPES = frozenset({"PHONE", "NEWTEXT", "CHARDIGIT", "DATETIME", "MONEY", "TEXT"})


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
