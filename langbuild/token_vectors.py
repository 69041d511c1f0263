"""Static token vectors trained on the target corpus: the auxiliary space of FOCUS and TokenAdapt.

FOCUS (Dobler & de Melo 2023, "FOCUS: Effective Embedding Initialization for Monolingual
Specialization of Multilingual Models") trains fastText on the target corpus *tokenised by the new
tokenizer*, so that every token - old and new - gets a vector from how it is used in the target
language. We train the same kind of model (CBOW with negative sampling, frequent-token subsampling,
dynamic windows; the word2vec/fastText recipe) directly in torch, over token ids:

* no extra dependency and no compiler (the ``fasttext`` package must build from source here);
* deterministic under a seed (fastText's unsynchronised threads are not);
* batched: one step trains thousands of centre tokens at once, so a 50k-token vocabulary over a few
  million tokens trains in a minute or two on two cores.

fastText's character n-grams are left out: a token rarer than ``min_count`` gets no vector here and
its initialiser falls back to its subword decomposition, which says more about a rare token than
n-grams of a string that is itself a subword.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .embedding_init.token_space import TokenSpace


@dataclass(frozen=True)
class VectorSettings:
    dim: int = 100  # FOCUS's fastText dimension
    window: int = 5
    negatives: int = 10  # FOCUS's fastText setting
    epochs: int = 3  # FOCUS's fastText setting
    min_count: int = 3
    subsample: float = 1e-4  # word2vec's threshold t: tokens more frequent than this are dropped at random
    batch_size: int = 4096
    learning_rate: float = 0.01
    max_tokens: int = 5_000_000  # enough text for stable vectors; bounds the time on a big corpus


def _stream(sequences: list[list[int]], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """All sequences as one id array plus the document number of each position (windows stop at documents)."""
    ids, docs, total = [], [], 0
    for number, sequence in enumerate(sequences):
        if total >= max_tokens:
            break
        ids.append(np.asarray(sequence, dtype=np.int64))
        docs.append(np.full(len(sequence), number, dtype=np.int64))
        total += len(sequence)
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(ids), np.concatenate(docs)


def _keep_probability(counts: np.ndarray, threshold: float) -> np.ndarray:
    """word2vec's subsampling: a token with frequency f is kept with probability (sqrt(f/t) + 1) t/f."""
    frequency = counts / max(counts.sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(frequency / threshold) + 1) * threshold / frequency
    return np.nan_to_num(np.minimum(keep, 1.0), nan=1.0)


def _contexts(ids: np.ndarray, docs: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Context ids [N, 2w] and their mask, with a random effective window per centre (word2vec's weighting)."""
    n = len(ids)
    reach = rng.integers(1, window + 1, size=n)
    context = np.zeros((n, 2 * window), dtype=np.int64)
    mask = np.zeros((n, 2 * window), dtype=np.float32)
    column = 0
    for offset in [*range(-window, 0), *range(1, window + 1)]:
        source = np.arange(n) + offset
        inside = (source >= 0) & (source < n)
        source = np.clip(source, 0, n - 1)
        valid = inside & (docs[source] == docs) & (abs(offset) <= reach)
        context[:, column] = np.where(valid, ids[source], 0)
        mask[:, column] = valid
        column += 1
    return context, mask


def train_token_vectors(sequences: list[list[int]], vocab_size: int, seed: int,
                        settings: VectorSettings = VectorSettings()) -> tuple[torch.Tensor, torch.Tensor]:
    """CBOW vectors [vocab_size, dim] for token-id sequences, and which ids occurred ``min_count`` times.

    Like fastText, tokens rarer than ``min_count`` are dropped from the stream; the rest are renumbered
    densely, so the optimizer only touches rows that train (a target corpus uses a fraction of a big
    base vocabulary).
    """
    ids, docs = _stream(sequences, settings.max_tokens)
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    kept_ids = np.flatnonzero(counts >= settings.min_count)
    known = torch.zeros(vocab_size, dtype=torch.bool)
    known[torch.from_numpy(kept_ids)] = True
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.zeros(vocab_size, settings.dim)
    if len(kept_ids) == 0:
        return vectors, known
    dense = np.full(vocab_size, -1, dtype=np.int64)
    dense[kept_ids] = np.arange(len(kept_ids))
    frequent = dense[ids] >= 0
    trained = _train_dense(dense[ids[frequent]], docs[frequent], counts[kept_ids], seed, generator, settings)
    # CBOW vectors share one large common direction (all cosines near 1 early on); removing the mean
    # leaves the part that tells tokens apart (Mu & Viswanath 2018, "All-but-the-Top").
    vectors[torch.from_numpy(kept_ids)] = trained - trained.mean(dim=0)
    return vectors, known


def _train_dense(ids: np.ndarray, docs: np.ndarray, counts: np.ndarray, seed: int, generator: torch.Generator,
                 settings: VectorSettings) -> torch.Tensor:
    """CBOW with negative sampling over densely numbered ids; returns the input vectors."""
    rng = np.random.default_rng(seed)
    size = len(counts)
    bound = 0.5 / settings.dim
    inputs = torch.nn.Embedding(size, settings.dim)
    outputs = torch.nn.Embedding(size, settings.dim)
    with torch.no_grad():
        inputs.weight.uniform_(-bound, bound, generator=generator)
        outputs.weight.zero_()
    optimizer = torch.optim.Adam([inputs.weight, outputs.weight], lr=settings.learning_rate)
    noise = torch.from_numpy(counts ** 0.75)  # word2vec's smoothed unigram noise distribution
    keep = _keep_probability(counts, settings.subsample)
    for _ in range(settings.epochs):
        kept = rng.random(len(ids)) < keep[ids]
        context, mask = _contexts(ids[kept], docs[kept], settings.window, rng)
        centres = ids[kept]
        usable = mask.sum(1) > 0
        context, mask, centres = context[usable], mask[usable], centres[usable]
        order = rng.permutation(len(centres))
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            _cbow_step(inputs, outputs, optimizer, torch.from_numpy(context[batch]), torch.from_numpy(mask[batch]),
                       torch.from_numpy(centres[batch]), noise, settings.negatives, generator)
    return inputs.weight.detach().clone()


def _cbow_step(inputs, outputs, optimizer, context, mask, centres, noise, negatives: int, generator) -> None:
    """One batch of CBOW with negative sampling: the mean context vector must score the centre above noise."""
    import torch.nn.functional as F

    hidden = (inputs(context) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    sampled = torch.multinomial(noise, centres.shape[0] * negatives, replacement=True, generator=generator)
    targets = torch.cat([centres.unsqueeze(1), sampled.view(-1, negatives)], dim=1)
    scores = torch.einsum("bd,bkd->bk", hidden, outputs(targets))
    loss = -(F.logsigmoid(scores[:, 0]) + F.logsigmoid(-scores[:, 1:]).sum(1)).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def corpus_token_space(encode_batch, texts: list[str], old_rows: int, new_ids: list[int], vocab_size: int, seed: int,
                       settings: VectorSettings = VectorSettings()) -> TokenSpace:
    """The FOCUS auxiliary space: vectors for every id of the new tokenizer, trained on ``texts`` tokenised by it.

    ``encode_batch`` is the new (extended or replacement) tokenizer; ids below ``old_rows`` are base
    rows. In replace mode the caller maps target ids onto base rows itself (see ``remap_base``).
    """
    sequences = encode_batch(texts)
    vectors, known = train_token_vectors(sequences, max(vocab_size, max(new_ids, default=-1) + 1, old_rows), seed, settings)
    index = torch.tensor(new_ids, dtype=torch.long)
    return TokenSpace(base=vectors[:old_rows], base_known=known[:old_rows].clone(),
                      new=vectors[index], new_known=known[index])

