"""The tokenizer step: SentencePiece and Hugging Face tokenizers on the train split, capped to what a tiny corpus supports."""

from __future__ import annotations

import tracemalloc

import pytest
import sentencepiece as spm
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.corpus.shards import read_split
from langbuild.models.loading import load_tokenizer
from langbuild.project.scaffold import create_project
from langbuild.tokenization.sampling import read_train_sample, reservoir_sample
from langbuild.tokenization.training import Recipe, train_tokenizer
from tests.tiny import chichewa_split, english_lines, read_json, write_lines

QUIET = Console(quiet=True)
COMBOS = [("sentencepiece", "unigram"), ("sentencepiece", "bpe"), ("huggingface", "unigram"), ("huggingface", "bpe")]
UNSEEN = "Ωμέγα жук 😀 — ß"  # characters the Chichewa train split never shows


def _tiny_corpus_project(root, model, valid_extra=(), files=None, **settings):
    ruth = chichewa_split()[1]
    write_lines(root / "train.txt", ruth[:70])  # about 10 kB
    write_lines(root / "valid.txt", [*ruth[70:], *valid_extra])
    for name, lines in (files or {}).items():
        write_lines(root / name, lines)
    create_project(root, {"project.language": "nya", "corpus.paths": ["train.txt"], "corpus.valid_paths": ["valid.txt"],
                          "select.candidates": [str(model)], **settings})
    return root


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("library,model_type", COMBOS)
def test_every_library_caps_round_trips_and_exports_a_transformers_folder(tmp_path, tiny_models, library, model_type):
    base = str(tiny_models["gpt2-bytelevel"])
    root = _tiny_corpus_project(tmp_path, tiny_models["gpt2-bytelevel"],
                                **{"tokenizer.library": library, "tokenizer.model_type": model_type})
    pipeline.run(Project(root), QUIET, until="tokenizer")
    metrics = read_json(root / "tokenizer/metrics.json")
    assert (metrics["library"], metrics["model_type"]) == (library, model_type)
    assert metrics["vocab_size"]["requested"] == 8000
    assert 256 < metrics["vocab_size"]["trained"] < 8000
    assert "capped" in metrics["vocab_size"]["note"]

    hf = load_tokenizer(root / "tokenizer/hf")  # what extend's replace mode loads
    assert len(hf) == metrics["vocab_size"]["trained"]
    assert None not in (hf.bos_token_id, hf.eos_token_id, hf.unk_token_id)
    valid = list(read_split(root / "corpus", "valid"))
    for text in valid:
        assert hf.decode(_ids(hf, text)) == text  # round-trip settings hold
    if library == "sentencepiece":
        processor = spm.SentencePieceProcessor(model_file=str(root / "tokenizer/spm.model"))
        assert processor.get_piece_size() == metrics["vocab_size"]["trained"]
        assert [_ids(hf, t) for t in valid] == processor.encode(valid)  # the export is exact
        assert metrics["hf_export"] == {"lines_checked": len(valid), "lines_identical": len(valid)}
    else:
        assert not (root / "tokenizer/spm.model").exists()
        assert hf.pad_token_id is not None

    rows = metrics["tokenizers"]
    assert set(rows) == {"target", base}
    for row in rows.values():
        assert row["tokens_per_word"] > 0 and row["chars_per_token"] > 0 and row["bytes_per_token"] >= row["chars_per_token"]
        assert row["unknown_share"] == 0 and row["parity"] is None
    assert rows[base]["byte_fallback_share"] == 0  # byte-level BPE: bytes are its alphabet, nothing falls back
    # A tokenizer trained on the language itself needs fewer tokens per word than an English one.
    assert rows["target"]["tokens_per_word"] < rows[base]["tokens_per_word"]


@pytest.mark.parametrize("library", ["sentencepiece", "huggingface"])
def test_same_inputs_give_the_same_tokenizer(tmp_path, tiny_models, library):
    settings = {"tokenizer.library": library, "tokenizer.vocab_size": 500}
    first = _tiny_corpus_project(tmp_path / "a", tiny_models["llama-spm"], **settings)
    second = _tiny_corpus_project(tmp_path / "b", tiny_models["llama-spm"], **settings)
    for root in (first, second):
        pipeline.run(Project(root), QUIET, until="tokenizer")
    # Byte-identical although the projects live in different folders: no training paths are recorded, and
    # the Unigram trainer's float noise is rounded away.
    for name in ("spm.model", "hf/tokenizer.json") if library == "sentencepiece" else ("hf/tokenizer.json",):
        assert (first / "tokenizer" / name).read_bytes() == (second / "tokenizer" / name).read_bytes()


@pytest.mark.parametrize("library", ["sentencepiece", "huggingface"])
def test_byte_fallback_spells_unseen_characters_and_without_it_they_are_unknown(tmp_path, tiny_models, library):
    shares = {}
    for fallback in (True, False):
        root = _tiny_corpus_project(tmp_path / str(fallback), tiny_models["llama-spm"], valid_extra=[UNSEEN],
                                    **{"tokenizer.library": library, "tokenizer.byte_fallback": fallback, "tokenizer.vocab_size": 500})
        pipeline.run(Project(root), QUIET, until="tokenizer")
        shares[fallback] = read_json(root / "tokenizer/metrics.json")["tokenizers"]["target"]
        hf = load_tokenizer(root / "tokenizer/hf")
        assert (hf.decode(_ids(hf, UNSEEN)) == UNSEEN) is fallback
    assert shares[True]["byte_fallback_share"] > 0 and shares[True]["unknown_share"] == 0
    assert shares[False]["unknown_share"] > 0 and shares[False]["byte_fallback_share"] == 0
    # The llama-spm base has byte fallback too, and it has never seen Chichewa's characters either.
    assert read_json(tmp_path / "True/tokenizer/metrics.json")["tokenizers"][str(tiny_models["llama-spm"])]["byte_fallback_share"] > 0


def test_auto_vocabulary_size_is_the_knee_of_the_written_curve(tmp_path, tiny_models):
    root = _tiny_corpus_project(tmp_path, tiny_models["gpt2-bytelevel"], **{"tokenizer.vocab_size": "auto"})
    pipeline.run(Project(root), QUIET, until="tokenizer")
    curve = read_json(root / "tokenizer/vocab_curve.json")
    metrics = read_json(root / "tokenizer/metrics.json")
    sizes = [p["vocab_size"] for p in curve["points"]]
    assert len(sizes) >= 3 and sizes == sorted(set(sizes))  # the tiny corpus caps 4k: sizes below the cap fill in
    tokens = [p["tokens_per_word"] for p in curve["points"]]
    assert tokens == sorted(tokens, reverse=True)  # a larger vocabulary never cuts finer
    assert curve["chosen"] in sizes
    assert metrics["vocab_size"]["requested"] == "auto"
    assert metrics["vocab_size"]["auto_choice"] == curve["chosen"]
    assert metrics["vocab_size"]["trained"] == curve["chosen"]  # the full sample is the sweep sample here


def test_parity_against_aligned_english(tmp_path, tiny_models):
    base = str(tiny_models["gpt2-bytelevel"])
    root = _tiny_corpus_project(tmp_path, tiny_models["gpt2-bytelevel"], **{
        "tokenizer.library": "huggingface", "tokenizer.model_type": "bpe", "tokenizer.vocab_size": 1000,
        "tokenizer.aligned_target": "flores-msa-a", "tokenizer.aligned_source": "flores-eng-a"})
    pipeline.run(Project(root), QUIET, until="tokenizer")
    metrics = read_json(root / "tokenizer/metrics.json")
    assert metrics["parity_texts"] == {"target": "flores-msa-a", "source": "flores-eng-a", "lines": 506}
    rows = metrics["tokenizers"]
    # The base tokenizer was trained on English: Malay costs it more tokens than the same content in English.
    assert rows[base]["parity"] > 1.1
    assert rows["target"]["parity"] > 0


def test_misaligned_parity_texts_are_a_clear_error(tmp_path, tiny_models):
    english = english_lines()
    root = _tiny_corpus_project(tmp_path, tiny_models["gpt2-bytelevel"],
                                files={"aligned.nya": chichewa_split()[1][:4], "aligned.eng": english[:5]},
                                **{"tokenizer.aligned_target": "aligned.nya", "tokenizer.aligned_source": "aligned.eng"})
    with pytest.raises(LangbuildError, match="aligned_target has 4 lines but tokenizer.aligned_source has 5"):
        pipeline.run(Project(root), QUIET, until="tokenizer")
    one_sided = _tiny_corpus_project(tmp_path / "one", tiny_models["gpt2-bytelevel"], **{"tokenizer.aligned_target": "flores-msa"})
    with pytest.raises(LangbuildError, match="set tokenizer.aligned_source too"):
        pipeline.run(Project(one_sided), QUIET, until="tokenizer")


TRICKY = ["", " ", "  two leading spaces", "trailing  ", "tab\there", "a  b   c", "digits 12345 67", UNSEEN, "new\nline",
          "\u00a0no-break space", "<s> and </s> or <unk> and <0x12> are text here"]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
@pytest.mark.parametrize("byte_fallback", [True, False])
def test_sentencepiece_export_matches_sentencepiece_on_tricky_text(tmp_path, model_type, byte_fallback):
    ruth = chichewa_split()[1]
    # The corpus shows every character of "<s>" and "<0x12>": the export then never reads them in text as a special
    # or byte piece. (With one of those characters unseen, a Unigram export still would: see tokenization.sentencepiece._spm_model.)
    train = [*ruth[:70], "1 < 2 > 0 / x"]
    trained = train_tokenizer(train, Recipe("sentencepiece", model_type, byte_fallback, 0), 500, tmp_path)
    processor = spm.SentencePieceProcessor(model_proto=trained.spm_model)
    for text in TRICKY + ruth[70:]:
        assert trained.tokenizer.encode(text, add_special_tokens=False).ids == processor.encode(text), text
        if byte_fallback and "\n" not in text:  # a newline never reaches SentencePiece's training lines
            assert trained.tokenizer.decode(processor.encode(text)) == processor.decode(processor.encode(text)) == text


def test_vocabulary_too_small_for_the_alphabet_is_a_clear_error(tmp_path, tiny_models):
    root = _tiny_corpus_project(tmp_path, tiny_models["llama-spm"], **{"tokenizer.vocab_size": 60})
    with pytest.raises(LangbuildError, match="raise tokenizer.vocab_size"):
        pipeline.run(Project(root), QUIET, until="tokenizer")


@pytest.mark.parametrize("model_type,byte_fallback,minimum", [("unigram", True, 300), ("unigram", False, 40), ("bpe", True, 260)])
def test_tokenizers_vocabulary_below_its_alphabet_is_a_clear_error(tmp_path, model_type, byte_fallback, minimum):
    docs = chichewa_split()[1][:70]
    recipe = Recipe("huggingface", model_type, byte_fallback, 0)
    with pytest.raises(LangbuildError, match=r"raise tokenizer.vocab_size to at least \d+") as caught:
        train_tokenizer(docs, recipe, 30, tmp_path)
    assert int(str(caught.value).rsplit(" ", 1)[1]) >= minimum


def test_empty_train_split_is_a_clear_error(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(LangbuildError, match="no text to train a tokenizer on: add text to corpus.paths"):
        read_train_sample(tmp_path / "train.jsonl", 100, 0)


def test_reservoir_sample_streams_and_is_uniform():
    def documents(count, size=1000):
        for i in range(count):
            yield f"{i:08d}" + "x" * size  # a fresh 1 kB string each time: holding them all would take 40 MB

    tracemalloc.start()
    sample, seen = reservoir_sample(documents(40_000), 100, seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seen == 40_000 and len(sample) == 100
    assert peak < 2_000_000  # only the sample was ever held
    positions = [int(doc[:8]) for doc in sample]
    assert positions == sorted(positions)  # stream order
    assert 10_000 < sum(positions) / len(positions) < 30_000  # drawn from the whole stream, not its start
    assert reservoir_sample(documents(40_000), 100, seed=1)[0] == sample  # seeded
    assert reservoir_sample(iter(["a", "b"]), 100, seed=1) == (["a", "b"], 2)  # a short stream is kept whole
