"""A token space from word vectors of two languages and a bilingual dictionary (WECHSEL).

WECHSEL (Minixhofer et al. 2022, "WECHSEL: Effective initialization of subword embeddings for
cross-lingual transfer of monolingual language models") places the tokens of both tokenizers in one
space: source-language word vectors are rotated into the target-language space by the orthogonal
Procrustes map learned from dictionary pairs, and each token gets the frequency-weighted mean of the
vectors of the words whose tokenisation contains it. ``langbuild.embedding_init.wechsel`` then mixes
the model rows of each new token's nearest base tokens in that space.

The vectors are plain word2vec/fastText text files (``.vec``, optionally gzipped), e.g. the fastText
Common Crawl vectors ``cc.<lang>.300.vec.gz``; nothing is downloaded here.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from langbuild.core.errors import LangbuildError
from langbuild.embedding_init.token_space import TokenSpace

MIN_DICTIONARY_PAIRS = 10  # fewer pairs than this give a rotation fitted to noise
VECTORS_HINT = "(word2vec text format: an optional 'count dim' header, then 'word v1 v2 ...' per line)"
# (token, word) pairs summed per index_add_: bounds the gathered [pairs, dim] block to ~50 MB at dim 300.
_PAIRS_PER_CHUNK = 1 << 15


def _open_text(path: Path) -> TextIO:
    # fastText's Common Crawl vectors hold a few words with broken UTF-8; replacing those bytes loses
    # nothing useful, whereas refusing the file would refuse every such download.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _require_file(path: Path, what: str, setting: str, hint: str) -> None:
    if not path.is_file():
        raise LangbuildError(f"{what} {path} does not exist; set {setting} to {hint}")


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers, trailing whitespace removed."""
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip()
            if line:
                yield number, line


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(field.isascii() and field.isdigit() for field in fields)


def _shorten(line: str, limit: int = 60) -> str:
    return line if len(line) <= limit else line[:limit] + "..."


def read_word_vectors(path: Path, max_words: int, *, setting: str = "extend.source_vectors") -> tuple[list[str], torch.Tensor]:
    """The first ``max_words`` words of a word2vec/fastText text file and their vectors ([words, dim] float32).

    Such files list words by descending frequency, so the first words are the most useful ones. A word
    listed twice keeps its first vector. ``setting`` names the option that points at the file, for errors.
    """
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    path = Path(path)
    hint = f"a .vec file of word vectors {VECTORS_HINT}"
    _require_file(path, "word vectors file", setting, hint)
    words: list[str] = []
    rows: list[np.ndarray] = []
    line_numbers: list[int] = []
    seen: set[str] = set()
    dim: int | None = None
    for number, line in _numbered_lines(path):
        fields = line.split(" ")
        if dim is None and _is_header(fields):
            dim = int(fields[1])
            continue
        if dim is None:
            dim = len(fields) - 1
        if len(fields) - 1 != dim:
            raise LangbuildError(f"word vectors file {path} line {number} has {len(fields) - 1} values, expected {dim}: "
                                 f"{_shorten(line)!r}; set {setting} to {hint}")
        if fields[0] in seen:
            continue
        try:
            # numpy parses a line of numbers about twice as fast as float() per value followed by torch.tensor(list of lists).
            rows.append(np.array(fields[1:], dtype=np.float32))
        except ValueError:
            raise LangbuildError(f"word vectors file {path} line {number} has a value that is not a number: {_shorten(line)!r}; "
                                 f"set {setting} to {hint}") from None
        seen.add(fields[0])
        words.append(fields[0])
        line_numbers.append(number)
        if len(words) >= max_words:
            break
    if not words or not dim:
        raise LangbuildError(f"word vectors file {path} holds no vectors; set {setting} to {hint}")
    vectors = torch.from_numpy(np.stack(rows))
    finite = torch.isfinite(vectors).all(dim=1)
    if not finite.all():
        number = line_numbers[int(torch.nonzero(~finite)[0])]
        raise LangbuildError(f"word vectors file {path} line {number} has a value that is not finite (nan or inf); "
                             f"set {setting} to {hint}")
    return words, vectors


def read_dictionary(path: Path, *, setting: str = "extend.dictionary") -> list[tuple[str, str]]:
    """Word pairs from lines "source_word<TAB>target_word" (or two whitespace-separated words), in file order."""
    path = Path(path)
    hint = "a bilingual dictionary with one 'source_word<TAB>target_word' pair per line"
    _require_file(path, "dictionary", setting, hint)
    pairs: list[tuple[str, str]] = []
    for number, line in _numbered_lines(path):
        # A tab separates the pair when present, so an entry may itself contain spaces (a phrase).
        fields = [field.strip() for field in line.split("\t")] if "\t" in line else line.split()
        if len(fields) != 2 or not all(fields):
            raise LangbuildError(f"dictionary {path} line {number} is not 'source_word<TAB>target_word': {_shorten(line)!r}; "
                                 f"set {setting} to {hint}")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise LangbuildError(f"dictionary {path} holds no word pairs; set {setting} to {hint}")
    return pairs


def procrustes_alignment(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal ``W`` minimising ||source @ W - target|| (Schönemann 1966): ``U @ Vh`` of the SVD of source.T @ target."""
    if source.shape != target.shape:
        raise ValueError(f"procrustes needs matching pairs, got {tuple(source.shape)} and {tuple(target.shape)}")
    # float64: the SVD of a 300 × 300 cross-covariance is cheap, and float32 loses orthogonality noticeably.
    u, _, vh = torch.linalg.svd(source.double().T @ target.double())
    return (u @ vh).to(source.dtype)


def _spellings(word: str) -> tuple[str, ...]:
    # Dictionaries are mostly lower case while vector files keep the case seen in text (German nouns,
    # sentence-initial words), so each side is also tried lower-cased and title-cased, as WECHSEL does.
    return tuple(dict.fromkeys((word, word.lower(), word.title())))


def dictionary_matches(source_words: list[str], target_words: list[str], dictionary: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Distinct (source index, target index) pairs of dictionary entries found in both vocabularies."""
    source_index = {word: i for i, word in enumerate(source_words)}
    target_index = {word: i for i, word in enumerate(target_words)}
    matches: dict[tuple[int, int], None] = {}
    for source_word, target_word in dictionary:
        source_ids = [source_index[w] for w in _spellings(source_word) if w in source_index]
        target_ids = [target_index[w] for w in _spellings(target_word) if w in target_index]
        for s in source_ids:
            for t in target_ids:
                matches[(s, t)] = None
    return list(matches)


def align(source_words: list[str], source_vecs: torch.Tensor, target_words: list[str], target_vecs: torch.Tensor,
          dictionary: list[tuple[str, str]]) -> torch.Tensor:
    """Source vectors rotated into the target space by the Procrustes map fitted on the dictionary pairs."""
    if source_vecs.shape[1] != target_vecs.shape[1]:
        raise LangbuildError(f"vectors of the wrong dimension: source word vectors have {source_vecs.shape[1]} dimensions but "
                             f"target word vectors have {target_vecs.shape[1]}; use vectors of the same size for both languages "
                             "(e.g. fastText cc.<lang>.300.vec for each)")
    matches = dictionary_matches(source_words, target_words, dictionary)
    if len(matches) < MIN_DICTIONARY_PAIRS:
        raise LangbuildError(f"only {len(matches)} of {len(dictionary)} dictionary pairs have both words in the word vectors "
                             f"(need at least {MIN_DICTIONARY_PAIRS}); use a dictionary between the languages of the two vector "
                             "files, or load more words from them")
    source_ids = torch.tensor([s for s, _ in matches])
    target_ids = torch.tensor([t for _, t in matches])
    rotation = procrustes_alignment(source_vecs[source_ids].float(), target_vecs[target_ids].float())
    return source_vecs.float() @ rotation


def _token_word_pairs(words: list[str], token_ids_of_word: Callable[[str], list[int]],
                      position_of_token: Callable[[int], int | None]) -> tuple[list[int], list[int]]:
    """Parallel lists (output row, word index): one entry per distinct token of each word's tokenisations."""
    positions: list[int] = []
    word_indices: list[int] = []
    for index, word in enumerate(words):
        # Bare and after a space, as WECHSEL does: a word inside a sentence is tokenised with its
        # leading space (Ġword, ▁word), and at the start of a text or glued to punctuation without.
        # A word counts once per token even if both tokenisations contain it.
        tokens = set(token_ids_of_word(word)) | set(token_ids_of_word(" " + word))
        for token in tokens:
            position = position_of_token(token)
            if position is not None:
                positions.append(position)
                word_indices.append(index)
    return positions, word_indices


def token_vectors_from_words(words: list[str], vectors: torch.Tensor, token_ids_of_word: Callable[[str], list[int]],
                             n_rows: int, rows: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors as the weighted mean of the vectors of the words whose tokenisation contains the token.

    This is WECHSEL's method for word vectors without subword information. ``rows`` lists the token ids
    wanted, in output order (``n_rows == len(rows)``); ``None`` means token ids ``0 .. n_rows - 1``. Returns
    the vectors ``[n_rows, dim]`` and a bool mask of the rows that any word contributed to (zeros elsewhere).

    WECHSEL weights each word by its corpus frequency. A .vec file stores no frequencies, only frequency
    order, so the word at 0-based position ``r`` gets the Zipf weight ``1 / (r + 1)`` instead.
    """
    if rows is not None and len(rows) != n_rows:
        raise ValueError(f"{len(rows)} token ids given for {n_rows} rows")
    if rows is None:
        def position_of_token(token: int) -> int | None:
            return token if 0 <= token < n_rows else None
    else:
        position_by_token = {token: position for position, token in enumerate(rows)}
        position_of_token = position_by_token.get
    positions, word_indices = _token_word_pairs(words, token_ids_of_word, position_of_token)
    vectors = vectors.float()
    sums = torch.zeros((n_rows, vectors.shape[1]), dtype=torch.float32, device=vectors.device)
    totals = torch.zeros(n_rows, dtype=torch.float32, device=vectors.device)
    if positions:
        positions_t = torch.tensor(positions, device=vectors.device)
        word_indices_t = torch.tensor(word_indices, device=vectors.device)
        zipf = 1.0 / (word_indices_t.float() + 1.0)
        totals.index_add_(0, positions_t, zipf)
        # Chunked only to bound memory of the gathered word vectors; each chunk is one index_add_.
        for start in range(0, len(positions), _PAIRS_PER_CHUNK):
            chunk = slice(start, start + _PAIRS_PER_CHUNK)
            sums.index_add_(0, positions_t[chunk], vectors[word_indices_t[chunk]] * zipf[chunk].unsqueeze(1))
    known = totals > 0
    sums[known] /= totals[known].unsqueeze(1)
    return sums, known


def wechsel_token_space(source_words: list[str], source_vecs: torch.Tensor, target_words: list[str], target_vecs: torch.Tensor,
                        dictionary: list[tuple[str, str]], base_tokenizer_encode: Callable[[str], list[int]],
                        extended_encode: Callable[[str], list[int]], old_rows: int, new_ids: list[int]) -> TokenSpace:
    """Base rows from source-language words (base tokenizer), new rows from target-language words (extended
    tokenizer), both in the target word-vector space after rotating the source vectors into it."""
    aligned_source = align(source_words, source_vecs, target_words, target_vecs, dictionary)
    base, base_known = token_vectors_from_words(source_words, aligned_source, base_tokenizer_encode, old_rows)
    new, new_known = token_vectors_from_words(target_words, target_vecs.float(), extended_encode, len(new_ids), list(new_ids))
    return TokenSpace(base=base, base_known=base_known, new=new, new_known=new_known)
