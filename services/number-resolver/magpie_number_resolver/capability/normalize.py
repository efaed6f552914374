"""Text normalisation for brand, OS and model names.

``fold(text)``: NFKC (full-width letters, digits, brackets and the ideographic space become their ASCII forms),
case-folded, with the separators removed: whitespace, hyphen, underscore, brackets "()" and the middle dots
"·" / "・". "HUAWEI Mate 40 Pro", "huawei-mate40pro" and "ＨＵＡＷＥＩ　ＭＡＴＥ　４０　ＰＲＯ" fold alike.

``ModelKeyer`` turns a model name into the index key of one vendor:
  1. NFKC + casefold;
  2. strip leading vendor-brand words, repeatedly ("HUAWEI Mate 40" -> "Mate 40", "Samsung Galaxy S21" ->
     "S21"). A Latin alias must be followed by a separator or the end ("MI 9" -> "9", but "MIX 2" stays);
     a CJK alias may be followed by anything ("小米9" -> "9", "荣耀X20" -> "X20");
  3. a leading sub-brand alias is replaced by the sub-brand's canonical spelling ("红米Note 4X" ->
     "redmi Note 4X"); sub-brands stay part of the key because their numbers overlap the main line
     (Redmi 2 vs 小米2);
  4. fold (separators removed).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

__all__ = ["SEPARATORS", "ModelKeyer", "fold"]

SEPARATORS = " \t\r\n\u3000-_()·・"
_DELETE = str.maketrans("", "", SEPARATORS)
_SEPARATOR_SET = frozenset(SEPARATORS)


def fold(text: str) -> str:
    """Case-, width- and separator-insensitive form of a name."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_DELETE)


def _prefix_form(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip(SEPARATORS)


def _needs_boundary(alias: str) -> bool:
    return alias[-1].isascii()


class ModelKeyer:
    """Computes model index keys for one vendor (see the module docstring)."""

    __slots__ = ("_brand_prefixes", "_sub_prefixes")

    def __init__(self, brand_aliases: Iterable[str], sub_brands: Mapping[str, Iterable[str]]) -> None:
        prefixes = {_prefix_form(a) for a in brand_aliases}
        prefixes.discard("")
        # longest first, so "xiaomi" wins over "mi" should both ever match
        self._brand_prefixes: tuple[tuple[str, bool], ...] = tuple(
            (p, _needs_boundary(p)) for p in sorted(prefixes, key=len, reverse=True)
        )
        subs: list[tuple[str, bool, str]] = []
        for canonical, aliases in sub_brands.items():
            canon = fold(canonical)
            for alias in {_prefix_form(a) for a in (canonical, *aliases)}:
                if alias:
                    subs.append((alias, _needs_boundary(alias), canon))
        subs.sort(key=lambda item: len(item[0]), reverse=True)
        self._sub_prefixes: tuple[tuple[str, bool, str], ...] = tuple(subs)

    @staticmethod
    def _strip(text: str, alias: str, boundary: bool) -> str | None:
        if not text.startswith(alias):
            return None
        rest = text[len(alias) :]
        if boundary and rest and rest[0] not in _SEPARATOR_SET:
            return None
        return rest.lstrip(SEPARATORS)

    def key(self, model: str) -> str:
        text = _prefix_form(model)
        stripped = True
        while stripped and text:
            stripped = False
            for alias, boundary in self._brand_prefixes:
                rest = self._strip(text, alias, boundary)
                if rest is not None:
                    text = rest
                    stripped = True
                    break
        for alias, boundary, canon in self._sub_prefixes:
            rest = self._strip(text, alias, boundary)
            if rest is not None:
                text = canon + " " + rest
                break
        return text.translate(_DELETE)
