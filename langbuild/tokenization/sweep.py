"""``tokenizer.vocab_size = "auto"``: train a small sweep and take the knee of held-out tokens per word."""

from __future__ import annotations

import math
import random
from pathlib import Path

from ..core.errors import LangbuildError
from ..core.progress import progress
from ..text.words import word_count
from .curves import knee
from .training import Recipe, minimum_vocab_size, train_tokenizer

AUTO_SIZES = (4000, 8000, 16000, 32000, 64000)  # the sweep behind tokenizer.vocab_size = "auto"
MIN_CURVE_POINTS = 4  # a corpus too small for the grid gets sizes below its cap, so the curve can bend
SWEEP_SAMPLE_DOCS = 20_000  # train documents per sweep point: keeps the sweep cheap on any corpus
SWEEP_VALID_DOCS = 2_000  # valid documents the sweep measures tokens per word on


def tokens_per_word(tokenizer, texts: list[str]) -> float:
    words = sum(map(word_count, texts))
    return sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)) / max(words, 1)


def vocab_curve(docs: list[str], valid: list[str], recipe: Recipe, workdir: Path, console=None) -> dict:
    """Held-out tokens per word against vocabulary size, and the size chosen at its knee.

    Rule: train on a bounded sample (``SWEEP_SAMPLE_DOCS`` documents) at 4k, 8k, 16k, 32k and 64k,
    stopping at the first size the corpus cannot fill (that point is kept at the size it reached).
    A corpus too small for most of the grid gets sizes below its cap, each 1/√2 of the next, down
    to its alphabet, so there is a bend to find. The chosen size is the knee of tokens per word over
    log2(size) (``langbuild.tokenization.curves.knee``, the Kneedle method): past it, each doubling of the
    vocabulary buys less and less. The final tokenizer is then trained on the full sample at that size.
    ``console`` shows the sizes trained of the sizes planned (None: nothing).
    """
    sample = docs if len(docs) <= SWEEP_SAMPLE_DOCS else random.Random(recipe.seed).sample(docs, SWEEP_SAMPLE_DOCS)
    held_out = valid[:SWEEP_VALID_DOCS]
    if not held_out:
        raise LangbuildError('tokenizer.vocab_size = "auto" measures held-out text, but the valid split is empty: '
                             "give corpus.valid_paths or set tokenizer.vocab_size to a number")
    minimum = minimum_vocab_size(sample, recipe)
    grid = [size for size in AUTO_SIZES if size >= minimum] or [minimum]  # a script with thousands of characters

    def point(size: int) -> dict:
        trained = train_tokenizer(sample, recipe, size, workdir)
        return {"requested": size, "vocab_size": trained.vocab_size, "tokens_per_word": tokens_per_word(trained.tokenizer, held_out)}

    with progress(console, "vocabulary sweep", len(grid), "sizes") as bar:
        points = _sweep(grid, point, minimum, bar)
    points = _distinct_sizes(points)
    chosen = knee([p["vocab_size"] for p in points], [p["tokens_per_word"] for p in points])
    return {
        "rule": "knee (Kneedle) of valid tokens per word over log2(vocabulary size)",
        "sample_documents": len(sample), "valid_documents": len(held_out), "points": points, "chosen": chosen,
    }


def _sweep(grid: list[int], point, minimum: int, bar) -> list[dict]:
    """The sweep's points (see vocab_curve): the grid up to the first size the corpus cannot fill, then
    smaller sizes until the curve has MIN_CURVE_POINTS. The bar's plan follows as the sweep learns it."""
    points = []
    for size in grid:
        points.append(point(size))
        bar.advance()
        if points[-1]["vocab_size"] < size:
            break  # the corpus supports no more: larger sizes would give the same tokenizer
    bar.replan(max(len(points), MIN_CURVE_POINTS))
    while len(points) < MIN_CURVE_POINTS:
        smaller = int(points[0]["vocab_size"] / math.sqrt(2))
        if smaller < minimum:
            break
        try:
            points.insert(0, point(smaller))
        except LangbuildError:  # below the alphabet (SentencePiece says so itself)
            break
        bar.advance()
    bar.replan(len(points))
    return points


def _distinct_sizes(points: list[dict]) -> list[dict]:
    """One point per trained size (a capped size can coincide with a smaller one), smallest first."""
    by_size = {p["vocab_size"]: p for p in points}
    return [by_size[size] for size in sorted(by_size)]
