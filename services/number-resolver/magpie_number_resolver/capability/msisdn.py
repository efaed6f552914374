"""Mainland-China mobile number validation (KooMessage sends to the three mainland carriers only).

A valid number is 11 ASCII digits, "1" then 3-9 (the 13x-19x mobile ranges), optionally written with a
"+86" / "0086" / "86" country prefix and with spaces or hyphens ("+86 138-0013-8000"). No regular expressions:
this runs once per recipient.
"""

from __future__ import annotations

__all__ = ["normalize_msisdn"]

_SECOND_DIGIT = frozenset("3456789")
_DROP = str.maketrans("", "", " -")


def normalize_msisdn(number: str) -> str | None:
    """The 11-digit national form of a mobile number, or None when it is not a valid mainland mobile number."""
    if not isinstance(number, str):
        return None
    text = number.strip()
    if " " in text or "-" in text:
        text = text.translate(_DROP)
    length = len(text)
    if length == 14 and text.startswith("+86"):
        text = text[3:]
    elif length == 15 and text.startswith("0086"):
        text = text[4:]
    elif length == 13 and text.startswith("86"):
        text = text[2:]
    if len(text) != 11 or not text.isascii() or not text.isdigit():
        return None
    if text[0] != "1" or text[1] not in _SECOND_DIGIT:
        return None
    return text
