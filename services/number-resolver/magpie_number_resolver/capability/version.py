"""Dotted numeric versions ("11.1.0.551", "9.1", "10940900") with a total ordering.

Two parsers:

* :meth:`Version.parse_strict` for the capability table: only ASCII digits and dots, at least one component,
  no empty components ("1..2", ".1", "1." are errors).
* :meth:`Version.parse` for versions reported by handsets, which carry decorations. Rules, in order:
  1. NFKC-normalise (full-width digits and dots become ASCII);
  2. skip every leading character that is not a digit ("V13.2.20.13", "EMUI 11.0.1", "Android 9");
  3. take the longest run of digits and dots that follows; everything after it is a suffix and ignored
     ("11.1.0.551(SP1)" -> 11.1.0.551, "9.2.3.1A" -> 9.2.3.1);
  4. trailing dots are dropped ("10." -> 10); an empty component inside ("1..2") or no digit at all is an error.

Ordering compares components numerically and pads the shorter version with zeros, so "9.1" == "9.1.0" and
"5.17" > "5.2". Internally the trailing zeros are stripped once (``key``); comparing the stripped tuples
lexicographically is exactly the padded comparison, so every comparison is a plain tuple comparison.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["Version", "VersionError", "version_key"]

_DIGITS = frozenset("0123456789")
_DIGITS_AND_DOT = frozenset("0123456789.")


class VersionError(ValueError):
    """A string that is not a version under the documented rules."""


def _strip_zeros(parts: tuple[int, ...]) -> tuple[int, ...]:
    end = len(parts)
    while end and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


def _components(core: str, original: str) -> tuple[int, ...]:
    pieces = core.split(".")
    if any(not piece for piece in pieces):
        raise VersionError(f"empty version component in {original!r}")
    return tuple(int(piece) for piece in pieces)


class Version:
    """An immutable dotted numeric version; ``parts`` as written, ``key`` with trailing zeros removed."""

    __slots__ = ("_hash", "key", "parts", "text")

    parts: tuple[int, ...]
    key: tuple[int, ...]
    text: str

    def __init__(self, parts: tuple[int, ...] | list[int], text: str | None = None) -> None:
        parts = tuple(parts)
        if not parts:
            raise VersionError("a version needs at least one component")
        for part in parts:
            if not isinstance(part, int) or isinstance(part, bool) or part < 0:
                raise VersionError(f"version components must be non-negative integers, got {part!r}")
        self.parts = parts
        self.key = _strip_zeros(parts)
        self.text = text if text is not None else ".".join(str(p) for p in parts)
        self._hash = hash(self.key)

    @classmethod
    def parse_strict(cls, text: str) -> Version:
        """Parse a table version: ASCII digits separated by single dots, nothing else."""
        if not isinstance(text, str):
            raise VersionError(f"a version must be a string, got {type(text).__name__} {text!r}")
        if not text or not set(text) <= _DIGITS_AND_DOT:
            raise VersionError(f"not a dotted numeric version: {text!r}")
        return cls(_components(text, text), text)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a version reported by a handset (lenient; see the module docstring for the rules)."""
        if not isinstance(text, str):
            raise VersionError(f"a version must be a string, got {type(text).__name__} {text!r}")
        normal = unicodedata.normalize("NFKC", text)
        start = 0
        length = len(normal)
        while start < length and normal[start] not in _DIGITS:
            start += 1
        if start == length:
            raise VersionError(f"no digits in version {text!r}")
        end = start
        while end < length and normal[end] in _DIGITS_AND_DOT:
            end += 1
        core = normal[start:end].rstrip(".")
        return cls(_components(core, text), text)

    @property
    def major(self) -> int:
        return self.parts[0]

    def __repr__(self) -> str:
        return f"Version({self.text!r})"

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key == other.key
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key != other.key
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key < other.key
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key <= other.key
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key > other.key
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self.key >= other.key
        return NotImplemented


@lru_cache(maxsize=65536)
def version_key(text: str) -> tuple[int, ...] | None:
    """Comparison key of a handset-reported version string, or None when it is not a version (cached)."""
    try:
        return Version.parse(text).key
    except VersionError:
        return None
