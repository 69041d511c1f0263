"""Document fingerprints and duplicate finding with memory that does not grow with the text.

- **Exact**: a 64-bit hash of the document's lower-cased words; the first occurrence is kept.
- **Near**: MinHash signatures of word 5-gram shingles (Broder 1997, "On the resemblance and
  containment of documents") bucketed by locality-sensitive hashing bands (Indyk & Motwani 1998;
  the banding of Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3). Candidates that
  share a band are confirmed by their estimated Jaccard similarity before they are merged, so a
  chance band collision does not delete a document.
- **Contamination**: hashes of word 13-grams, the n-gram length of the GPT-3 paper's overlap
  analysis (Brown et al. 2020, "Language Models are Few-Shot Learners").

Workers compute fingerprints as numpy arrays and save them beside their unit's documents; the main
process then needs only one band column (8 bytes per document) at a time, plus the signatures of
candidate pairs read through a memory map.

Words are ``langbuild.text.words.bare_words``: punctuation dropped, combining marks kept in their word,
cut at word separators such as the Ethiopic ``፡``, and one per character (with its marks) in scripts
written without spaces, where shingles and 13-grams are therefore of characters.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..text.words import bare_words

NUM_PERM = 112
SHINGLE = 5
CONTAMINATION_N = 13
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # an odd constant that spreads bits (Knuth's multiplicative hashing)
_CACHE_LIMIT = 500_000

_rng = np.random.Generator(np.random.PCG64(20240601))  # fixed: signatures must agree across processes and runs
_PERM_A = _rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_PERM_B = _rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
_GRAM_MULT = _rng.integers(1, 2**63, 16, dtype=np.uint64) | np.uint64(1)
_BAND_MULT = _rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)


class WordHasher:
    """Stable 64-bit word hashes (Python's hash() differs between processes), cached because words repeat."""

    def __init__(self):
        self._cache: dict[str, int] = {}

    def words(self, text: str) -> list[str]:
        # Bare words: punctuation must not hide a duplicate; Ethiopic ፡ and no-space scripts cut as everywhere else.
        return bare_words(text.lower())

    def hashes(self, words: list[str]) -> np.ndarray:
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:  # a bound, so a huge vocabulary cannot grow memory without end
            cache.clear()
        out = []
        for word in words:
            value = cache.get(word)
            if value is None:
                value = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
                cache[word] = value
            out.append(value)
        return np.array(out, dtype=np.uint64)


def exact_key(words: list[str]) -> int:
    """Hash of the text with case, punctuation and spacing normalised away."""
    return int.from_bytes(hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest(), "little")


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit hash per window of ``n`` consecutive words (the whole text when it is shorter)."""
    if len(word_hashes) == 0:
        return np.zeros(0, dtype=np.uint64)
    if len(word_hashes) < n:
        n = len(word_hashes)
    count = len(word_hashes) - n + 1
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        combined = np.zeros(count, dtype=np.uint64)
        for offset in range(n):
            word = word_hashes[offset:offset + count] * _GRAM_MULT[offset % len(_GRAM_MULT)]
            combined = (combined ^ word) * _GOLDEN
    return combined


def minhash(word_hashes: np.ndarray) -> np.ndarray:
    """NUM_PERM 32-bit minimum hashes of the document's word 5-gram shingles (multiply-shift hashing)."""
    shingles = np.unique(ngram_hashes(word_hashes, SHINGLE))
    if len(shingles) == 0:
        return np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    with np.errstate(over="ignore"):
        values = (_PERM_A[:, None] * shingles[None, :] + _PERM_B[:, None]) >> np.uint64(32)
    return values.min(axis=1).astype(np.uint32)


def bands_for(threshold: float) -> tuple[int, int]:
    """(bands, rows) with bands*rows = NUM_PERM whose S-curve midpoint (1/b)^(1/r) sits a little below threshold.

    Below, so that pairs right at the threshold still land in a common bucket; the signature check
    afterwards removes the extra candidates.
    """
    options = [(NUM_PERM // r, r) for r in range(1, NUM_PERM + 1) if NUM_PERM % r == 0]
    target = threshold - 0.1
    return min(options, key=lambda br: abs((1 / br[0]) ** (1 / br[1]) - target))


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: each band's rows folded into one hash."""
    sig = signatures.astype(np.uint64).reshape(len(signatures), bands, rows)
    with np.errstate(over="ignore"):
        mixed = sig * _BAND_MULT[: bands * rows].reshape(bands, rows)[None]
        folded = np.bitwise_xor.reduce(mixed, axis=2)
        return folded ^ (np.arange(bands, dtype=np.uint64)[None] * _GOLDEN)


# --- the global pass over saved fingerprints -----------------------------------------------------


def first_occurrence_mask(keys: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """True for every live entry whose key appeared in an earlier live entry."""
    duplicate = np.zeros(len(keys), dtype=bool)
    live = np.flatnonzero(alive)
    if len(live) == 0:
        return duplicate
    _, first = np.unique(keys[live], return_index=True)
    repeated = np.ones(len(live), dtype=bool)
    repeated[first] = False
    duplicate[live[repeated]] = True
    return duplicate


class UnionFind:
    def __init__(self, size: int):
        self.parent = np.arange(size, dtype=np.int64)

    def find(self, item: int) -> int:
        parent = self.parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:  # path compression keeps later finds short
            parent[item], item = root, parent[item]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller index becomes the root, so the earliest document of a cluster is the one kept.
            self.parent[max(ra, rb)] = min(ra, rb)


def candidate_pairs(band_columns, alive: np.ndarray) -> np.ndarray:
    """(pairs, 2) int64: live documents sharing a band with the first live document of their bucket, each pair once."""
    live = np.flatnonzero(alive)
    found = []
    for column in band_columns:
        keys = column[live]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        same_as_previous = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
        if len(same_as_previous):
            run_start = _run_starts(sorted_keys)
            found.append(np.stack([live[order[run_start[same_as_previous]]], live[order[same_as_previous]]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)  # sorted by the first document: its signatures are read in order


def near_duplicate_mask(band_columns, signatures, alive: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Documents to drop as near duplicates of an earlier one, and the number of candidate pairs checked.

    ``band_columns`` yields one (documents,) uint64 band column at a time; ``signatures[i]`` gives the
    signature of document ``i`` (an array, or a reader that maps a few files at a time).
    """
    count = len(alive)
    clusters = UnionFind(count)
    checked = 0
    for first, other in candidate_pairs(band_columns, alive):
        if clusters.find(first) == clusters.find(other):
            continue  # already joined through another pair: the clusters come out the same without this check
        checked += 1
        if _similarity(signatures[first], signatures[other]) >= threshold:
            clusters.union(first, other)
    roots = np.array([clusters.find(i) for i in range(count)], dtype=np.int64) if count else np.zeros(0, dtype=np.int64)
    return (roots != np.arange(count)) & alive, checked


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """For each position of a sorted array, the position where its run of equal keys begins."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.maximum.accumulate(np.where(starts, np.arange(len(sorted_keys)), 0))


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
