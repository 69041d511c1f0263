"""Measures that compare tokenizers and models fairly.

Models with different tokenizers are compared only in bits per byte of the same UTF-8 text: the sum
of the model's negative log-likelihood over all tokens of the text, in bits, divided by the text's
byte count. Per-token perplexity would reward a tokenizer for cutting text into more pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def tokenizer_stats(encode: Callable[[str], Sequence[int]], texts: list[str]) -> dict[str, float]:
    tokens = sum(len(encode(t)) for t in texts)
    n_words = sum(len(t.split()) for t in texts)
    chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "tokens": tokens,
        "tokens_per_word": tokens / max(n_words, 1),
        "chars_per_token": chars / max(tokens, 1),
        "bytes_per_token": n_bytes / max(tokens, 1),
    }


def hf_encoder(tokenizer) -> Callable[[str], list[int]]:
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


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


def bits_per_byte(model, tokenizer, texts: list[str], window: int = 512, batch_size: int = 8) -> dict[str, float]:
    """Bits per UTF-8 byte of ``texts`` joined by newlines, scored in non-overlapping windows.

    Each window is prefixed with the model's BOS (or EOS) token and its tokens are predicted from the
    window's own left context; every token of the text is scored exactly once.
    """
    import torch

    text = "\n".join(texts)
    if not text:
        raise ValueError("bits per byte of an empty text is undefined")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = _context_token(tokenizer)
    span = min(window, context_length(model)) - 1
    windows = [ids[i : i + span] for i in range(0, len(ids), span)]
    total_nll = 0.0
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            total_nll += _batch_nll(model, windows[first : first + batch_size], start)
    n_bytes = len(text.encode("utf-8"))
    return {"bits_per_byte": total_nll / math.log(2) / max(n_bytes, 1), "tokens": len(ids), "bytes": n_bytes}


def _batch_nll(model, batch: list[list[int]], start: int) -> float:
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
    return float((nll.view(len(batch), -1) * mask[:, 1:]).sum())
