"""What a word is: one rule for cutting text into words, shared by every part of langbuild that counts or matches words.

Quality filters, corpus statistics, tokens per word, MinHash shingles, decontamination n-grams and
the text snippets of replay prompts and reports all call this module, so they agree on what a word is.

The rule (no dictionary, no language setting):

1. **Whitespace** separates words: the characters ``str.split()`` splits on.
2. **Word-separator marks** separate words too. Some writing systems put them between words
   instead of a space (traditional Ge'ez-script text has no space at all):

   * U+1360-U+1368, Ethiopic punctuation: ``፡`` word space, ``።`` full stop, ``፣`` comma,
     ``፤`` ``፥`` ``፦`` ``፧`` ``፨`` (Amharic, Tigrinya, Ge'ez);
   * U+0F04-U+0F12 and U+0F14, Tibetan marks: ``་`` tsheg and ``༌`` non-breaking tsheg (written
     after every syllable), ``།`` shad and its variants, head marks. Tibetan writes no spaces and
     marks syllables, not words, so **a Tibetan word here is a syllable**: the same unit every time,
     found without a dictionary;
   * U+200B zero width space, the invisible word boundary that Thai, Lao, Khmer and Myanmar text
     sometimes carries;
   * U+2E31 word separator middle dot, and the word dividers of Aegean (U+10100-U+10102), Ugaritic
     (U+1039F), Old Persian (U+103D0) and Phoenician (U+1091F).

   Other punctuation does not separate: ``word.``, ``(word`` and ``n'est-ce`` stay one word each,
   as with ``str.split()``. (U+00B7 middle dot is left alone: Catalan writes it inside words.)
3. **Scripts written without spaces between words** (Thai, Lao, Khmer, Myanmar, Tai Le, New Tai
   Lue, Tai Tham, Tai Viet, whose word boundaries Unicode says need a dictionary, and Han,
   Hiragana, Katakana): a piece of text (between the separators above) that holds any letter of
   these scripts is cut into pseudo-words. Each such letter together with the combining marks
   after it is one word (roughly a grapheme cluster: ``人``, ``กิ``, ``ดิ์``; a Khmer or Myanmar
   stacked consonant is a letter of its own, so ``ខ្ញុំ`` is ``ខ្`` + ``ញុំ``); each run of other letters,
   digits and marks in the piece is one word (``2020``, ``iPhone``); its punctuation (``。``,
   ``「``, ``・``) is dropped.

What the numbers mean: a rule applied the same way every time makes **tokens per word comparable
within a language** (two tokenizers on the same text, one corpus against the next). It does **not**
make them comparable across scripts that follow different branches of the rule: a word is a word
in Latin, Cyrillic, Arabic, Devanagari, Ethiopic or Hangul text; a syllable in Tibetan; one
character in Chinese and Japanese (a Chinese word is 1-2 characters); one letter with its marks in
Thai (a Thai word is several). Compare tokenizers on the same text, never a Thai figure with a
Swahili one.

Two views of the same words:

* :func:`words` gives them as ``str.split()`` would, punctuation attached: for counts and filters.
* :func:`bare_words` keeps only word characters (letters, digits, underscore and combining marks),
  for matching text against text (duplicates, contamination), where punctuation must not hide an
  overlap. Combining marks stay inside their word (Devanagari vowel signs, Yoruba tone marks); the
  plain regex ``\\w+`` used before cut words at every such mark.

Speed: the corpus step runs this over gigabytes. ASCII text (decided in constant time), and any
text without the characters above (decided by character-class searches of ~100 MB/s or more), takes
``str.split()``, so space-separated text gives exactly the same words at about the same cost.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass

# Word-separator marks (rule 2); code point ranges, inclusive.
SEPARATOR_RANGES: tuple[tuple[int, int], ...] = (
    (0x200B, 0x200B),  # zero width space
    (0x0F04, 0x0F12), (0x0F14, 0x0F14),  # Tibetan head marks, tsheg, non-breaking tsheg, shads, gter tsheg
    (0x1360, 0x1368),  # Ethiopic section mark, word space, full stop, comma ... paragraph separator
    (0x2E31, 0x2E31),  # word separator middle dot
    (0x10100, 0x10102), (0x1039F, 0x1039F), (0x103D0, 0x103D0), (0x1091F, 0x1091F),  # ancient word dividers
)

# Blocks of the scripts written without spaces (rule 3). Their letters and digits start a pseudo-word;
# their punctuation and symbols start none.
NO_SPACE_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),  # Myanmar and its extensions
    (0x1780, 0x17FF), (0x19E0, 0x19FF),  # Khmer, Khmer symbols
    (0x1950, 0x197F),  # Tai Le
    (0x1980, 0x19DF),  # New Tai Lue
    (0x1A20, 0x1AAF),  # Tai Tham
    (0xAA80, 0xAADF),  # Tai Viet
    (0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F),  # Hiragana, Katakana (+ halfwidth)
    (0x1AFF0, 0x1B16F),  # Kana extensions and supplement
    (0x3005, 0x3007), (0x3021, 0x3029), (0x3031, 0x3035), (0x303B, 0x303C),  # 々 〆 〇, Hangzhou numerals, kana repeats
)
# Han ideographs are all letters: listed as whole ranges rather than looked up one by one.
HAN_RANGES: tuple[tuple[int, int], ...] = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))

# Where combining marks live: below U+0300 there are none, above U+1FFFF only the variation selectors.
_MARK_SEARCH_RANGES = ((0x0300, 0x1FFFF), (0xE0100, 0xE01EF))


def _char_class(ranges) -> str:
    """The inside of a regex character class matching the given inclusive code point ranges."""
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _code_points(ranges, major_categories: str) -> list[int]:
    """Code points inside ``ranges`` whose Unicode category starts with one of ``major_categories`` ("L", "M" ...)."""
    category = unicodedata.category
    return [code for first, last in ranges for code in range(first, last + 1) if category(chr(code))[0] in major_categories]


def _runs(codes: list[int]) -> list[tuple[int, int]]:
    """Ascending code points as maximal inclusive ranges (a short character class)."""
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return [(a, b) for a, b in runs]


# Read off the running Python's Unicode tables (~15 ms at import) rather than a copied list that goes stale.
_MARK_RUNS = _runs(_code_points(_MARK_SEARCH_RANGES, "M"))
_NO_SPACE_LETTER_RUNS = sorted(_runs(_code_points(NO_SPACE_BLOCKS, "LN")) + list(HAN_RANGES))

# re tests a character against a class in constant time only while the class lies in the Basic
# Multilingual Plane; a class reaching beyond it is walked range by range for every character (a
# search for all combining marks runs at ~3 MB/s). Hence a cheap first look, and each class twice.
#
# The first look, three ranges at ~150 MB/s: could the text need more than str.split()? General
# Punctuation and the symbol blocks (typographic quotes, dashes, the euro sign) are left out: they are
# common in space-separated text, and only U+200B among them separates words. The ranges hold every
# character beyond the BMP too. (tests/text/test_words.py checks that they hold every special character.)
_MAYBE_SPECIAL = re.compile("[\u0e00-\u1fff\u200b\u2e00-\U0010ffff]")
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")  # one range: fast
_ASCII_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Patterns:
    """The rule's regexes, for text whose characters all lie at or below some code point."""

    special: re.Pattern  # a separator or a character of a no-space script
    no_space_letter: re.Pattern
    # re's \s is str.isspace(), the whitespace str.split() splits on (tests/text/test_words.py checks).
    between_separators: re.Pattern
    word_run: re.Pattern  # \w alone would cut a word at each combining mark
    # One no-space letter with its marks, or a run of other word characters. ([^\W...] is "a word
    # character other than ...": re cannot subtract from \w any other way.)
    no_space_piece: re.Pattern


def _patterns_up_to(limit: int) -> _Patterns:
    def within(ranges) -> str:
        return _char_class([(first, min(last, limit)) for first, last in ranges if first <= limit])

    separators, letters, marks = within(SEPARATOR_RANGES), within(_NO_SPACE_LETTER_RUNS), within(_MARK_RUNS)
    return _Patterns(
        special=re.compile(f"[{separators}{within(NO_SPACE_BLOCKS + HAN_RANGES)}]"),
        no_space_letter=re.compile(f"[{letters}]"),
        between_separators=re.compile(f"[^\\s{separators}]+"),
        word_run=re.compile(f"[\\w{marks}]+"),
        no_space_piece=re.compile(f"[{letters}][{marks}]*|(?:[^\\W{letters}]|[{marks}])+"),
    )


_BMP = _patterns_up_to(0xFFFF)  # about twice as fast; almost all text qualifies
_ALL = _patterns_up_to(sys.maxunicode)


def _patterns_for(text: str) -> _Patterns:
    return _BMP if _BEYOND_BMP.search(text) is None else _ALL


def _special_patterns(text: str) -> _Patterns | None:
    """None when str.split() alone gives the words (isascii() is O(1)); else the patterns the text needs."""
    if text.isascii() or _MAYBE_SPECIAL.search(text) is None:
        return None
    patterns = _patterns_for(text)
    return patterns if patterns.special.search(text) else None


def words(text: str) -> list[str]:
    """The words of ``text`` by the module's rule; equal to ``text.split()`` for space-separated text."""
    patterns = _special_patterns(text)
    if patterns is None:
        return text.split()
    pieces = patterns.between_separators.findall(text)
    if patterns.no_space_letter.search(text) is None:
        return pieces  # separators only (Ethiopic, Tibetan): no piece needs cutting further
    found: list[str] = []
    for piece in pieces:
        if patterns.no_space_letter.search(piece):
            found.extend(patterns.no_space_piece.findall(piece))
        else:
            found.append(piece)
    return found


def word_count(text: str) -> int:
    """len(words(text)), without building the list in the common case."""
    if _special_patterns(text) is None:
        return len(text.split())
    return len(words(text))


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each of ``words(text)``: for cutting text at a word boundary without changing it."""
    patterns = _special_patterns(text)
    if patterns is None:
        return [match.span() for match in re.finditer(r"\S+", text)]
    spans: list[tuple[int, int]] = []
    cut_further = patterns.no_space_letter.search(text) is not None
    for piece in patterns.between_separators.finditer(text):
        if cut_further and patterns.no_space_letter.search(piece.group()):
            offset = piece.start()
            spans.extend((offset + m.start(), offset + m.end()) for m in patterns.no_space_piece.finditer(piece.group()))
        else:
            spans.append(piece.span())
    return spans


def first_words(text: str, count: int) -> str:
    """The text up to the end of its ``count``-th word, whitespace runs made single spaces.

    For space-separated text this is ``" ".join(text.split()[:count])``; text written without spaces
    keeps its own spelling instead of gaining spaces between its pseudo-words.
    """
    if count <= 0:
        return ""
    spans = word_spans(text)
    if not spans:
        return ""
    end = spans[min(count, len(spans)) - 1][1]
    return " ".join(text[:end].split())


def bare_words(text: str) -> list[str]:
    """The words reduced to word characters (letters, digits, underscore, combining marks), punctuation gone.

    For matching: "word," and "word" are the same bare word. Separators and whitespace are not word
    characters, so they cut bare words exactly as they cut words; no-space scripts give the same
    pseudo-words as in :func:`words`. ASCII text gives ``re.findall(r"\\w+", text)``.
    """
    if text.isascii():
        return _ASCII_WORD.findall(text)
    if _MAYBE_SPECIAL.search(text) is None:  # nothing special, nothing beyond the BMP
        return _BMP.word_run.findall(text)
    patterns = _patterns_for(text)
    if patterns.no_space_letter.search(text) is None:
        return patterns.word_run.findall(text)
    return patterns.no_space_piece.findall(text)
