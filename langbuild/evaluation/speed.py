"""The real generation speed-up of an extended tokenizer: characters of the same text decoded per second.

Why forced (teacher-forced) decoding: two models generating freely produce different text of
different lengths, so their tokens or characters per second measure different work. Here each model
is fed the true next token of a fixed text at every step, one token at a time through its KV cache
(``past_key_values``, named ``cache`` in recent transformers; batch size 1), exactly as greedy
generation runs, so both models decode exactly the same characters and only their cost differs.

Where the gain comes from: an extended tokenizer cuts the language's text into fewer tokens (more
characters per token), so fewer forward passes decode the same characters. Each pass costs slightly
more, as the larger embedding and output head add work to every step; the speed-up (extended ÷ base
characters per second, see ``speedup``) is the net of the two.

Prompt and continuation: each text is split at a character position. The prompt (the text before it,
after the model's BOS or EOS token) is fed in one untimed call; the continuation is then decoded
token by token and timed. ``split_points`` puts the split after a tokenizer's first ``prompt_tokens``
tokens, moved forward to the next whitespace, where both byte-level BPE and SentencePiece tokenizers
start a token. To compare two tokenizers, pass the same splits to both (``compare_speed`` does it,
with the base tokenizer's splits): then both decode the same characters.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence

from ..models.scoring import _context_token, _encode_with_offsets, context_length

WARMUP_STEPS = 8  # untimed decode steps first: the first calls allocate caches and pick kernels


def split_points(tokenizer, texts: Sequence[str], prompt_tokens: int = 16) -> list[int]:
    """Per text, the character where the prompt ends: after ``tokenizer``'s first ``prompt_tokens`` tokens, then at the next space.

    Whitespace because tokenizers start a token there (the space joins the following word), so
    another tokenizer very likely has a token boundary at the same character. A text with no
    whitespace after the prompt is split right after the prompt tokens.
    """
    splits = []
    for text in texts:
        ids, offsets = _encode_with_offsets(tokenizer, text)
        if prompt_tokens <= 0 or len(ids) <= prompt_tokens:
            splits.append(0 if prompt_tokens <= 0 else len(text))
            continue
        if offsets is not None:
            end = offsets[prompt_tokens - 1][1]
        else:
            end = len(tokenizer.decode(ids[:prompt_tokens]))
        space = next((i for i in range(end, len(text)) if text[i].isspace()), end)
        splits.append(space)
    return splits


def _split_ids(tokenizer, text: str, split: int) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, continuation ids, character start of each continuation token plus the text's end).

    With a fast tokenizer the text is tokenized whole and cut where tokens start at or after
    ``split`` (the same ids the model sees for the whole text). A slow tokenizer gives no offsets, so
    prompt and continuation are tokenized separately and the continuation's characters are spread
    evenly over its tokens (exact for the whole continuation, approximate when decoding is capped).
    """
    ids, offsets = _encode_with_offsets(tokenizer, text)
    if offsets is None:
        prompt = tokenizer(text[:split], add_special_tokens=False)["input_ids"] if split else []
        rest = tokenizer(text[split:], add_special_tokens=False)["input_ids"]
        chars = len(text) - split
        return prompt, rest, [split + round(chars * k / max(len(rest), 1)) for k in range(len(rest) + 1)]
    cut = next((k for k, (start, _) in enumerate(offsets) if start >= split), len(ids))
    starts = [start for start, _ in offsets[cut:]] + [len(text)]
    return ids[:cut], ids[cut:], starts


def decoded_ids(tokenizer, texts: Sequence[str], splits: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Per text, the (prompt, continuation) token ids a model with ``tokenizer`` decodes: what its timing depends on."""
    return [_split_ids(tokenizer, text, split)[:2] for text, split in zip(texts, splits)]


def _decode_forced(model, prompt: list[int], continuation: list[int]) -> float:
    """Seconds to decode ``continuation`` one token at a time after an untimed prefill of ``prompt``.

    Each step feeds the true token with the KV cache and takes the greedy choice from the logits, as
    generation would; only the step loop is timed (the GPU is synchronised before the clock stops).
    """
    import torch

    device, name = model.device, _cache_argument(model)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
        cache = _cache_of(out)
        steps = [torch.tensor([[token]], device=device) for token in continuation]
        _synchronise(device)
        started = time.perf_counter()
        for step in steps:
            out = model(input_ids=step, use_cache=True, **{name: cache})
            cache = _cache_of(out)
            out.logits[:, -1].argmax(dim=-1)  # the greedy pick generation would make (then ignored: forced)
        _synchronise(device)
        return time.perf_counter() - started


def _cache_argument(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` in recent transformers 5, ``past_key_values`` before
    (the old name still works there but warns on every step)."""
    # The model's own forward: langbuild.training.loss may have wrapped it in one taking **kwargs.
    forward = model.__dict__.get("_plain_forward", model.forward)
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _cache_of(output):
    """The KV cache a forward call returned, under either name (see ``_cache_argument``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forced_generation_speed(model, tokenizer, texts: Sequence[str], prompt_tokens: int = 16, max_new_tokens: int | None = None,
                            repeats: int = 1, splits: Sequence[int] | None = None, report=None) -> dict:
    """Characters and tokens per second of teacher-forced decoding of ``texts`` (see the module docstring).

    ``splits`` (characters, one per text) say where each prompt ends; by default ``split_points`` of
    this tokenizer. Decoding stops at the model's context length and at ``max_new_tokens`` per text;
    either cap breaks the "same characters" guarantee between tokenizers, as the capped tokens cover
    different text. Characters are counted from the text: from the first decoded token's start to the
    start of the first token not decoded (or the end). Each text is timed ``repeats`` times and its
    fastest run kept, which removes most scheduling noise; one untimed warm-up decode runs first.
    ``report(tokens decoded, tokens in all)`` is called after each text (a progress bar).

    Returns {"chars", "tokens", "seconds", "chars_per_second", "tokens_per_second", "chars_per_token"}.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    splits = list(splits) if splits is not None else split_points(tokenizer, texts, prompt_tokens)
    if len(splits) != len(texts):
        raise ValueError(f"{len(splits)} split points for {len(texts)} texts")
    start, room = _context_token(tokenizer), context_length(model)
    jobs = []
    for text, split in zip(texts, splits):
        prompt, continuation, starts = _split_ids(tokenizer, text, split)
        prompt = [start, *prompt][-max(room // 2, 1) :]
        n = min(len(continuation), room - len(prompt), max_new_tokens if max_new_tokens is not None else len(continuation))
        if n > 0:
            jobs.append((prompt, continuation[:n], starts[n] - starts[0]))
    model.eval()
    if jobs:
        _decode_forced(model, jobs[0][0], jobs[0][1][:WARMUP_STEPS])
    seconds, decoded, total = 0.0, 0, sum(len(job[1]) for job in jobs)
    for prompt, steps, _ in jobs:
        seconds += min(_decode_forced(model, prompt, steps) for _ in range(repeats))
        decoded += len(steps)
        if report is not None:
            report(decoded, total)
    chars, tokens = sum(job[2] for job in jobs), sum(len(job[1]) for job in jobs)
    return {
        "chars": chars,
        "tokens": tokens,
        "seconds": seconds,
        "chars_per_second": chars / seconds if seconds > 0 else 0.0,
        "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "chars_per_token": chars / tokens if tokens else 0.0,
    }


def speedup(base: dict, extended: dict) -> float:
    """Extended ÷ base characters per second; above 1 the extended model writes the language faster."""
    if not base["chars_per_second"]:
        raise ValueError("the base model decoded nothing, so there is no speed to compare with")
    return extended["chars_per_second"] / base["chars_per_second"]


def compare_speed(base_model, base_tokenizer, model, tokenizer, texts: Sequence[str], prompt_tokens: int = 16,
                  max_new_tokens: int | None = None, repeats: int = 1) -> dict:
    """{"base": ..., "extended": ..., "speedup": ...}: both models decode the same characters (the base tokenizer's splits)."""
    splits = split_points(base_tokenizer, texts, prompt_tokens)
    base = forced_generation_speed(base_model, base_tokenizer, texts, prompt_tokens, max_new_tokens, repeats, splits)
    extended = forced_generation_speed(model, tokenizer, texts, prompt_tokens, max_new_tokens, repeats, splits)
    return {"base": base, "extended": extended, "speedup": speedup(base, extended)}
