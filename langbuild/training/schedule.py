"""Learning-rate schedules: linear warm-up, then cosine decay, warmup-stable-decay (WSD), or constant.

WSD (Hu et al. 2024, "MiniCPM: Unveiling the Potential of Small Language Models with Scalable
Training Strategies") holds the peak rate and decays only over the last ``decay_fraction`` of the
steps, so a run can be extended without restarting its decay. Every schedule ends at
``min_ratio`` x the peak rather than zero.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "constant")


def learning_rate(step: int, peak: float, warmup: int, total: int, schedule: str = "cosine",
                  decay_fraction: float = 0.2, min_ratio: float = 0.1) -> float:
    """The rate of 0-based step ``step`` out of ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    if schedule == "wsd":
        decay_steps = max(1, round((total - warmup) * decay_fraction))
        decay_start = total - decay_steps
        if step < decay_start:
            return peak
        progress = min(1.0, (step - decay_start + 1) / decay_steps)
        return peak * (1 - (1 - min_ratio) * progress)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
