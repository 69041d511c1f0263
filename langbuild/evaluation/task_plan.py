"""Which benchmarks eval.tasks asks for: tasks built from held-out text, local JSONL and YAML tasks, and
lm-eval's built-in ones, each checked before any model is loaded. A task that cannot run is skipped with
one line (``TaskPlan.skipped``); the other tasks still run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LangbuildError, one_line
from .held_out_tasks import cloze_task, heldout_bpb_task
from .local_tasks import LocalTask, local_task, write_task_yaml

BUILT_FROM_HELD_OUT = ("cloze", "heldout-bpb")


@dataclass(frozen=True)
class TaskSettings:
    """The eval settings that decide the tasks (eval.tasks and what the built tasks are made of)."""

    tasks: list[str]
    language: str
    seed: int
    cloze_choices: int
    cloze_items: int
    max_bytes: int
    generation_metric: str
    max_new_tokens: int
    corpus: Path  # the corpus step's folder: built tasks leave out what overlaps its train split
    resolve_path: Callable[[str], Path]  # a task file named in eval.tasks, relative to the project
    num_fewshot: int | dict[str, int] = 0  # eval.num_fewshot: for every task, or per task name or eval.tasks entry


class _TagTolerantLoader:
    """A safe YAML loader that reads lm-eval's custom tags (``!function utils.x``) as plain strings."""

    @staticmethod
    def load(text: str):
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                                     if isinstance(node, yaml.ScalarNode) else None)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _yaml_task_names(path: Path) -> list[str]:
    import yaml

    try:
        spec = _TagTolerantLoader.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise LangbuildError(f"cannot read the lm-eval task file {path}: {one_line(err)}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
        raise LangbuildError(f"{path} names no task: an lm-eval task YAML needs a 'task: NAME' line")
    return [spec["task"]]


class TaskPlan:
    """What eval.tasks asks for: local tasks (YAML written into one folder), built-in names, and what was skipped."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.local: list[LocalTask] = []
        self.yaml_tasks: dict[str, Path] = {}  # task name → the folder lm-eval reads it from
        self.builtin: list[str] = []
        self.skipped: list[dict] = []
        self.fewshot: dict[str, int] = {}  # task name → examples shown before each item (absent: 0)
        self.entries: dict[str, list[str]] = {}  # eval.tasks entry → the task names it became

    def names(self) -> list[str]:
        return [t.name for t in self.local] + list(self.yaml_tasks) + self.builtin

    def skip(self, task: str, reason: str) -> None:
        self.skipped.append({"task": task, "reason": one_line(reason)})


def plan_tasks(settings: TaskSettings, held_out: list[str], folder: Path) -> TaskPlan:
    """The tasks to run, their data and YAML written into ``folder``."""
    plan = TaskPlan(folder)
    requested = list(dict.fromkeys(settings.tasks))
    for entry in requested:
        before = set(plan.names())
        try:
            _plan_entry(settings, plan, entry, held_out)
        except LangbuildError as err:
            plan.skip(entry, str(err))
        plan.entries[entry] = [name for name in plan.names() if name not in before]
    _check_builtin(plan)
    _assign_fewshot(plan, settings.num_fewshot)
    for task in plan.local:
        write_task_yaml(task, plan.folder, max_new_tokens=settings.max_new_tokens)
    return plan


def _plan_entry(settings: TaskSettings, plan: TaskPlan, entry: str, held_out: list[str]) -> None:
    if entry in BUILT_FROM_HELD_OUT:
        if entry == "cloze":
            task, reason = cloze_task(held_out, settings.corpus, plan.folder, language=settings.language, seed=settings.seed,
                                      choices=settings.cloze_choices, max_items=settings.cloze_items)
        else:
            task, reason = heldout_bpb_task(held_out, settings.corpus, plan.folder, language=settings.language,
                                            max_bytes=settings.max_bytes)
        if reason:
            plan.skip(entry, reason)
        else:
            plan.local.append(task)
    elif entry == "builtin":
        from .builtin_tasks import tasks_for_language

        found = [task.name for task in tasks_for_language(settings.language)]
        if not found:
            plan.skip(entry, f"lm-eval has no built-in task for '{settings.language}': the tasks built "
                             "from held-out text still run")
        plan.builtin.extend(found)
    elif entry.endswith((".jsonl", ".yaml", ".yml")):
        path = settings.resolve_path(entry)
        if not path.is_file():
            raise LangbuildError(f"task file '{entry}' not found at {path}: fix eval.tasks")
        if path.suffix == ".jsonl":
            plan.local.append(local_task(path, generation_metric=settings.generation_metric))
        else:
            _add_yaml_task(plan, path)
    else:
        plan.builtin.append(entry)


def _add_yaml_task(plan: TaskPlan, path: Path) -> None:
    for name in _yaml_task_names(path):
        plan.yaml_tasks[name] = path.parent


def _check_builtin(plan: TaskPlan) -> None:
    if not plan.builtin:
        return
    from .builtin_tasks import check_task_names

    known, unknown = check_task_names(list(dict.fromkeys(plan.builtin)))
    plan.builtin = known
    for name, reason in unknown:
        plan.skip(name, reason)


def _assign_fewshot(plan: TaskPlan, num_fewshot: int | dict[str, int]) -> None:
    """plan.fewshot from eval.num_fewshot. Bits-per-byte tasks score text without a prompt, so they stay at 0."""
    rolling = {t.name for t in plan.local if t.kind == "rolling"}
    names = [name for name in plan.names() if name not in rolling]
    if isinstance(num_fewshot, int):
        plan.fewshot = {name: num_fewshot for name in names if num_fewshot}
        return
    for key, shots in num_fewshot.items():
        targets = [name for name in plan.entries.get(key, [key]) if name in plan.names()]
        if not targets:
            plan.skip(f"eval.num_fewshot.{key}", f"'{key}' is not among the tasks run ({', '.join(plan.names()) or 'none'}): "
                                                 "name a task or an eval.tasks entry")
        plan.fewshot.update({name: shots for name in targets if name not in rolling and shots})


def fewshot_key(plan: TaskPlan) -> str:
    """A tag of the few-shot counts for the name of lm-eval's answer cache: empty when every task is zero-shot."""
    from ..core.hashing import hash_json

    return f"-fewshot-{hash_json(sorted(plan.fewshot.items()))[:8]}" if plan.fewshot else ""


# ---------------------------------------------------------------- models


def point_tasks_at(plan: TaskPlan, final: Path, max_new_tokens: int) -> None:
    """Rewrite the generated tasks' YAML to read their data from ``final``, where the step's folder of
    tasks ends up, so anyone can re-run them with lm-eval (``--include_path eval/tasks``)."""
    for task in plan.local:
        if task.data_file.parent == plan.folder.resolve():
            write_task_yaml(dataclasses.replace(task, data_file=final / task.data_file.name), plan.folder,
                            max_new_tokens=max_new_tokens)
