"""Percentile bootstrap intervals, so a report can say whether a difference is larger than sampling noise.

A held-out sample is one draw of text from the language; scored again on another draw, a model would
get a slightly different accuracy or bits per byte. The bootstrap estimates that spread from the
sample itself: resample the units (items, windows, documents) with replacement, recompute the
statistic each time, and take the middle ``level`` share of the results (the percentile interval).

* Seeded and deterministic: the same data, seed and sample count give the same interval, so reports
  are reproducible (numpy ``Generator`` seeded with ``seed``).
* Vectorised: all resamples are drawn as one index matrix, in row chunks that keep memory bounded.
* Units are resampled whole: for bits per byte a window's NLL and its bytes travel together (a
  ratio of sums, not a mean of per-window ratios, which would over-weight short windows).
* "Where the sample allows": below ``MIN_UNITS`` units the resampled distribution is too coarse to
  mean anything, so every function returns ``None`` instead of an interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

MIN_UNITS = 10  # fewer units than this: no interval (None)
CHUNK_CELLS = 4_000_000  # resample index cells drawn at once (about 32 MB of int64)

Interval = tuple[float, float]


def _check(level: float, samples: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")


def _resampled(n: int, samples: int, seed: int, statistic: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``statistic`` of ``samples`` resamples of ``n`` units; ``statistic`` maps an index matrix to one value per row.

    Rows are drawn in chunks so that a large sample never builds a samples × n matrix at once; the
    chunk size depends only on ``n``, so the draws (and the interval) depend only on the seed.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // n)
    out = [statistic(rng.integers(0, n, size=(min(rows, samples - done), n))) for done in range(0, samples, rows)]
    return np.concatenate(out)


def _percentiles(stats: np.ndarray, level: float) -> Interval | None:
    """The percentile interval of the finite resampled statistics (None if none is finite)."""
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def mean_interval(values: Sequence[float], samples: int = 1000, seed: int = 0, level: float = 0.95) -> Interval | None:
    """Interval for the mean of ``values``, e.g. accuracy from one 0/1 per item; None below ``MIN_UNITS`` items."""
    _check(level, samples)
    data = np.asarray(values, dtype=np.float64)
    if data.size < MIN_UNITS:
        return None
    return _percentiles(_resampled(data.size, samples, seed, lambda idx: data[idx].mean(axis=1)), level)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float], samples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> Interval | None:
    """Interval for Σnumerators ÷ Σdenominators, resampling (numerator, denominator) units together.

    Bits per byte is such a ratio: the units are scoring windows (or documents), each with its NLL in
    bits and its bytes. A resample whose denominators sum to zero (possible when some units own no
    bytes) has no ratio and is left out. None below ``MIN_UNITS`` units or if the denominators sum to 0.
    """
    _check(level, samples)
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError(f"{num.size} numerators but {den.size} denominators")
    if num.size < MIN_UNITS or den.sum() == 0:
        return None

    def ratio(idx: np.ndarray) -> np.ndarray:
        top, bottom = num[idx].sum(axis=1), den[idx].sum(axis=1)
        return np.divide(top, bottom, out=np.full(top.shape, np.nan), where=bottom != 0)

    return _percentiles(_resampled(num.size, samples, seed, ratio), level)


def paired_difference_interval(a: Sequence[float], b: Sequence[float], samples: int = 1000, seed: int = 0,
                               level: float = 0.95) -> Interval | None:
    """Interval for mean(a) − mean(b) when ``a[i]`` and ``b[i]`` are two models' scores on the same item i.

    Paired resampling (the same items drawn for both models) removes the item-difficulty noise both
    models share, so the interval is much narrower than two separate intervals would suggest. If it
    lies entirely above 0, ``a`` beats ``b`` beyond sampling noise at this level; if it contains 0 the
    sample cannot tell them apart. None below ``MIN_UNITS`` items.
    """
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need the same items: {first.size} vs {second.size}")
    return mean_interval(first - second, samples=samples, seed=seed, level=level)


def bits_per_byte_interval(scored: dict, seed: int = 0, samples: int = 1000, level: float = 0.95) -> Interval | None:
    """Interval for the ``bits_per_byte`` of a ``langbuild.models.scoring.bits_per_byte`` result, resampling its windows.

    Uses its ``window_nll`` (nats, converted to bits) and ``window_bytes``; None when the text made
    fewer than ``MIN_UNITS`` windows (score more text or use a smaller window to get one).
    """
    bits = np.asarray(scored["window_nll"], dtype=np.float64) / math.log(2)
    return ratio_interval(bits, scored["window_bytes"], samples=samples, seed=seed, level=level)
