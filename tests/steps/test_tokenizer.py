"""The tokenizer step: SentencePiece on the train split, capped to what a tiny corpus supports."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.scaffold import create_project
from tests.tiny import chichewa_split, read_json, write_lines

QUIET = Console(quiet=True)


def _tiny_corpus_project(root, model, **settings):
    ruth = chichewa_split()[1]
    write_lines(root / "train.txt", ruth[:70])  # about 10 kB
    write_lines(root / "valid.txt", ruth[70:])
    create_project(root, {"project.language": "nya", "corpus.paths": ["train.txt"], "corpus.valid_paths": ["valid.txt"],
                          "select.candidates": [str(model)], **settings})
    return root


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_tiny_corpus_caps_the_vocabulary_and_says_so(tmp_path, tiny_models, model_type):
    root = _tiny_corpus_project(tmp_path, tiny_models["gpt2-bytelevel"], **{"tokenizer.model_type": model_type})
    pipeline.run(Project(root), QUIET, until="tokenizer")
    metrics = read_json(root / "tokenizer/metrics.json")
    assert metrics["vocab_size"]["requested"] == 8000
    assert 256 < metrics["vocab_size"]["trained"] < 8000
    assert "capped" in metrics["vocab_size"]["note"]
    processor = spm.SentencePieceProcessor(model_file=str(root / "tokenizer/spm.model"))
    assert processor.get_piece_size() == metrics["vocab_size"]["trained"]
    for text in chichewa_split()[1][70:]:
        assert processor.decode(processor.encode(text)) == text  # round-trip settings hold
    rows = metrics["tokenizers"]
    assert set(rows) == {"target", str(tiny_models["gpt2-bytelevel"])}
    for row in rows.values():
        assert row["tokens_per_word"] > 0 and row["chars_per_token"] > 0
    # A tokenizer trained on the language itself needs fewer tokens per word than an English one.
    assert rows["target"]["tokens_per_word"] < rows[str(tiny_models["gpt2-bytelevel"])]["tokens_per_word"]


def test_same_inputs_give_the_same_tokenizer(tmp_path, tiny_models):
    first = _tiny_corpus_project(tmp_path / "a", tiny_models["llama-spm"])
    second = _tiny_corpus_project(tmp_path / "b", tiny_models["llama-spm"])
    for root in (first, second):
        pipeline.run(Project(root), QUIET, until="tokenizer")
    # Byte-identical although the projects live in different folders: no training paths are recorded.
    assert (first / "tokenizer/spm.model").read_bytes() == (second / "tokenizer/spm.model").read_bytes()


def test_vocabulary_too_small_for_the_alphabet_is_a_clear_error(tmp_path, tiny_models):
    root = _tiny_corpus_project(tmp_path, tiny_models["llama-spm"], **{"tokenizer.vocab_size": 60})
    with pytest.raises(LangbuildError, match="raise tokenizer.vocab_size"):
        pipeline.run(Project(root), QUIET, until="tokenizer")
