"""select: score every candidate base model and choose one by a rule the user can change.

Per candidate, selection.json records: parameters; tokens per word and bits per byte on the held-out
target sample; bits per byte on source-language text (eval.source_text, the knowledge training may make
it forget); the memory training it would take at train.batch_size x train.seq_len, estimated from its
shape for the plan train will run (the largest of train.stages, with train.precision, the chunked loss,
train.gradient_checkpointing, train.num_processes and train.launcher; the formula is in
langbuild/budget.py), and whether that fits the memory budget; and seconds per million training
tokens, timed on real training steps after scoring.

Rules (select.rule); ties always go to the model with fewer parameters:

* ``bpb-within-budget``: the lowest bits per byte on the valid sample among the candidates whose
  estimated memory fits the budget. When none fits, the step stops with an error naming the closest
  one, rather than choosing a model that train would run out of memory on.
* ``bpb``: the lowest bits per byte, memory ignored.
* ``fewest-parameters``: the smallest model.
* ``fastest``: the fewest seconds per million training tokens (needs select.timing_steps > 0).

Bits per byte is the measure because it does not depend on the tokenizer; per-token perplexity would.
The budget is select.memory_budget_gb, or when that is 0 this machine's GPU memory, else its RAM.
A candidate whose context is shorter than train.seq_len cannot be trained as configured and is never
chosen.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from rich.table import Table

from ..budget import GB, Recipe, machine_memory, memory_budget, time_training_steps, training_memory
from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError, is_out_of_memory, out_of_memory_becomes
from ..corpus.shards import read_split
from ..metrics import bits_per_byte, context_length, hf_encoder, tokenizer_stats
from ..models import check_vocabulary_fits, fingerprint_candidates, load_model, load_tokenizer, parameter_count, resolve_model
from ..reference_texts import read_text_lines
from ..textio import sample_by_bytes
from ..training.precision import resolve_precision

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
        return f"{_size(self.budget)} ({self.budget_source})"


def check_rule(rule: str, timing_steps: int) -> None:
    """Refuse a rule that cannot be decided before spending minutes on scoring."""
    if rule == "fastest" and timing_steps == 0:
        raise LangbuildError(
            "select.rule = fastest needs timed training steps, but select.timing_steps is 0: "
            "set select.timing_steps to 2 or more, or choose another select.rule"
        )


def source_sample(ctx) -> list[str] | None:
    """Source-language lines to score, or None when select.source_max_bytes or eval.source_text is off."""
    max_bytes, name = ctx.config.get("select.source_max_bytes"), ctx.config.get("eval.source_text")
    if max_bytes == 0 or not name:
        return None
    lines = sample_by_bytes(read_text_lines(name, ctx.project.root, "eval.source_text"), max_bytes)
    if not lines:
        raise LangbuildError(f"eval.source_text '{name}' holds no text: set it to a source-language text file")
    return lines


def score_candidate(name: str, ctx, sample: list[str], source: list[str] | None, plan: Plan) -> dict:
    """Every measure of one candidate; a candidate that cannot be used stops the step, naming it."""
    try:
        return _score(name, ctx, sample, source, plan)
    except LangbuildError as err:
        raise LangbuildError(f"candidate '{name}' (fix it or remove it from select.candidates): {err}") from None


def _score(name: str, ctx, sample: list[str], source: list[str] | None, plan: Plan) -> dict:
    trust = ctx.config.get("project.trust_remote_code")
    folder = resolve_model(name, ctx.project.root, trust)
    tokenizer = load_tokenizer(folder, trust)
    # Scoring runs the output layer by chunks: running out here means the model itself does not fit.
    with out_of_memory_becomes("out of memory loading and scoring it: it does not fit this machine; remove it"):
        model = load_model(folder, trust)
        check_vocabulary_fits(model, tokenizer, folder)
        batch = SCORING_BATCH
        scores = {
            "name": name,
            "path": str(folder),
            "parameters": parameter_count(model),
            "tokens_per_word": tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"],
            **bits_per_byte(model, tokenizer, sample, window=SCORING_WINDOW, batch_size=batch),
            "source_bits_per_byte": (
                bits_per_byte(model, tokenizer, source, window=SCORING_WINDOW, batch_size=batch)["bits_per_byte"]
                if source else None
            ),
            "context": context_length(model),
        }
    scores.update(_memory(model, plan))
    # Timing runs optimizer steps on this very model, so it comes after every score.
    scores.update(_timing(model, len(tokenizer), scores, plan))
    del model
    _release_memory()
    return scores


def _memory(model, plan: Plan) -> dict:
    """The estimate of the train stage that needs the most; CPU processes share the one machine's memory."""
    per_stage = [training_memory(model, plan.batch_size, plan.seq_len, plan.precision, recipe) for recipe in plan.recipes]
    parts = max(per_stage, key=lambda p: p["total"])
    recipe = plan.recipes[per_stage.index(parts)]
    if recipe.processes > 1 and not recipe.on_gpu:
        parts = {key: value * recipe.processes for key, value in parts.items()}
    return {"memory_bytes": parts, "memory_gb": parts["total"] / GB, "fits": parts["total"] <= plan.budget,
            "memory_stage": recipe.stage}


def _timing(model, vocab: int, scores: dict, plan: Plan) -> dict:
    """Seconds per million training tokens, or None with the reason in ``note``."""
    untimed = {"seconds_per_million_tokens": None, "measured_peak_bytes": None}
    if scores["context"] < plan.seq_len:
        return {**untimed, "note": f"never chosen: train.seq_len={plan.seq_len} is longer than its context "
                                   f"of {scores['context']} tokens"}
    if plan.timing_steps == 0:
        return {**untimed, "note": None}
    if scores["memory_bytes"]["total"] > plan.machine:
        return {**untimed, "note": f"not timed: needs about {_size(scores['memory_bytes']['total'])}, "
                                   f"this machine has {_size(plan.machine)} of {plan.machine_source}"}
    try:
        timing = time_training_steps(model, vocab, plan.batch_size, plan.seq_len, plan.timing_steps, plan.seed,
                                     plan.precision)
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
        f"{_size(closest['memory_bytes']['total'])} to train at train.batch_size={plan.batch_size} x train.seq_len={plan.seq_len}; "
        "raise select.memory_budget_gb, lower train.batch_size or train.seq_len, or set select.rule = bpb"
    )


def run(ctx) -> dict:
    config = ctx.config
    rule = config.get("select.rule")
    plan = Plan.from_config(config)
    check_rule(rule, plan.timing_steps)
    valid = list(read_split(ctx.output_of("corpus"), "valid"))
    sample = sample_by_bytes(valid, config.get("select.max_eval_bytes"))
    source = source_sample(ctx)
    candidates = []
    for name in config.get("select.candidates"):
        ctx.console.print(f"  scoring {name} ...")
        candidates.append(score_candidate(name, ctx, sample, source, plan))
    chosen = choose(candidates, rule, plan)
    description = f"{rule}: {RULES[rule].format(budget=plan.describe_budget())}; ties: fewer parameters"
    selection = {
        "rule": description,
        "rule_name": rule,
        "sample_bytes": _byte_count(sample),
        "source_sample_bytes": _byte_count(source) if source else 0,
        "train_batch_size": plan.batch_size,
        "train_seq_len": plan.seq_len,
        "timing_steps": plan.timing_steps,
        "train_precision": plan.precision,  # what the timed steps and the memory estimate assume
        "memory_budget_bytes": plan.budget,
        "memory_budget_source": plan.budget_source,
        "candidates": candidates,
        "chosen": chosen["name"],
        "chosen_path": chosen["path"],
    }
    atomic_write_json(ctx.out / "selection.json", selection)
    ctx.console.print(_table(candidates, chosen, description))
    for c in candidates:
        if c["note"]:
            ctx.console.print(f"  [yellow]{c['name']}: {c['note']}[/]")
    # "chosen" and "chosen_model" are what later steps depend on (pipeline: Step.passes_on).
    return {"chosen": chosen["name"], "chosen_model": fingerprint_candidates([chosen["name"]], ctx.project.root),
            "bits_per_byte": chosen["bits_per_byte"], "rule": rule}


def _byte_count(lines: list[str]) -> int:
    """Bytes of the lines joined by newlines, as bits_per_byte scores them."""
    return sum(len(t.encode("utf-8")) + 1 for t in lines) - 1


def _table(candidates: list[dict], chosen: dict, description: str) -> Table:
    table = Table(title=f"candidate base models (chosen: {chosen['name']})", caption=f"rule {description}")
    for column in ("model", "params", "tok/word ↓", "bpb ↓", "source bpb ↓", "train memory", "fits", "s/1M tok ↓"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for c in candidates:
        table.add_row(
            c["name"], f"{c['parameters'] / 1e6:.1f}M", f"{c['tokens_per_word']:.3f}", f"{c['bits_per_byte']:.4f}",
            _maybe(c["source_bits_per_byte"], "{:.4f}"), _size(c["memory_bytes"]["total"]), "yes" if c["fits"] else "no",
            _maybe(c["seconds_per_million_tokens"], "{:,.0f}"),
            style="bold" if c is chosen else None,
        )
    return table


def _size(n_bytes: int) -> str:
    return f"{n_bytes / GB:.2f} GB" if n_bytes >= GB / 10 else f"{n_bytes / 2**20:.1f} MB"


def _maybe(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)
