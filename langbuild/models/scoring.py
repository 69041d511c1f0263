"""Scoring text with a model: bits per byte, the only fair measure across tokenizers.

Models with different tokenizers are compared only in bits per byte of the same UTF-8 text: the sum
of the model's negative log-likelihood over all tokens of the text, in bits, divided by the text's
byte count. Per-token perplexity would reward a tokenizer for cutting text into more pieces.
Tokenizer statistics (tokens per word, parity, ...) are in :mod:`langbuild.tokenization.statistics`.
"""

from __future__ import annotations

import math


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


def bits_per_byte(model, tokenizer, texts: list[str], window: int = 512, batch_size: int = 8, report=None) -> dict:
    """Bits per UTF-8 byte of ``texts`` joined by newlines, scored in non-overlapping windows.

    Each window is prefixed with the model's BOS (or EOS) token and its tokens are predicted from the
    window's own left context; every token of the text is scored exactly once.

    Besides the totals it returns the per-window pieces a bootstrap interval resamples (see
    ``langbuild.evaluation.bootstrap.bits_per_byte_interval``): ``window_nll`` (nats, one float per
    window) and ``window_bytes`` (one int per window). The window bytes partition the text's UTF-8
    bytes exactly (they sum to ``bytes``), so resampling windows resamples the text itself; see
    ``_window_bytes`` for how bytes are assigned. ``bits_per_byte`` is computed from the batch totals,
    so its value does not depend on them. ``report(windows done, windows in all)`` is called after each
    batch (a progress bar).
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
            if report is not None:
                report(len(window_nll), len(windows))
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

    The output layer runs a few tokens at a time (``langbuild.training.loss``): a 262k vocabulary's
    logits for a whole batch of windows would take gigabytes. Padding positions get no logits at all.
    """
    import torch

    from ..training.loss import IGNORE_INDEX, scored_token_nll

    width = max(len(w) for w in batch) + 1
    input_ids = torch.full((len(batch), width), start, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, tokens in enumerate(batch):
        input_ids[row, 1 : len(tokens) + 1] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens) + 1] = 1
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    labels = input_ids.masked_fill(mask == 0, IGNORE_INDEX)
    nll = scored_token_nll(model, input_ids, labels, attention_mask=mask)
    return float(nll.sum()), nll.sum(dim=1).tolist()
