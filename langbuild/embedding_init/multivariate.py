"""``multivariate``: new rows drawn from a normal with the base rows' mean and covariance.

Hewitt 2021, "Initializing New Word Embeddings for Pretrained Language Models": a new row near the
mean keeps the softmax from favouring the new tokens (a random row's logit is not small on average),
and sampling with the rows' own covariance keeps new rows as distinguishable as old ones, which a
single shared mean does not.
"""

from __future__ import annotations

import torch

JITTER = 1e-6  # added to the covariance's diagonal, relative to its mean variance: makes it positive definite


def sample_like(rows: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` float32 CPU samples from N(mean(rows), cov(rows)), via the Cholesky factor."""
    rows = rows.detach().to("cpu", torch.float32)
    mean = rows.mean(dim=0)
    if rows.shape[0] < 2:
        return mean.expand(count, -1).clone()
    centred = rows - mean
    covariance = centred.T @ centred / (rows.shape[0] - 1)
    covariance += torch.eye(covariance.shape[0]) * JITTER * covariance.diagonal().mean().clamp_min(1e-12)
    factor = torch.linalg.cholesky(covariance.double()).float()
    noise = torch.randn((count, rows.shape[1]), generator=generator, dtype=torch.float32)
    return mean + noise @ factor.T


def multivariate_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, generator: torch.Generator,
                      **_unused) -> None:
    samples = sample_like(weight[:old_rows], len(new_ids), generator)
    weight[new_ids] = samples.to(device=weight.device, dtype=weight.dtype)  # drawn on the CPU: same rows on any device
