from __future__ import annotations

import pytest

from magpie_template_review.normalize import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＶＩＰ", "vip"),  # full-width letters → half-width, case-folded
        ("VIP", "vip"),
        ("赌 博", "赌博"),  # spaces stripped
        ("赌\u3000博", "赌博"),  # ideographic space
        ("赌\t博\n", "赌博"),
        ("赌\u200b博", "赌博"),  # zero-width space
        ("赌\u200d博\ufeff", "赌博"),  # zero-width joiner, BOM
        ("ＡＢＣ１２３", "abc123"),  # full-width digits
        ("Ｃａｓｉｎｏ　Ｏｎｌｉｎｅ", "casinoonline"),
        ("Straße", "strasse"),  # case folding, not just lower()
        ("①", "1"),  # compatibility forms
        ("回Ｔ退订", "回t退订"),
        ("", ""),
        ("中文不变", "中文不变"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_is_idempotent() -> None:
    for text in ("ＶＩＰ 赌 博", "Ｓtraße ①", "a\u200bb"):
        assert normalize(normalize(text)) == normalize(text)
