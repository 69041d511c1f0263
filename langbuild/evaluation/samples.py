"""Samples people can read: each pipeline model continues a few held-out prompts, greedy and sampled.

Numbers say how much better a model predicts text; they do not show what its text looks like. For a
few held-out documents, the opening words are given to the base, extended and trained models, and each
writes a continuation twice: greedily (its single most likely text) and by nucleus sampling with a
fixed seed (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration", top-p 0.9).
Greedy text of small language models tends to loop ("ndi ndi ndi ..."), which that paper describes,
so each continuation is measured by its share of repeated word 3-grams, seq-rep-n of Welleck et al.
2019 ("Neural Text Generation with Unlikelihood Training"): 0 when no 3-gram repeats, near 1 for a loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..models.loading import load_model, load_tokenizer
from ..text.words import first_words, word_count, words
from . import score_cache
from .scoring import model_identity

PROMPT_WORDS = 8  # enough context to show the language and the topic, short enough to leave the model room
REPETITION_N = 3  # word 3-grams: a repeated pair of words is often ordinary language; a repeated triple is a loop
TOP_P = 0.9
REFERENCE_CHARS = 300  # of the true continuation, shown next to the models' ones
MODES = ("greedy", "sampled")


@dataclass(frozen=True)
class SampleSettings:
    prompts: int  # eval.sample_prompts (0: no samples)
    new_tokens: int  # eval.sample_tokens
    seed: int
    trust_remote_code: bool = False
    cache_dir: Path | None = None  # per model identity, like the scores (score_cache): a re-run decodes nothing


def repeated_ngram_share(text: str, n: int = REPETITION_N) -> float:
    """seq-rep-n: the share of the word n-grams of ``text`` that repeat an n-gram seen before in it
    (1 - distinct n-grams / all n-grams); 0.0 when the text has fewer than n words."""
    tokens = [word.lower() for word in words(text)]
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def pick_prompts(held_out: list[str], count: int, seed: int) -> list[dict[str, str]]:
    """``count`` held-out documents long enough to continue, chosen by ``seed``: their opening words as
    the prompt and the rest as the reference."""
    long_enough = [text for text in held_out if word_count(text) >= 2 * PROMPT_WORDS]
    chosen = sorted(random.Random(seed).sample(range(len(long_enough)), min(count, len(long_enough))))
    prompts = []
    for index in chosen:
        text = " ".join(long_enough[index].split())
        prompt = first_words(text, PROMPT_WORDS)
        prompts.append({"prompt": prompt, "reference": text[len(prompt):].strip()[:REFERENCE_CHARS]})
    return prompts


def continue_text(model, tokenizer, prompt: str, new_tokens: int, mode: str, seed: int) -> str:
    """The model's continuation of ``prompt`` (new text only), started with BOS as a training document is."""
    return continue_texts(model, tokenizer, [prompt], new_tokens, mode, seed)[0]


def continue_texts(model, tokenizer, prompts: list[str], new_tokens: int, mode: str, seed: int) -> list[str]:
    """Continuations of every prompt in one ``mode``, decoded together in one batch."""
    return _decode_together(model, tokenizer, [(prompt, mode) for prompt in prompts], new_tokens, seed)


def continue_in_every_mode(model, tokenizer, prompts: list[str], new_tokens: int, seed: int) -> dict[str, list[str]]:
    """Per mode, the continuation of every prompt: greedy and sampled rows decoded in one batch, so the
    model runs ``new_tokens`` decoding steps once instead of once per mode."""
    rows = [(prompt, mode) for mode in MODES for prompt in prompts]
    texts = _decode_together(model, tokenizer, rows, new_tokens, seed)
    return {mode: texts[index * len(prompts):(index + 1) * len(prompts)] for index, mode in enumerate(MODES)}


def _greedy_rows_processor(greedy: list[bool]):
    """A logits processor that leaves only each greedy row's most likely token, so a sampling decoder
    picks it with certainty: greedy and sampled rows then share one batch (and one pass per token)."""
    import torch
    from transformers import LogitsProcessor

    class GreedyRows(LogitsProcessor):
        def __init__(self):
            self.rows = torch.tensor(greedy)

        def __call__(self, input_ids, scores):
            rows = self.rows.to(scores.device)
            best = scores.argmax(dim=-1, keepdim=True)  # the first maximum, as greedy search takes it
            only_best = torch.full_like(scores, -float("inf")).scatter(1, best, scores.gather(1, best))
            return torch.where(rows[:, None], only_best, scores)

    return GreedyRows()


def _decode_together(model, tokenizer, rows: list[tuple[str, str]], new_tokens: int, seed: int) -> list[str]:
    """The continuation of each (prompt, mode) row, all decoded in one batch (left-padded, so each prompt's
    last token is where its text goes on): a small model's decoding step costs about the same for one row
    as for a few, so the batch takes the time of one. Every prompt starts with BOS, as a training document does."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = [([start] if start is not None else []) + tokenizer(p, add_special_tokens=False)["input_ids"] for p, _ in rows]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    greedy = [mode == "greedy" for _, mode in rows]
    sampled = not all(greedy)
    config = GenerationConfig(do_sample=sampled, top_p=TOP_P if sampled else 1.0, top_k=0, temperature=1.0,
                              repetition_penalty=1.0, max_new_tokens=new_tokens, min_new_tokens=0,
                              pad_token_id=pad, eos_token_id=eos)
    processors = LogitsProcessorList([_greedy_rows_processor(greedy)] if sampled and any(greedy) else [])
    width = max(len(row) for row in ids)
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in ids], device=model.device)
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids], device=model.device)
    devices = [torch.cuda.current_device()] if model.device.type == "cuda" else []
    # Sampling draws from torch's global generator: a fork seeded here makes the samples reproducible
    # and leaves the caller's random state as it was.
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                logits_processor=processors)
    return [tokenizer.decode(row[width:].tolist(), skip_special_tokens=True).strip() for row in output]


def model_samples(folder: Path, prompts: list[dict[str, str]], settings: SampleSettings) -> list[dict]:
    """Per prompt, the greedy and sampled continuations of the model in ``folder`` and their repetition."""
    tokenizer = load_tokenizer(folder, settings.trust_remote_code)
    model = load_model(folder, settings.trust_remote_code)  # fp32: the same text on every machine
    texts = continue_in_every_mode(model, tokenizer, [p["prompt"] for p in prompts], settings.new_tokens, settings.seed)
    del model
    rows = []
    for index in range(len(prompts)):
        row = {}
        for mode in MODES:
            row[mode] = texts[mode][index]
            row[f"{mode}_repetition"] = round(repeated_ngram_share(texts[mode][index]), 4)
        rows.append(row)
    return rows


def cached_samples(folder: Path, prompts: list[dict[str, str]], settings: SampleSettings) -> list[dict]:
    """``model_samples``, answered from the cache when this model already continued these prompts."""
    if settings.cache_dir is None:
        return model_samples(folder, prompts, settings)
    key = {"model": model_identity(folder), "prompts": [p["prompt"] for p in prompts], "new_tokens": settings.new_tokens,
           "seed": settings.seed, "top_p": TOP_P, "decoding": "modes in one batch"}
    result, _ = score_cache.cached(settings.cache_dir, "samples", key, lambda: {"rows": model_samples(folder, prompts, settings)})
    return result["rows"]


def collect_samples(models: dict[str, Path], held_out: list[str], split: str, settings: SampleSettings) -> dict:
    """Continuations of every model in ``models`` for the same held-out prompts, and the mean repetition
    per model and mode (what eval/metrics.json holds under ``samples``)."""
    prompts = pick_prompts(held_out, settings.prompts, settings.seed) if settings.prompts else []
    per_model = {label: cached_samples(folder, prompts, settings) for label, folder in models.items()} if prompts else {}
    for index, prompt in enumerate(prompts):
        prompt["models"] = {label: rows[index] for label, rows in per_model.items()}
    repetition = {label: {mode: round(sum(r[f"{mode}_repetition"] for r in rows) / len(rows), 4) for mode in MODES}
                  for label, rows in per_model.items()}
    return {"split": split, "new_tokens": settings.new_tokens, "seed": settings.seed, "top_p": TOP_P,
            "measure": f"share of repeated word {REPETITION_N}-grams (seq-rep-{REPETITION_N}; lower is better)",
            "prompts": prompts, "repetition": repetition}
