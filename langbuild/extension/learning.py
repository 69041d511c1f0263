"""Which entries extend mode adds: learned from the train split in the base tokenizer's own model type."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from ..core.errors import LangbuildError
from .vocabulary import (
    Extension,
    byte_level_to_text,
    continue_bpe,
    continue_wordpiece,
    corpus_words,
    is_byte_level,
    keep_protected_words,
    prefix,
    unigram_pieces,
)

MAX_WORD_SAMPLE_DOCS = 200_000  # enough to rank the frequent words of any corpus


def target_tokenizer(folder: Path):
    """The tokenizer step's tokenizer (its output ``folder``) as a `tokenizers.Tokenizer` (its Hugging Face export)."""
    from tokenizers import Tokenizer

    if (folder / "hf" / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "hf" / "tokenizer.json"))
    raise LangbuildError("the tokenizer step left no hf/tokenizer.json: re-run it with 'langbuild tokenizer --force'")


def as_metaspace(piece: str, byte_level: bool) -> str | None:
    """A target piece written the SentencePiece way (``▁`` for a space), or None if it is not text."""
    if byte_level:
        piece = byte_level_to_text(piece)
        if piece is None:
            return None
        return piece.replace(" ", "▁")
    return piece


def target_piece_frequencies(target, texts: list[str]) -> list[tuple[str, int, float]]:
    """The target tokenizer's pieces as (piece, count in ``texts``, log-probability), most frequent first.

    Scores are the target model's own where it is a Unigram model, else the log relative frequency.
    """
    spec = json.loads(target.to_str())
    byte_level = is_byte_level(spec)
    unigram_scores = dict(map(tuple, spec["model"]["vocab"])) if spec["model"]["type"] == "Unigram" else {}
    counts: Counter = Counter()
    for encoding in target.encode_batch(texts, add_special_tokens=False):
        counts.update(encoding.tokens)
    total = sum(counts.values()) or 1
    out = []
    for token, count in counts.most_common():
        piece = as_metaspace(token, byte_level)
        if piece:
            out.append((piece, count, unigram_scores.get(token, math.log(count / total))))
    return out


def protected_words(backend, text: list[str], listed: list[str]) -> Counter:
    """Words (in the base tokenizer's alphabet) whose tokenisation the extension must keep.

    Every word of ``text`` (source-language text, extend.protect_text), and each ``listed`` word
    (extend.protected_words) both at a line start and after a space, the two forms it takes in text.
    """
    words: Counter = Counter()
    if text:
        words.update(corpus_words(backend, text))
    if listed:
        words.update(corpus_words(backend, [form for word in listed for form in (word, f" {word}")]))
    return words


def learn_extension(backend, spec: dict, train: list[str], budget: int, min_frequency: int, protected: Counter,
                    tokenizer_folder: Path) -> Extension:
    """Up to ``budget`` entries; a Unigram base takes its pieces from the tokenizer step's output (``tokenizer_folder``)."""
    kind = spec["model"]["type"]
    if budget == 0:
        return Extension(method="none")
    if kind == "BPE":
        return continue_bpe(backend, spec, train, budget, min_frequency, protected)
    if kind == "WordPiece":
        return continue_wordpiece(backend, spec, train, budget, min_frequency, protected)
    if kind == "Unigram":
        return unigram_pieces(spec, target_piece_frequencies(target_tokenizer(tokenizer_folder), train), budget,
                              min_frequency)
    raise LangbuildError(f"extending a {kind} tokenizer is not supported: set extend.num_new_tokens = 0 or extend.mode = replace")


def learn_entries(backend, spec: dict, train: list[str], budget: int, min_frequency: int, protected: Counter,
                  tokenizer_folder: Path) -> tuple[Extension, int]:
    """At most ``budget`` entries that leave every ``protected`` word as the base splits it, and how many were dropped for that."""
    # Unigram and WordPiece entries can only be checked against protected words after learning; learn
    # some spare ones so that dropped entries are replaced. (BPE blocks protected pairs while learning.)
    spare = budget // 4 if protected and spec["model"]["type"] != "BPE" else 0
    learned = learn_extension(backend, spec, train[:MAX_WORD_SAMPLE_DOCS], budget + spare, min_frequency, protected,
                              tokenizer_folder)
    extension, dropped = keep_protected_words(backend, spec, learned, protected) if protected else (learned, 0)
    return prefix(extension, budget), dropped
