"""Measures that compare tokenizers and models fairly.

Models with different tokenizers are compared only in bits per byte of the same UTF-8 text: the sum
of the model's negative log-likelihood over all tokens of the text, in bits, divided by the text's
byte count. Per-token perplexity would reward a tokenizer for cutting text into more pieces.

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from .words import word_count

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


def _context_token(tokenizer) -> int:
    """The token every window starts from, so that the first real token is predicted too."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return candidate
    return 0


def context_length(model, default: int = 2048) -> int:
    """The longest sequence the model's position scheme supports."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def bits_per_byte(model, tokenizer, texts: list[str], window: int = 512, batch_size: int = 8) -> dict:
    """Bits per UTF-8 byte of ``texts`` joined by newlines, scored in non-overlapping windows.

    Each window is prefixed with the model's BOS (or EOS) token and its tokens are predicted from the
    window's own left context; every token of the text is scored exactly once.

    Besides the totals it returns the per-window pieces a bootstrap interval resamples (see
    ``langbuild.evaluation.bootstrap.bits_per_byte_interval``): ``window_nll`` (nats, one float per
    window) and ``window_bytes`` (one int per window). The window bytes partition the text's UTF-8
    bytes exactly (they sum to ``bytes``), so resampling windows resamples the text itself; see
    ``_window_bytes`` for how bytes are assigned. ``bits_per_byte`` is computed from the batch totals
    exactly as before the per-window keys existed, so its value does not depend on them.
    """
    import torch

    text = "\n".join(texts)
    if not text:
        raise ValueError("bits per byte of an empty text is undefined")
    ids, offsets = _encode_with_offsets(tokenizer, text)
    start = _context_token(tokenizer)
    span = min(window, context_length(model)) - 1
    firsts = list(range(0, len(ids), span))
    windows = [ids[i : i + span] for i in firsts]
    total_nll = 0.0
    window_nll: list[float] = []
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            batch_total, per_window = _batch_nll(model, windows[first : first + batch_size], start)
            total_nll += batch_total
            window_nll.extend(per_window)
    n_bytes = len(text.encode("utf-8"))
    return {
        "bits_per_byte": total_nll / math.log(2) / max(n_bytes, 1),
        "tokens": len(ids),
        "bytes": n_bytes,
        "window_nll": window_nll,
        "window_bytes": _window_bytes(text, firsts, len(ids), offsets),
    }


def _encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    """Token ids of ``text`` and, from a fast tokenizer, each token's character span (None from a slow one).

    The ids are the same as a plain call's: asking for offsets does not change the tokenization.
    """
    if getattr(tokenizer, "is_fast", False):
        try:
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return encoded["input_ids"], [tuple(span) for span in encoded["offset_mapping"]]
        except (NotImplementedError, ValueError, TypeError, KeyError):
            pass
    return tokenizer(text, add_special_tokens=False)["input_ids"], None


def _window_bytes(text: str, firsts: list[int], n_tokens: int, offsets: list[tuple[int, int]] | None) -> list[int]:
    """UTF-8 bytes owned by each window (first token indices ``firsts``); they sum to the text's byte count.

    With offsets, a window owns the text from its first token's start character to the next window's
    first token's start (the first window from character 0, the last to the end). Starts are forced
    non-decreasing, so an odd offset (a byte-fallback piece in the middle of a character shares that
    character's span) gives a window fewer bytes, never a gap or an overlap. Without offsets (slow
    tokenizer) the bytes are spread in proportion to each window's tokens, rounded so they still sum
    exactly: an approximation, since tokens do not all cover the same number of bytes.
    """
    if not firsts:
        return []
    if offsets is None:
        total = len(text.encode("utf-8"))
        cuts = [round(total * first / n_tokens) for first in firsts] + [total]
        return [cuts[k + 1] - cuts[k] for k in range(len(firsts))]
    cuts = [0]
    for first in firsts[1:]:
        cuts.append(min(max(cuts[-1], offsets[first][0]), len(text)))
    cuts.append(len(text))
    return [len(text[cuts[k] : cuts[k + 1]].encode("utf-8")) for k in range(len(firsts))]


def _batch_nll(model, batch: list[list[int]], start: int) -> tuple[float, list[float]]:
    """(summed NLL in nats of every token in ``batch``, the same sum per window).

    The batch total is summed over the whole tensor as it always was, so totals built from it are
    unchanged to the last bit; the per-window sums may differ from it in the last float digits.
    """
    import torch
    import torch.nn.functional as F

    width = max(len(w) for w in batch) + 1
    input_ids = torch.full((len(batch), width), start, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, tokens in enumerate(batch):
        input_ids[row, 1 : len(tokens) + 1] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens) + 1] = 1
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    masked = nll.view(len(batch), -1) * mask[:, 1:]
    return float(masked.sum()), masked.sum(dim=1).tolist()
