"""The documents a tokenizer trains on: a seeded reservoir sample streamed from the train split.

Up to ``tokenizer.max_sentences`` documents are kept with a reservoir sample (Vitter 1985,
Algorithm R; seeded by ``project.seed``), so a corpus larger than memory works.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from ..core.errors import LangbuildError
from ..corpus.shards import read_split
from ..text.textio import read_jsonl_texts

T = TypeVar("T")


def reservoir_sample(items: Iterable[T], limit: int, seed: int) -> tuple[list[T], int]:
    """A uniform sample of at most ``limit`` items, in stream order, and how many items were seen.

    Vitter's Algorithm R: holds only the sample, whatever the length of ``items``.
    """
    rng = random.Random(seed)
    reservoir: list[tuple[int, T]] = []
    seen = 0
    for item in items:
        if len(reservoir) < limit:
            reservoir.append((seen, item))
        else:
            slot = rng.randrange(seen + 1)
            if slot < limit:
                reservoir[slot] = (seen, item)
        seen += 1
    reservoir.sort(key=lambda pair: pair[0])  # stream order: the sample reads like the corpus
    return [item for _, item in reservoir], seen


def read_train_sample(path: Path, limit: int, seed: int) -> tuple[list[str], int]:
    """The documents the tokenizer trains on, streamed from the corpus folder ``path`` (or one JSONL file):
    (sample, documents in the split)."""
    texts = read_split(path, "train") if Path(path).is_dir() else read_jsonl_texts(path)
    sample, seen = reservoir_sample((t for t in texts if t.strip()), limit, seed)
    if not sample:
        raise LangbuildError(f"the train split {path} has no text to train a tokenizer on: add text to corpus.paths and re-run")
    return sample, seen
