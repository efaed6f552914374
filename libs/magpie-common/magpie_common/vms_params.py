"""Where the params of a VMS fallback template take their values from, per recipient of a smart send task.

A smart send task with the VMS fallback (``TaskContext.vms_tpl_id``) carries one *source* per param of the VMS
template, in the template's param order (``TaskContext.vms_params``):

- ``dync:<key>``: the recipient's ``dync_params`` value of the card param ``<key>`` (``Recipient.params``);
- ``sms:<n>``: the ``n``-th value (1-based) of the recipient's ``sms_params``;
- ``text:<value>``: the same fixed value for every recipient.

The gateway checks the sources against the card and SMS templates and every recipient's values when it accepts the
task (``magpie_gateway.vms_fallback``); the dispatcher computes the values when it hands the recipients routed VMS
to its vms role (``magpie_dispatcher.vms_fallback``). Both use :func:`value_of`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DYNC = "dync"
SMS = "sms"
TEXT = "text"
KINDS = (DYNC, SMS, TEXT)


class BadSource(ValueError):
    """A source that is not ``dync:<key>``, ``sms:<n>`` (n >= 1) or ``text:<value>``."""


def split(source: str) -> tuple[str, str]:
    """``(kind, argument)`` of a source; :class:`BadSource` when it is malformed."""
    kind, colon, argument = source.partition(":")
    if not colon or kind not in KINDS:
        raise BadSource(f"{source!r} is not dync:<card param>, sms:<n> or text:<value>")
    if kind == DYNC and not argument:
        raise BadSource(f"{source!r} names no card param")
    if kind == SMS and (not argument.isdigit() or int(argument) < 1):
        raise BadSource(f"{source!r}: n must be a whole number from 1")
    return kind, argument


def value_of(source: str, params: Mapping[str, str], sms_params: Sequence[str]) -> str:
    """The value ``source`` gives for a recipient with these card ``params`` and ``sms_params`` ("" when the
    recipient has none: the gateway refuses such tasks, so only a foreign producer gets there)."""
    kind, argument = split(source)
    if kind == TEXT:
        return argument
    if kind == DYNC:
        return params.get(argument, "")
    n = int(argument)
    return sms_params[n - 1] if n <= len(sms_params) else ""


def values_of(sources: Sequence[str], params: Mapping[str, str], sms_params: Sequence[str]) -> list[str]:
    return [value_of(source, params, sms_params) for source in sources]
