"""Blocks shared by the report and the model card: benchmarks, held-out metrics, generation speed, skips.

Every number states its direction ("higher is better" / "lower is better") next to it, and every
benchmark score carries its 95 % interval, so a reader never has to guess whether a change is a gain
or whether it is beyond noise.
"""

from __future__ import annotations

from ..corpus.shards import SPLIT_NOTES
from .data import change, fmt, interval_of, model_labels, skipped, task_labels, tasks, with_interval
from .document import Block, Bullets, Heading, Paragraph, Strong, Table, rich

LOWER = "lower is better"
HIGHER = "higher is better"


# ---------------------------------------------------------------- benchmarks


def _score_cell(task: dict, label: str) -> str:
    score = task["scores"].get(label) or {}
    return with_interval(score.get("value"), score.get("interval"))


def benchmark_table(evaluation: dict | None) -> Table | None:
    found = tasks(evaluation)
    if not found:
        return None
    labels = task_labels(evaluation)
    header = ("task", "shots", "metric", "direction", *labels, "chance", "items")
    rows = []
    for name, task in found.items():
        chance = task.get("chance")
        # Examples shown before each item (eval.num_fewshot); metrics from before the setting were zero-shot.
        rows.append((name, str(task.get("num_fewshot", 0)), str(task.get("metric", "")),
                     str(task.get("direction", "direction unknown")),
                     *(_score_cell(task, label) for label in labels),
                     "—" if chance is None else f"{chance:.3f}", f"{task.get('items', '—'):,}" if task.get("items") else "—"))
    return Table(header, tuple(rows), ("l", "r", "l", "l", *("r" for _ in labels), "r", "r"))


def _construction(task: dict) -> str:
    built = task.get("construction") or {}
    parts = []
    if built.get("built") is not None:
        parts.append(f"{built['built']:,} items built")
    if built.get("contaminated") is not None:
        parts.append(f"{built['contaminated']:,} dropped for overlapping the train split")
    if built.get("length_baseline") is not None:
        parts.append(f"the better of always picking the longest or the shortest choice would score {built['length_baseline']:.3f}")
    return "; ".join(parts)


def _paired(task: dict) -> str:
    paired = task.get("trained_minus_base") or {}
    if paired.get("value") is None:
        return ""
    interval = paired.get("interval")
    text = f"trained − base {paired['value']:+.3f}"
    if interval:
        text += f" [{interval[0]:+.3f}, {interval[1]:+.3f}] (paired 95 % interval"
        text += "; excludes 0)" if interval[0] > 0 or interval[1] < 0 else "; includes 0: within noise)"
    return text


def task_notes(evaluation: dict | None) -> Bullets | None:
    """What each task is, where it came from and whether trained beat base beyond noise."""
    items = []
    for name, task in tasks(evaluation).items():
        details = [part for part in (task.get("description"), _construction(task), _paired(task)) if part]
        origin = f" ({task['origin']})" if task.get("origin") else ""
        items.append(rich(Strong(name), f"{origin}: " + "; ".join(details) + "." if details else origin))
    return Bullets(tuple(items)) if items else None


def skipped_blocks(evaluation: dict | None, level: int) -> list[Block]:
    rows = skipped(evaluation)
    if not rows:
        return []
    return [Heading(level, "Skipped tasks"), Bullets(tuple(rich(Strong(what), f": {why}") for what, why in rows))]


def benchmark_blocks(evaluation: dict | None, level: int) -> list[Block]:
    """The benchmark table, what each task is, and what was skipped; nothing when eval ran no task."""
    table = benchmark_table(evaluation)
    blocks: list[Block] = []
    if table:
        blocks += [
            Heading(level, "Benchmarks"),
            Paragraph("Each score is followed by its 95 % bootstrap interval over the task's items; the direction "
                      "column says whether higher or lower is better. Chance is the score of guessing at random."),
            table,
        ]
        notes = task_notes(evaluation)
        blocks += [notes] if notes else []
    return blocks + skipped_blocks(evaluation, level + 1 if table else level)


# ---------------------------------------------------------------- held-out text


def scored_split_line(evaluation: dict | None) -> str | None:
    """Which split the held-out scores and benchmarks built from held-out text come from, and what that means.
    An eval from before test splits has no record: it scored the valid split."""
    if not evaluation:
        return None
    held = evaluation.get("held_out") or {"split": "valid", "note": SPLIT_NOTES["valid"]}
    documents = f" ({held['documents']:,} documents)" if held.get("documents") else ""
    return f"Held-out scores come from {held.get('note', held['split'] + ' split')}{documents}."


def held_out_table(evaluation: dict | None) -> Table | None:
    """Bits per byte (with intervals) and tokens per word on target and English text; lower is better for all."""
    evaluation = evaluation or {}
    sides = [(name, evaluation.get(key)) for name, key in (("target", "target"), ("source (English)", "source"))]
    sides = [(name, side) for name, side in sides if isinstance(side, dict) and side.get("bits_per_byte")]
    if not sides:
        return None
    labels = model_labels(*(side["bits_per_byte"] for _, side in sides))
    header = ("text", "metric", "direction", *labels, "trained vs base")
    rows = []
    for name, side in sides:
        bpb = side["bits_per_byte"]
        metric = "bits per byte (forgetting)" if name.startswith("source") else "bits per byte"
        rows.append((name, metric, LOWER, *(with_interval(bpb.get(k), interval_of(side, k), 4) for k in labels),
                     change(bpb.get("base"), bpb.get("trained"))))
        tpw = side.get("tokens_per_word") or {}
        if tpw:
            # The trained model keeps the extended tokenizer, so it cuts words exactly as that one does.
            row = {k: tpw.get(k, tpw.get("extended")) if k == "trained" else tpw.get(k) for k in labels}
            rows.append((name, "tokens per word", LOWER, *(fmt(row[k], 3) for k in labels),
                         change(tpw.get("base"), tpw.get("extended"))))
    return Table(header, tuple(rows), ("l", "l", "l", *("r" for _ in labels), "r"))


def forgetting_line(evaluation: dict | None) -> str | None:
    bpb = ((evaluation or {}).get("source") or {}).get("bits_per_byte") or {}
    if bpb.get("base") is None or bpb.get("trained") is None:
        return None
    verdict = "worse" if bpb["trained"] > bpb["base"] else "no worse"
    return (f"Forgetting: English bits per byte went from {bpb['base']:.4f} (base) to {bpb['trained']:.4f} (trained), "
            f"{change(bpb['base'], bpb['trained'])} ({LOWER}; the trained model is {verdict} at English).")


# ---------------------------------------------------------------- generation speed


def generation_table(evaluation: dict | None) -> Table | None:
    models = ((evaluation or {}).get("generation") or {}).get("models") or {}
    models = {label: row for label, row in models.items() if isinstance(row, dict)}
    if not models:
        return None
    header = ("model", f"characters per second ({HIGHER})", f"tokens per second ({HIGHER})", f"characters per token ({HIGHER})")
    rows = tuple((label, fmt(models[label].get("chars_per_second"), 0), fmt(models[label].get("tokens_per_second"), 0),
                  fmt(models[label].get("chars_per_token"), 3)) for label in model_labels(models))
    return Table(header, rows, ("l", "r", "r", "r"))


def speedup_line(evaluation: dict | None) -> str | None:
    generation = (evaluation or {}).get("generation") or {}
    models = generation.get("models") or {}
    base, extended = (models.get(k) or {} for k in ("base", "extended"))
    if generation.get("speedup") is None:
        return None
    chars = f" on {generation['text_chars']:,} characters of held-out text" if generation.get("text_chars") else ""
    return (f"Generation speed-up, extended ÷ base characters per second: × {generation['speedup']:.2f} ({HIGHER}; "
            f"{fmt(base.get('chars_per_second'), 0)} → {fmt(extended.get('chars_per_second'), 0)} characters per second"
            f"{chars}). Above 1 the extended tokenizer's shorter sequences make writing faster.")


def generation_blocks(evaluation: dict | None, level: int) -> list[Block]:
    table = generation_table(evaluation)
    if table is None:
        return []
    line = speedup_line(evaluation)
    return [Heading(level, "Generation speed"), *([Paragraph(line)] if line else []), table]
