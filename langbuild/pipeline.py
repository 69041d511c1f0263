"""The ordered steps, and running them resumably.

A step is skipped when its fingerprint (code version + the settings it reads + the fingerprints of
the steps it depends on + hashes of its external inputs) equals the one in langbuild.lock and its
recorded outputs are still on disk. Otherwise it runs in a staging folder that is moved into place
only after it succeeded; the lock is rewritten atomically after that move.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from .core.atomic import atomic_write_text, recover_dir, replace_dir
from .core.config import SCHEMA, changes_nothing, check_rules, fingerprinted_settings, steps_changed_by
from .core.errors import LangbuildError, UsageError, one_line
from .core.faults import crash_point
from .core.hashing import hash_file, hash_json, hash_tree
from .core.project import Project

CHECKPOINT_DIR = "checkpoints"  # resumption state, not an output: never hashed, free to delete


@dataclass
class StepContext:
    project: Project
    out: Path
    console: Console
    name: str

    @property
    def config(self):
        return self.project.config

    def output_of(self, step: str) -> Path:
        return self.project.step_dir(step)


@dataclass(frozen=True)
class Step:
    name: str
    help: str
    needs: tuple[str, ...]
    version: str
    module: str
    resumable: bool = False
    external_inputs: Callable[[Project], dict[str, Any]] | None = field(default=None, compare=False)
    # Keys of this step's recorded summary that later steps depend on, instead of its fingerprint and
    # every output: select's timings and memory estimates change from run to run, but only the model
    # it chose (and that model's files) matters to extend, train and eval.
    passes_on: tuple[str, ...] = ()
    # A step that shows every upstream output (the report) depends on all of them regardless.
    sees_all_upstream: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        """The settings this step's fingerprint holds: the schema says which (Setting.steps)."""
        return fingerprinted_settings(self.name)

    def runner(self) -> Callable[[StepContext], dict]:
        # Imported on use: torch and transformers stay out of CLI start-up and --help.
        import importlib

        return importlib.import_module(f"langbuild.steps.{self.module}").run


def _corpus_inputs(project: Project) -> dict[str, Any]:
    from .corpus.settings import fingerprint_sources

    return fingerprint_sources(project)


def _model_inputs(project: Project) -> dict[str, Any]:
    from .models.loading import fingerprint_candidates

    return fingerprint_candidates(project.config.get("select.candidates"), project.root)


def _texts(project: Project, *settings: str) -> dict[str, Any]:
    from .packaged.reference_texts import fingerprint_text

    out: dict[str, Any] = {}
    for setting in settings:
        out.update(fingerprint_text(project.config.get(setting), project.root, setting))
    return out


def _tokenizer_inputs(project: Project) -> dict[str, Any]:
    return {**_model_inputs(project), **_texts(project, "tokenizer.aligned_target", "tokenizer.aligned_source")}


def _select_inputs(project: Project) -> dict[str, Any]:
    return {**_model_inputs(project), **_texts(project, "eval.source_text")}


def _extend_inputs(project: Project) -> dict[str, Any]:
    return _texts(project, "extend.protect_text", "extend.protected_words", "extend.zero_shot_text",
                  "extend.source_vectors", "extend.target_vectors", "extend.dictionary")


def _train_inputs(project: Project) -> dict[str, Any]:
    """What decides the replay data, only when there is replay. For ``self`` the base model that
    samples it is not here: select passes on the chosen model's identity (chosen_model) through extend."""
    from .packaged.reference_texts import PACKAGED_TEXTS
    from .training.replay import SELF

    config = project.config
    if config.get("train.replay_fraction") <= 0:
        return {}
    spec = config.get("train.replay_text")
    budget = {"train.replay_tokens": config.get("train.replay_tokens")}
    if spec == SELF:
        return {**budget, **_texts(project, "train.replay_prompts")}
    if spec in PACKAGED_TEXTS:
        return {**budget, **_texts(project, "train.replay_text")}
    return {**budget, f"train.replay_text={spec}": _replay_source_inputs(project, spec)}


def _replay_source_inputs(project: Project, spec: str) -> Any:
    """A replay file's hash (as for any text), a dataset folder's file hashes, or a hub dataset's full name."""
    from .corpus.fingerprint import fingerprint_location
    from .training.replay import replay_source_files

    digests = dict(fingerprint_location(kind, location, project.root)
                   for kind, location in replay_source_files(spec, project.root))
    return next(iter(digests.values())) if len(digests) == 1 and not spec.startswith("hf:") else digests


def _eval_inputs(project: Project) -> dict[str, Any]:
    from .models.loading import fingerprint_candidates

    files = {}
    for entry in project.config.get("eval.tasks"):
        if entry.endswith((".jsonl", ".yaml", ".yml")):
            path = project.resolve_path(entry)
            files[f"eval.tasks={entry}"] = hash_file(path) if path.is_file() else "missing"  # eval reports a missing one
    models = fingerprint_candidates(project.config.get("eval.models"), project.root)
    # lm-eval's version decides which built-in tasks exist and how every task is scored.
    harness = {"lm_eval": _package_version("lm-eval")}
    return {**_texts(project, "eval.source_text"), **files, **({"eval.models": models} if models else {}), **harness}


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


# Which settings each step's fingerprint holds is declared in the schema (core/config.py, Setting.steps):
# e.g. checkpoint cadence, threads and the process count change how train runs, not what it makes
# (resume is exact; processes share one global batch), so changing them never throws away training.
STEPS: list[Step] = [
    Step("corpus", "clean, filter, identify the language, de-duplicate and split the target-language text",
         (), "2", "corpus", external_inputs=_corpus_inputs),
    Step("tokenizer", "train a target-language tokenizer and compare it with the base tokenizers",
         ("corpus",), "2", "tokenizer", external_inputs=_tokenizer_inputs),
    Step("select", "score the candidate base models on held-out text and choose one",
         ("corpus",), "2", "select", external_inputs=_select_inputs, passes_on=("chosen", "chosen_model")),
    Step("extend", "add target-language tokens to the base model and initialise their embeddings",
         ("corpus", "tokenizer", "select"), "5", "extend", external_inputs=_extend_inputs),
    Step("train", "continued pretraining of the extended model on the train split",
         ("corpus", "extend"), "2", "train", external_inputs=_train_inputs, resumable=True),
    Step("eval", "bits per byte, benchmarks and generation speed: base vs extended vs trained",
         ("corpus", "select", "extend", "train"), "2", "evaluate", external_inputs=_eval_inputs),
    Step("report", "write report/report.md, report.html and model_card.md",
         ("corpus", "tokenizer", "select", "extend", "train", "eval"), "5", "report", sees_all_upstream=True),
]
STEP_NAMES = [step.name for step in STEPS]


def get_step(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise UsageError(f"unknown step '{name}': steps are {', '.join(STEP_NAMES)}")


def fingerprints(project: Project, steps: list[Step] | None = None,
                 problems: dict[str, str] | None = None, input_cache: dict[str, Any] | None = None) -> dict[str, str]:
    """Current fingerprint of each step, computed in order so each includes its upstream ones.

    Besides the upstream fingerprints, each includes the upstream outputs recorded in the lock, so a
    step re-runs when an earlier step was re-run and produced something different.

    An input that cannot be read (a missing corpus file, say) does not stop the computation: the step
    gets a fingerprint that matches nothing, and the reason goes into ``problems`` for the caller to
    show or raise when that step is due. ``input_cache`` keeps input hashes across calls in one run,
    so corpus files are hashed once, not once per step.
    """
    lock = project.lock()
    result: dict[str, str] = {}
    for step in steps or STEPS:
        if input_cache is not None and step.name in input_cache:
            inputs = input_cache[step.name]
        else:
            try:
                inputs = step.external_inputs(project) if step.external_inputs else {}
            except LangbuildError as err:
                inputs = {"unreadable": str(err)}
            if input_cache is not None:
                input_cache[step.name] = inputs
        if "unreadable" in inputs and problems is not None:
            problems[step.name] = one_line(inputs["unreadable"])
        result[step.name] = hash_json({
            "step": step.name,
            "code": f"{__version__}/{step.version}",
            "config": project.config.subset(list(step.reads)),
            "upstream": {need: _upstream_identity(lock, get_step(need), result[need], step) for need in step.needs},
            "inputs": inputs,
        })
    return result


def _upstream_identity(lock, upstream: Step, fingerprint: str, consumer: Step) -> Any:
    """What ``consumer`` depends on from ``upstream``: its fingerprint and recorded outputs, or, while
    the upstream step is up to date and declares ``passes_on``, just those values of its summary."""
    entry = lock.entry(upstream.name) or {}
    if upstream.passes_on and not consumer.sees_all_upstream and entry.get("fingerprint") == fingerprint:
        summary = entry.get("summary") or {}
        return {"passes_on": {key: summary.get(key) for key in upstream.passes_on}}
    return {"fingerprint": fingerprint, "outputs": hash_json(entry.get("outputs"))}


def step_state(project: Project, step: Step, fingerprint: str, lock_entry: dict | None) -> str:
    if not lock_entry or not lock_entry.get("fingerprint"):
        return "failed" if lock_entry and "failed" in lock_entry else "pending"
    if "failed" in lock_entry and lock_entry["failed"].get("fingerprint") == fingerprint:
        return "failed"
    if lock_entry["fingerprint"] != fingerprint:
        return "stale"
    if not _outputs_present(project, step.name, lock_entry):
        return "stale"
    return "done"


def _outputs_present(project: Project, name: str, entry: dict) -> bool:
    root = project.step_dir(name)
    if not root.is_dir():
        return False
    for rel, record in (entry.get("outputs") or {}).items():
        path = root / rel
        if not path.is_file() or path.stat().st_size != record["size"]:
            return False
    return True


def status(project: Project) -> list[dict[str, Any]]:
    """Read-only: it never moves folders, so it is safe while another command runs."""
    problems: dict[str, str] = {}
    current = fingerprints(project, problems=problems)
    lock = project.lock()
    rows = []
    upstream_not_done: set[str] = set()
    for step in STEPS:
        entry = lock.entry(step.name)
        state = step_state(project, step, current[step.name], entry)
        if state == "done" and any(need in upstream_not_done for need in step.needs):
            state = "stale"
        if state != "done":
            upstream_not_done.add(step.name)
        error = ((entry or {}).get("failed") or {}).get("message") if state == "failed" else None
        rows.append({
            "step": step.name,
            "state": state,
            "finished": (entry or {}).get("finished"),
            "seconds": (entry or {}).get("seconds"),
            "error": problems.get(step.name, error),
        })
    return rows


def _recover(project: Project) -> None:
    """Finish or undo any folder swap that a kill interrupted, and drop lock writes it cut short."""
    project.check_no_symlinks(STEP_NAMES)
    for step in STEPS:
        recover_dir(project.step_dir(step.name), project.trash_dir)
    for leftover in project.root.glob(f".{project.lock_path.name}.*.tmp"):  # atomic writes never renamed
        leftover.unlink(missing_ok=True)


def _warn_about_remote_code(project: Project, console: Console) -> None:
    if project.config.get("project.trust_remote_code"):
        console.print("[yellow]warning: project.trust_remote_code is on: Python files shipped with the models will run "
                      "on this machine with your permissions; turn it off unless you trust every model's authors[/]")


def _select_steps(until: str | None, from_: str | None) -> list[Step]:
    start = STEP_NAMES.index(get_step(from_).name) if from_ else 0
    stop = STEP_NAMES.index(get_step(until).name) if until else len(STEPS) - 1
    if start > stop:
        raise UsageError(f"--from {from_} comes after --until {until}")
    return STEPS[: stop + 1], start


def run(project: Project, console: Console, until: str | None = None, from_: str | None = None,
        force: bool | set[str] = False) -> list[dict[str, Any]]:
    """Run steps up to ``until``; steps before ``from_`` must already be up to date.

    ``force`` re-runs every selected step (True) or the named ones (a set), even when up to date.
    """
    steps, start = _select_steps(until, from_)
    check_rules(project.config, str(project.config_path))  # before any work, whichever steps are due
    results = []
    with project.exclusive():
        _recover(project)
        _warn_about_remote_code(project, console)
        input_cache: dict[str, Any] = {}
        for index, step in enumerate(steps):
            problems: dict[str, str] = {}
            current = fingerprints(project, steps[: index + 1], problems, input_cache)  # after the steps just run
            forced = force is True or (isinstance(force, set) and step.name in force)
            lock = project.lock()
            entry = lock.entry(step.name)
            state = step_state(project, step, current[step.name], entry)
            if index < start:
                if state != "done":
                    raise LangbuildError(
                        f"step '{step.name}' is {state}, so --from {steps[start].name} cannot start yet: "
                        f"run 'langbuild run --until {step.name}' first"
                    )
                continue
            if state == "done" and not forced:
                console.print(f"[green]✓[/] {step.name}: up to date, skipped")
                results.append({"step": step.name, "ran": False})
                continue
            if step.name in problems:
                raise LangbuildError(problems[step.name])
            summary = _run_step(project, step, current[step.name], console)
            results.append({"step": step.name, "ran": True, "summary": summary})
    return results


CHECK_READS = "LANGBUILD_CHECK_SETTINGS"  # set by the test suite: every step run checks what it read


def settings_behind(step: Step) -> set[str]:
    """Every setting whose change re-runs ``step`` (its own fingerprint, or an upstream one that reaches
    it), plus those that change nothing: the settings ``step`` may read without going stale."""
    own = {f"{section}.{name}" for section, items in SCHEMA.items() for name in items
           if step.name in steps_changed_by(f"{section}.{name}") or changes_nothing(f"{section}.{name}")}
    for need in map(get_step, step.needs):
        if need.passes_on and not step.sees_all_upstream:
            continue  # only the values it passes on reach this step, not its settings
        own |= settings_behind(need)
    return own


def unfingerprinted_reads(step: Step, reads: set[str]) -> list[str]:
    """Settings ``step`` read that no fingerprint behind it holds: a change would reuse a stale output."""
    return sorted(reads - settings_behind(step))


def _check_reads(step: Step, reads: set[str]) -> None:
    if not os.environ.get(CHECK_READS):
        return
    stale = unfingerprinted_reads(step, reads)
    if stale:
        raise AssertionError(
            f"step '{step.name}' read {', '.join(stale)}, which no fingerprint behind it holds: declare the step "
            "in the setting's steps/also (langbuild/core/config.py), or mark the setting HOW if it changes nothing"
        )


def _prepare_staging(project: Project, step: Step, fingerprint: str) -> Path:
    staging = project.staging_dir(step.name)
    marker = staging / ".fingerprint"
    keep = step.resumable and marker.is_file() and marker.read_text().strip() == fingerprint
    if staging.exists() and not keep:
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    if not keep:
        atomic_write_text(marker, fingerprint)
    return staging


def _record_outputs(staging: Path) -> dict[str, dict[str, Any]]:
    return hash_tree(staging, skip=(CHECKPOINT_DIR,))


def _run_step(project: Project, step: Step, fingerprint: str, console: Console) -> dict:
    console.rule(f"[bold]{step.name}[/]: {step.help}")
    staging = _prepare_staging(project, step, fingerprint)
    ctx = StepContext(project=project, out=staging, console=console, name=step.name)
    started = time.time()
    try:
        with project.config.recording_reads() as reads:
            summary = step.runner()(ctx) or {}
        _check_reads(step, reads)
    except LangbuildError as err:
        project.lock().record_failure(step.name, fingerprint, one_line(err))
        raise
    except Exception as err:  # recorded, then shown by the CLI's handler
        project.lock().record_failure(step.name, fingerprint, one_line(f"{type(err).__name__}: {err}"))
        raise
    outputs = _record_outputs(staging)
    final = project.step_dir(step.name)
    lock = project.lock()
    lock.mark_replacing(step.name)  # a kill during the swap must not pair new files with the old record
    replace_dir(staging, final, project.trash_dir)
    (final / ".fingerprint").unlink(missing_ok=True)
    crash_point("staging-move:before-lock")
    seconds = time.time() - started
    lock.record_success(step.name, fingerprint, outputs, seconds, summary)
    console.print(f"[green]✓[/] {step.name}: done in {seconds:.1f} s")
    return summary
