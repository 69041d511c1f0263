"""MinHash near-duplicates, exact keys, contamination n-grams and the output shards."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from langbuild.corpus import dedup
from langbuild.corpus.shards import ShardWriter, read_records, read_split, split_files, write_split

WORDS = "anthu ambiri amakhala kuno mudzi chimanga madzi nyumba ana sukulu mphunzitsi buku mawu tsiku usiku".split()


def _doc(rng: random.Random, length: int = 80) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(length))


def _signature(text: str) -> np.ndarray:
    hasher = dedup.WordHasher()
    return dedup.minhash(hasher.hashes(hasher.words(text)))


def _jaccard(a: str, b: str) -> float:
    def shingles(t):
        w = t.lower().split()
        return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    base = _doc(rng, 200).split()
    for changes in (2, 10, 40):
        edited = list(base)
        for position in rng.sample(range(len(edited)), changes):
            edited[position] = "zzz" + str(position)
        a, b = " ".join(base), " ".join(edited)
        estimate = float(np.mean(_signature(a) == _signature(b)))
        assert abs(estimate - _jaccard(a, b)) < 0.12, (changes, estimate, _jaccard(a, b))


def test_signatures_are_the_same_in_another_process():
    # Python's hash() is salted per process; fingerprints must not be, or work units would disagree.
    text = "Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi ndipo dziko lapansi lidali lopanda kanthu"
    code = (f"from langbuild.corpus import dedup; h = dedup.WordHasher(); w = h.words({text!r}); "
            "print(dedup.exact_key(w), dedup.minhash(h.hashes(w)).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    hasher = dedup.WordHasher()
    words = hasher.words(text)
    assert int(out[0]) == dedup.exact_key(words)
    assert json.loads(out[1]) == dedup.minhash(hasher.hashes(words)).tolist()


@pytest.mark.parametrize("threshold", [0.6, 0.7, 0.8, 0.9])
def test_bands_put_the_curve_midpoint_below_the_threshold(threshold):
    bands, rows = dedup.bands_for(threshold)
    assert bands * rows == dedup.NUM_PERM
    assert threshold - 0.25 < (1 / bands) ** (1 / rows) < threshold


def _near_mask(texts, threshold=0.8, alive=None):
    signatures = np.stack([_signature(t) for t in texts])
    bands, rows = dedup.bands_for(threshold)
    band_table = dedup.band_hashes(signatures, bands, rows)
    alive = np.ones(len(texts), dtype=bool) if alive is None else alive
    return dedup.near_duplicate_mask((band_table[:, b] for b in range(bands)), signatures, alive, threshold)


def test_near_duplicates_are_found_and_the_first_is_kept():
    rng = random.Random(1)
    originals = [_doc(rng) for _ in range(50)]
    texts = list(originals)
    planted = {}
    for source in (3, 17, 40):
        words = originals[source].split()
        words[10] = "changed"
        planted[len(texts)] = source
        texts.append(" ".join(words))
    mask, checked = _near_mask(texts)
    assert set(np.flatnonzero(mask)) == set(planted)
    assert checked >= len(planted)


def test_dissimilar_documents_that_share_a_band_are_not_merged():
    rng = random.Random(2)
    texts = [_doc(rng) for _ in range(200)]
    mask, _ = _near_mask(texts, threshold=0.8)
    assert not mask.any()


def test_dead_documents_take_no_part():
    rng = random.Random(3)
    a = _doc(rng)
    mask, _ = _near_mask([a, a, a], alive=np.array([False, True, True]))
    assert mask.tolist() == [False, False, True]


def test_first_occurrence_mask():
    keys = np.array([5, 3, 5, 7, 3, 5], dtype=np.uint64)
    alive = np.array([True, True, False, True, True, True])
    assert dedup.first_occurrence_mask(keys, alive).tolist() == [False, False, False, False, True, True]


def test_ngram_hashes_match_shared_windows():
    hasher = dedup.WordHasher()
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    inside = "zero one two three four five six seven eight nine ten eleven twelve thirteen more"
    grams_a = dedup.ngram_hashes(hasher.hashes(hasher.words(text)), 13)
    grams_b = dedup.ngram_hashes(hasher.hashes(hasher.words(inside)), 13)
    assert len(grams_a) == 2 and len(set(grams_a) & set(grams_b)) == 1
    assert len(dedup.ngram_hashes(hasher.hashes(["short"]), 13)) == 1
    assert len(dedup.ngram_hashes(np.zeros(0, dtype=np.uint64), 13)) == 0


def test_shards_round_trip_and_empty_shards_vanish(tmp_path):
    with ShardWriter(tmp_path / "train-00001.jsonl.zst") as writer:
        writer.write({"text": "Moni\nbwanji ŵ", "id": "a"})
        writer.write({"text": "Zikomo"})
    with ShardWriter(tmp_path / "train-00002.jsonl.zst"):
        pass
    assert list(read_records(tmp_path / "train-00001.jsonl.zst")) == [{"text": "Moni\nbwanji ŵ", "id": "a"}, {"text": "Zikomo"}]
    assert [p.name for p in split_files(tmp_path, "train")] == ["train-00001.jsonl.zst"]
    write_split(tmp_path, "valid", ["one", "two"])
    assert list(read_split(tmp_path, "valid")) == ["one", "two"]


def test_read_split_accepts_an_older_single_jsonl(tmp_path):
    (tmp_path / "valid.jsonl").write_text('{"text": "old"}\n', encoding="utf-8")
    assert list(read_split(tmp_path, "valid")) == ["old"]
