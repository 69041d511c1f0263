"""langbuild.text.words: the one word rule, per script, and its agreement with str.split() where it must agree."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langbuild.text.words import SEPARATOR_RANGES, bare_words, first_words, word_count, word_spans, words

SCRIPTS = json.loads((Path(__file__).parent.parent / "data" / "scripts.json").read_text(encoding="utf-8"))
SPACED = ("latin-diacritics", "cyrillic", "arabic", "devanagari")  # the extension tests' scripts written with spaces
AMHARIC = SCRIPTS["ethiopic"][0]  # 'የሰው ልጆች ሁሉ ... ያላቸው ናቸው።'
AMHARIC_WORDS = ["የሰው", "ልጆች", "ሁሉ", "ሲወለዱ", "ነጻና", "በክብርና", "በመብትም", "እኩልነት", "ያላቸው", "ናቸው"]
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- scripts written with spaces: exactly str.split() --------------------------------------------


@pytest.mark.parametrize("script", SPACED)
def test_space_separated_scripts_split_as_str_split(script):
    for text in SCRIPTS[script]:
        assert words(text) == text.split()
        assert word_count(text) == len(text.split())
        assert [text[a:b] for a, b in word_spans(text)] == text.split()


def test_korean_is_written_with_spaces_and_splits_at_them():
    korean = SCRIPTS["cjk"][2]
    assert words(korean) == korean.split() and len(words(korean)) == 9


def test_latin_keeps_its_punctuation_attached():
    assert words("Ça coûte très cher à Zürich, n'est-ce pas?") == ["Ça", "coûte", "très", "cher", "à", "Zürich,", "n'est-ce", "pas?"]
    assert words("l·l") == ["l·l"]  # Catalan's middle dot is inside a word, not a separator


# --- Ethiopic ------------------------------------------------------------------------------------


def test_ethiopic_with_spaces_drops_the_full_stop():
    assert words(AMHARIC) == AMHARIC_WORDS
    assert words(SCRIPTS["ethiopic"][1]) == ["ትግርኛ", "ብግዕዝ", "ፊደል", "ይጽሓፍ"]


def test_ethiopic_word_space_separates_words_like_a_space():
    traditional = "፡".join(AMHARIC_WORDS) + "።"
    assert traditional.split() == [traditional]  # the blind spot: one "word" for str.split()
    assert words(traditional) == AMHARIC_WORDS and word_count(traditional) == 10
    assert bare_words(traditional) == AMHARIC_WORDS


def test_ethiopic_punctuation_separates_without_spaces():
    assert words("ሰላም፣ዓለም፤እንዴት፥ነህ፧ደህና፡ነኝ፡፡") == ["ሰላም", "ዓለም", "እንዴት", "ነህ", "ደህና", "ነኝ"]


# --- Tibetan: syllables ----------------------------------------------------------------------------


def test_tibetan_tsheg_and_shad_separate_syllables():
    text = "བོད་ཀྱི་སྐད་ཡིག་ནི། ང་བོད་པ་ཡིན།"
    assert words(text) == ["བོད", "ཀྱི", "སྐད", "ཡིག", "ནི", "ང", "བོད", "པ", "ཡིན"]
    assert bare_words(text) == words(text)  # subjoined letters (ྱ, ྐ) and vowel signs stay in their syllable


# --- scripts written without spaces: one word per letter with its marks ----------------------------


def test_chinese_is_one_word_per_character_and_drops_punctuation():
    text = SCRIPTS["cjk"][0]  # '人人生而自由，在尊严和权利上一律平等。'
    assert words(text) == [c for c in text if c not in "，。"]
    assert word_count(text) == 17


def test_japanese_mixes_kana_kanji_latin_and_digits():
    assert words(SCRIPTS["cjk"][1]) == list("日本語はひらがなとカタカナと漢字で書きます")
    text = "東京、「Python」は2020年・コーヒー。"
    assert words(text) == ["東", "京", "Python", "は", "2020", "年", "コ", "ー", "ヒ", "ー"]


def test_thai_is_one_word_per_letter_with_its_marks():
    text = SCRIPTS["thai"][1]  # 'ภาษาไทยไม่เว้นวรรคระหว่างคำ'
    found = words(text)
    assert found[:10] == ["ภ", "า", "ษ", "า", "ไ", "ท", "ย", "ไ", "ม่", "เ"]
    assert "".join(found) == text  # nothing lost: Thai letters and marks only
    assert all(unicodedata.category(word[0]) == "Lo" for word in found)  # each starts at a letter, never at a mark
    assert word_count(SCRIPTS["thai"][0]) == len(words(SCRIPTS["thai"][0])) == 48


def test_zero_width_space_marks_a_thai_word_boundary_and_spaces_still_count():
    assert words("ไทย\u200bไทย") == ["ไ", "ท", "ย", "ไ", "ท", "ย"]
    assert words("hello\u200bworld") == ["hello", "world"]


def test_myanmar_and_khmer_keep_their_combining_marks():
    assert words("မြန်မာ") == ["မြ", "န်", "မာ"]
    assert words("ខ្ញុំ") == ["ខ្", "ញុំ"]


# --- the views agree -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_spans_counts_and_bare_words_agree_on_every_script(script):
    for text in SCRIPTS[script]:
        found = words(text)
        assert [text[a:b] for a, b in word_spans(text)] == found and word_count(text) == len(found)
        assert bare_words(text) == [bare for word in found for bare in bare_words(word)]


def test_bare_words_keep_combining_marks_that_backslash_w_drops():
    assert re.findall(r"\w+", "हिन्दी") == ["ह", "न", "द"]  # what matching used before
    assert bare_words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert bare_words("Ẹ kú àárọ̀, ṣé?") == ["Ẹ", "kú", "àárọ̀", "ṣé"]  # ọ̀ is ọ + a combining grave accent
    assert bare_words("Zürich, n'est-ce pas?") == ["Zürich", "n", "est", "ce", "pas"]


def test_first_words_keeps_text_without_spaces_as_written():
    assert first_words("  Ndipo Mulungu\nanaona kuti kuwala", 3) == "Ndipo Mulungu anaona"
    assert first_words("人人生而自由，在尊严", 7) == "人人生而自由，在"
    assert first_words("፡".join(AMHARIC_WORDS), 2) == "የሰው፡ልጆች"
    assert first_words("a b", 5) == "a b" and first_words("a b", 0) == "" and first_words("", 3) == ""


def test_every_documented_separator_separates():
    for first, last in SEPARATOR_RANGES:
        for code in range(first, last + 1):
            assert words(f"ab{chr(code)}cd") == ["ab", "cd"], hex(code)


def test_the_quick_first_look_covers_every_special_character():
    from langbuild.text import words as module

    for first, last in (*module.SEPARATOR_RANGES, *module.NO_SPACE_BLOCKS, *module.HAN_RANGES):
        assert all(module._MAYBE_SPECIAL.match(chr(code)) for code in range(first, last + 1)), hex(first)
    assert words("“Ndipo” — anati: €5…") == ["“Ndipo”", "—", "anati:", "€5…"]


def test_whitespace_is_exactly_what_str_split_splits_on_in_every_path():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if not char.isspace():
            continue
        assert words(f"ab{char}cd") == ["ab", "cd"]  # fast path
        assert words(f"ሰ፡ላ{char}ም") == ["ሰ", "ላ", "ም"]  # separators only
        assert words(f"ab{char}ไท") == ["ab", "ไ", "ท"]  # no-space script


# --- properties ------------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
# Mostly the interesting characters: separators, marks, Thai, kana, Han, spaces, Latin, punctuation.
MIXED_TEXT = st.text(st.sampled_from(list(" \n\t\u3000\u200b፡።་།ไทย่ิ์日本はカー、。abc,.'-2\u0301\u093f")), max_size=40)


@PROPERTY
@given(st.one_of(ANY_TEXT, MIXED_TEXT))
def test_views_agree_on_any_text(text):
    found = words(text)
    assert [text[a:b] for a, b in word_spans(text)] == found
    assert word_count(text) == len(found)
    assert all(word and not any(c.isspace() for c in word) for word in found)
    assert bare_words(text) == [bare for word in found for bare in bare_words(word)]  # the same boundaries
    if len(found) >= 2:
        assert first_words(text, 2) == " ".join(text[: word_spans(text)[1][1]].split())


@PROPERTY
@given(st.text(st.characters(exclude_categories=("Cs",), max_codepoint=0x0DFF), max_size=60))
def test_text_without_special_characters_splits_as_before(text):
    # Every separator and no-space script lies at U+0E00 or above: below it, text is plain.
    assert words(text) == text.split()
    assert first_words(text, 3) == " ".join(text.split()[:3])
    if text.isascii():
        assert bare_words(text) == re.findall(r"\w+", text)


# --- the places that count or match words use this rule ---------------------------------------------


def test_every_place_counts_the_same_words():
    from langbuild.corpus.clean import QualityConfig, failed_filter
    from langbuild.corpus.dedup import WordHasher
    from langbuild.corpus.pipeline import SplitStats
    from langbuild.evaluation.cloze import words_of
    from langbuild.tokenization.statistics import tokenizer_stats

    traditional = "፡".join(AMHARIC_WORDS) + "።"
    stats = SplitStats()
    stats.add(traditional)
    assert stats.words == 10
    assert tokenizer_stats(list, [traditional])["tokens_per_word"] == len(traditional) / 10  # one token per character
    assert failed_filter(traditional, QualityConfig(min_words=10)) is None
    assert failed_filter(traditional, QualityConfig(min_words=11)) == "word_count"
    assert WordHasher().words(traditional) == words_of(traditional) == AMHARIC_WORDS
    assert words_of("हिन्दी, भाषा!") == ["हिन्दी", "भाषा"]  # decontamination n-grams keep whole Devanagari words
