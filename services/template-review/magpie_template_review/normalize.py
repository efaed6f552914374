"""Text normalisation before sensitive-word matching.

``normalize`` folds the spellings people use to slip words past a filter onto one form:

- Unicode NFKC: full-width letters, digits and punctuation become half-width (``ＶＩＰ`` → ``VIP``), the
  ideographic space becomes a space, compatibility forms (``①``, ``㊙``) become their plain characters;
- case folding (``VIP`` → ``vip``);
- every whitespace character and every invisible format character (zero-width space/joiners, BOM, soft hyphen)
  is removed, so ``赌 博`` and ``赌\u200b博`` read as ``赌博``.

Word-list entries go through the same function, so a list entry ``free bet`` matches ``FREEBET``.
"""

from __future__ import annotations

import unicodedata


def _drop(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if not _drop(ch))
