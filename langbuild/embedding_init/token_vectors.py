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

Given the token strings, each token is also represented, as in fastText, by hashed character
n-grams of its text (3 to 6 characters): tokens spelt alike start alike, and a token too rare to
train on (below ``min_count``) still gets a vector from its n-grams.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..core.progress import progress


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
    ngram_buckets: int = 1 << 17  # hashed n-gram vectors (fastText uses 2M; a token vocabulary needs far fewer)
    min_n: int = 3
    max_n: int = 6
    max_ngrams: int = 32  # per token: enough for a 12-character token


def char_ngrams(text: str, settings: VectorSettings) -> list[int]:
    """Bucket ids of the character n-grams of ``<text>`` (fastText's word boundary marks), crc32-hashed."""
    marked = f"<{text}>"
    buckets = []
    for n in range(settings.min_n, settings.max_n + 1):
        for start in range(0, len(marked) - n + 1):
            buckets.append(zlib.crc32(marked[start : start + n].encode("utf-8")) % settings.ngram_buckets)
    return buckets[: settings.max_ngrams]


def _ngram_table(strings: list[str], settings: VectorSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """[tokens, max_ngrams] bucket ids (padding points at the extra, always-zero bucket) and counts."""
    pad = settings.ngram_buckets
    table = torch.full((len(strings), settings.max_ngrams), pad, dtype=torch.long)
    counts = torch.zeros(len(strings), dtype=torch.float32)
    for row, text in enumerate(strings):
        buckets = char_ngrams(text, settings) if text else []
        if buckets:
            table[row, : len(buckets)] = torch.tensor(buckets, dtype=torch.long)
            counts[row] = len(buckets)
    return table, counts


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


class _InputVectors(torch.nn.Module):
    """fastText's input side: a token is the mean of its own vector and its n-gram vectors."""

    def __init__(self, size: int, ngrams: torch.Tensor | None, ngram_counts: torch.Tensor | None,
                 settings: VectorSettings, generator: torch.Generator):
        super().__init__()
        bound = 0.5 / settings.dim
        self.words = torch.nn.Parameter(torch.empty(size, settings.dim).uniform_(-bound, bound, generator=generator))
        self.ngrams, self.ngram_counts = ngrams, ngram_counts
        if ngrams is not None:
            # Rows only for the buckets some token uses: a small vocabulary leaves most of the hashed table
            # empty, and Adam would still update every row each step (~90% of the time on a 600-token
            # vocabulary). Each row starts from its value in the whole table, drawn as before, and a row
            # that never gets a gradient never moves: the vectors are the ones the whole table gives.
            pad = torch.tensor([settings.ngram_buckets])
            used, dense = torch.unique(torch.cat([ngrams.flatten(), pad]), return_inverse=True)  # the padding bucket last
            table = torch.empty(settings.ngram_buckets + 1, settings.dim).uniform_(-bound, bound, generator=generator)
            buckets = table[used]
            buckets[-1] = 0
            self.ngrams = dense[:-1].view_as(ngrams)
            self.buckets = torch.nn.EmbeddingBag.from_pretrained(buckets, freeze=False, mode="sum",
                                                                 padding_idx=len(used) - 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Vectors of dense ids [...] -> [..., dim] (n-grams looked up once per distinct id)."""
        distinct, inverse = torch.unique(ids, return_inverse=True)
        # F.embedding, not indexing: its backward accumulates deterministically on the CPU.
        return torch.nn.functional.embedding(inverse, self.represent(distinct))

    def represent(self, distinct: torch.Tensor) -> torch.Tensor:
        own = torch.nn.functional.embedding(distinct, self.words)
        if self.ngrams is None:
            return own
        summed = own + self.buckets(self.ngrams[distinct])
        return summed / (1 + self.ngram_counts[distinct]).unsqueeze(1)


def train_token_vectors(sequences: list[list[int]], vocab_size: int, seed: int, settings: VectorSettings = VectorSettings(),
                        strings: list[str] | None = None, console=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CBOW token vectors [vocab_size, dim] from token-id sequences.

    Returns (vectors, trained, spelled): ``trained`` marks ids seen ``min_count`` times (the rest are
    dropped from the stream, as fastText drops rare words); ``spelled`` marks ids whose vector comes
    from their character n-grams alone (``strings`` given: one text per id, "" for none).
    Trained ids are renumbered densely so the optimizer only touches rows that train. ``console``
    shows the epochs done (None: nothing).
    """
    ids, docs = _stream(sequences, settings.max_tokens)
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)[:vocab_size]
    kept_ids = np.flatnonzero(counts >= settings.min_count)
    trained = torch.zeros(vocab_size, dtype=torch.bool)
    trained[torch.from_numpy(kept_ids)] = True
    spelled = torch.zeros(vocab_size, dtype=torch.bool)
    vectors = torch.zeros(vocab_size, settings.dim)
    if len(kept_ids) == 0:
        return vectors, trained, spelled
    generator = torch.Generator().manual_seed(seed)
    # Dense numbering: trained ids first, then (with strings) every other id that has a spelling.
    rare = [i for i in range(vocab_size) if strings and not trained[i] and i < len(strings) and strings[i]]
    order = np.concatenate([kept_ids, np.asarray(rare, dtype=np.int64)])
    ngrams = counts_ngram = None
    if strings:
        ngrams, counts_ngram = _ngram_table([strings[i] if i < len(strings) else "" for i in order], settings)
    dense = np.full(vocab_size, -1, dtype=np.int64)
    dense[kept_ids] = np.arange(len(kept_ids))
    frequent = dense[ids] >= 0
    inputs = _InputVectors(len(order), ngrams, counts_ngram, settings, generator)
    with progress(console, "token vectors", settings.epochs, "epochs") as bar:
        _train(inputs, dense[ids[frequent]], docs[frequent], counts[kept_ids], seed, generator, settings, bar)
    with torch.no_grad():
        result = torch.cat([inputs.represent(torch.arange(start, min(start + 8192, len(order))))
                            for start in range(0, len(order), 8192)])
    # CBOW vectors share one large common direction (all cosines near 1 early on); removing the mean
    # of the trained ones leaves the part that tells tokens apart (Mu & Viswanath 2018, "All-but-the-Top").
    result -= result[: len(kept_ids)].mean(dim=0)
    vectors[torch.from_numpy(order)] = result
    spelled[torch.tensor(rare, dtype=torch.long)] = True
    return vectors, trained, spelled


def _train(inputs: _InputVectors, ids: np.ndarray, docs: np.ndarray, counts: np.ndarray, seed: int,
           generator: torch.Generator, settings: VectorSettings, bar) -> None:
    """CBOW with negative sampling over densely numbered ids (the trained ones: 0 .. len(counts) - 1)."""
    rng = np.random.default_rng(seed)
    outputs = torch.nn.Embedding(len(counts), settings.dim)
    with torch.no_grad():
        outputs.weight.zero_()
    optimizer = torch.optim.Adam([*inputs.parameters(), outputs.weight], lr=settings.learning_rate)
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
        bar.advance()


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
