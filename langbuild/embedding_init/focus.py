"""``focus``: FOCUS (Dobler & de Melo 2023, "FOCUS: Effective Embedding Initialization for Monolingual
Specialization of Multilingual Models").

Each new token becomes a sparse convex combination of base rows: the cosine similarities between its
auxiliary vector and those of the base tokens that also occur in the target corpus go through
sparsemax (Martins & Astudillo 2016), which gives most base tokens weight exactly zero and a handful
of close ones the rest. The auxiliary vectors come from ``langbuild.embedding_init.token_vectors`` (fastText-style
vectors trained on the target corpus tokenised by the new tokenizer).

A new token with no auxiliary vector (rarer than the vector model's ``min_count``) starts from its
subword decomposition (``subword-mean``) - the reference package draws such rows at random.
"""

from __future__ import annotations

import torch

from .subword_mean import subword_mean_init
from .token_space import TokenSpace, cosine_blocks


def sparsemax(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Row-wise sparsemax, returned sparse: (weights [rows, k], their column indices [rows, k], k).

    k is the largest support in the batch; each row's weights beyond its own support are zero. The
    projection onto the simplex: sort, find the largest j with 1 + j*z_(j) > sum_{i<=j} z_(i), and
    subtract the threshold tau = (sum_{i<=j} z_(i) - 1) / j.
    """
    ordered, order = scores.sort(dim=1, descending=True)
    cumulative = ordered.cumsum(dim=1)
    ranks = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
    support = (1 + ranks * ordered > cumulative).sum(dim=1)  # the condition holds exactly for the first j
    tau = (cumulative.gather(1, (support - 1).unsqueeze(1)) - 1) / support.unsqueeze(1).to(scores.dtype)
    width = int(support.max())
    weights = (ordered[:, :width] - tau).clamp_min(0)
    return weights, order[:, :width], width


GATHER_ELEMENTS = 1 << 25  # at most this many floats gathered at once (128 MB): wide supports use smaller chunks


def mix_rows(weight: torch.Tensor, anchor_rows: torch.Tensor, weights: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """sum_k weights[r, k] * weight[anchor_rows[columns[r, k]]]: gathers and batched products, chunked by size."""
    chunk = max(1, GATHER_ELEMENTS // max(1, columns.shape[1] * weight.shape[1]))
    parts = []
    for start in range(0, columns.shape[0], chunk):
        rows = weight[anchor_rows[columns[start : start + chunk]]].float()  # [chunk, k, dim]
        parts.append(torch.einsum("bk,bkd->bd", weights[start : start + chunk], rows))
    return torch.cat(parts)


def focus_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, token_space: TokenSpace | None = None,
               pieces: list[list[int]], **_unused) -> None:
    if token_space is None:
        raise ValueError("focus needs auxiliary token vectors (langbuild.embedding_init.spaces.token_space_for)")
    token_space.check(old_rows, len(new_ids))
    anchors = token_space.anchors().to(weight.device)
    known = torch.nonzero(token_space.new_known, as_tuple=False).flatten().tolist()
    unknown = [j for j in range(len(new_ids)) if not token_space.new_known[j]]
    if unknown or not len(anchors):
        fallback = unknown if len(anchors) else list(range(len(new_ids)))
        subword_mean_init(weight, [new_ids[j] for j in fallback], old_rows, pieces=[pieces[j] for j in fallback])
    if not known or not len(anchors):
        return
    queries = token_space.new[known].to(weight.device)
    keys = token_space.base[anchors.cpu()].to(weight.device)
    for start, similarity in cosine_blocks(queries, keys, block=256):
        weights, columns, _ = sparsemax(similarity)
        block_ids = [new_ids[j] for j in known[start : start + similarity.shape[0]]]
        weight[block_ids] = mix_rows(weight, anchors, weights, columns).to(weight.dtype)
