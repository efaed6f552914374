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


def render(ctx: task_pb2.TaskContext, recipient: dispatch_pb2.DispatchRecipient) -> RenderedSms:
    """The recipient's SMS with its encoding and billable segment count."""
    text = render_text(ctx, recipient)
    encoding, segments = count_segments(text)
    return RenderedSms(text=text, encoding=encoding, segments=segments)
