"""Choosing a size from a diminishing-returns curve (vocabulary size, number of new tokens).

The knee is found with the Kneedle idea (Satopää et al. 2011, "Finding a 'Kneedle' in a Haystack"):
scale both axes to [0, 1] and take the point farthest below the straight line joining the curve's
ends. Sizes are compared on a log2 axis because each doubling costs about the same (embedding rows,
softmax width) while its gain keeps shrinking.
"""

from __future__ import annotations

import math


def knee(sizes: list[int], values: list[float]) -> int:
    """The size at the knee of a falling curve ``values`` (e.g. tokens per word) over ``sizes``.

    With fewer than three points there is no bend to find, and the largest size is returned.
    """
    if len(sizes) != len(values) or not sizes:
        raise ValueError("knee needs one value per size")
    points = sorted(zip(sizes, values))
    if len(points) < 3:
        return points[-1][0]
    xs = [math.log2(size) for size, _ in points]
    ys = [value for _, value in points]
    x_span = (xs[-1] - xs[0]) or 1.0
    y_span = (max(ys) - min(ys)) or 1.0
    scaled = [((x - xs[0]) / x_span, (y - min(ys)) / y_span) for x, y in zip(xs, ys)]
    (x0, y0), (x1, y1) = scaled[0], scaled[-1]

    def below_chord(point: tuple[float, float]) -> float:
        x, y = point
        chord = y0 + (y1 - y0) * (x - x0) / ((x1 - x0) or 1.0)
        return chord - y

    best = max(range(len(points)), key=lambda i: (below_chord(scaled[i]), -i))
    return points[best][0]
