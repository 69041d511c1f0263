"""Text cleaning and document quality filters.

The document filters follow the heuristics of Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher" (word counts, mean word length, symbol ratios, bullet and
ellipsis lines, alphabetic words, repeated lines and n-grams), and the line-level cleaning of Raffel
et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer"
(C4: boilerplate lines). Defaults are looser than the papers' English web settings: low-resource text
is often short (a Bible verse, a proverb), and the word-length and script checks must work for any
script, including those written without spaces.

Everything here runs once per document over gigabytes of text, so the work is done by str methods,
precompiled regexes and C-level iterators (Counter, zip, map, compress); Python loops run over lines
or over the few suspicious items a cheap pre-check leaves, not over characters or every word.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate, compress
from operator import mul, not_

from ..text.textio import script_of
from ..text.words import words as split_words

FILTER_NAMES = ("too_short", "word_count", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
                "alpha_words", "script_share", "duplicate_lines", "top_ngrams", "duplicate_ngrams", "url_density")

# Scripts written without spaces between words: langbuild.text.words cuts them into characters (Tibetan into
# syllables), so word length and word n-grams say little there. (Names as langbuild.text.textio.script_of
# reads them off Unicode character names.)
NO_SPACE_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN"})
# Gopher's limits on the share of characters in the most common n-gram (n = 2, 3, 4) and in
# duplicated n-grams (n = 5 ... 10).
TOP_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}
DUPLICATE_NGRAM_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
REPETITION_MIN_WORDS = 50  # in shorter texts one repeated phrase is a large share by chance (a verse, a proverb)

# C4's boilerplate markers, matched case-insensitively anywhere in a line.
BOILERPLATE_PHRASES = ("lorem ipsum", "javascript", "cookie policy", "use cookies", "terms of use", "privacy policy",
                       "all rights reserved")
BULLETS = ("•", "●", "○", "■", "□", "▪", "‣", "⁃", "◦", "- ", "* ", "– ")
ELLIPSES = ("...", "…")


@dataclass(frozen=True)
class QualityConfig:
    min_chars: int = 10  # shorter documents carry no usable context
    min_words: int = 3
    max_words: int = 100_000  # longer ones are usually dumps (logs, tables, concatenated files)
    min_mean_word_length: float = 2.0  # below: lists of letters, broken text
    max_mean_word_length: float = 20.0  # above: code, hashes; skipped for scripts written without spaces
    max_symbol_ratio: float = 0.1  # '#' and ellipses per word (Gopher)
    max_bullet_lines: float = 0.9  # share of lines starting with a bullet: menus, link lists
    max_ellipsis_lines: float = 0.3  # share of lines ending in ... or …: truncated teasers
    min_alpha_words: float = 0.7  # share of words containing at least one letter: tables of numbers
    min_script_share: float = 0.8  # share of letters in target_scripts (skipped when target_scripts is empty)
    target_scripts: tuple[str, ...] = ()  # script names as langbuild.text.textio.script_of returns them: "LATIN", "ETHIOPIC"
    max_duplicate_lines: float = 0.3  # Gopher: share of lines that repeat an earlier line
    max_duplicate_line_chars: float = 0.2  # Gopher: share of characters in repeated lines
    repetition: bool = True  # Gopher's top 2-4-gram and duplicated 5-10-gram character shares
    max_url_chars: float = 0.2  # share of characters inside URLs or e-mail addresses
    disabled: tuple[str, ...] = ()  # filter names (FILTER_NAMES) to skip
    drop_boilerplate_lines: bool = True  # line-level cleaning, see clean_lines

    def __post_init__(self) -> None:
        unknown = [name for name in self.disabled if name not in FILTER_NAMES]
        if unknown:  # a misspelt name would otherwise silently disable nothing
            raise ValueError(f"unknown quality filter(s) {', '.join(unknown)}: choose from {', '.join(FILTER_NAMES)}")


# --- normalisation ---------------------------------------------------------------------------------

# ftfy decides whether text is mojibake with a large regex that runs at about 3 MB/s, too slow for every
# document, so a cheap regex picks the documents it sees. Mojibake is UTF-8 read in a one-byte encoding
# (Latin-1, Windows-125x, MacRoman, cp437): each non-ASCII character became a lead-byte character
# followed by continuation-byte characters. The hint looks for what such text is full of and real text
# hardly ever holds, so a single accented letter (é in French, â in Vietnamese), a letter before a
# closing quote or an ordinary Cyrillic or Greek word never sends a document to ftfy:
# - C1 controls, U+FFFD, box drawing (cp437), ¬ √ ≈ ∆ ◊ ÿ Ÿ (MacRoman leads), ‚Ä (MacRoman ’ “ ”);
# - Ã or Â (rare as letters) before any continuation character, or Ã Â Å Î Ð before a space where U+00A0 was lost;
# - Р or С (the leads of all Cyrillic in Windows-1251) before any cp1251 upper-half character (РџСЂРёРІРµС‚);
# - any non-ASCII letter before a sign that hardly ever follows a letter: † ‡ ‰ € ™ ¤ § © ° ± µ ¶ ¿ ˇ ...,
#   or before a Cyrillic capital from the cp1251 upper half (Ђ Ї Є І Ґ ...).
_CP1252_CONTINUATION = r"\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122"
_CP1251_CONTINUATION = r"\u0401-\u040f\u0451-\u045f\u0490\u0491\u00a0-\u00bf\u2013-\u203a\u20ac\u2116\u2122"
_RARE_AFTER_LETTER = (r"\u0080-\u009f\u00a1\u00a4\u00a6-\u00a9\u00ac\u00ae-\u00b1\u00b4-\u00b8\u00bc-\u00bf"
                      r"\u0192\u02c6\u02c7\u02d8\u02db-\u02dd\u201a\u201e\u2020\u2021\u2030\u2039\u203a\u20ac\u2122"
                      r"\u0401-\u040f\u0490")
_MOJIBAKE_HINT = re.compile(
    r"[\u0080-\u009f\ufffd\u2500-\u257f\u00ac\u221a\u2248\u2206\u25ca\u00ff\u0178]|\u201a\u00c4"
    rf"|[\u00c2\u00c3][{_CP1252_CONTINUATION}]|[\u00c2\u00c3\u00c5\u00ce\u00d0] "
    rf"|[\u0420\u0421][{_CP1251_CONTINUATION}]"
    # The sign first and the letter looked behind for: a letter first would stop the scan at every letter.
    rf"|[{_RARE_AFTER_LETTER}](?<=[^\x00-\x7f\W\d_].)"
)
# Every branch above starts with one of these. Python's regex engine only skips ahead quickly to a single
# character class, so this finds where the pairs could start, and _MOJIBAKE_HINT looks from there on.
_MOJIBAKE_START = re.compile(r"[\u0080-\u009f\ufffd\u2500-\u257f\u00ac\u221a\u2248\u2206\u25ca\u00ff\u0178\u201a"
                             rf"\u00c2\u00c3\u00c5\u00ce\u00d0\u0420\u0421{_RARE_AFTER_LETTER}]")
_CONTROL_SPACES = re.compile(r"[\t\v\f\r\x1c-\x1f\x85]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_invisible_chars: re.Pattern | None = None  # built on first use: it takes a scan of all of Unicode
_ftfy_config = None


def _repair_mojibake(text: str) -> str:
    # Only encoding repair: quotes, ligatures, widths, HTML entities and line breaks are the author's choice and stay.
    global _ftfy_config
    import ftfy

    if _ftfy_config is None:
        _ftfy_config = ftfy.TextFixerConfig(unescape_html=False, remove_terminal_escapes=False, uncurl_quotes=False,
                                            fix_latin_ligatures=False, fix_character_width=False, fix_line_breaks=False,
                                            fix_surrogates=False, remove_control_chars=False, normalization=None,
                                            explain=False)
    return ftfy.fix_text(text, _ftfy_config)


def _invisible() -> re.Pattern:
    """Control (Cc), format (Cf) and lone surrogate (Cs) characters, except \\n and the zero-width (non-)joiners."""
    global _invisible_chars
    if _invisible_chars is None:
        # Zero-width (non-)joiners are spelling in Persian, Kurdish, Indic scripts and emoji: they stay.
        # Lone surrogates are not text and cannot even be written as UTF-8.
        kept = "\n\u200c\u200d"
        chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs") and chr(c) not in kept]
        _invisible_chars = re.compile("[" + "".join(re.escape(c) for c in chars) + "]")
    return _invisible_chars


def _looks_like_mojibake(text: str) -> bool:
    if text.isascii():
        return False
    start = _MOJIBAKE_START.search(text)
    return start is not None and _MOJIBAKE_HINT.search(text, start.start()) is not None


def normalise(text: str, fix_mojibake: bool = True) -> str:
    """Mojibake repaired, NFC, no control characters, runs of spaces collapsed, lines trimmed, blank lines dropped.

    ftfy only sees text holding a character pair that mojibake is made of (see _MOJIBAKE_HINT): it is
    slow, and most documents never need it.
    """
    if fix_mojibake and _looks_like_mojibake(text):
        text = _repair_mojibake(text)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_SPACES.sub(" ", text)  # tabs and the like separate words: a space, not nothing
    lines = (_tidy_line(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _tidy_line(line: str) -> str:
    # isprintable() is False for any control, format, surrogate or non-ASCII space character: most lines skip both regexes.
    if not line.isprintable():
        line = _SPACES.sub(" ", _invisible().sub("", line))
    elif "  " in line:
        line = _SPACES.sub(" ", line)
    return line.strip()


# --- line-level cleaning (C4) ----------------------------------------------------------------------

_ANY_LETTER = re.compile(r"[^\W\d_]")
# The e-mail part may only start where a run of address characters starts: otherwise a long run with
# no '@' would be rescanned from every position inside it (quadratic time on a 1 MB token).
_URL = re.compile(r"(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)


def _may_hold_url(lowered: str) -> bool:
    return "http" in lowered or "www." in lowered or "@" in lowered


def _has_boilerplate(lowered: str) -> bool:
    # A few substring searches in lowered text are ~25x faster than one case-insensitive regex alternation.
    return any(phrase in lowered for phrase in BOILERPLATE_PHRASES)


def _is_junk_line(line: str) -> bool:
    if _ANY_LETTER.search(line) is None:
        return True  # only digits, punctuation, symbols: page numbers, separators, tables of figures
    lowered = line.lower()
    if _has_boilerplate(lowered):
        return True
    # A line of URLs and e-mail addresses, perhaps with some punctuation: nothing but links left.
    return _may_hold_url(lowered) and _ANY_LETTER.search(_URL.sub("", line)) is None


def clean_lines(text: str, config: QualityConfig) -> tuple[str, int]:
    """(text without its boilerplate lines, number of lines dropped); C4-style and language-neutral.

    Dropped: lines containing a boilerplate phrase (BOILERPLATE_PHRASES, any case), lines that are only
    URLs or e-mail addresses, and lines holding no letter at all. C4's rule that a line must end in
    terminal punctuation is deliberately not used: it deletes verse, poetry, headings and the text of
    the many writing systems with other sentence marks (।, ።, ။, ۔ ...).
    """
    if not config.drop_boilerplate_lines or not text:
        return text, 0
    lowered = text.lower()
    lines = text.split("\n")
    if not _may_hold_url(lowered) and not _has_boilerplate(lowered) and all(map(_ANY_LETTER.search, lines)):
        return text, 0  # the common case, decided without a Python loop over lines
    kept = [line for line in lines if not _is_junk_line(line)]
    dropped = len(lines) - len(kept)
    return ("\n".join(kept), dropped) if dropped else (text, 0)


# --- document filters ------------------------------------------------------------------------------

_script_cache: dict[str, str | None] = {}
_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LETTERLESS_WORD = re.compile(r"(?<!\S)(?:[^\w\s]|[\d_])+(?!\S)")  # a run of digits, punctuation and symbols alone


def _script(char: str) -> str | None:
    # unicodedata.name is slow; a corpus uses a few hundred distinct letters, so each is looked up once.
    script = _script_cache.get(char, "")
    if script == "":
        script = script_of(char)
        if len(_script_cache) < 200_000:
            _script_cache[char] = script
    return script


def _letter_scripts(text: str) -> Counter:
    """Letters per script. ASCII letters are counted in bulk; only distinct other characters are looked up."""
    counts: Counter = Counter()
    ascii_letters = len(text.encode("ascii", "ignore").translate(None, _ASCII_NON_LETTERS))
    if ascii_letters:
        counts["LATIN"] = ascii_letters
    if not text.isascii():
        for char, n in Counter(_NON_ASCII.findall(text)).items():
            script = _script(char)
            if script:
                counts[script] += n
    return counts


class _Document:
    """The measures of one text that several filters share, each computed on first use."""

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return split_words(self.text)  # the one rule of langbuild.text.words: str.split() plus separators and no-space scripts

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def scripts(self) -> Counter:
        return _letter_scripts(self.text)

    @cached_property
    def letters(self) -> int:
        return sum(self.scripts.values())

    @cached_property
    def without_spaces(self) -> bool:
        """Mostly in scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan)."""
        return 2 * sum(n for script, n in self.scripts.items() if script in NO_SPACE_SCRIPTS) > self.letters

    @cached_property
    def word_count(self) -> int:
        # Without spaces, langbuild.text.words counts each character (with its marks) as a word: an upper bound
        # (a Chinese word is 1-2 characters, a Thai word several) that never drops short text for being
        # too short in words; only max_words becomes stricter, for documents of 100,000+ characters.
        return len(self.words)

    @cached_property
    def char_offsets(self) -> list[int]:
        """char_offsets[i]: characters in the first i words (spaces not counted)."""
        return [0, *accumulate(map(len, self.words))]

    @cached_property
    def word_counts(self) -> Counter:
        return Counter(self.words)


def _too_short(doc: _Document, config: QualityConfig) -> bool:
    return len(doc.text) < config.min_chars


def _word_count(doc: _Document, config: QualityConfig) -> bool:
    return not config.min_words <= doc.word_count <= config.max_words


def _mean_word_length(doc: _Document, config: QualityConfig) -> bool:
    if doc.without_spaces or not doc.words:
        return False
    mean = sum(map(len, doc.words)) / len(doc.words)
    return not config.min_mean_word_length <= mean <= config.max_mean_word_length


def _symbol_ratio(doc: _Document, config: QualityConfig) -> bool:
    text = doc.text
    symbols = text.count("#") + text.count("...") + text.count("…")
    return symbols > config.max_symbol_ratio * max(doc.word_count, 1)


def _bullet_lines(doc: _Document, config: QualityConfig) -> bool:
    bullets = sum(line.lstrip().startswith(BULLETS) for line in doc.lines)
    return bullets > config.max_bullet_lines * len(doc.lines)


def _ellipsis_lines(doc: _Document, config: QualityConfig) -> bool:
    if "..." not in doc.text and "…" not in doc.text:
        return False
    endings = sum(line.rstrip().endswith(ELLIPSES) for line in doc.lines)
    return endings > config.max_ellipsis_lines * len(doc.lines)


def _alpha_words(doc: _Document, config: QualityConfig) -> bool:
    words = doc.words
    if not words:
        return False  # nothing to judge; too_short and word_count speak for empty text
    need = config.min_alpha_words * len(words)
    # Words made only of letters pass at C speed; when they alone reach the share, nothing else needs a look.
    if sum(map(str.isalpha, words)) >= need:
        return False
    # The rest (punctuated words, numbers, words with combining marks) go through the regex in one string.
    others = " ".join(compress(words, map(not_, map(str.isalpha, words))))
    return len(words) - len(_LETTERLESS_WORD.findall(others)) < need


def _script_share(doc: _Document, config: QualityConfig) -> bool:
    if not config.target_scripts:
        return False
    inside = sum(n for script, n in doc.scripts.items() if script in config.target_scripts)
    return doc.letters == 0 or inside < config.min_script_share * doc.letters


def _duplicate_lines(doc: _Document, config: QualityConfig) -> bool:
    lines = doc.lines
    if len(lines) < 2:
        return False
    seen: set[str] = set()
    repeated = repeated_chars = 0
    for line in lines:
        if line in seen:
            repeated += 1
            repeated_chars += len(line)
        else:
            seen.add(line)
    total_chars = sum(map(len, lines)) or 1
    return repeated > config.max_duplicate_lines * len(lines) or repeated_chars > config.max_duplicate_line_chars * total_chars


def _judges_repetition(doc: _Document, config: QualityConfig) -> bool:
    # Words of scripts without spaces are whole phrases: n-grams of them measure nothing.
    return config.repetition and not doc.without_spaces and len(doc.words) >= REPETITION_MIN_WORDS


def _ngrams(words: list[str], n: int) -> Iterator[tuple[str, ...]]:
    return zip(*(words[i:] for i in range(n)))


def _top_ngrams(doc: _Document, config: QualityConfig) -> bool:
    """Gopher: the most frequent n-gram (ties: the longest) holds too large a share of the characters."""
    if not _judges_repetition(doc, config):
        return False
    total = doc.char_offsets[-1]
    # An n-gram occurs at most as often as each of its words, so its share is at most the sum of its words'
    # shares, at most n times the largest word share: most documents are cleared without counting n-grams.
    counts = doc.word_counts
    largest_word_share = max(map(mul, counts.values(), map(len, counts)))
    for n, limit in TOP_NGRAM_LIMITS.items():
        if n * largest_word_share <= limit * total:
            continue
        gram_counts = Counter(_ngrams(doc.words, n))
        most = max(gram_counts.values(), default=1)
        if most < 2:
            return False  # no n-gram repeats, so no longer one does either
        chars = max(sum(map(len, gram)) for gram, count in gram_counts.items() if count == most)
        if most * chars > limit * total:
            return True
    return False


def _duplicated_chars(doc: _Document, n: int) -> int:
    """Characters of the words covered by an n-gram that occurs more than once (each word counted once)."""
    grams = list(_ngrams(doc.words, n))
    counts = Counter(grams)
    if len(counts) == len(grams):
        return 0
    offsets = doc.char_offsets
    covered = end = 0
    for start in compress(range(len(grams)), map((1).__lt__, map(counts.__getitem__, grams))):
        covered += offsets[start + n] - offsets[max(start, end)]  # ascending, all n long: merge with the previous one
        end = start + n
    return covered


def _duplicate_ngrams(doc: _Document, config: QualityConfig) -> bool:
    """Gopher: words inside n-grams that occur more than once hold too large a share of the characters."""
    if not _judges_repetition(doc, config):
        return False
    total = doc.char_offsets[-1]
    floor = min(DUPLICATE_NGRAM_LIMITS.values())
    for n, limit in DUPLICATE_NGRAM_LIMITS.items():
        covered = _duplicated_chars(doc, n)
        if covered > limit * total:
            return True
        if covered <= floor * total:
            return False  # a repeated (n+1)-gram holds a repeated n-gram: coverage only shrinks as n grows
    return False


def _url_density(doc: _Document, config: QualityConfig) -> bool:
    text = doc.text
    if not text or not _may_hold_url(text.lower()):
        return False
    url_chars = sum(map(len, _URL.findall(text)))
    return url_chars > config.max_url_chars * len(text)


_CHECKS: dict[str, Callable[[_Document, QualityConfig], bool]] = {
    "too_short": _too_short, "word_count": _word_count, "mean_word_length": _mean_word_length, "symbol_ratio": _symbol_ratio,
    "bullet_lines": _bullet_lines, "ellipsis_lines": _ellipsis_lines, "alpha_words": _alpha_words,
    "script_share": _script_share, "duplicate_lines": _duplicate_lines, "top_ngrams": _top_ngrams,
    "duplicate_ngrams": _duplicate_ngrams, "url_density": _url_density,
}
assert tuple(_CHECKS) == FILTER_NAMES


def failed_filter(text: str, config: QualityConfig) -> str | None:
    """The first filter of FILTER_NAMES that rejects the (normalised) text, or None when it passes.

    Words are ``langbuild.text.words.words`` pieces: ``str.split()`` pieces for space-separated text; cut at
    word separators such as the Ethiopic word space ``፡`` too; one per character with its marks in
    scripts written without spaces. For text mostly in such scripts mean_word_length and the n-gram
    filters are skipped.
    """
    doc = _Document(text)
    for name, rejects in _CHECKS.items():
        if name not in config.disabled and rejects(doc, config):
            return name
    return None


def dominant_scripts(texts: Iterable[str], min_share: float = 0.1) -> tuple[str, ...]:
    """Scripts holding at least ``min_share`` of the letters in ``texts``, most common first."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(_letter_scripts(text))
    total = sum(counts.values())
    return tuple(script for script, n in counts.most_common() if n >= min_share * total) if total else ()
