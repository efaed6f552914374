"""The SMS a recipient receives: ``【sign】`` + the SMS template with its ``${N}`` variables filled (pure functions).

- ``${ctx.link_param}`` receives the recipient's short link (``short_url``);
- every other variable is filled from ``recipient.sms_params`` in ascending N: ``sms_params[0]`` fills the lowest
  variable number that is not the link, ``sms_params[1]`` the next one, and so on. A variable used several times
  gets the same value each time. Values are inserted verbatim and never expanded again (a value containing
  ``${1}`` stays as it is).
- Segments are counted on the whole text, signature included (``sms_text.count_segments``): that is what the
  carrier bills and what ``build_submit_sms`` splits into concatenated parts.

The gateway validates the number of ``sms_params`` and that the template has the link variable, so a mismatch
here is a bug upstream: :class:`RenderError`, which the sender turns into a poison message.

:class:`CompiledTemplate` parses a task's template once (the sender compiles it once per batch) and fills it per
recipient by joining literal pieces and values: the same text as :func:`render_text`, without a regex per recipient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from magpie.v1 import dispatch_pb2, task_pb2
from magpie_common.sms_text import SmsEncoding, count_segments

VARIABLE = re.compile(r"\$\{(\d{1,3})\}")
SIGN_OPEN = "【"
SIGN_CLOSE = "】"


class RenderError(ValueError):
    """The template, the signature or the recipient's values cannot make an SMS (a bug upstream)."""


@dataclass(frozen=True, slots=True)
class RenderedSms:
    text: str
    encoding: SmsEncoding
    segments: int


def variable_numbers(content: str) -> list[int]:
    """The distinct ``${N}`` numbers of ``content``, ascending."""
    return sorted({int(number) for number in VARIABLE.findall(content)})


def fill(content: str, link_param: int, short_url: str, sms_params: Sequence[str]) -> str:
    """``content`` with the link and the other variables substituted (see the module docstring)."""
    numbers = variable_numbers(content)
    has_link = link_param in numbers
    if has_link and not short_url:
        raise RenderError(f"the template's link variable ${{{link_param}}} has no short link to receive")
    if short_url and not has_link:
        raise RenderError(f"the template has no link variable ${{{link_param}}} for the short link")
    others = [n for n in numbers if n != link_param]
    if len(sms_params) != len(others):
        raise RenderError(
            f"the template has {len(others)} variable(s) besides the link ({others}), "
            f"the recipient has {len(sms_params)} sms_params"
        )
    values: dict[int, str] = dict(zip(others, sms_params, strict=True))
    if has_link:
        values[link_param] = short_url
    return VARIABLE.sub(lambda match: values[int(match.group(1))], content)


def render_text(ctx: task_pb2.TaskContext, recipient: dispatch_pb2.DispatchRecipient) -> str:
    if not ctx.sms_sign:
        raise RenderError("the task has no SMS signature")
    if not ctx.sms_template_content:
        raise RenderError("the task has no SMS template content")
    body = fill(ctx.sms_template_content, ctx.link_param, recipient.short_url, list(recipient.sms_params))
    return f"{SIGN_OPEN}{ctx.sms_sign}{SIGN_CLOSE}{body}"


class CompiledTemplate:
    """``【sign】`` + a template split into literal pieces and variable slots, checked once."""

    __slots__ = ("_others", "_pieces", "_slots", "has_link", "link_param")

    def __init__(self, ctx: task_pb2.TaskContext) -> None:
        if not ctx.sms_sign:
            raise RenderError("the task has no SMS signature")
        if not ctx.sms_template_content:
            raise RenderError("the task has no SMS template content")
        content = ctx.sms_template_content
        numbers = variable_numbers(content)
        self.link_param = ctx.link_param
        self.has_link = ctx.link_param in numbers
        others = [n for n in numbers if n != ctx.link_param]
        self._others = len(others)
        position = {n: i for i, n in enumerate(others)}
        pieces: list[str] = []
        slots: list[int] = []  # per variable occurrence: index into sms_params, or -1 for the link
        last = 0
        for match in VARIABLE.finditer(content):
            pieces.append(content[last : match.start()])
            number = int(match.group(1))
            slots.append(-1 if number == ctx.link_param else position[number])
            last = match.end()
        pieces.append(content[last:])
        pieces[0] = f"{SIGN_OPEN}{ctx.sms_sign}{SIGN_CLOSE}{pieces[0]}"
        self._pieces = pieces
        self._slots = slots

    def text(self, recipient: dispatch_pb2.DispatchRecipient) -> str:
        """The same text as :func:`render_text` (same checks, same errors)."""
        short_url = recipient.short_url
        if self.has_link and not short_url:
            raise RenderError(f"the template's link variable ${{{self.link_param}}} has no short link to receive")
        if short_url and not self.has_link:
            raise RenderError(f"the template has no link variable ${{{self.link_param}}} for the short link")
        params = recipient.sms_params
        if len(params) != self._others:
            raise RenderError(
                f"the template has {self._others} variable(s) besides the link, the recipient has {len(params)} "
                "sms_params"
            )
        pieces = self._pieces
        if not self._slots:
            return pieces[0]
        parts = [pieces[0]]
        for i, slot in enumerate(self._slots, start=1):
            parts.append(short_url if slot < 0 else params[slot])
            parts.append(pieces[i])
        return "".join(parts)


def render(ctx: task_pb2.TaskContext, recipient: dispatch_pb2.DispatchRecipient) -> RenderedSms:
    """The recipient's SMS with its encoding and billable segment count."""
    text = render_text(ctx, recipient)
    encoding, segments = count_segments(text)
    return RenderedSms(text=text, encoding=encoding, segments=segments)
