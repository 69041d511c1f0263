"""``subword-mean``: a new token starts as the mean of the base rows of the pieces the base tokenizer
splits it into (FVT, "Fast Vocabulary Transfer", Gee et al. 2022; IndoBERTweet, Koto et al. 2021).

A new token whose pieces are all unknown to the base (possible with byte symbols that never occur
in valid UTF-8) falls back to the mean of all base rows instead of an empty mean (NaN).
"""

from __future__ import annotations

import torch


def subword_mean_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *,
                      pieces: list[list[int]], **_unused) -> None:
    if len(pieces) != len(new_ids):
        raise ValueError("subword-mean needs one list of base pieces per new token")
    base = weight[:old_rows].float()
    fallback = base.mean(dim=0)
    # All (new row, base piece, weight) triples at once: one gather and one index_add, no loop over rows.
    rows, cols, weights = [], [], []
    for row, ids in enumerate(pieces):
        valid = [i for i in ids if 0 <= i < old_rows]
        rows += [row] * len(valid)
        cols += valid
        weights += [1.0 / len(valid)] * len(valid) if valid else []
    device = weight.device
    result = torch.zeros((len(new_ids), base.shape[1]), dtype=torch.float32, device=device)
    if rows:
        contributions = base[torch.tensor(cols, device=device)] * torch.tensor(weights, device=device).unsqueeze(1)
        result.index_add_(0, torch.tensor(rows, device=device), contributions)
    empty = torch.tensor([not any(0 <= i < old_rows for i in ids) for ids in pieces], dtype=torch.bool, device=device)
    result[empty] = fallback
    weight[new_ids] = result.to(weight.dtype)
