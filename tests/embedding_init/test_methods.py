"""The initialisers that sample: multivariate (Hewitt 2021) and per-script (Downey et al. 2023)."""

from __future__ import annotations

import torch

from langbuild.embedding_init import multivariate_init, script_init
from langbuild.embedding_init.multivariate import sample_like
from langbuild.embedding_init.script import script_of


def _rows(count: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn((dim, dim), generator=generator)
    return torch.randn((count, dim), generator=generator) @ mixing * 0.1 + shift


def test_multivariate_matches_the_rows_mean_and_covariance_and_is_seeded():
    base = _rows(2000, 6, 0, shift=0.5)
    weight = torch.cat([base, torch.zeros(4000, 6)])
    new_ids = list(range(2000, 6000))
    multivariate_init(weight, new_ids, 2000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(weight[:2000], base)
    samples = weight[2000:]
    assert torch.allclose(samples.mean(0), base.mean(0), atol=0.02)
    assert torch.allclose(torch.cov(samples.T), torch.cov(base.T), atol=0.02)
    again = torch.cat([base, torch.zeros(4000, 6)])
    multivariate_init(again, new_ids, 2000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(weight, again)


def test_script_of_tokens():
    assert script_of("▁ndipo") == "LATIN" and script_of("Ġпривет") == "CYRILLIC"
    assert script_of("##ሰላም") == "ETHIOPIC" and script_of("123") == ""


def test_script_init_starts_each_token_among_its_script():
    latin, cyrillic = _rows(100, 4, 1, shift=5.0), _rows(100, 4, 2, shift=-5.0)
    weight = torch.cat([latin, cyrillic, torch.zeros(3, 4)])
    base_tokens = [f"lat{i}" for i in range(100)] + [f"кир{i}" for i in range(100)]
    new_tokens = ["▁mawu", "▁слово", "ሰላም"]  # Ethiopic has no base rows: drawn from every row
    script_init(weight, [200, 201, 202], 200, generator=torch.Generator().manual_seed(0),
                base_tokens=base_tokens, new_tokens=new_tokens)
    assert (weight[200] > 2).all() and (weight[201] < -2).all()
    # The fallback group ("*") is drawn first, from every base row.
    expected = sample_like(torch.cat([latin, cyrillic]), 1, torch.Generator().manual_seed(0))[0]
    assert torch.allclose(weight[202], expected)
