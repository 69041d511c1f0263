"""Tokenizer statistics that compare tokenizers fairly on the same text.

Tokenizers are compared by how finely they cut the same text (tokens per word, characters and bytes
per token), by how often they give up on it, and by parity across languages:

* **unknown share**: tokens that are the unknown token (the text is lost: decoding gives ``<unk>``);
* **byte-fallback share**: tokens that are SentencePiece-style byte pieces ``<0x00>``…``<0xFF>``,
  which spell a character the vocabulary lacks one UTF-8 byte at a time. Only tokenizers with byte
  fallback have such pieces. A byte-level BPE (GPT-2 style) has none: bytes are its alphabet, every
  character is spelled from it by design, so its share is 0 by construction;
* **parity**: tokens for a text ÷ tokens for the same content in English (line-aligned translations),
  as in Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness Between Languages". Taken
  as the ratio of totals over all aligned lines; 1.0 means the language costs as many tokens as English.

Models are compared in bits per byte instead: see :mod:`langbuild.models.scoring`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..text.words import word_count

BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>\Z")


def _length_stats(tokens: int, texts: list[str]) -> dict[str, float]:
    n_words = sum(map(word_count, texts))  # langbuild.words: comparable within a language, not across scripts
    chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "tokens": tokens,
        "tokens_per_word": tokens / max(n_words, 1),
        "chars_per_token": chars / max(tokens, 1),
        "bytes_per_token": n_bytes / max(tokens, 1),
    }


def tokenizer_stats(encode: Callable[[str], Sequence[int]], texts: list[str]) -> dict[str, float]:
    return _length_stats(sum(len(encode(t)) for t in texts), texts)


def encoding_stats(encoded: Sequence[Sequence[int]], texts: list[str], unknown_ids: set[int] = frozenset(),
                   byte_ids: set[int] = frozenset()) -> dict[str, float]:
    """``tokenizer_stats`` from ids already computed (one list per text), plus the unknown and byte-fallback shares."""
    tokens = sum(len(ids) for ids in encoded)
    unknown = sum(1 for ids in encoded for i in ids if i in unknown_ids) if unknown_ids else 0
    fallback = sum(1 for ids in encoded for i in ids if i in byte_ids) if byte_ids else 0
    return {
        **_length_stats(tokens, texts),
        "unknown_share": unknown / max(tokens, 1),
        "byte_fallback_share": fallback / max(tokens, 1),
    }


def hf_encoder(tokenizer) -> Callable[[str], list[int]]:
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def hf_batch_encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """Encode many texts in one call (the fast tokenizers parallelise it); no special tokens added."""
    return lambda texts: tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []


def fallback_ids(tokenizer) -> tuple[set[int], set[int]]:
    """(ids of the unknown token, ids of byte-fallback pieces) of a transformers tokenizer.

    Byte pieces count only when all 256 are present, the mark of a byte-fallback vocabulary: a
    byte-level BPE could in principle learn the string "<0x41>" from text, and that is not a fallback.
    """
    unknown = {tokenizer.unk_token_id} if tokenizer.unk_token_id is not None else set()
    pieces = {token: i for token, i in tokenizer.get_vocab().items() if BYTE_PIECE.match(token)}
    return unknown, set(pieces.values()) if len(pieces) >= 256 else set()


def tokenizer_profile(tokenizer, texts: list[str]) -> dict[str, float]:
    """Every tokenizer measure of a transformers tokenizer on ``texts``, from one encoding pass."""
    unknown, byte_pieces = fallback_ids(tokenizer)
    return encoding_stats(hf_batch_encoder(tokenizer)(texts), texts, unknown, byte_pieces)


def parity(encode_batch: Callable[[list[str]], Sequence[Sequence[int]]], target: list[str], source: list[str]) -> float:
    """Tokens for ``target`` ÷ tokens for ``source``, its line-aligned English translation (see the module docstring)."""
    source_tokens = sum(len(ids) for ids in encode_batch(source))
    return sum(len(ids) for ids in encode_batch(target)) / max(source_tokens, 1)
