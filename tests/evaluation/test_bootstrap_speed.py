"""Bootstrap intervals, per-window bits-per-byte pieces, and teacher-forced decoding speed (no timings asserted)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from langbuild.evaluation.bootstrap import (
    MIN_UNITS,
    bits_per_byte_interval,
    mean_interval,
    paired_difference_interval,
    ratio_interval,
)
from langbuild.evaluation.speed import (
    _cache_argument,
    _cache_of,
    _split_ids,
    compare_speed,
    forced_generation_speed,
    speedup,
    split_points,
)
from langbuild.models.scoring import _window_bytes, bits_per_byte
from tests.tiny import FAMILIES, _gpt2_tokenizer, english_lines

TEXTS = [
    "Mulungu ŵa ĉikondi anati kwa anthu onse: 😀 khalani mwamtendere, ŵanthu ŵanga.",
    "Ndipo Rute anati, Musandiumirize kuti ndikusiyeni; pakuti kumene mupitako ine ndipita komwe. ĉ ŵ",
    "The quick brown fox jumps over the lazy dog — naïve café, déjà vu. 🚀🌍 end",
]


def width(interval):
    return interval[1] - interval[0]


@pytest.fixture(scope="module")
def loaded(tiny_models):
    """(model, tokenizer) per tokenizer family."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return {f: (AutoModelForCausalLM.from_pretrained(tiny_models[f]).eval(), AutoTokenizer.from_pretrained(tiny_models[f]))
            for f in FAMILIES}


# ---- bootstrap -------------------------------------------------------------------------------------------------------


def test_mean_interval_contains_the_mean_and_is_deterministic():
    values = np.random.default_rng(1).integers(0, 2, size=200)
    interval = mean_interval(values, seed=3)
    assert interval[0] <= values.mean() <= interval[1]
    assert interval == mean_interval(values, seed=3)
    scores = np.random.default_rng(1).random(200)  # continuous, so another seed moves the quantiles
    assert mean_interval(scores, seed=3) != mean_interval(scores, seed=4)


def test_intervals_shrink_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.random(50) < 0.7, rng.random(5000) < 0.7
    assert width(mean_interval(large)) < width(mean_interval(small)) / 4
    nll, size = rng.gamma(2.0, 50.0, 5000), rng.integers(50, 200, 5000)
    assert width(ratio_interval(nll, size)) < width(ratio_interval(nll[:50], size[:50])) / 4


def test_no_interval_below_min_units():
    assert mean_interval([1, 0] * 4 + [1]) is None
    assert mean_interval([1, 0] * (MIN_UNITS // 2)) is not None
    assert ratio_interval([1.0] * (MIN_UNITS - 1), [2] * (MIN_UNITS - 1)) is None
    assert paired_difference_interval([1.0] * (MIN_UNITS - 1), [0.0] * (MIN_UNITS - 1)) is None
    assert ratio_interval([1.0] * MIN_UNITS, [0] * MIN_UNITS) is None  # no bytes at all: no ratio


def test_ratio_interval_resamples_units_together():
    rng = np.random.default_rng(2)
    size = rng.integers(10, 500, 100)
    nll = size * 1.3 + rng.normal(0, 5, 100)
    interval = ratio_interval(nll, size, seed=7)
    assert interval[0] <= nll.sum() / size.sum() <= interval[1]
    assert interval == ratio_interval(nll, size, seed=7)
    exact = ratio_interval(size * 1.3, size)  # a constant ratio per unit: every resample gives it
    assert exact == pytest.approx((1.3, 1.3))
    with pytest.raises(ValueError):
        ratio_interval([1.0] * 12, [1.0] * 11)


def test_paired_difference_sees_a_small_consistent_gain():
    rng = np.random.default_rng(5)
    difficulty = rng.random(300)  # shared by both models: paired resampling cancels it
    base = (difficulty < 0.5).astype(float)
    trained = np.where(rng.random(300) < 0.1, 1.0, base)  # right on every item base gets, plus a few more
    gain = trained.mean() - base.mean()
    interval = paired_difference_interval(trained, base)
    assert 0 < interval[0] <= gain <= interval[1]
    assert paired_difference_interval(base, base) == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference_interval([1.0] * 12, [1.0] * 11)


# ---- bits per byte: per-window pieces --------------------------------------------------------------------------------


def old_bits_per_byte(model, tokenizer, texts, window, batch_size):
    """bits_per_byte as it was before the per-window keys, copied verbatim: its numbers must not move
    (beyond float rounding)."""
    text = "\n".join(texts)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    span = min(window, model.config.max_position_embeddings) - 1
    windows = [ids[i : i + span] for i in range(0, len(ids), span)]
    total = 0.0
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            width = max(len(w) for w in batch) + 1
            input_ids = torch.full((len(batch), width), start, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, tokens in enumerate(batch):
                input_ids[row, 1 : len(tokens) + 1] = torch.tensor(tokens, dtype=torch.long)
                mask[row, : len(tokens) + 1] = 1
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), input_ids[:, 1:].reshape(-1), reduction="none")
            total += float((nll.view(len(batch), -1) * mask[:, 1:]).sum())
    n_bytes = len(text.encode("utf-8"))
    return {"bits_per_byte": total / math.log(2) / n_bytes, "tokens": len(ids), "bytes": n_bytes}


def direct_nll(model, tokenizer, ids):
    """NLL (nats) of ``ids`` after the BOS/EOS token, in one unbatched, unpadded forward pass."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([[start, *ids]])
    with torch.inference_mode():
        logits = model(input_ids=input_ids).logits[0, :-1]
    return float(F.cross_entropy(logits, input_ids[0, 1:], reduction="sum"))


@pytest.mark.parametrize("family", FAMILIES)
def test_window_bytes_partition_the_text(loaded, family):
    model, tokenizer = loaded[family]
    scored = bits_per_byte(model, tokenizer, TEXTS, window=9, batch_size=3)
    text = "\n".join(TEXTS)
    assert sum(scored["window_bytes"]) == len(text.encode("utf-8")) == scored["bytes"]
    assert len(scored["window_bytes"]) == len(scored["window_nll"]) == math.ceil(scored["tokens"] / 8)
    assert all(b >= 0 for b in scored["window_bytes"]) and all(isinstance(b, int) for b in scored["window_bytes"])
    # each window owns the text from its first token's start: its bytes match that slice
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [encoded["offset_mapping"][i][0] for i in range(0, scored["tokens"], 8)][1:]
    cuts = [0, *np.maximum.accumulate(starts).tolist(), len(text)]
    assert scored["window_bytes"] == [len(text[a:b].encode()) for a, b in zip(cuts, cuts[1:])]
    # the windows' NLL adds up to the total, window by window as a direct unbatched pass gives it
    assert sum(scored["window_nll"]) / math.log(2) / scored["bytes"] == pytest.approx(scored["bits_per_byte"], rel=1e-6)
    ids = encoded["input_ids"]
    assert scored["window_nll"][1] == pytest.approx(direct_nll(model, tokenizer, ids[8:16]), rel=1e-4)
    assert scored["window_nll"][-1] == pytest.approx(direct_nll(model, tokenizer, ids[(len(ids) - 1) // 8 * 8 :]), rel=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_bits_per_byte_numbers_are_unchanged(loaded, family):
    model, tokenizer = loaded[family]
    for window, batch in ((9, 3), (64, 2), (512, 8)):
        scored = bits_per_byte(model, tokenizer, TEXTS, window=window, batch_size=batch)
        old = old_bits_per_byte(model, tokenizer, TEXTS, window, batch)
        # The output layer now runs by chunks (langbuild.training.loss): the same sums in another order,
        # so the last float digits may move; tokens and bytes must not.
        assert scored["tokens"] == old["tokens"] and scored["bytes"] == old["bytes"]
        assert scored["bits_per_byte"] == pytest.approx(old["bits_per_byte"], rel=1e-6)


def test_window_bytes_without_offsets_spread_by_tokens():
    text = "ŵa ĉi 😀 abc" * 3
    parts = _window_bytes(text, [0, 4, 8, 12], 14, None)
    assert sum(parts) == len(text.encode()) and len(parts) == 4
    assert parts[-1] < parts[0]  # the last window has 2 tokens, the others 4
    assert _window_bytes(text, [], 0, None) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_bits_per_byte_interval(loaded, family):
    model, tokenizer = loaded[family]
    scored = bits_per_byte(model, tokenizer, TEXTS * 2, window=9)
    interval = bits_per_byte_interval(scored, seed=1)
    assert interval[0] <= scored["bits_per_byte"] <= interval[1]
    assert interval == bits_per_byte_interval(scored, seed=1)
    few = bits_per_byte(model, tokenizer, TEXTS, window=128)
    assert len(few["window_nll"]) < MIN_UNITS and bits_per_byte_interval(few) is None


# ---- forced decoding speed -------------------------------------------------------------------------------------------


def tiny_gpt2(vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=256)).eval()


@pytest.fixture(scope="module")
def char_and_bpe():
    """Two byte-level tokenizers on the same English: one with no merges (one token per byte), one with 600 tokens."""
    lines = english_lines()[:300]
    return [(tiny_gpt2(len(t)), t) for t in (_gpt2_tokenizer(lines, 257), _gpt2_tokenizer(lines, 600))]


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_steps_see_the_whole_context(loaded, family):
    """The cache really is passed on (a dropped cache would still run, just on one token): steps match a full pass."""
    model, _ = loaded[family]
    ids = list(range(5, 30))
    with torch.inference_mode():
        full = model(input_ids=torch.tensor([ids])).logits[0]
        cache = _cache_of(model(input_ids=torch.tensor([ids[:10]]), use_cache=True))
        for k in range(10, len(ids)):
            out = model(input_ids=torch.tensor([[ids[k]]]), use_cache=True, **{_cache_argument(model): cache})
            cache = _cache_of(out)
            assert torch.allclose(out.logits[0, -1], full[k], atol=1e-4)


def test_both_families_decode_the_same_characters(loaded):
    (base_model, base_tok), (model, tok) = loaded["llama-spm"], loaded["gpt2-bytelevel"]
    splits = split_points(base_tok, TEXTS, prompt_tokens=6)
    for text, split in zip(TEXTS, splits):
        assert 0 < split < len(text)
        for tokenizer in (base_tok, tok):
            _, continuation, starts = _split_ids(tokenizer, text, split)
            assert starts[0] == split and starts[-1] == len(text) and len(starts) == len(continuation) + 1
    compared = compare_speed(base_model, base_tok, model, tok, TEXTS, prompt_tokens=6)
    base, extended = compared["base"], compared["extended"]
    assert base["chars"] == extended["chars"] == sum(len(t) - s for t, s in zip(TEXTS, splits))
    assert base["seconds"] > 0 and extended["seconds"] > 0
    assert compared["speedup"] == pytest.approx(extended["chars_per_second"] / base["chars_per_second"])
    assert base["chars_per_token"] == pytest.approx(base["chars"] / base["tokens"])


def test_fewer_tokens_mean_more_characters_per_token(char_and_bpe):
    (char_model, char_tok), (bpe_model, bpe_tok) = char_and_bpe
    texts = english_lines()[300:303]
    compared = compare_speed(char_model, char_tok, bpe_model, bpe_tok, texts, repeats=2)
    chars, bpe = compared["base"], compared["extended"]
    assert chars["chars"] == bpe["chars"]
    assert chars["tokens"] == len("".join(t[s:] for t, s in zip(texts, split_points(char_tok, texts))).encode())
    assert bpe["tokens"] < chars["tokens"] and bpe["chars_per_token"] > chars["chars_per_token"] * 1.5
    # the same tokenizer on the same text: the same count of everything but time
    again = forced_generation_speed(bpe_model, bpe_tok, texts, splits=split_points(char_tok, texts))
    assert (again["chars"], again["tokens"]) == (bpe["chars"], bpe["tokens"])


def test_decoding_caps(loaded):
    model, tokenizer = loaded["gpt2-bytelevel"]
    capped = forced_generation_speed(model, tokenizer, TEXTS, prompt_tokens=4, max_new_tokens=5)
    assert capped["tokens"] == 5 * len(TEXTS) and 0 < capped["chars"] < sum(map(len, TEXTS))
    whole = forced_generation_speed(model, tokenizer, ["short"], prompt_tokens=16)  # all prompt, nothing to decode
    assert whole["tokens"] == 0 and whole["seconds"] == 0
    with pytest.raises(ValueError):
        speedup(whole, capped)
