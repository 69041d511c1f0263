"""Which method starts the new embedding rows: the probe that compares initialisations, and the
zero-shot diagnostics written after every extension.

What to build is a ``make_model(method)`` function (``langbuild.embedding_init.model``: load the
base model, resize, initialise with ``method``, plus whatever the extend mode needs); this module
decides *which* method: ``extend.init``, or the best of ``extend.compare`` (or of ``AUTO_COMPARE``
for ``extend.init = "auto"``) after an identical short probe of embeddings-only training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.config import AUTO_COMPARE, check_rule
from ..core.errors import out_of_memory_becomes
from ..core.progress import LazyBar, progress
from ..models.scoring import bits_per_byte
from ..training.data import batch_indices, pack_blocks
from ..training.stages import embedding_parameters

PROBE_SEQ_LEN = 128
PROBE_BATCH = 4
PROBE_LEARNING_RATE = 1e-3  # embeddings only, no warm-up: the probe is short
PROBE_VALID_BYTES = 10_000  # held-out bytes the probe scores when zero-shot diagnostics are off


def methods_to_try(config) -> list[str]:
    """extend.compare when set; the auto list for init = auto; else just extend.init."""
    compare = list(dict.fromkeys(config.get("extend.compare")))
    if compare:
        return compare
    if config.get("extend.init") == "auto":
        wechsel_ready = all(config.get(f"extend.{key}") for key in ("source_vectors", "target_vectors", "dictionary"))
        return [*AUTO_COMPARE, *(["wechsel"] if wechsel_ready else [])]
    return [config.get("extend.init")]


def check_init_inputs(config) -> None:
    """Fail before any work when a method to try lacks its inputs (WECHSEL's vectors and dictionary)."""
    check_rule(config, "extend.init")


# --- the probe ----------------------------------------------------------------------------------


def train_embeddings_only(model, blocks, steps: int, seed: int, learning_rate: float = PROBE_LEARNING_RATE,
                          every: int = 0, on_step: Callable[[int], None] | None = None,
                          embeddings_only: bool = True, precision: str = "fp32", bar=None) -> list[float]:
    """``steps`` AdamW steps on the embedding matrices only (or on everything); returns the losses.

    ``on_step(n)`` is called after every ``every``-th step (benchmarks measure along the way). Weight
    decay is 0: decoupled decay would shrink every row whose gradient is zero (STACK.md). In bf16 the
    steps run as ``train`` runs them, over fp32 master weights; the model is fp32 again afterwards.
    ``bar`` (langbuild.core.progress) advances after every step."""
    import torch

    from ..training.precision import MasterWeights

    trainable = embedding_parameters(model) if embeddings_only else list(model.parameters())
    for param in model.parameters():
        param.requires_grad_(False)
    for param in trainable:
        param.requires_grad_(True)
    groups = [{"params": trainable}]
    masters = MasterWeights(model, groups, []) if precision == "bf16" else None
    optimizer = torch.optim.AdamW(masters.groups if masters else groups, lr=learning_rate, weight_decay=0.0)
    losses = []
    for step in range(steps):
        model.train()
        batch = blocks[batch_indices(step, PROBE_BATCH, len(blocks), seed)].to(model.device)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masters is not None:
            masters.collect_gradients()
        optimizer.step()
        if masters is not None:
            masters.publish()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.advance()
        if on_step and every and (step + 1) % every == 0:
            model.eval()
            on_step(step + 1)
    model.eval()
    if masters is not None:
        masters.release()
    for param in model.parameters():
        param.requires_grad_(True)
    return losses


def probe_blocks(tokenizer, train: list[str], steps: int, seed: int, batch: int = PROBE_BATCH, seq_len: int = PROBE_SEQ_LEN):
    """Enough train documents, in a seeded order, to fill ``steps`` batches once (each block seen once)."""
    import random

    # Text is chosen by bytes, generously (6 bytes per token is more than any tokenizer here averages):
    # fewer blocks than batches would only repeat blocks, but not one block at all is an error.
    needed_bytes = steps * batch * seq_len * 6
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    chosen, size = [], 0
    for index in order:
        chosen.append(train[index])
        size += len(train[index].encode("utf-8"))
        if size >= needed_bytes:
            break
    return pack_blocks(tokenizer, chosen, seq_len)


@dataclass
class ProbeResult:
    method: str
    zero_shot_bpb: float
    probe_bpb: float
    seconds: float


def compare_methods(methods: list[str], make_model: Callable, tokenizer, train: list[str], valid_sample: list[str],
                    steps: int, seed: int, console, precision: str = "fp32") -> list[ProbeResult]:
    """Initialise with each method, score held-out text, train the embeddings ``steps`` steps (in the
    precision ``train`` will use), score again."""
    blocks = probe_blocks(tokenizer, train, steps, seed)
    results = []
    # One bar over every method's steps: the ETA covers the whole probe, not one method.
    with progress(console, "probe", steps * len(methods), "steps") as bar:
        for method in methods:
            started = time.time()
            model, _ = make_model(method)
            zero_shot = _scored(model, tokenizer, valid_sample, console, f"probe {method}: start")
            train_embeddings_only(model, blocks, steps, seed, precision=precision, bar=bar)
            probed = _scored(model, tokenizer, valid_sample, console, f"probe {method}: after")
            results.append(ProbeResult(method, zero_shot, probed, time.time() - started))
            bar.print(f"  probe {method}: held-out bits/byte {zero_shot:.3f} at start, {probed:.3f} after {steps} steps")
            del model
    return results


def _scored(model, tokenizer, texts: list[str], console, label: str) -> float:
    """Bits per byte, its windows shown on ``console``."""
    with LazyBar(console, label, "windows") as windows:
        return bits_per_byte(model, tokenizer, texts, report=windows)["bits_per_byte"]


def best_method(results: list[ProbeResult]) -> str:
    """Lowest held-out bits per byte after the probe; ties go to the earlier (listed first) method."""
    return min(results, key=lambda r: r.probe_bpb).method


def choose_method(methods: list[str], make_model: Callable, tokenizer, train: list[str], valid_sample: list[str],
                  steps: int, seed: int, console, precision: str = "fp32") -> tuple[str, list[dict]]:
    """The probe over ``methods`` (see compare_methods): the method kept, and the comparison table."""
    with out_of_memory_becomes("out of memory in the probe that compares initialisations (it trains the "
                               "embeddings): set extend.compare = [] and a fixed extend.init to skip it"):
        results = compare_methods(methods, make_model, tokenizer, train, valid_sample, steps, seed, console, precision)
    best = best_method(results)
    return best, comparison_table(results, best)


def comparison_table(results: list[ProbeResult], best: str) -> list[dict]:
    """The probe's rows as metrics.json keeps them (``init_comparison``)."""
    return [{"method": r.method, "zero_shot_bits_per_byte": r.zero_shot_bpb, "probe_bits_per_byte": r.probe_bpb,
             "seconds": r.seconds, "chosen": r.method == best} for r in results]


def comparison_markdown(table: list[dict], steps: int) -> str:
    """The same rows as a Markdown table (init_comparison.md)."""
    lines = [f"| init | held-out bits/byte at start | after {steps} embeddings-only steps | seconds |", "|---|---|---|---|"]
    for row in table:
        mark = " (kept)" if row["chosen"] else ""
        lines.append(f"| {row['method']}{mark} | {row['zero_shot_bits_per_byte']:.4f} | {row['probe_bits_per_byte']:.4f} "
                     f"| {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


# --- zero-shot diagnostics ----------------------------------------------------------------------


def zero_shot_diagnostics(base_model, base_tokenizer, model, tokenizer, texts: dict[str, list[str]], console=None) -> dict:
    """Bits per byte of the base and the extended model, before any training, on each held-out text;
    the scoring windows shown on ``console`` (None: nothing)."""
    out = {}
    for side, sample in texts.items():
        base = _scored(base_model, base_tokenizer, sample, console, f"zero-shot {side}: base")
        extended = _scored(model, tokenizer, sample, console, f"zero-shot {side}: extended")
        out[side] = {"base": base, "extended": extended, "ratio": extended / base if base else None,
                     "bytes": len("\n".join(sample).encode("utf-8"))}
    return out
