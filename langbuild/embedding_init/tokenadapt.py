"""``tokenadapt``: the hybrid heuristic of TokenAdapt (Sharthak et al. 2025, "Achieving Tokenizer
Flexibility in Language Models through Heuristic Adaptation and Supertoken Learning").

A new row is ``(1 - GLOBAL_WEIGHT) * local + GLOBAL_WEIGHT * global``:

* local - the base pieces the old tokenizer splits the token into, weighted by how similar each
  piece is to the whole token in the auxiliary space (softmax over cosine / temperature) and by its
  length, so ``▁nd`` + ``ipo`` leans towards the piece that carries the meaning;
* global - the token's nearest base tokens in the auxiliary space, softmax-weighted (as WECHSEL).

The paper embeds token strings with an external multilingual text encoder; langbuild uses the same
corpus-trained token vectors as FOCUS (``langbuild.embedding_init.token_vectors``), so no second model is needed.
A token with no auxiliary vector gets the local estimate with length weights only.
"""

from __future__ import annotations

import torch

from .token_space import TokenSpace, unit_rows
from .wechsel import mix_nearest

GLOBAL_WEIGHT = 0.3  # the paper's default share of the global estimate
TEMPERATURE = 0.1
NEIGHBOURS = 10


def _piece_table(pieces: list[list[int]], old_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces padded into [n, longest] with a mask (ids outside the base rows are masked out)."""
    longest = max((len(p) for p in pieces), default=0) or 1
    table = torch.zeros((len(pieces), longest), dtype=torch.long)
    mask = torch.zeros((len(pieces), longest), dtype=torch.bool)
    for row, ids in enumerate(pieces):
        valid = [i for i in ids if 0 <= i < old_rows]
        table[row, : len(valid)] = torch.tensor(valid, dtype=torch.long)
        mask[row, : len(valid)] = True
    return table, mask


def local_estimate(weight: torch.Tensor, pieces: list[list[int]], old_rows: int, token_space: TokenSpace,
                   base_tokens: list[str]) -> torch.Tensor:
    """Similarity- and length-weighted mean of each new token's base pieces ([n_new, dim], float32)."""
    table, mask = _piece_table(pieces, old_rows)
    lengths = torch.tensor([max(len(t.strip("▁Ġ# ")), 1) for t in base_tokens[:old_rows]] if base_tokens else [1] * old_rows,
                           dtype=torch.float32)
    logits = lengths[table].log()
    piece_vectors, piece_known = unit_rows(token_space.base[table]), token_space.base_known[table]
    token_vectors = unit_rows(token_space.new).unsqueeze(1)
    similarity = (piece_vectors * token_vectors).sum(-1)
    usable = piece_known & token_space.new_known.unsqueeze(1)
    logits = logits + torch.where(usable, similarity / TEMPERATURE, torch.zeros_like(similarity))
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # a row with no piece at all: all -inf
    estimate = torch.einsum("np,npd->nd", weights.to(weight.device), weight[table.to(weight.device)].float())
    empty = ~mask.any(dim=1)
    if empty.any():
        estimate[empty.to(weight.device)] = weight[:old_rows].float().mean(dim=0)
    return estimate


def tokenadapt_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, token_space: TokenSpace | None = None,
                    pieces: list[list[int]], base_tokens: list[str] | None = None, **_unused) -> None:
    if token_space is None:
        raise ValueError("tokenadapt needs auxiliary token vectors (langbuild.embedding_init.spaces.token_space_for)")
    if len(pieces) != len(new_ids):
        raise ValueError("tokenadapt needs one list of base pieces per new token")
    token_space.check(old_rows, len(new_ids))
    result = local_estimate(weight, pieces, old_rows, token_space, base_tokens or [])
    anchors = token_space.anchors()
    known = torch.nonzero(token_space.new_known, as_tuple=False).flatten() if len(anchors) else torch.zeros(0, dtype=torch.long)
    if len(known):
        device = weight.device
        global_rows = mix_nearest(weight[anchors.to(device)].float(), token_space.new[known].to(device),
                                  token_space.base[anchors].to(device), NEIGHBOURS, TEMPERATURE)
        known = known.to(device)
        result[known] = (1 - GLOBAL_WEIGHT) * result[known] + GLOBAL_WEIGHT * global_rows
    weight[new_ids] = result.to(weight.dtype)
