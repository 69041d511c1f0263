"""Word vectors, dictionary alignment and the WECHSEL initialiser, on small files written in tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from langbuild.core.errors import LangbuildError
from langbuild.embedding_init.token_space import TokenSpace
from langbuild.embedding_init.wechsel import wechsel_init
from langbuild.embedding_init.word_vectors import (
    align,
    procrustes_alignment,
    read_dictionary,
    read_word_vectors,
    token_vectors_from_words,
    wechsel_token_space,
)


def _vec_lines(words: list[str], vectors: torch.Tensor) -> list[str]:
    return [word + " " + " ".join(f"{value:.8f}" for value in row.tolist()) for word, row in zip(words, vectors)]


def _write(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _rotation(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn((dim, dim), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


def _word_encoder(vocab: dict[str, int]):
    """A word-level tokenizer: the word itself (leading space ignored) or nothing."""
    return lambda text: [vocab[text.strip()]] if text.strip() in vocab else []


# --- reading files ---------------------------------------------------------------------------------


def test_reads_vec_with_header_keeps_first_words_and_skips_trailing_spaces(tmp_path):
    path = _write(tmp_path / "a.vec", ["4 3", "the 0.1 0.2 0.3 ", "of 1 2 3", "and -1 -2 -3", "to 0 0 1"])
    words, vectors = read_word_vectors(path, max_words=3)
    assert words == ["the", "of", "and"]
    assert torch.allclose(vectors, torch.tensor([[0.1, 0.2, 0.3], [1, 2, 3], [-1, -2, -3]]))
    assert vectors.dtype == torch.float32


def test_reads_vec_without_header_and_gzipped(tmp_path):
    lines = ["the 0.5 1.5", "of 2 3", "", "the 9 9"]  # blank line skipped; a repeated word keeps its first vector
    for name in ("b.vec", "b.vec.gz"):
        words, vectors = read_word_vectors(_write(tmp_path / name, lines), max_words=10)
        assert words == ["the", "of"]
        assert torch.equal(vectors, torch.tensor([[0.5, 1.5], [2.0, 3.0]]))


def test_word_vector_errors_say_what_is_wrong_and_what_to_set(tmp_path):
    with pytest.raises(LangbuildError, match=r"does not exist; set extend\.source_vectors to a \.vec file"):
        read_word_vectors(tmp_path / "missing.vec", 10)
    with pytest.raises(LangbuildError, match="holds no vectors"):
        read_word_vectors(_write(tmp_path / "empty.vec", [""]), 10)
    with pytest.raises(LangbuildError, match=r"line 3 has 2 values, expected 3: 'bad 1 2'; set extend\.target_vectors"):
        read_word_vectors(_write(tmp_path / "short.vec", ["2 3", "a 1 2 3", "bad 1 2"]), 10, setting="extend.target_vectors")
    with pytest.raises(LangbuildError, match="line 2 has a value that is not a number: 'b 1 x'"):
        read_word_vectors(_write(tmp_path / "text.vec", ["a 1 2", "b 1 x"]), 10)
    with pytest.raises(LangbuildError, match="not finite"):
        read_word_vectors(_write(tmp_path / "nan.vec", ["a 1 nan"]), 10)


def test_reads_dictionary_with_tabs_or_spaces_and_reports_bad_lines(tmp_path):
    pairs = read_dictionary(_write(tmp_path / "d.txt", ["house\tnyumba", "water maji", "", "good morning\thabari za asubuhi"]))
    assert pairs == [("house", "nyumba"), ("water", "maji"), ("good morning", "habari za asubuhi")]
    with pytest.raises(LangbuildError, match=r"dictionary .* does not exist; set extend\.dictionary"):
        read_dictionary(tmp_path / "none.txt")
    with pytest.raises(LangbuildError, match="holds no word pairs"):
        read_dictionary(_write(tmp_path / "blank.txt", ["  "]))
    with pytest.raises(LangbuildError, match=r"line 2 is not 'source_word<TAB>target_word': 'one two three'"):
        read_dictionary(_write(tmp_path / "bad.txt", ["a b", "one two three"]))


# --- alignment -------------------------------------------------------------------------------------


def test_procrustes_recovers_a_random_rotation():
    rotation = _rotation(16, seed=0)
    source = torch.randn((200, 16), generator=torch.Generator().manual_seed(1))
    found = procrustes_alignment(source, source @ rotation)
    assert torch.allclose(found, rotation, atol=1e-5)
    assert torch.allclose(found @ found.T, torch.eye(16), atol=1e-5)


def test_align_matches_case_variants_and_maps_into_the_target_space():
    source_words = [f"word{i}" for i in range(20)]
    target_words = [f"Neno{i}" for i in range(20)]  # capitalised in the vectors, lower case in the dictionary
    source = torch.randn((20, 6), generator=torch.Generator().manual_seed(2))
    target = source @ _rotation(6, seed=3)
    dictionary = [(f"Word{i}", f"neno{i}") for i in range(20)]
    assert torch.allclose(align(source_words, source, target_words, target, dictionary), target, atol=1e-5)


def test_align_refuses_vectors_of_different_dimension_and_too_small_dictionaries():
    words = [f"w{i}" for i in range(20)]
    with pytest.raises(LangbuildError, match="vectors of the wrong dimension: source word vectors have 4 dimensions but "
                                             "target word vectors have 3"):
        align(words, torch.zeros(20, 4), words, torch.zeros(20, 3), [(w, w) for w in words])
    dictionary = [(f"w{i}", f"w{i}") for i in range(7)] + [("absent", "w1"), ("w2", "absent")]
    with pytest.raises(LangbuildError, match=r"only 7 of 9 dictionary pairs have both words in the word vectors \(need at least 10\)"):
        align(words, torch.randn(20, 4), words, torch.randn(20, 4), dictionary)


# --- token vectors ---------------------------------------------------------------------------------


def _char_encoder(text: str) -> list[int]:
    """Token ids: a=0, b=1, c=2 for letters and 3 for a leading space."""
    return ([3] if text.startswith(" ") else []) + [ord(char) - ord("a") for char in text.strip()]


def test_token_vectors_are_zipf_weighted_means_of_the_words_containing_the_token():
    words, vectors = ["ab", "b"], torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    result, known = token_vectors_from_words(words, vectors, _char_encoder, n_rows=5)
    # "a" only in "ab" (weight 1); "b" in "ab" (1) and "b" (1/2): (1·[1,0] + ½·[0,1]) / 1.5; " " likewise.
    expected = torch.tensor([[1.0, 0.0], [2 / 3, 1 / 3], [0.0, 0.0], [2 / 3, 1 / 3], [0.0, 0.0]])
    assert torch.allclose(result, expected)
    assert known.tolist() == [True, True, False, True, False]
    # Only the listed token ids, in the listed order; ids outside the list are ignored.
    result, known = token_vectors_from_words(words, vectors, _char_encoder, n_rows=2, rows=[2, 1])
    assert torch.allclose(result, torch.tensor([[0.0, 0.0], [2 / 3, 1 / 3]]))
    assert known.tolist() == [False, True]


# --- the initialiser -------------------------------------------------------------------------------

N_WORDS, DIM, HIDDEN = 40, 8, 6


def _bilingual_case(tmp_path: Path) -> tuple[TokenSpace, torch.Tensor, list[int]]:
    """Base tokens = source words w0..w39 (ids 0..39); new tokens = translations t0..t9 (ids 40..49) plus
    one token no target word contains (id 50). Target vectors are rotated source vectors, so after
    alignment t_i sits exactly on w_i and must pick up model row i."""
    generator = torch.Generator().manual_seed(4)
    source_words = [f"w{i}" for i in range(N_WORDS)]
    target_words = [f"t{i}" for i in range(N_WORDS)]
    source = torch.randn((N_WORDS, DIM), generator=generator)
    target = source @ _rotation(DIM, seed=5)
    source_path = _write(tmp_path / "source.vec", [f"{N_WORDS} {DIM}", *_vec_lines(source_words, source)])
    target_path = _write(tmp_path / "target.vec.gz", _vec_lines(target_words, target))
    dictionary_path = _write(tmp_path / "dict.txt", [f"w{i}\tt{i}" for i in range(N_WORDS)])
    space = wechsel_token_space(*read_word_vectors(source_path, 1000), *read_word_vectors(target_path, 1000),
                                read_dictionary(dictionary_path),
                                _word_encoder({word: i for i, word in enumerate(source_words)}),
                                _word_encoder({f"t{i}": N_WORDS + i for i in range(10)} | {"unused": 50}),
                                old_rows=N_WORDS, new_ids=list(range(N_WORDS, N_WORDS + 11)))
    weight = torch.cat([torch.randn((N_WORDS, HIDDEN), generator=generator), torch.zeros((11, HIDDEN))])
    return space, weight, list(range(N_WORDS, N_WORDS + 11))


def test_wechsel_token_space_puts_translations_on_top_of_each_other(tmp_path):
    space, _, _ = _bilingual_case(tmp_path)
    assert space.base_known.all() and space.new_known.tolist() == [True] * 10 + [False]
    assert torch.allclose(space.new[:10], space.base[:10], atol=1e-4)


def test_wechsel_init_takes_the_row_of_the_translation_and_falls_back_to_subword_mean(tmp_path):
    space, weight, new_ids = _bilingual_case(tmp_path)
    base = weight[:N_WORDS].clone()
    pieces = [[i] for i in range(10)] + [[1, 2]]
    sharp = weight.clone()
    wechsel_init(sharp, new_ids, N_WORDS, token_space=space, pieces=pieces, neighbours=5, temperature=1e-3)
    assert torch.equal(sharp[:N_WORDS], base)
    assert torch.allclose(sharp[N_WORDS : N_WORDS + 10], base[:10], atol=1e-4)
    assert torch.allclose(sharp[50], (base[1] + base[2]) / 2)
    # At the default temperature the neighbours blend in, but the translation still dominates each row.
    soft = weight.clone()
    wechsel_init(soft, new_ids, N_WORDS, token_space=space, pieces=pieces)
    distances = torch.cdist(soft[N_WORDS : N_WORDS + 10], base)
    assert distances.argmin(dim=1).tolist() == list(range(10))
    again = weight.clone()
    wechsel_init(again, new_ids, N_WORDS, token_space=space, pieces=pieces)
    assert torch.equal(soft, again)


def test_wechsel_init_mixes_by_softmax_over_the_top_k_and_needs_a_token_space():
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [0.0, 0.0]])
    space = TokenSpace(base=torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]]), base_known=torch.ones(3, dtype=torch.bool),
                       new=torch.tensor([[1.0, 0.0]]), new_known=torch.tensor([True]))
    wechsel_init(weight, [3], 3, token_space=space, pieces=[[0]], neighbours=2, temperature=0.5)
    # Similarities 1 and 0.6 (row 2, at -1, is not among the top 2): weights softmax([2, 1.2]).
    mix = torch.softmax(torch.tensor([2.0, 1.2]), dim=0)
    assert torch.allclose(weight[3], mix[0] * torch.tensor([1.0, 0.0]) + mix[1] * torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="token space"):
        wechsel_init(weight, [3], 3, pieces=[[0]])


def test_token_vectors_include_the_leading_space_form_with_a_real_byte_level_bpe():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(["say jambo jambo jambo to me"] * 20, trainer)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    spaced = tokenizer.token_to_id("Ġjambo")
    assert spaced is not None and encode(" jambo") == [spaced]
    result, known = token_vectors_from_words(["jambo", "say"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]), encode,
                                             n_rows=tokenizer.get_vocab_size())
    assert known[spaced] and torch.equal(result[spaced], torch.tensor([1.0, 2.0]))
