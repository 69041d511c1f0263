"""Scoring candidate base models and choosing one by a rule the user can change (the select step's machinery).

Rules (select.rule); ties always go to the model with fewer parameters:

* ``bpb-within-budget``: the lowest bits per byte on the valid sample among the candidates whose
  estimated memory fits the budget. When none fits, the step stops with an error naming the closest
  one, rather than choosing a model that train would run out of memory on.
* ``bpb``: the lowest bits per byte, memory ignored.
* ``fewest-parameters``: the smallest model.
* ``fastest``: the fewest seconds per million training tokens (needs select.timing_steps > 0).

Bits per byte is the measure because it does not depend on the tokenizer; per-token perplexity would.
The memory estimate is the largest of the train stages' (the formula is in langbuild/models/budget.py).
A candidate whose context is shorter than train.seq_len cannot be trained as configured and is never
chosen.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LangbuildError, is_out_of_memory, out_of_memory_becomes
from ..core.progress import LazyBar, progress
from ..tokenization.statistics import hf_encoder, tokenizer_stats
from ..training.precision import resolve_precision
from .budget import GB, Recipe, machine_memory, memory_budget, time_training_steps, training_memory
from .loading import check_vocabulary_fits, load_model, load_tokenizer, parameter_count, resolve_model
from .scoring import bits_per_byte, context_length

RULES = {
    "bpb-within-budget": "lowest bits per byte on the valid sample among candidates whose estimated training memory fits {budget}",
    "bpb": "lowest bits per byte on the valid sample, memory ignored",
    "fewest-parameters": "fewest parameters",
    "fastest": "fewest seconds per million training tokens",
}
SCORING_WINDOW = 512  # tokens per window in bits_per_byte
SCORING_BATCH = 8  # windows per forward pass: the output layer runs by chunks, so a big vocabulary costs no more


@dataclass(frozen=True)
class Plan:
    """The training run the candidates are sized for, and what this machine and the user allow."""

    batch_size: int
    seq_len: int
    timing_steps: int
    seed: int
    budget: int
    budget_source: str
    machine: int
    machine_source: str
    precision: str = "fp32"  # what train will compute in (train.precision resolved on this machine)
    recipes: tuple[Recipe, ...] = (Recipe(),)  # one per train stage: the estimate is the largest of them

    @classmethod
    def from_config(cls, config) -> Plan:
        import torch

        budget, budget_source = memory_budget(config.get("select.memory_budget_gb"))
        machine, machine_source = machine_memory()
        precision = resolve_precision(config.get("train.precision")).name
        gpu = torch.cuda.is_available()
        recipes = tuple(Recipe.for_train(config, stage, gpu) for stage in config.get("train.stages"))
        return cls(config.get("train.batch_size"), config.get("train.seq_len"), config.get("select.timing_steps"),
                   config.get("project.seed"), budget, budget_source, machine, machine_source, precision, recipes)

    def describe_budget(self) -> str:
        return f"{format_size(self.budget)} ({self.budget_source})"


def check_rule(rule: str, timing_steps: int) -> None:
    """Refuse a rule that cannot be decided before spending minutes on scoring."""
    if rule == "fastest" and timing_steps == 0:
        raise LangbuildError(
            "select.rule = fastest needs timed training steps, but select.timing_steps is 0: "
            "set select.timing_steps to 2 or more, or choose another select.rule"
        )


def score_candidates(names: list[str], root: Path, trust: bool, sample: list[str], source: list[str] | None, plan: Plan,
                     console=None) -> list[dict]:
    """``score_candidate`` for each name, in order, with the candidates scored shown on ``console``."""
    scored = []
    with progress(console, "select candidates", len(names), "candidates") as bar:
        for name in names:
            bar.print(f"  scoring {name} ...")
            scored.append(score_candidate(name, root, trust, sample, source, plan, console))
            bar.advance()
    return scored


def score_candidate(name: str, root: Path, trust: bool, sample: list[str], source: list[str] | None, plan: Plan,
                    console=None) -> dict:
    """Every measure of one candidate; a candidate that cannot be used stops the step, naming it.
    ``console`` shows the scoring windows and the timed steps (None: nothing)."""
    try:
        return _score(name, root, trust, sample, source, plan, console)
    except LangbuildError as err:
        raise LangbuildError(f"candidate '{name}' (fix it or remove it from select.candidates): {err}") from None


def _bits_per_byte(model, tokenizer, texts: list[str], console, label: str) -> dict:
    with LazyBar(console, label, "windows") as bar:
        return bits_per_byte(model, tokenizer, texts, window=SCORING_WINDOW, batch_size=SCORING_BATCH, report=bar)


def _score(name: str, root: Path, trust: bool, sample: list[str], source: list[str] | None, plan: Plan, console) -> dict:
    folder = resolve_model(name, root, trust)
    tokenizer = load_tokenizer(folder, trust)
    # Scoring runs the output layer by chunks: running out here means the model itself does not fit.
    with out_of_memory_becomes("out of memory loading and scoring it: it does not fit this machine; remove it"):
        model = load_model(folder, trust)
        check_vocabulary_fits(model, tokenizer, folder)
        scores = {
            "name": name,
            "path": str(folder),
            "parameters": parameter_count(model),
            "tokens_per_word": tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"],
            **_bits_per_byte(model, tokenizer, sample, console, f"{name}: target windows"),
            "source_bits_per_byte": (
                _bits_per_byte(model, tokenizer, source, console, f"{name}: source windows")["bits_per_byte"]
                if source else None
            ),
            "context": context_length(model),
        }
    scores.update(memory_estimate(model, plan))
    # Timing runs optimizer steps on this very model, so it comes after every score.
    scores.update(_timing(model, len(tokenizer), scores, plan, console))
    del model
    _release_memory()
    return scores


def memory_estimate(model, plan: Plan) -> dict:
    """The estimate of the train stage that needs the most; CPU processes share the one machine's memory."""
    per_stage = [training_memory(model, plan.batch_size, plan.seq_len, plan.precision, recipe) for recipe in plan.recipes]
    parts = max(per_stage, key=lambda p: p["total"])
    recipe = plan.recipes[per_stage.index(parts)]
    if recipe.processes > 1 and not recipe.on_gpu:
        parts = {key: value * recipe.processes for key, value in parts.items()}
    return {"memory_bytes": parts, "memory_gb": parts["total"] / GB, "fits": parts["total"] <= plan.budget,
            "memory_stage": recipe.stage}


def _timing(model, vocab: int, scores: dict, plan: Plan, console=None) -> dict:
    """Seconds per million training tokens, or None with the reason in ``note``."""
    untimed = {"seconds_per_million_tokens": None, "measured_peak_bytes": None}
    if scores["context"] < plan.seq_len:
        return {**untimed, "note": f"never chosen: train.seq_len={plan.seq_len} is longer than its context "
                                   f"of {scores['context']} tokens"}
    if plan.timing_steps == 0:
        return {**untimed, "note": None}
    if scores["memory_bytes"]["total"] > plan.machine:
        return {**untimed, "note": f"not timed: needs about {format_size(scores['memory_bytes']['total'])}, "
                                   f"this machine has {format_size(plan.machine)} of {plan.machine_source}"}
    try:
        timing = time_training_steps(model, vocab, plan.batch_size, plan.seq_len, plan.timing_steps, plan.seed,
                                     plan.precision, console)
    except Exception as err:  # a GPU's OutOfMemoryError, or the CPU allocator's RuntimeError
        if not is_out_of_memory(err):
            raise
        timing = None
    if timing is None:
        _release_memory()  # out of the handler, so the error's frames (holding the step's tensors) are gone
        return {**untimed, "note": "not timed: ran out of memory"}
    return {"seconds_per_million_tokens": timing["seconds_per_million_tokens"],
            "measured_peak_bytes": timing["measured_peak_bytes"], "note": None}


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _trainable(candidate: dict, plan: Plan) -> bool:
    return candidate["context"] >= plan.seq_len


def choose(candidates: list[dict], rule: str, plan: Plan) -> dict:
    """The winner under ``rule`` (see the module doc); ties go to fewer parameters."""
    pool = [c for c in candidates if _trainable(c, plan)]
    if not pool:
        shortest = min(candidates, key=lambda c: c["context"])
        raise LangbuildError(
            f"no candidate can train on blocks of train.seq_len={plan.seq_len} tokens ('{shortest['name']}' "
            f"reads at most {shortest['context']}): lower train.seq_len or add a candidate with a longer context"
        )
    if rule == "bpb-within-budget":
        fitting = [c for c in pool if c["memory_bytes"]["total"] <= plan.budget]
        if not fitting:
            raise _nothing_fits(pool, plan)
        return min(fitting, key=_by_bpb)
    if rule == "bpb":
        return min(pool, key=_by_bpb)
    if rule == "fewest-parameters":
        return min(pool, key=lambda c: (c["parameters"], round(c["bits_per_byte"], 4)))
    if rule == "fastest":
        timed = [c for c in pool if c["seconds_per_million_tokens"] is not None]
        if not timed:
            raise LangbuildError("select.rule = fastest, but no candidate could be timed (see the notes in the table): "
                                 "choose another select.rule or lower train.batch_size")
        return min(timed, key=lambda c: (c["seconds_per_million_tokens"], c["parameters"]))
    raise LangbuildError(f"unknown select.rule '{rule}': use one of {', '.join(RULES)}")


def _by_bpb(candidate: dict) -> tuple:
    return round(candidate["bits_per_byte"], 4), candidate["parameters"]


def _nothing_fits(pool: list[dict], plan: Plan) -> LangbuildError:
    closest = min(pool, key=lambda c: c["memory_bytes"]["total"])
    return LangbuildError(
        f"no candidate fits the memory budget of {plan.describe_budget()}: the closest, '{closest['name']}', needs about "
        f"{format_size(closest['memory_bytes']['total'])} to train at train.batch_size={plan.batch_size} "
        f"x train.seq_len={plan.seq_len}; "
        "raise select.memory_budget_gb, lower train.batch_size or train.seq_len, or set select.rule = bpb"
    )


def format_size(n_bytes: int) -> str:
    """Gigabytes, or megabytes below a tenth of one."""
    return f"{n_bytes / GB:.2f} GB" if n_bytes >= GB / 10 else f"{n_bytes / 2**20:.1f} MB"
