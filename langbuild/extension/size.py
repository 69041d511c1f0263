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

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import out_of_memory_becomes
from ..core.progress import LazyBar, progress
from ..embedding_init.model import BaseModel
from ..embedding_init.rows import initialise_rows, resize_embeddings
from ..embedding_init.spaces import readable, token_strings
from ..models.loading import load_tokenizer
from ..models.scoring import bits_per_byte
from ..text.words import word_count
from ..tokenization.statistics import hf_batch_encoder
from ..training.stages import embedding_parameters
from .tokenizer_file import save_extended_tokenizer
from .vocabulary import Extension, apply_extension, base_pieces, is_byte_level_tokenizer, prefix

# Candidate sizes: doublings, since each doubling costs about the same and gains less. The ladder
# starts small because a small corpus supports only a few hundred tokens with enough evidence.
LADDER = (125, 250, 500, 1000, 2000, 4000, 8000, 16000)
AUTO_MAX_TOKENS = LADDER[-1]  # the largest size extend.num_new_tokens = "auto" considers
CURVE_SAMPLE_DOCS = 2_000  # valid documents used to draw the gain curve
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
        # Padding rows start at the mean of the trained rows, as fill_padding (embedding_init.rows).
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

    def summary(self) -> dict:
        """What metrics.json keeps of the search (``auto_size``)."""
        scored = sum(1 for point in self.curve if point["zero_shot_bits_per_byte"] is not None)
        return {"chosen": self.chosen, "reason": self.reason, "init": self.init, "sample_bytes": self.sample_bytes,
                "sizes_scored": scored, "seconds": round(self.seconds, 1)}


def search_sizes(rows: PrefixRows, tokenizer_for: Callable[[int], object], sizes: list[int], sample: list[str],
                 word_texts: list[str], console=None) -> tuple[int, str, list[dict]]:
    """Tokens per word on ``word_texts`` for every size, zero-shot bits per byte on ``sample`` for the
    sizes ``choose_size`` asks about; returns (chosen size, reason, curve). ``console`` gets a line per
    size scored and a bar over the candidates (an upper bound: the rule stops when it has its answer)."""
    words = max(sum(map(word_count, word_texts)), 1)
    tokenizers = {size: tokenizer_for(size) for size in sizes}
    tokens_per_word = {size: sum(len(ids) for ids in hf_batch_encoder(tok)(word_texts)) / words
                       for size, tok in tokenizers.items()}
    scores: dict[int, float] = {}

    def score(size: int) -> float:
        if size not in scores:
            rows.set_size(size, len(tokenizers[size]))
            with LazyBar(console, f"{size:,} new tokens", "windows") as windows:
                scores[size] = bits_per_byte(rows.model, tokenizers[size], sample, report=windows)["bits_per_byte"]
            bar.print(f"    {size:>6,} new tokens: tokens/word {tokens_per_word[size]:.3f}, "
                      f"zero-shot bits/byte {scores[size]:.4f}")
            bar.advance()
        return scores[size]

    with progress(console, "auto size candidates", len(sizes), "sizes") as bar:
        chosen, reason = choose_size(tokens_per_word, score)
        bar.replan(bar.done)  # the sizes the rule needed: the rest are not scored
    curve = [{"new_tokens": size, "tokens_per_word": tokens_per_word[size], "zero_shot_bits_per_byte": scores.get(size)}
             for size in sizes]
    return chosen, reason, curve


def gain_curve(spec: dict, extension: Extension, texts: list[str], sizes: tuple[int, ...] = LADDER) -> list[dict]:
    """Target tokens per word with the first N new entries, for each N in ``sizes`` (and 0)."""
    from tokenizers import Tokenizer

    words = max(sum(map(word_count, texts)), 1)
    points = []
    for size in sorted({0, *[s for s in sizes if s < len(extension.tokens)], len(extension.tokens)}):
        tokenizer = Tokenizer.from_str(json.dumps(apply_extension(spec, prefix(extension, size))[0]))
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
        points.append({"new_tokens": size, "tokens_per_word": tokens / words})
    return points


def prefix_rows(base: BaseModel, spec: dict, extension: Extension, method: str, seed: int, multiple: int) -> PrefixRows:
    """The base model and ``method``'s rows for every entry of ``extension``, once (see PrefixRows)."""
    backend = base.tokenizer.backend_tokenizer
    old_rows, trained_rows = base.rows, base.trained_rows
    model = base.load()
    base_rows = [weight.detach().clone() for weight in embedding_parameters(model)]
    _, new_ids = apply_extension(spec, extension)
    if new_ids:
        resize_embeddings(model, max(old_rows, max(new_ids) + 1), 1)
        pieces = [base_pieces(backend, token) for token in extension.tokens]
        initialise_rows(model, method, new_ids, trained_rows, pieces, seed, token_strings(base.tokenizer, trained_rows),
                        readable(extension.tokens, is_byte_level_tokenizer(base.tokenizer)))
    new_rows = [weight.detach()[new_ids].clone() for weight in embedding_parameters(model)]
    return PrefixRows(model, base_rows, new_ids, new_rows, trained_rows, multiple)


def search_size(base: BaseModel, spec: dict, extension: Extension, valid: list[str], sample: list[str], method: str,
                seed: int, multiple: int, scratch: Path, console) -> SizeSearch:
    """Tokens per word for every candidate size (prefixes of ``extension``), zero-shot bits per byte on
    ``sample`` for those ``choose_size`` needs, and its choice. Candidate tokenizers are saved under
    ``scratch`` (a temporary folder is made there and removed).

    The extend step passes as ``sample`` the one it reports afterwards (extend.zero_shot_max_bytes of
    the valid split, or the probe's sample when diagnostics are off), so the chosen size's reported
    zero-shot score is the one it was chosen by. Never the test split: it is not read here."""
    started = time.time()
    sizes = candidate_sizes(len(extension.tokens))
    sample_bytes = len("\n".join(sample).encode("utf-8"))
    console.print(f"  auto size: candidates {', '.join(f'{s:,}' for s in sizes)} new tokens, scored as needed on "
                  f"{sample_bytes:,} bytes of valid text, rows by {method} ...")
    with out_of_memory_becomes("out of memory scoring candidate extension sizes: lower extend.zero_shot_max_bytes "
                               "or set a fixed extend.num_new_tokens"):
        rows = prefix_rows(base, spec, extension, method, seed, multiple)
        with tempfile.TemporaryDirectory(prefix="candidates-", dir=scratch) as folders:
            def tokenizer_for(size: int):
                if size == 0:
                    return base.tokenizer  # the honest baseline: the base model exactly as it is
                folder = Path(folders) / str(size)
                save_extended_tokenizer(base.tokenizer, apply_extension(spec, prefix(extension, size))[0], folder)
                return load_tokenizer(folder, base.trust_remote_code)

            chosen, reason, curve = search_sizes(rows, tokenizer_for, sizes, sample, valid[:CURVE_SAMPLE_DOCS], console)
        del rows
    if chosen:
        console.print(f"  auto size: {chosen:,} new tokens ({reason})")
    else:
        console.print(f"  extension skipped: {reason}; the base tokenizer and model are kept")
    return SizeSearch(chosen, reason, curve, method, sample_bytes, time.time() - started)


def zero_shot_from_search(search: SizeSearch | None, init: str, texts: dict) -> dict:
    """The target zero-shot scores the size search already computed, when they are this very model's:
    the same sample and rows that do not depend on the candidate (subword-mean, mean). Saves two
    forward passes over the sample."""
    if search is None or init != search.init or init not in ("subword-mean", "mean") or "target" not in texts:
        return {}
    if len("\n".join(texts["target"]).encode("utf-8")) != search.sample_bytes:
        return {}
    scores = {p["new_tokens"]: p["zero_shot_bits_per_byte"] for p in search.curve}
    base, extended = scores[0], scores[search.chosen]  # both scored: the rule always scores 0 and its choice
    return {"target": {"base": base, "extended": extended, "ratio": extended / base if base else None,
                       "bytes": search.sample_bytes}}


def worse_than_base(zero_shot: dict, added: int, init: str, auto: dict | None) -> str | None:
    """The warning when the extension starts worse than the base on held-out target text, else None.

    Not extending is the honest baseline: a fixed size that loses to it before any training should be
    a deliberate choice. Auto's own choice never does with the rows it was scored with; it can only
    when the probe then keeps another initialisation (extend.init = auto or extend.compare)."""
    target = zero_shot.get("target")
    if not added or not target or target["extended"] <= target["base"]:
        return None
    hint = (f"auto chose the size with {auto['init']} rows, which did not start worse; the probe kept {init} "
            "for its lower bits/byte after the probe's training" if auto else
            'extend.num_new_tokens = "auto" adds only a size that does not')
    return (f"with {added:,} new tokens (init {init}) held-out bits/byte before training is "
            f"{target['extended']:.3f}, worse than the base model's {target['base']:.3f}; {hint}")
