"""``random``: the baseline every heuristic must beat — the model's own initializer, N(0, std²)."""

from __future__ import annotations

import torch


def random_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, generator: torch.Generator,
                std: float = 0.02, **_unused) -> None:
    rows = torch.randn((len(new_ids), weight.shape[1]), generator=generator, dtype=torch.float32) * std
    weight[new_ids] = rows.to(device=weight.device, dtype=weight.dtype)  # drawn on the CPU: same rows on any device
