"""Samples of continuations: the repetition measure on hand-made text, prompt choice, reproducible sampling."""

from __future__ import annotations

import pytest

from langbuild.evaluation.samples import (
    PROMPT_WORDS,
    continue_in_every_mode,
    continue_text,
    continue_texts,
    pick_prompts,
    repeated_ngram_share,
)
from langbuild.models.loading import load_model, load_tokenizer
from tests.tiny import chichewa_split


@pytest.mark.parametrize("text, share", [
    ("ndi ndi ndi ndi ndi", 2 / 3),  # three 3-grams, all the same
    ("a b c a b c a b c", 1 - 3 / 7),  # seven 3-grams, three distinct
    ("Pachiyambi Mulungu analenga kumwamba ndi dziko lapansi.", 0.0),
    ("ndi ndi", 0.0),  # fewer than three words: no 3-gram
    ("", 0.0),
    ("Ndipo NDIPO anati ndipo ndipo anati", 0.25),  # case does not make a 3-gram new: 4 grams, 3 distinct
])
def test_repeated_ngram_share_on_hand_made_text(text, share):
    assert repeated_ngram_share(text) == pytest.approx(share)


def test_a_loop_scores_near_one_and_real_text_near_zero():
    verses = chichewa_split(1)[1]
    assert repeated_ngram_share(" ".join(["ndi"] * 40)) > 0.9
    assert repeated_ngram_share(verses[0]) == 0.0


def test_prompts_are_the_opening_words_of_long_enough_documents_chosen_by_the_seed():
    held_out = chichewa_split(1)[1] + ["mawu awiri okha"]
    prompts = pick_prompts(held_out, 3, seed=0)
    assert len(prompts) == 3 and prompts == pick_prompts(held_out, 3, seed=0)
    assert prompts != pick_prompts(held_out, 3, seed=1)
    for prompt in prompts:
        assert len(prompt["prompt"].split()) == PROMPT_WORDS
        assert any(" ".join(doc.split()) == f"{prompt['prompt']} {prompt['reference']}" for doc in held_out)
    assert len(pick_prompts(["mawu awiri okha"], 3, seed=0)) == 0  # too short to continue
    long_enough = [doc for doc in held_out if len(doc.split()) >= 2 * PROMPT_WORDS]  # room for a continuation
    assert len(pick_prompts(held_out, 500, seed=0)) == len(long_enough) < len(held_out)


@pytest.fixture(scope="module")
def tiny(tiny_models):
    folder = tiny_models["gpt2-bytelevel"]
    return load_model(folder), load_tokenizer(folder)


def test_sampling_is_reproducible_by_seed_and_greedy_is_deterministic(tiny):
    import torch

    model, tokenizer = tiny
    prompt = "Pachiyambi Mulungu analenga kumwamba ndi dziko"
    torch.manual_seed(123)
    before = torch.rand(1)
    first = continue_text(model, tokenizer, prompt, 24, "sampled", seed=5)
    assert first and continue_text(model, tokenizer, prompt, 24, "sampled", seed=5) == first
    others = {continue_text(model, tokenizer, prompt, 24, "sampled", seed=seed) for seed in (6, 7, 8)}
    assert others - {first}  # another seed draws other text
    greedy = continue_text(model, tokenizer, prompt, 24, "greedy", seed=0)
    assert greedy == continue_text(model, tokenizer, prompt, 24, "greedy", seed=99)  # the seed plays no part
    torch.manual_seed(123)
    assert torch.rand(1) == before  # the caller's random state is left as it was
    assert len(tokenizer(greedy, add_special_tokens=False)["input_ids"]) <= 24 + 2


def test_prompts_decoded_together_continue_as_each_would_alone(tiny):
    """Left padding keeps every prompt's greedy text: the batch is only faster, not different."""

    model, tokenizer = tiny
    prompts = ["Pachiyambi Mulungu analenga", "Ndipo dziko lapansi linali lopanda maonekedwe ndi lopanda kanthu",
               "Mulungu anati"]
    together = continue_texts(model, tokenizer, prompts, 16, "greedy", seed=0)
    assert together == [continue_text(model, tokenizer, prompt, 16, "greedy", seed=0) for prompt in prompts]


def test_greedy_and_sampled_rows_in_one_batch_give_each_mode_its_own_text(tiny):
    """Both modes decode in one batch (one pass per token for both): the greedy rows are exactly the greedy
    decoding, and the sampled rows are reproducible by seed and really sampled."""
    model, tokenizer = tiny
    prompts = ["Pachiyambi Mulungu analenga", "Mulungu anati"]
    both = continue_in_every_mode(model, tokenizer, prompts, 16, seed=3)
    assert both["greedy"] == continue_texts(model, tokenizer, prompts, 16, "greedy", seed=0)
    assert continue_in_every_mode(model, tokenizer, prompts, 16, seed=3) == both
    others = [continue_in_every_mode(model, tokenizer, prompts, 16, seed=seed)["sampled"] for seed in (4, 5, 6)]
    assert any(sample != both["sampled"] for sample in others)
