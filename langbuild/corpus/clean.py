"""Text cleaning and document quality filters.

The document filters follow the heuristics of Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher" (word counts, mean word length, symbol ratios, bullet and
ellipsis lines, alphabetic words, repeated lines and n-grams), and the line-level cleaning of Raffel
et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer"
(C4: boilerplate lines). Defaults are looser than the papers' English web settings: low-resource text
is often short (a Bible verse, a proverb), and the word-length and script checks must work for any
script, including those written without spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..textio import script_of

FILTER_NAMES = ("too_short", "word_count", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
                "alpha_words", "script_share", "duplicate_lines", "top_ngrams", "duplicate_ngrams", "url_density")

# Scripts written without spaces between words: a "word" there is a phrase, so word length says nothing.
NO_SPACE_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN"})
# Gopher's thresholds for the share of characters in the most common n-gram (n = 2, 3, 4) and in
# duplicated n-grams (n = 5 ... 10).
TOP_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}
DUPLICATE_NGRAM_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

_CONTROL_SPACES = re.compile(r"[\t\v\f\r\x1c-\x1f\x85]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_INVISIBLE = None  # every control and format character but \n, ZWNJ and ZWJ; built on first use
# Characters mojibake is made of: the Latin-1 supplement, cp1252's extras, U+FFFD.
_MOJIBAKE_HINT = re.compile(r"[\u0080-\u00ff\ufffd"
                            r"\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]")
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+", re.IGNORECASE)
_BOILERPLATE = re.compile(r"lorem ipsum|javascript|cookie policy|use cookies|terms of use|privacy policy|all rights reserved",
                          re.IGNORECASE)
_BULLETS = ("•", "●", "○", "■", "□", "▪", "‣", "⁃", "◦", "- ", "* ", "– ")
_ELLIPSES = ("...", "…")
_ANY_LETTER = re.compile(r"[^\W\d_]")
_LETTERLESS_WORD = re.compile(r"(?<!\S)(?:[^\w\s]|[\d_])+(?!\S)")  # a run of digits, punctuation and symbols alone
_LETTERLESS_LINE = re.compile(r"^(?:[^\w\n]|[\d_])*$", re.MULTILINE)


@dataclass(frozen=True)
class QualityConfig:
    min_chars: int = 10
    min_words: int = 3
    max_words: int = 100_000
    min_mean_word_length: float = 2.0
    max_mean_word_length: float = 20.0
    max_symbol_ratio: float = 0.1
    max_bullet_lines: float = 0.9
    max_ellipsis_lines: float = 0.3
    min_alpha_words: float = 0.7
    min_script_share: float = 0.8
    target_scripts: tuple[str, ...] = ()
    max_duplicate_lines: float = 0.3
    max_duplicate_line_chars: float = 0.2
    repetition: bool = True
    max_url_chars: float = 0.2
    disabled: tuple[str, ...] = ()
    drop_boilerplate_lines: bool = True


# --- normalisation ---------------------------------------------------------------------------------

_FTFY_CONFIG = None


def _repair_mojibake(text: str) -> str:
    # Only encoding repair: quotes, ligatures, widths and HTML entities are the author's choice and stay.
    global _FTFY_CONFIG
    import ftfy

    if _FTFY_CONFIG is None:
        _FTFY_CONFIG = ftfy.TextFixerConfig(unescape_html=False, remove_terminal_escapes=False, uncurl_quotes=False,
                                            fix_latin_ligatures=False, fix_character_width=False, fix_line_breaks=False,
                                            fix_surrogates=False, remove_control_chars=False, normalization=None,
                                            explain=False)
    return ftfy.fix_text(text, _FTFY_CONFIG)


def _invisible() -> re.Pattern:
    global _INVISIBLE
    if _INVISIBLE is None:
        chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\n\u200c\u200d"]
        _INVISIBLE = re.compile("[" + "".join(re.escape(c) for c in chars) + "]")
    return _INVISIBLE


def normalise(text: str, fix_mojibake: bool = True) -> str:
    """Mojibake repaired, NFC, no control characters, runs of spaces collapsed, blank lines dropped, ends trimmed.

    ftfy is slow, so it only sees text holding a character that mojibake is made of (Latin-1
    supplement, cp1252 punctuation, U+FFFD): most documents never reach it.
    """
    if fix_mojibake and _MOJIBAKE_HINT.search(text):
        text = _repair_mojibake(text)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_SPACES.sub(" ", text)  # tabs and the like separate words: a space, not nothing
    lines = (_tidy_line(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _tidy_line(line: str) -> str:
    # isprintable() is False for any control, format or unusual space character: most lines skip both regexes.
    if not line.isprintable():
        # Zero-width (non-)joiners are spelling in Persian, Kurdish, Indic scripts and emoji: _invisible() keeps them.
        line = _SPACES.sub(" ", _invisible().sub("", line))
    elif "  " in line:
        line = _SPACES.sub(" ", line)
    return line.strip()


def clean_lines(text: str, config: QualityConfig) -> tuple[str, int]:
    """Drop boilerplate lines, lines that are only a URL or e-mail, and lines holding no letter (C4-style).

    C4's rule that a line must end in terminal punctuation is not used: it deletes verse, poetry,
    headings and the many writing systems with other sentence marks.
    """
    if not config.drop_boilerplate_lines:
        return text, 0
    maybe_url = "http" in text or "www." in text or "@" in text
    if not maybe_url and _BOILERPLATE.search(text) is None and _LETTERLESS_LINE.search(text) is None:
        return text, 0  # the common case, decided by two scans of the whole text
    kept = []
    dropped = 0
    for line in text.split("\n"):
        if _ANY_LETTER.search(line) is None or _BOILERPLATE.search(line) or _URL.fullmatch(line.strip()):
            dropped += 1
        else:
            kept.append(line)
    return ("\n".join(kept), dropped) if dropped else (text, 0)


# --- document filters ------------------------------------------------------------------------------

_SCRIPT_CACHE: dict[str, str | None] = {}


def _script(char: str) -> str | None:
    script = _SCRIPT_CACHE.get(char, "")
    if script == "":
        script = script_of(char)
        if len(_SCRIPT_CACHE) < 100_000:
            _SCRIPT_CACHE[char] = script
    return script


_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _letter_scripts(text: str) -> Counter:
    """Letters per script. ASCII letters are counted in bulk; only the rest are looked up one by one."""
    counts: Counter = Counter()
    ascii_letters = len(text.encode("ascii", "ignore").translate(None, _ASCII_NON_LETTERS))
    if ascii_letters:
        counts["LATIN"] = ascii_letters
    for char, n in Counter(_NON_ASCII.findall(text)).items():
        script = _script(char)
        if script:
            counts[script] += n
    return counts


REPETITION_MIN_WORDS = 50  # in shorter texts one repeated phrase is a large share by chance (a verse, a proverb)


def _ngram_fractions_fail(words: list[str]) -> str | None:
    total = sum(len(w) for w in words)
    if total == 0 or len(words) < REPETITION_MIN_WORDS:
        return None
    for n, limit in TOP_NGRAM_LIMITS.items():
        if len(words) < n + 1:
            break
        grams = Counter(zip(*(words[i:] for i in range(n))))
        gram, count = grams.most_common(1)[0]
        if count > 1 and count * sum(len(w) for w in gram) / total > limit:
            return "top_ngrams"
    for n, limit in DUPLICATE_NGRAM_LIMITS.items():
        if len(words) < 2 * n:
            break
        share = _duplicated_coverage(words, n) / total
        if share > limit:
            return "duplicate_ngrams"
        if share <= min(DUPLICATE_NGRAM_LIMITS.values()):
            break  # coverage only shrinks as n grows (a repeated 6-gram holds repeated 5-grams): no larger n can fail
    return None


def _duplicated_coverage(words: list[str], n: int) -> int:
    """Characters of the words covered by an n-gram occurring more than once (each word counted once)."""
    grams = list(zip(*(words[i:] for i in range(n))))
    counts = Counter(grams)
    covered = [False] * len(words)
    for start, gram in enumerate(grams):
        if counts[gram] > 1:
            for position in range(start, start + n):
                covered[position] = True
    return sum(len(w) for w, c in zip(words, covered) if c)


def _line_checks(lines: list[str], config: QualityConfig, skip) -> str | None:
    bullets = sum(line.lstrip().startswith(_BULLETS) for line in lines) / len(lines)
    if not skip("bullet_lines") and bullets > config.max_bullet_lines:
        return "bullet_lines"
    ellipses = sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / len(lines)
    if not skip("ellipsis_lines") and ellipses > config.max_ellipsis_lines:
        return "ellipsis_lines"
    return None


def _duplicate_lines(lines: list[str], config: QualityConfig) -> bool:
    if len(lines) < 2:
        return False
    seen: set[str] = set()
    repeated = repeated_chars = 0
    for line in lines:
        if line in seen:
            repeated += 1
            repeated_chars += len(line)
        seen.add(line)
    total_chars = sum(len(line) for line in lines) or 1
    return repeated / len(lines) > config.max_duplicate_lines or repeated_chars / total_chars > config.max_duplicate_line_chars


def failed_filter(text: str, config: QualityConfig) -> str | None:
    """The first filter of FILTER_NAMES that rejects the (normalised) text, or None when it passes."""
    disabled = config.disabled

    def skip(name: str) -> bool:
        return name in disabled

    if not skip("too_short") and len(text) < config.min_chars:
        return "too_short"
    words = text.split()
    scripts = _letter_scripts(text)
    letters = sum(scripts.values())
    no_space = letters and sum(n for s, n in scripts.items() if s in NO_SPACE_SCRIPTS) / letters > 0.5
    # Without spaces, one character stands for about one word: counts stay comparable across scripts.
    word_count = letters if no_space else len(words)
    if not skip("word_count") and not (config.min_words <= word_count <= config.max_words):
        return "word_count"
    if words and not no_space and not skip("mean_word_length"):
        mean = (len(text) - text.count(" ") - text.count("\n")) / len(words)  # characters outside spaces per word
        if not (config.min_mean_word_length <= mean <= config.max_mean_word_length):
            return "mean_word_length"
    if words and not skip("symbol_ratio"):
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / len(words) > config.max_symbol_ratio:
            return "symbol_ratio"
    lines = text.split("\n")
    line_failure = _line_checks(lines, config, skip)
    if line_failure:
        return line_failure
    if words and not skip("alpha_words") and 1 - len(_LETTERLESS_WORD.findall(text)) / len(words) < config.min_alpha_words:
        return "alpha_words"
    if config.target_scripts and not skip("script_share"):
        inside = sum(n for s, n in scripts.items() if s in config.target_scripts)
        if letters == 0 or inside / letters < config.min_script_share:
            return "script_share"
    if not skip("duplicate_lines") and _duplicate_lines(lines, config):
        return "duplicate_lines"
    if config.repetition and not no_space:
        failure = _ngram_fractions_fail([w.lower() for w in words])
        if failure and not skip(failure):
            return failure
    if not skip("url_density") and ("http" in text or "www." in text or "@" in text):
        url_chars = sum(len(m) for m in _URL.findall(text))
        if url_chars / len(text) > config.max_url_chars:
            return "url_density"
    return None


def dominant_scripts(texts: Iterable[str], min_share: float = 0.1) -> tuple[str, ...]:
    """Scripts holding at least ``min_share`` of the letters in ``texts``, most common first."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(_letter_scripts(text))
    total = sum(counts.values())
    return tuple(s for s, n in counts.most_common() if total and n / total >= min_share)
