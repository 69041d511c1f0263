"""How many tokens extend adds when ``extend.num_new_tokens = "auto"``: decided by measured effect.

The honest baseline for every extension is not extending at all. Auto scores candidate sizes from 0
upward on the valid split by two numbers:

* tokens per word (lower: shorter sequences, so cheaper training and generation), and
* zero-shot bits per byte of the extended, initialised model before any training (lower: the model
  still predicts the text). New rows are only estimates; on a small corpus many new tokens are
  whole words seen once or twice, and adding them can make the model worse than the base.

The rule is ``choose_size``. Size 0 is the base model itself, so auto never returns a size whose
zero-shot bits per byte is worse than the base's on the scored sample.

Cost: continued BPE learns one ranked merge list, and a prefix of a BPE merge list is itself a
consistent extension (Unigram and WordPiece entries are plain vocabulary entries, so a prefix is
too), so the tokens are learned once and cut. Rows are initialised once for the largest candidate;
for a per-token method (subword-mean, mean) the first k of those rows are exactly what an extension
of k tokens gets. Each candidate then costs one tokenisation of the valid sample, and one forward pass
over the byte-capped sample if the rule needs its score (see ``choose_size``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..metrics import bits_per_byte, hf_batch_encoder
from ..training.stages import embedding_parameters
from ..words import word_count  # the tool's one word rule, so the ratio agrees with the other steps

# Candidate sizes: doublings, since each doubling costs about the same and gains less. The ladder
# starts small because a small corpus supports only a few hundred tokens with enough evidence.
LADDER = (125, 250, 500, 1000, 2000, 4000, 8000, 16000)
# Methods whose row for a token depends on that token alone (or on a seeded draw), so the rows of
# the largest candidate serve every smaller one. FOCUS, TokenAdapt and WECHSEL mix base rows by
# token vectors trained on the corpus tokenised with the whole candidate vocabulary: their rows for
# a prefix are not what that prefix alone would get, and one vector space per size would cost a
# fastText training each. Those are searched with subword-mean, their usual starting point.
PREFIX_INITS = ("subword-mean", "mean", "script", "multivariate", "random")
SEARCH_FALLBACK_INIT = "subword-mean"
# The rule of choose_size (benchmarks/RESULTS.md, "Automatic extension size", has the measurements).
# A size must score at least this much (relative) below the base on the 10 kB sample: on the Chichewa
# rows the sample's ratio and that of held-out text it never saw differed by up to +1.0 point (0.993
# on the sample, 1.003 unseen, with 91 tokens from 5 kB), so a smaller lead is not evidence of help.
ZERO_SHOT_MARGIN = 0.01
TOKENS_PER_WORD_TOLERANCE = 0.03
MIN_TOKENS_PER_WORD_GAIN = 0.02


def candidate_sizes(available: int, ladder: tuple[int, ...] = LADDER) -> list[int]:
    """0, the ladder below ``available`` (how many tokens were learned), and ``available`` itself."""
    return sorted({0, *(size for size in ladder if size < available), max(available, 0)})


def search_init(methods: list[str]) -> str:
    """The initialisation the size search uses: the first method extend will try, if prefix-exact."""
    return methods[0] if methods and methods[0] in PREFIX_INITS else SEARCH_FALLBACK_INIT


def choose_size(tokens_per_word: dict[int, float], score: Callable[[int], float], tolerance: float | None = None,
                min_gain: float | None = None, margin: float | None = None) -> tuple[int, str]:
    """The size auto adds, and why, from each size's tokens per word and its zero-shot bits per byte.

    1. A size is admissible only if its zero-shot bits per byte (``score(size)``) is at least
       ``margin`` (relative) below the base's (size 0): not extending is the honest baseline, and a
       size that is worse, or better only within the sample's noise, is never chosen.
    2. The best admissible size is the one with the fewest tokens per word. It must cut tokens per
       word by at least ``min_gain`` (relative) against the base, else nothing is added: the rows
       would cost memory and training for no real compression.
    3. The chosen size is the smallest admissible one whose tokens per word is within ``tolerance``
       (relative) of the best: most of the compression for the fewest untrained rows, since every new
       row is an estimate that training must correct, and fewer rows see more updates each.

    ``score`` is called only for sizes the rule needs (each scoring is a forward pass): sizes in order
    of tokens per word until the first admissible one, then the tolerance band from its small end
    until the first admissible one. The result is the same as scoring every size.
    """
    if 0 not in tokens_per_word:
        raise ValueError("the candidates need the base (0 new tokens)")
    tolerance = TOKENS_PER_WORD_TOLERANCE if tolerance is None else tolerance
    min_gain = MIN_TOKENS_PER_WORD_GAIN if min_gain is None else min_gain
    margin = ZERO_SHOT_MARGIN if margin is None else margin
    base_bpb, base_tpw = score(0), tokens_per_word[0]
    limit = base_bpb * (1 - margin)
    larger = [size for size in tokens_per_word if size > 0]
    if not larger:
        return 0, "no new token occurs often enough in the train split (extend.min_frequency)"

    def admissible(size: int) -> bool:
        value = score(size)
        return _finite(value) and value <= limit

    best = next((size for size in sorted(larger, key=lambda s: (tokens_per_word[s], s)) if admissible(size)), None)
    if best is None:
        lowest = min(larger, key=score)
        worse = "worse" if score(lowest) > base_bpb else f"no more than {margin:.0%} better"
        return 0, (f"every size scored {worse} than the base model on held-out text before training (best: "
                   f"{lowest:,} tokens, bits/byte {score(lowest):.3f} vs the base's {base_bpb:.3f})")
    best_tpw = tokens_per_word[best]
    if best_tpw > base_tpw * (1 - min_gain):
        return 0, (f"no size that scores {margin:.0%} below the base's held-out bits/byte cuts tokens per word by "
                   f"{min_gain:.0%} (best {best_tpw:.3f} vs {base_tpw:.3f})")
    band = sorted(size for size in larger if tokens_per_word[size] <= best_tpw * (1 + tolerance))
    chosen = next(size for size in band if admissible(size))  # ends: best is in the band and admissible
    return chosen, (f"the smallest size within {tolerance:.0%} of the best tokens per word ({best_tpw:.3f}) among "
                    f"sizes whose zero-shot bits/byte is {margin:.0%} or more below the base's ({base_bpb:.3f})")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class PrefixRows:
    """The base model with its embedding matrices set as an extension by the first k new tokens would be.

    Holds the base rows and the initialised rows of the largest candidate (one tensor per matrix:
    the input embeddings, and an untied output head). ``set_size`` rebuilds the matrices as the
    extend step builds them: base rows, the first k new rows, and padding rows at the base mean,
    rounded up to ``multiple`` rows (no padding when k = 0: the model is the base model exactly).
    """

    def __init__(self, model, base_rows: list, new_ids: list[int], new_rows: list, trained_rows: int, multiple: int):
        self.model, self.base_rows, self.new_ids, self.new_rows = model, base_rows, new_ids, new_rows
        self.old_rows = base_rows[0].shape[0]
        self.multiple = multiple
        # Padding rows start at the mean of the trained rows, as _fill_padding in the extend step.
        self.pad_rows = [rows[:trained_rows].float().mean(dim=0).to(rows.dtype) for rows in base_rows]

    def set_size(self, count: int, vocabulary: int) -> None:
        import torch

        rows = max(self.old_rows, vocabulary)
        if count and self.multiple > 1:
            rows = math.ceil(rows / self.multiple) * self.multiple
        self.model.resize_token_embeddings(rows, mean_resizing=False)
        ids = torch.tensor(self.new_ids[:count], dtype=torch.long)
        with torch.no_grad():
            for weight, base, new, pad in zip(embedding_parameters(self.model), self.base_rows, self.new_rows,
                                              self.pad_rows):
                weight[:] = pad.to(weight.device)
                weight[: self.old_rows] = base.to(weight.device)
                if count:
                    weight[ids.to(weight.device)] = new[:count].to(weight.device)


@dataclass
class SizeSearch:
    chosen: int
    reason: str
    # one point per candidate size: new_tokens, tokens_per_word, zero_shot_bits_per_byte (None: not needed, not scored)
    curve: list[dict]
    init: str  # the initialisation the zero-shot scores used
    sample_bytes: int
    seconds: float


def search_sizes(rows: PrefixRows, tokenizer_for: Callable[[int], object], sizes: list[int], sample: list[str],
                 word_texts: list[str], on_score: Callable[[int, float, float], None] | None = None) -> tuple[int, str, list[dict]]:
    """Tokens per word on ``word_texts`` for every size, zero-shot bits per byte on ``sample`` for the
    sizes ``choose_size`` asks about; returns (chosen size, reason, curve)."""
    words = max(sum(map(word_count, word_texts)), 1)
    tokenizers = {size: tokenizer_for(size) for size in sizes}
    tokens_per_word = {size: sum(len(ids) for ids in hf_batch_encoder(tok)(word_texts)) / words
                       for size, tok in tokenizers.items()}
    scores: dict[int, float] = {}

    def score(size: int) -> float:
        if size not in scores:
            rows.set_size(size, len(tokenizers[size]))
            scores[size] = bits_per_byte(rows.model, tokenizers[size], sample)["bits_per_byte"]
            if on_score:
                on_score(size, tokens_per_word[size], scores[size])
        return scores[size]

    chosen, reason = choose_size(tokens_per_word, score)
    curve = [{"new_tokens": size, "tokens_per_word": tokens_per_word[size], "zero_shot_bits_per_byte": scores.get(size)}
             for size in sizes]
    return chosen, reason, curve
