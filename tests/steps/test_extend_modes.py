"""The extend step's choices: replace mode, an automatic token count, protected words, padding."""

from __future__ import annotations

import math

import torch
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.tokenization.curves import knee
from tests.tiny import chichewa_split, read_json, tiny_project_through, write_lines

QUIET = Console(quiet=True)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_replace_mode_swaps_in_the_target_tokenizer_and_keeps_shared_rows(tmp_path, tiny_models):
    base_folder = tiny_models["gpt2-bytelevel"]
    root = tiny_project_through(tmp_path, base_folder, train_books=1, **{
        "extend.mode": "replace", "tokenizer.library": "huggingface", "tokenizer.model_type": "bpe",
        "train.max_steps": 2,
    })
    pipeline.run(Project(root), QUIET, until="eval")
    target = AutoTokenizer.from_pretrained(root / "tokenizer/hf")
    replaced = AutoTokenizer.from_pretrained(root / "extend/model")
    assert replaced.get_vocab() == target.get_vocab()
    base_tok = AutoTokenizer.from_pretrained(base_folder)
    base_model = AutoModelForCausalLM.from_pretrained(base_folder)
    model = AutoModelForCausalLM.from_pretrained(root / "extend/model")
    rows = model.get_input_embeddings().weight
    assert rows.shape[0] == math.ceil(len(target) / 64) * 64
    assert model.config.eos_token_id == target.eos_token_id
    # Tokens both vocabularies spell the same way keep their trained rows.
    shared = [(t, i) for t, i in target.get_vocab().items() if t in base_tok.get_vocab() and t not in target.all_special_tokens]
    assert len(shared) > 50
    base_rows = base_model.get_input_embeddings().weight
    for token, idx in shared[:50]:
        assert torch.equal(rows[idx], base_rows[base_tok.get_vocab()[token]])
    metrics = read_json(root / "extend/metrics.json")
    assert metrics["mode"] == "replace" and metrics["checks"]["rows_copied_from_base"] >= len(shared)
    assert metrics["valid_tokens_per_word"]["extended"] < metrics["valid_tokens_per_word"]["base"]
    evaluation = read_json(root / "eval/metrics.json")
    assert math.isfinite(evaluation["target"]["bits_per_byte"]["trained"])


def test_auto_token_count_is_recorded_with_the_curve_it_was_chosen_from(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"], **{"extend.num_new_tokens": "auto"})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    curve = metrics["gain_curve"]
    assert curve[0]["new_tokens"] == 0 and len(curve) >= 3
    values = [p["tokens_per_word"] for p in curve]
    assert values == sorted(values, reverse=True)  # more entries never cost tokens on the target
    chosen = next(p for p in curve if p["new_tokens"] == metrics["added_tokens"])
    assert chosen["zero_shot_bits_per_byte"] <= curve[0]["zero_shot_bits_per_byte"]
    assert metrics["requested_tokens"] == "auto" and metrics["auto_size"]["chosen"] == metrics["added_tokens"]


def test_knee_of_a_textbook_curve():
    sizes = [500, 1000, 2000, 4000, 8000, 16000]
    assert knee(sizes, [2.2, 2.0, 1.6, 1.55, 1.52, 1.50]) == 2000  # the bend
    assert knee([1000, 2000], [2.0, 1.9]) == 2000  # too few points for a bend: the largest


def test_protected_words_keep_their_tokens(tmp_path, tiny_models):
    train, _ = chichewa_split()
    frequent = ["Mulungu", "dziko", "anthu"]
    assert all(any(word in verse for verse in train) for word in frequent)
    write_lines(tmp_path / "keep.txt", frequent)
    root = tiny_project_through(tmp_path / "p", tiny_models["gpt2-bytelevel"],
                                **{"extend.protected_words": str(tmp_path / "keep.txt")})
    pipeline.run(Project(root), QUIET, until="extend")
    base = AutoTokenizer.from_pretrained(tiny_models["gpt2-bytelevel"])
    extended = AutoTokenizer.from_pretrained(root / "extend/model")
    for word in frequent:
        for form in (word, f" {word}", f"{word}, {word}."):
            assert _ids(extended, form) == _ids(base, form)
    # Without the list the same corpus does shorten them: the list is what kept them.
    free = tiny_project_through(tmp_path / "free", tiny_models["gpt2-bytelevel"])
    pipeline.run(Project(free), QUIET, until="extend")
    unprotected = AutoTokenizer.from_pretrained(free / "extend/model")
    assert any(len(_ids(unprotected, f" {word}")) < len(_ids(base, f" {word}")) for word in frequent)


def test_embedding_padding_follows_the_setting(tmp_path, tiny_models):
    for multiple in (1, 64):
        root = tiny_project_through(tmp_path / str(multiple), tiny_models["llama-spm"],
                                 **{"extend.pad_to_multiple_of": multiple})
        pipeline.run(Project(root), QUIET, until="extend")
        tokenizer = AutoTokenizer.from_pretrained(root / "extend/model")
        model = AutoModelForCausalLM.from_pretrained(root / "extend/model")
        rows = model.get_input_embeddings().weight.shape[0]
        assert rows == math.ceil(len(tokenizer) / multiple) * multiple
        assert model.get_output_embeddings().weight.shape[0] == rows  # the untied head follows
        metrics = read_json(root / "extend/metrics.json")
        assert metrics["embedding_rows"] == {"base": metrics["vocab_size"]["base"], "extended": rows,
                                             "padding": rows - len(tokenizer)}


def test_replace_mode_with_sentencepiece_gives_single_characters_their_base_rows(tmp_path, tiny_models):
    base_folder = tiny_models["llama-spm"]  # byte fallback on both sides: "a" must not match <0x61>
    root = tiny_project_through(tmp_path, base_folder, train_books=1, **{"extend.mode": "replace"})
    pipeline.run(Project(root), QUIET, until="extend")
    base_tok, target = AutoTokenizer.from_pretrained(base_folder), AutoTokenizer.from_pretrained(root / "extend/model")
    base_rows = AutoModelForCausalLM.from_pretrained(base_folder).get_input_embeddings().weight
    rows = AutoModelForCausalLM.from_pretrained(root / "extend/model").get_input_embeddings().weight
    base_vocab = base_tok.get_vocab()
    letters = [t for t in "aeiou" if t in target.get_vocab() and t in base_vocab]
    assert letters
    for letter in letters:
        assert torch.equal(rows[target.convert_tokens_to_ids(letter)], base_rows[base_vocab[letter]])


def test_sampling_initialisers_run_in_the_step_for_both_matrices(tmp_path, tiny_models):
    for method in ("multivariate", "script"):
        root = tiny_project_through(tmp_path / method, tiny_models["llama-spm"], **{"extend.init": method})
        pipeline.run(Project(root), QUIET, until="extend")
        model = AutoModelForCausalLM.from_pretrained(root / "extend/model")
        new_ids = [entry["id"] for entry in read_json(root / "extend/new_tokens.json")]
        for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            rows = weight[new_ids]
            assert torch.isfinite(rows).all()
            assert rows.std(dim=0).mean() > 0  # sampled: rows differ, unlike the single mean
