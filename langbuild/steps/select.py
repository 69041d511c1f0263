"""select: score every candidate base model and choose one by a rule the user can change.

Per candidate, selection.json records: parameters; tokens per word and bits per byte on the held-out
target sample; bits per byte on source-language text (eval.source_text, the knowledge training may make
it forget); the memory training it would take at train.batch_size x train.seq_len, estimated from its
shape for the plan train will run (the largest of train.stages, with train.precision, the chunked loss,
train.gradient_checkpointing, train.num_processes and train.launcher; the formula is in
langbuild/models/budget.py), and whether that fits the memory budget; and seconds per million training
tokens, timed on real training steps after scoring.

The rules (select.rule) are described in :mod:`langbuild.models.selection`; ties always go to the model with
fewer parameters, and a candidate whose context is shorter than train.seq_len is never chosen.
The budget is select.memory_budget_gb, or when that is 0 this machine's GPU memory, else its RAM.
"""

from __future__ import annotations

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..corpus.shards import read_split
from ..models.loading import fingerprint_candidates
from ..models.selection import RULES, Plan, check_rule, choose, format_size, score_candidates
from ..packaged.reference_texts import read_text_lines
from ..text.textio import sample_by_bytes


def source_sample(ctx) -> list[str] | None:
    """Source-language lines to score, or None when select.source_max_bytes or eval.source_text is off."""
    max_bytes, name = ctx.config.get("select.source_max_bytes"), ctx.config.get("eval.source_text")
    if max_bytes == 0 or not name:
        return None
    lines = sample_by_bytes(read_text_lines(name, ctx.project.root, "eval.source_text"), max_bytes)
    if not lines:
        raise LangbuildError(f"eval.source_text '{name}' holds no text: set it to a source-language text file")
    return lines


def run(ctx) -> dict:
    config = ctx.config
    rule = config.get("select.rule")
    plan = Plan.from_config(config)
    check_rule(rule, plan.timing_steps)
    valid = list(read_split(ctx.output_of("corpus"), "valid"))
    sample = sample_by_bytes(valid, config.get("select.max_eval_bytes"))
    source = source_sample(ctx)
    trust = config.get("project.trust_remote_code")
    candidates = score_candidates(config.get("select.candidates"), ctx.project.root, trust, sample, source, plan, ctx.console)
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
            _maybe(c["source_bits_per_byte"], "{:.4f}"), format_size(c["memory_bytes"]["total"]), "yes" if c["fits"] else "no",
            _maybe(c["seconds_per_million_tokens"], "{:,.0f}"),
            style="bold" if c is chosen else None,
        )
    return table



def _maybe(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)
