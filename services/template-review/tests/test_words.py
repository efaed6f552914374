from __future__ import annotations

from pathlib import Path

import pytest

from magpie_template_review.words import SensitiveWords, WordHit, parse_word_list


def test_parse_word_list_sections_comments_blank_lines() -> None:
    text = "# comment\n\n[gambling]\n赌博\n  casino  \n[fraud]\n刷单\n# another\n"
    assert parse_word_list(text) == [("gambling", "赌博"), ("gambling", "casino"), ("fraud", "刷单")]


def test_terms_before_any_section_are_general() -> None:
    assert parse_word_list("词语\n") == [("general", "词语")]


@pytest.fixture(scope="module")
def words() -> SensitiveWords:
    gambling = ["赌博", "网上赌场", "赌场", "VIP 彩金", "free bet"]
    return SensitiveWords([*(("gambling", w) for w in gambling), ("fraud", "刷单")])


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("欢迎参加赌博", ["赌博"]),
        ("欢迎参加赌 博", ["赌博"]),  # spaces inside the word
        ("欢迎 赌\u200b博", ["赌博"]),  # invisible character inside the word
        ("ＶＩＰ彩金 天天送", ["vip彩金"]),  # full-width + case + the list entry's own space
        ("FREE BET today", ["freebet"]),
        ("网上赌场开业", ["网上赌场"]),  # leftmost-longest: the longer entry, not the inner 赌场
        ("赌场，刷单，赌场", ["赌场", "刷单"]),  # distinct terms, in order of first appearance
        ("您的快递已到达", []),
        ("", []),
    ],
)
def test_find(words: SensitiveWords, text: str, terms: list[str]) -> None:
    assert [hit.term for hit in words.find(text)] == terms


def test_find_reports_category(words: SensitiveWords) -> None:
    assert words.find("兼职刷单") == [WordHit("刷单", "fraud")]


def test_entries_are_normalised_and_deduplicated() -> None:
    words = SensitiveWords([("a", "ＣＡＳＩＮＯ"), ("b", "casino"), ("c", "  ")])
    assert len(words) == 1
    assert words.find("Casino night") == [WordHit("casino", "a")]


def test_empty_list_is_refused() -> None:
    with pytest.raises(ValueError):
        SensitiveWords([("x", " ")])


def test_builtin_list_loads_and_matches_examples() -> None:
    words = SensitiveWords.load()
    assert len(words) > 100
    assert {h.term for h in words.find("线上赌 博、ＣＡＳＩＮＯ、刷单返利")} == {"赌博", "casino", "刷单返利"}
    # Everyday marketing vocabulary is not listed.
    assert words.find("尊敬的VIP会员，您的优惠券已到账，回T退订") == []


def test_extra_word_file(tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("[custom]\n特价黄牛票\n", encoding="utf-8")
    words = SensitiveWords.load([extra])
    assert words.find("特价 黄牛票") == [WordHit("特价黄牛票", "custom")]
    assert words.find("赌博")  # the built-in list is still there
