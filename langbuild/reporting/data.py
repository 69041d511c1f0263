"""Reading the step outputs the report, the plots and the model card show.

Every file is optional here: the card is also rendered by ``langbuild export`` when eval has not run,
and the eval step's output grows over time, so a missing file or key means "not shown", never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PIPELINE_MODELS = ("base", "extended", "trained")


@dataclass
class Outputs:
    """The JSON each step wrote (None when absent) and the training log."""

    corpus: dict | None = None
    tokenizer: dict | None = None
    selection: dict | None = None
    extend: dict | None = None
    train: dict | None = None
    evaluation: dict | None = None
    train_records: list[dict] = field(default_factory=list)


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when the file is missing or not a JSON object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_train_records(path: Path) -> list[dict]:
    """One record per optimizer step, sorted by step.

    A resumed run appends the steps it redoes after the last checkpoint, so a step can appear twice;
    the later record wins (it is the one the saved model went through). Broken lines are skipped.
    """
    by_step: dict[int, dict] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and isinstance(record.get("loss"), (int, float)):
            by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def load_outputs(project, include_eval: bool = True) -> Outputs:
    step = project.step_dir
    return Outputs(
        corpus=read_json(step("corpus") / "stats.json"),
        tokenizer=read_json(step("tokenizer") / "metrics.json"),
        selection=read_json(step("select") / "selection.json"),
        extend=read_json(step("extend") / "metrics.json"),
        train=read_json(step("train") / "summary.json"),
        evaluation=read_json(step("eval") / "metrics.json") if include_eval else None,
        train_records=read_train_records(step("train") / "metrics.jsonl"),
    )


# ---------------------------------------------------------------- reading eval/metrics.json


def model_labels(*groups) -> list[str]:
    """base, extended, trained first (in that order), then any extra models in the order they appear."""
    seen = [label for label in PIPELINE_MODELS if any(label in (g or {}) for g in groups)]
    for group in groups:
        seen += [label for label in (group or {}) if label not in seen]
    return seen


def tasks(evaluation: dict | None) -> dict[str, dict]:
    found = (evaluation or {}).get("tasks") or {}
    return {name: task for name, task in found.items() if isinstance(task, dict) and task.get("scores")}


def task_labels(evaluation: dict | None) -> list[str]:
    return model_labels(*(task["scores"] for task in tasks(evaluation).values()))


def skipped(evaluation: dict | None) -> list[tuple[str, str]]:
    """(what, why) for each skipped task or extra model."""
    rows = []
    for entry in (evaluation or {}).get("skipped") or []:
        if isinstance(entry, dict):
            what = entry.get("task") or (f"model {entry['model']}" if entry.get("model") else "?")
            rows.append((str(what), str(entry.get("reason", ""))))
    return rows


def interval_of(side: dict, label: str) -> list | None:
    intervals = side.get("bits_per_byte_interval") or {}
    interval = intervals.get(label)
    return interval if isinstance(interval, (list, tuple)) and len(interval) == 2 else None


# ---------------------------------------------------------------- number formatting


def fmt(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def with_interval(value, interval, digits: int = 3) -> str:
    """``0.412 [0.371, 0.455]``: the value and its 95 % interval (when there is one)."""
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def change(before, after) -> str:
    return f"{(after - before) / before * 100:+.1f} %" if before and after is not None else "n/a"

