"""``mean``: every new row is the mean of the base rows.

transformers 5's ``resize_token_embeddings(mean_resizing=True)`` samples from a normal whose
covariance is scaled by 1e-9, so in practice it is this method too.
"""

from __future__ import annotations

import torch


def mean_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, **_unused) -> None:
    weight[new_ids] = weight[:old_rows].float().mean(dim=0).to(weight.dtype)
