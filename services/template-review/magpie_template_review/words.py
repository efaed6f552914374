"""Sensitive-word matching: one Aho-Corasick automaton (``ahocorasick-rs``) over the normalised word list.

The automaton is compiled once, when the service starts (``SensitiveWords.load``), and scanned once per text:
linear in the text length whatever the size of the list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ahocorasick_rs

from magpie_template_review.normalize import normalize

BUILTIN_LIST = "sensitive_words.txt"


@dataclass(frozen=True)
class WordHit:
    """One listed term found in a text (``term`` is the normalised list entry)."""

    term: str
    category: str


def parse_word_list(text: str) -> list[tuple[str, str]]:
    """``(category, term)`` pairs of a word-list file (see data/sensitive_words.txt for the format)."""
    entries: list[tuple[str, str]] = []
    category = "general"
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            category = line[1:-1].strip() or "general"
            continue
        entries.append((category, line))
    return entries


class SensitiveWords:
    """An immutable, compiled set of sensitive terms."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        categories: dict[str, str] = {}
        for category, term in entries:
            key = normalize(term)
            if key:
                categories.setdefault(key, category)
        if not categories:
            raise ValueError("the sensitive-word list is empty")
        self._terms = sorted(categories)
        self._categories = categories
        # Leftmost-longest: "网上赌场" is reported rather than its inner "赌场".
        self._automaton = ahocorasick_rs.AhoCorasick(self._terms, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    @classmethod
    def load(cls, extra_files: Iterable[str | Path] = ()) -> SensitiveWords:
        """The built-in list plus any extra list files (same format)."""
        text = resources.files("magpie_template_review").joinpath("data", BUILTIN_LIST).read_text("utf-8")
        entries = parse_word_list(text)
        for path in extra_files:
            entries.extend(parse_word_list(Path(path).read_text("utf-8")))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._terms)

    def find(self, text: str) -> list[WordHit]:
        """Distinct listed terms in ``text`` after normalisation, in order of first appearance."""
        if not text:
            return []
        seen: dict[str, WordHit] = {}
        for index, _start, _end in self._automaton.find_matches_as_indexes(normalize(text)):
            term = self._terms[index]
            if term not in seen:
                seen[term] = WordHit(term, self._categories[term])
        return list(seen.values())
