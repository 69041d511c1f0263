"""``script``: each new row drawn from the distribution of the base rows written in the same script.

Downey et al. 2023, "Embedding Structure Matters: Comparing Methods to Adapt Multilingual
Vocabularies to New Languages": tokens of one script occupy their own region of the embedding space,
so a new Ethiopic token should start among the model's Ethiopic tokens, not at the global mean. A
script with too few base rows to estimate a covariance falls back to all rows (``multivariate``).
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict

import torch

from .multivariate import sample_like

MIN_ROWS_PER_SCRIPT = 32  # fewer rows than this give too noisy a covariance: use every row instead
_MARKERS = str.maketrans("", "", "▁Ġ#")  # word-start marks of SentencePiece, byte-level BPE and WordPiece


def script_of(token: str) -> str:
    """The most common script among a token's letters (Unicode name prefix, e.g. LATIN, ETHIOPIC), or ''."""
    scripts: Counter = Counter()
    for char in token.translate(_MARKERS):
        if char.isalpha():
            name = unicodedata.name(char, "")
            if name:
                scripts[name.split()[0]] += 1
    return scripts.most_common(1)[0][0] if scripts else ""


def script_init(weight: torch.Tensor, new_ids: list[int], old_rows: int, *, generator: torch.Generator,
                base_tokens: list[str], new_tokens: list[str], **_unused) -> None:
    if len(new_tokens) != len(new_ids):
        raise ValueError("script init needs one token string per new row")
    base_by_script: dict[str, list[int]] = defaultdict(list)
    for index, token in enumerate(base_tokens[:old_rows]):
        base_by_script[script_of(token)].append(index)
    new_by_script: dict[str, list[int]] = defaultdict(list)
    for position, token in enumerate(new_tokens):
        script = script_of(token)
        new_by_script[script if len(base_by_script.get(script, ())) >= MIN_ROWS_PER_SCRIPT else "*"].append(position)
    for script in sorted(new_by_script):  # sorted: the generator is consumed in the same order every run
        positions = new_by_script[script]
        source = weight[:old_rows] if script == "*" else weight[torch.tensor(base_by_script[script], device=weight.device)]
        samples = sample_like(source, len(positions), generator)
        weight[[new_ids[p] for p in positions]] = samples.to(device=weight.device, dtype=weight.dtype)
