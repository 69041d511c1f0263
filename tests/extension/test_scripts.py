"""Extension guarantees across scripts: every old id kept, decode(encode(x)) == x, new tokens used.

The sentences (tests/data/scripts.json) are short, hand-written samples per script, repeated with
small variations to make a corpus the extension can learn from; the guarantees do not depend on
the corpus being large.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentencepiece as spm
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from langbuild.extension import apply_extension, continue_bpe, unigram_pieces
from tests.tiny import english_lines

SCRIPTS = json.loads((Path(__file__).parent.parent / "data" / "scripts.json").read_text(encoding="utf-8"))


def _corpus(sentences: list[str]) -> list[str]:
    """Sentences combined pairwise and numbered, so words recur in varied contexts."""
    return [f"{a} {b} {i}" for i in range(30) for a in sentences for b in sentences]


def _backend(folder) -> tuple[Tokenizer, dict]:
    backend = AutoTokenizer.from_pretrained(folder).backend_tokenizer
    return backend, json.loads(backend.to_str())


def _check(base: Tokenizer, spec: dict, new_spec: dict, new_ids: list[int], held_out: list[str]) -> None:
    extended = Tokenizer.from_str(json.dumps(new_spec))
    base_vocab, ext_vocab = base.get_vocab(), extended.get_vocab()
    assert all(ext_vocab[token] == idx for token, idx in base_vocab.items())
    used = set()
    for text in held_out + english_lines()[:50]:
        ids = extended.encode(text, add_special_tokens=False).ids
        assert extended.decode(ids) == base.decode(base.encode(text, add_special_tokens=False).ids)
        used.update(ids)
    assert used & set(new_ids), "no new token is ever used"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_continued_bpe_on_every_script(tiny_models, script):
    base, spec = _backend(tiny_models["gpt2-bytelevel"])
    extension = continue_bpe(base, spec, _corpus(SCRIPTS[script]), max_tokens=60, min_frequency=2)
    assert extension.tokens
    new_spec, new_ids = apply_extension(spec, extension)
    _check(base, spec, new_spec, new_ids, SCRIPTS[script])
    # Byte-level BPE round-trips any text exactly.
    extended = Tokenizer.from_str(json.dumps(new_spec))
    for text in SCRIPTS[script]:
        assert extended.decode(extended.encode(text).ids) == text


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_unigram_pieces_on_every_script(tiny_models, tmp_path, script):
    base, spec = _backend(tiny_models["llama-spm"])
    sample = tmp_path / "sample.txt"
    sample.write_text("\n".join(_corpus(SCRIPTS[script])) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(sample), model_prefix=str(tmp_path / "t"), model_type="unigram", vocab_size=400,
        hard_vocab_limit=False, normalization_rule_name="identity", remove_extra_whitespaces=False,
        byte_fallback=True, character_coverage=1.0, minloglevel=2,
    )
    target = spm.SentencePieceProcessor(model_file=str(tmp_path / "t.model"))
    pieces = [(target.id_to_piece(i), 10, target.get_score(i)) for i in range(target.get_piece_size())]
    extension = unigram_pieces(spec, pieces, max_tokens=60, min_frequency=1)
    assert extension.tokens
    new_spec, new_ids = apply_extension(spec, extension)
    _check(base, spec, new_spec, new_ids, SCRIPTS[script])
