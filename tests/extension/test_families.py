"""Extension on every common tokenizer family × many scripts, on tokenizers trained in-process.

Families: byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM), SentencePiece BPE with and without byte
fallback (Llama-2, Mistral), Gemma's SentencePiece conversion, SentencePiece Unigram (T5, XLM-R,
Llama-style conversion), and WordPiece (BERT). Each base is trained on English (FLORES+), then
extended for text in another script; the guarantees are checked on the saved, reloaded tokenizer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from langbuild.extension import (
    apply_extension,
    continue_bpe,
    continue_wordpiece,
    corpus_words,
    keep_protected_words,
    unigram_pieces,
)
from langbuild.extension.tokenizer_file import check_tokenizer, save_extended_tokenizer
from tests.tiny import _gpt2_tokenizer, english_lines, write_lines

SCRIPTS = json.loads((Path(__file__).parent.parent / "data" / "scripts.json").read_text(encoding="utf-8"))
FAMILIES = ("bytelevel-bpe", "spm-bpe-byte-fallback", "spm-bpe-no-fallback", "gemma-bpe", "spm-unigram", "bert-wordpiece")
VOCAB = 700


def _spm_folder(folder: Path, model_type: str, byte_fallback: bool, tokenizer_class: str | None = None) -> Path:
    folder.mkdir(parents=True)
    sample = write_lines(folder.parent / f"{folder.name}-english.txt", english_lines())
    spm.SentencePieceTrainer.train(
        input=str(sample), model_prefix=str(folder / "tokenizer"), model_type=model_type, vocab_size=VOCAB,
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=byte_fallback,
        split_digits=True, character_coverage=1.0, allow_whitespace_only_pieces=True, minloglevel=2,
    )
    (folder / "tokenizer.vocab").unlink()
    if tokenizer_class:
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))
    return folder


def _bert_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(english_lines(), trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=specials))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    folders = {
        "spm-bpe-byte-fallback": _spm_folder(root / "spm-bpe-bf", "bpe", True),
        "spm-bpe-no-fallback": _spm_folder(root / "spm-bpe-nobf", "bpe", False),
        "gemma-bpe": _spm_folder(root / "gemma", "bpe", True, "GemmaTokenizer"),
        "spm-unigram": _spm_folder(root / "spm-unigram", "unigram", True),
    }
    for name, build in (("bytelevel-bpe", lambda: _gpt2_tokenizer(english_lines(), VOCAB)), ("bert-wordpiece", _bert_tokenizer)):
        build().save_pretrained(root / name)
        folders[name] = root / name
    return folders


def _corpus(sentences: list[str]) -> list[str]:
    """Sentences combined pairwise and numbered, so words recur in varied contexts."""
    return [f"{a} {b} {i}" for i in range(20) for a in sentences for b in sentences]


def _target_pieces(texts: list[str], folder: Path) -> list[tuple[str, int, float]]:
    sample = write_lines(folder / "target.txt", texts)
    spm.SentencePieceTrainer.train(
        input=str(sample), model_prefix=str(folder / "target"), model_type="unigram", vocab_size=400, hard_vocab_limit=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True, character_coverage=1.0,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(folder / "target.model"))
    counts = Counter(i for ids in processor.encode(texts) for i in ids)
    return [(processor.id_to_piece(i), n, processor.get_score(i)) for i, n in counts.most_common()]


def _learn(base, texts: list[str], protected: Counter, folder: Path):
    backend = base.backend_tokenizer
    spec = json.loads(backend.to_str())
    kind = spec["model"]["type"]
    if kind == "BPE":
        extension = continue_bpe(backend, spec, texts, 80, 2, protected)
    elif kind == "WordPiece":
        extension = continue_wordpiece(backend, spec, texts, 80, 2, protected)
    else:
        extension = unigram_pieces(spec, _target_pieces(texts, folder), 80, 2)
    extension, _ = keep_protected_words(backend, spec, extension, protected)
    return spec, extension


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("family", FAMILIES)
def test_extension_guarantees(bases, tmp_path, family, script):
    base = AutoTokenizer.from_pretrained(bases[family])
    texts = _corpus(SCRIPTS[script])
    english = english_lines()
    protected = corpus_words(base.backend_tokenizer, english[:300])
    spec, extension = _learn(base, texts, protected, tmp_path)
    assert extension.tokens, "nothing learned"
    new_spec, new_ids = apply_extension(spec, extension)
    folder = tmp_path / "extended"
    folder.mkdir()
    save_extended_tokenizer(base, new_spec, folder)
    extended = AutoTokenizer.from_pretrained(folder)

    # Old ids, special tokens and the model's own round trip (checked as the extend step does).
    check_tokenizer(base, extended, SCRIPTS[script] + english[:100])
    # New entries are real vocabulary, reached on the target text.
    used = {i for text in SCRIPTS[script] for i in extended(text, add_special_tokens=False)["input_ids"]}
    assert used & set(new_ids), "no new token is ever used"

    def count(tokenizer, lines, only=None):
        ids = [i for t in lines for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
        return len(ids) if only is None else ids.count(only)

    if count(base, SCRIPTS[script], base.unk_token_id):
        # Without byte fallback the base spells unseen characters as <unk>: the new entries replace them.
        assert count(extended, SCRIPTS[script], base.unk_token_id) < count(base, SCRIPTS[script], base.unk_token_id)
    else:
        assert count(extended, SCRIPTS[script]) < count(base, SCRIPTS[script])
    # The protected English lines keep their ids exactly.
    for text in english[:300]:
        assert extended(text, add_special_tokens=False)["input_ids"] == base(text, add_special_tokens=False)["input_ids"]
    # transformers 5 has no slow variant of these tokenizers: use_fast=False must give the same ids.
    slow_request = AutoTokenizer.from_pretrained(folder, use_fast=False)
    assert slow_request(SCRIPTS[script][0])["input_ids"] == extended(SCRIPTS[script][0])["input_ids"]


def test_wordpiece_adds_missing_characters_so_words_stop_being_unknown(bases):
    base = AutoTokenizer.from_pretrained(bases["bert-wordpiece"])
    texts = _corpus(SCRIPTS["ethiopic"])
    spec = json.loads(base.backend_tokenizer.to_str())
    extension = continue_wordpiece(base.backend_tokenizer, spec, texts, 200, 2)
    single = [t for t in extension.tokens if len(t.removeprefix("##")) == 1]
    assert single and any(t.startswith("##") for t in extension.tokens)
    new_spec, _ = apply_extension(spec, extension)
    from tokenizers import Tokenizer

    extended = Tokenizer.from_str(json.dumps(new_spec))
    before = base.backend_tokenizer.encode(SCRIPTS["ethiopic"][0]).tokens
    after = extended.encode(SCRIPTS["ethiopic"][0]).tokens
    assert "[UNK]" in before and "[UNK]" not in after


def test_protected_word_list_pins_words_the_corpus_would_change(bases):
    base = AutoTokenizer.from_pretrained(bases["bytelevel-bpe"])
    backend = base.backend_tokenizer
    spec = json.loads(backend.to_str())
    texts = _corpus(SCRIPTS["latin-diacritics"])
    free = continue_bpe(backend, spec, texts, 80, 2)
    from tokenizers import Tokenizer

    free_tok = Tokenizer.from_str(json.dumps(apply_extension(spec, free)[0]))
    # Words of the target text that the unprotected extension shortens: pin them.
    words = [w for w in {w for s in SCRIPTS["latin-diacritics"] for w in s.split()}
             if len(free_tok.encode(" " + w).ids) < len(backend.encode(" " + w).ids)]
    assert words
    protected = corpus_words(backend, [form for w in words for form in (w, " " + w)])
    pinned = continue_bpe(backend, spec, texts, 80, 2, protected)
    pinned, _ = keep_protected_words(backend, spec, pinned, protected)
    pinned_tok = Tokenizer.from_str(json.dumps(apply_extension(spec, pinned)[0]))
    for word in words:
        for form in (word, " " + word):
            assert pinned_tok.encode(form).ids == backend.encode(form).ids


def test_new_tokens_never_start_from_the_unknown_row(bases):
    from langbuild.extension import base_pieces

    base = AutoTokenizer.from_pretrained(bases["bert-wordpiece"])
    backend = base.backend_tokenizer
    assert [t.value for t in backend.model.tokenize("ሰላም")] == ["[UNK]"]
    assert base_pieces(backend, "ሰላም") == []  # subword-mean then falls back to the mean of all rows
    assert base_pieces(backend, "hello") == [t.id for t in backend.model.tokenize("hello")]
