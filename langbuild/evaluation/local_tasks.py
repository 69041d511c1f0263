"""Local lm-eval tasks: a JSONL file plus one of the YAML templates in templates/lm_eval.

A user drops a JSONL file and lists its path in ``eval.tasks``; its fields say which template fits:

* ``{"query", "choices", "gold"}`` → multiple choice (accuracy; higher is better);
* ``{"text"}`` → rolling log-likelihood (bits per byte of whole documents; lower is better);
* ``{"prompt", "answer"}`` → generation (exact match, or chrF with ``eval.generation_metric``).

lm-eval reads the data through ``dataset_path: json`` with an absolute ``data_files`` path (relative
ones resolve against the current directory, not the YAML's), so this works offline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from ..core.errors import LangbuildError
from ..core.resources import templates_dir

KIND_FIELDS = {
    "multiple_choice": ("query", "choices", "gold"),
    "rolling": ("text",),
    "generation": ("prompt", "answer"),
}
TEMPLATE_FILES = {"multiple_choice": "multiple_choice.yaml", "rolling": "rolling.yaml", "generation": "generation.yaml"}
DIRECTION = {True: "higher is better", False: "lower is better"}
GENERATION_METRICS = {"exact_match": "mean", "chrf": "chrf"}


@dataclass(frozen=True)
class LocalTask:
    name: str  # the lm-eval task name
    kind: str
    data_file: Path
    items: int
    description: str
    origin: str
    chance: float | None = None
    extra: dict = field(default_factory=dict, compare=False)  # what the report shows about how it was built

    @property
    def metric(self) -> str:
        return {"multiple_choice": "acc", "rolling": "bits_per_byte"}.get(self.kind, self.extra.get("metric", "exact_match"))

    @property
    def direction(self) -> str:
        return DIRECTION[self.kind != "rolling"]


def task_name(stem: str) -> str:
    """An lm-eval task name from a file name: lower case, letters, digits and underscores."""
    return "local_" + (re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "task")


def _fields_help() -> str:
    return "; ".join(f"{kind.replace('_', ' ')}: {', '.join(fields)}" for kind, fields in KIND_FIELDS.items())


def _rows(path: Path):
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise LangbuildError(f"cannot read the task file {path}: {err.strerror}: fix eval.tasks") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise LangbuildError(f"{path}:{number} is not JSON: each line of a task file must be one JSON object") from None
                if not isinstance(row, dict):
                    raise LangbuildError(f"{path}:{number} is not a JSON object: each line must be an object with fields")
                yield number, row
        except UnicodeDecodeError:
            raise LangbuildError(f"{path} is not UTF-8 text: save the task file as UTF-8") from None


def infer_kind(fields: set[str], path: Path) -> str:
    for kind, needed in KIND_FIELDS.items():
        if set(needed) <= fields:
            return kind
    raise LangbuildError(f"{path} has fields {sorted(fields)}, which fit no task template: a task file needs {_fields_help()}")


def _check_row(kind: str, row: dict, where: str) -> None:
    missing = [name for name in KIND_FIELDS[kind] if name not in row]
    if missing:
        raise LangbuildError(f"{where} lacks {', '.join(missing)}: every line of a {kind.replace('_', ' ')} task needs "
                             f"{', '.join(KIND_FIELDS[kind])}")
    if kind == "multiple_choice":
        choices = row["choices"]
        if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
            raise LangbuildError(f"{where}: choices must be a list of at least two non-empty strings")
        if not (isinstance(row["gold"], int) and not isinstance(row["gold"], bool) and 0 <= row["gold"] < len(choices)):
            raise LangbuildError(f"{where}: gold must be the index (0 to {len(choices) - 1}) of the right choice")
        if not isinstance(row["query"], str):
            raise LangbuildError(f"{where}: query must be a string")
    else:
        for name in KIND_FIELDS[kind]:
            if not isinstance(row[name], str) or not row[name].strip():
                raise LangbuildError(f"{where}: {name} must be a non-empty string")


def read_task_file(path: Path) -> tuple[str, int, float | None]:
    """(kind, items, chance level) of a JSONL task file, every line checked; one clear line on the first fault."""
    kind, items, chance_sum = None, 0, 0.0
    for number, row in _rows(path):
        kind = kind or infer_kind(set(row), path)
        _check_row(kind, row, f"{path}:{number}")
        items += 1
        if kind == "multiple_choice":
            chance_sum += 1 / len(row["choices"])
    if not items:
        raise LangbuildError(f"the task file {path} has no items: add one JSON object per line")
    return kind, items, (chance_sum / items if kind == "multiple_choice" else None)


def local_task(path: Path, origin: str = "", description: str = "", name: str | None = None,
               generation_metric: str = "exact_match") -> LocalTask:
    kind, items, chance = read_task_file(path)
    extra = {"metric": generation_metric} if kind == "generation" else {}
    return LocalTask(name or task_name(path.stem), kind, path.resolve(), items,
                     description or f"{kind.replace('_', ' ')} task from {path.name}", origin or f"local JSONL {path}",
                     chance, extra)


def write_task_yaml(task: LocalTask, folder: Path, max_new_tokens: int = 64) -> Path:
    """Render the task's template into ``folder`` (lm-eval's include_path)."""
    generation_metric = task.extra.get("metric", "exact_match")
    if generation_metric not in GENERATION_METRICS:
        raise LangbuildError(f"unknown generation metric '{generation_metric}': use one of {', '.join(GENERATION_METRICS)}")
    template = Template((templates_dir() / "lm_eval" / TEMPLATE_FILES[task.kind]).read_text(encoding="utf-8"))
    options = "\n    ignore_case: true\n    ignore_punctuation: true" if generation_metric == "exact_match" else ""
    text = template.substitute(
        task=task.name, data_file=json.dumps(str(task.data_file)), metric=generation_metric,
        aggregation=GENERATION_METRICS[generation_metric], metric_options=options, max_new_tokens=max_new_tokens,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
