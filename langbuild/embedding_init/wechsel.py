"""``wechsel``: a new token starts as the softmax-weighted mix of the model rows of its nearest base tokens
in an aligned word-vector space (WECHSEL, Minixhofer, Paischer & Rekabsaz 2022, "WECHSEL: Effective
initialization of subword embeddings for cross-lingual transfer of monolingual language models", NAACL).

The space (a :class:`TokenSpace`) is built by ``langbuild.embedding_init.word_vectors.wechsel_token_space``: base tokens
get vectors from source-language words, new tokens from target-language words, and a Procrustes rotation
learned from a bilingual dictionary puts both in one space. Here, each new token with a vector takes its
``neighbours`` most cosine-similar base tokens, weights them by softmax(similarity / temperature) and
mixes their rows.

New tokens without a vector (no target word in the vector file contains them) start from the mean of the
base rows of their pieces (``subword-mean``) rather than from WECHSEL's random draw from N(mean, std) of
the base rows: the pieces spell the token, so their mean already carries something of its form and
meaning, while a random row carries nothing and only adds noise that training has to undo.
"""

from __future__ import annotations

import torch

from .subword_mean import subword_mean_init
from .token_space import TokenSpace, cosine_blocks

# Elements per block of similarities or of gathered neighbour rows (~256 MB as float32): a 256k-token
# base vocabulary or a wide model then still fits, at the cost of smaller blocks.
_BLOCK_ELEMENTS = 1 << 26


def wechsel_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, token_space: TokenSpace | None = None,
                 pieces: list[list[int]], neighbours: int = 10, temperature: float = 0.1, **_unused) -> None:
    if token_space is None:
        raise ValueError("wechsel needs a token space built from word vectors (embedding_init.word_vectors.wechsel_token_space)")
    if len(pieces) != len(new_ids):
        raise ValueError("wechsel needs one list of base pieces per new token")
    if neighbours < 1 or temperature <= 0:
        raise ValueError("wechsel needs neighbours >= 1 and temperature > 0")
    token_space.check(old_rows, len(new_ids))
    device = weight.device
    anchors = token_space.anchors()
    # With no base token in the space there is nothing to mix from: every new row falls back.
    known = torch.nonzero(token_space.new_known, as_tuple=False).flatten().tolist() if len(anchors) else []
    if known:
        mixed = mix_nearest(weight[anchors.to(device)].float(), token_space.new[known].to(device),
                                token_space.base[anchors].to(device), neighbours, temperature)
        weight[[new_ids[j] for j in known]] = mixed.to(weight.dtype)
    unknown = sorted(set(range(len(new_ids))) - set(known))
    if unknown:
        subword_mean_init(weight, [new_ids[j] for j in unknown], old_rows, pieces=[pieces[j] for j in unknown])


def mix_nearest(anchor_rows: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, neighbours: int,
                    temperature: float) -> torch.Tensor:
    """For each query vector: softmax(top-k cosine / temperature)-weighted sum of the anchor rows of its top-k keys."""
    k = min(neighbours, keys.shape[0])
    block = max(1, min(2048, _BLOCK_ELEMENTS // max(keys.shape[0], k * anchor_rows.shape[1])))
    result = torch.empty((queries.shape[0], anchor_rows.shape[1]), dtype=torch.float32, device=anchor_rows.device)
    for start, similarities in cosine_blocks(queries, keys, block=block):
        top = similarities.topk(k, dim=1)
        weights = torch.softmax(top.values / temperature, dim=1)
        result[start : start + similarities.shape[0]] = torch.einsum("nk,nkd->nd", weights, anchor_rows[top.indices])
    return result
