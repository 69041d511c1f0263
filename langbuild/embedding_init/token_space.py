"""An auxiliary vector space in which base tokens and new tokens can be compared.

FOCUS, WECHSEL and TokenAdapt all work the same way once such a space exists: find the base tokens
closest to a new token in the auxiliary space, then mix their *model* rows. They differ in where the
space comes from (fastText-style vectors trained on target text tokenised by the new tokenizer, or
aligned word vectors of two languages) and in how neighbours are weighted (sparsemax, top-k softmax).

``TokenSpace`` holds the vectors; builders live in ``langbuild.embedding_init.token_vectors`` (trained on a corpus)
and ``langbuild.embedding_init.word_vectors`` (from user-supplied word vectors and a bilingual dictionary).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenSpace:
    """Auxiliary vectors for the base rows and for the new rows of one embedding matrix.

    ``base[i]`` is the vector of base row ``i`` (``base_known[i]`` False where the space has none, e.g.
    a token that never occurs in the target corpus); ``new[j]`` is the vector of the ``j``-th new row
    (in the order of ``new_ids``), with ``new_known`` likewise. Vectors need not be normalised.
    """

    base: torch.Tensor  # [old_rows, dim] float32
    base_known: torch.Tensor  # [old_rows] bool
    new: torch.Tensor  # [n_new, dim] float32
    new_known: torch.Tensor  # [n_new] bool

    def check(self, old_rows: int, n_new: int) -> None:
        if self.base.shape[0] != old_rows or self.base_known.shape[0] != old_rows:
            raise ValueError(f"token space has {self.base.shape[0]} base vectors for {old_rows} base rows")
        if self.new.shape[0] != n_new or self.new_known.shape[0] != n_new:
            raise ValueError(f"token space has {self.new.shape[0]} new vectors for {n_new} new rows")
        if self.base.shape[1] != self.new.shape[1]:
            raise ValueError("base and new token vectors differ in dimension")

    def anchors(self) -> torch.Tensor:
        """Indices of the base rows that have a vector: the only rows a new token can be mixed from."""
        return torch.nonzero(self.base_known, as_tuple=False).flatten()


def unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)


def cosine_blocks(queries: torch.Tensor, keys: torch.Tensor, block: int = 2048):
    """Yield (start, cosine similarities of queries[start:start+block] to every key), batch by batch.

    Blocks keep the similarity matrix of a 50k × 50k vocabulary pair out of memory (10 GB at once)."""
    keys = unit_rows(keys.float())
    queries = unit_rows(queries.float())
    for start in range(0, queries.shape[0], block):
        yield start, queries[start : start + block] @ keys.T
