"""Typer wiring only: each command checks its flags and calls the library."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .core.environment import go_offline, truthy
from .core.errors import LangbuildError, UsageError, debug_enabled, one_line

app = typer.Typer(
    help="Turn text in a low-resource language plus a pretrained model into a better model for it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Read or change one setting of langbuild.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console(highlight=False)

@app.callback()
def options(
    offline: bool = typer.Option(False, "--offline", help="never use the network (also: HF_HUB_OFFLINE=1); "
                                 "models and data must be local or already cached"),
) -> None:
    """Turn a pile of text in a low-resource language plus a pretrained model into a better model for it."""
    if offline or truthy(os.environ.get("HF_HUB_OFFLINE")):
        # The libraries read their switches when first imported, which is after this;
        # HF_HUB_OFFLINE alone is taken to mean all of them, as --offline does.
        go_offline()


ProjectDir = typer.Option(Path("."), "-C", "--project", help="project folder (default: the current one)")


def _open(directory: Path):
    from .core.project import Project

    return Project(directory)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    from .core.config import parse_cli_value

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects section.key=value, got {item!r}")
        values[key.strip()] = parse_cli_value(key.strip(), value.strip())
    return values


def _interactive(yes: bool, interactive: bool | None) -> bool:
    if interactive is not None:
        return interactive
    return not yes and sys.stdin.isatty()


@app.command()
def init(
    directory: Path = typer.Argument(..., help="folder for the new project"),
    language: str | None = typer.Option(None, "--language", "-l", help="ISO 639 code of the target language"),
    corpus: list[str] = typer.Option([], "--corpus", help="target-language text: file, folder or glob (repeatable)"),
    base_model: list[str] = typer.Option([], "--base-model", help="candidate base model (repeatable)"),
    sets: list[str] = typer.Option([], "--set", help="any setting as section.key=value (repeatable)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="never ask; missing answers are errors"),
    interactive: bool | None = typer.Option(None, "--interactive/--no-interactive", help="force the wizard on or off"),
) -> None:
    """Create a project folder (asks on a terminal; takes flags in scripts and CI)."""
    from .project.scaffold import create_project

    answers = _parse_sets(sets)
    if language:
        answers["project.language"] = language
    if corpus:
        answers["corpus.paths"] = list(corpus)
    if base_model:
        answers["select.candidates"] = list(base_model)
    if _interactive(yes, interactive):
        from .project.wizard import run_wizard

        run_wizard(directory, answers, console)
        return
    if not answers.get("project.language"):
        raise UsageError("missing --language: give the target language code, e.g. --language nya")
    if not answers.get("corpus.paths"):
        raise UsageError("missing --corpus: give at least one file, folder or glob of target-language text")
    create_project(directory, answers)
    folder = escape(str(directory))
    console.print(f"[green]✓[/] created {escape(str(directory / 'langbuild.toml'))}; next: langbuild run -C {folder}")


def _step_command(step_name: str, help_text: str):
    def command(
        project: Path = ProjectDir,
        force: bool = typer.Option(False, "--force", help="re-run this step even if it is up to date"),
    ) -> None:
        from . import pipeline

        pipeline.run(_open(project), console, until=step_name, force={step_name} if force else False)

    command.__doc__ = f"{help_text[0].upper()}{help_text[1:]} (runs earlier steps first if needed)."
    return command


def _step_command_saving(step_name: str, help_text: str, flag: str, key: str, option_help: str, metavar: str):
    """A step command with one option that is saved into langbuild.toml as ``key`` before the run."""
    def command(
        project: Path = ProjectDir,
        force: bool = typer.Option(False, "--force", help="re-run this step even if it is up to date"),
        value: str | None = typer.Option(None, flag, metavar=metavar, help=f"{option_help} (saved as {key})"),
    ) -> None:
        from . import pipeline

        if value is not None:
            _save_setting(project, key, value)
        pipeline.run(_open(project), console, until=step_name, force={step_name} if force else False)

    command.__doc__ = f"{help_text[0].upper()}{help_text[1:]} (runs earlier steps first if needed)."
    return command


# Steps whose command takes one setting as a flag: (flag, setting, help, metavar).
STEP_FLAGS = {
    "extend": ("--compare", "extend.compare",
               "initialisations to compare by a short probe, e.g. subword-mean,focus,tokenadapt; the best is kept", "A,B,..."),
    "train": ("--num-processes", "train.num_processes",
              "train in N processes (GPUs, or CPU processes) through accelerate launch", "N"),
}


def _save_setting(project: Path, key: str, text: str) -> None:
    """Write one setting into langbuild.toml (validated first, comments kept), as 'config set' does."""
    import tomlkit

    from .core.atomic import atomic_write_text
    from .core.config import CONFIG_NAME, broken_rules, parse_cli_value, read_document, set_value, validate_document

    path = project / CONFIG_NAME
    doc = read_document(path)
    set_value(doc, key, parse_cli_value(key, text))
    config = validate_document(doc.unwrap(), str(path))
    atomic_write_text(path, tomlkit.dumps(doc))
    # A pair of settings is often changed one at a time, so a broken rule is said here and refused by a run.
    for message in broken_rules(config):
        console.print(f"[yellow]note:[/] {message} (a run refuses this until then)", highlight=False)


def _eval_command(help_text: str):
    def command(
        project: Path = ProjectDir,
        force: bool = typer.Option(False, "--force", help="re-run this step even if it is up to date"),
        tasks: str | None = typer.Option(None, "--tasks", metavar="A,B,...",
                                         help="benchmarks to run, e.g. cloze,heldout-bpb,belebele_nya_Latn (saved as eval.tasks)"),
        list_tasks: bool = typer.Option(False, "--list-tasks", help="show lm-eval's built-in tasks for the language and stop"),
        language: str | None = typer.Option(None, "--language", help="with --list-tasks: this language instead of the project's"),
    ) -> None:
        if list_tasks:
            _list_tasks(language or _open(project).config.get("project.language"))
            return
        from . import pipeline

        if tasks is not None:
            _save_setting(project, "eval.tasks", tasks)
        pipeline.run(_open(project), console, until="eval", force={"eval"} if force else False)

    command.__doc__ = f"{help_text[0].upper()}{help_text[1:]} (runs earlier steps first if needed)."
    return command


def _list_tasks(language: str) -> None:
    from .evaluation.builtin_tasks import render_task_table, tasks_for_language

    found = tasks_for_language(language)
    if found:
        console.print(render_task_table(language, found))
    else:
        console.print(f"lm-eval has no built-in task for '{escape(language)}'")
    console.print("langbuild also builds two tasks from your held-out text: cloze and heldout-bpb (the default "
                  "eval.tasks). Built-in tasks download their data from the Hugging Face hub the first time.")


def _register_steps() -> None:
    from .pipeline import STEPS

    for step in STEPS:
        if step.name == "eval":
            command = _eval_command(step.help)
        elif step.name in STEP_FLAGS:
            command = _step_command_saving(step.name, step.help, *STEP_FLAGS[step.name])
        else:
            command = _step_command(step.name, step.help)
        app.command(name=step.name)(command)


@app.command()
def run(
    project: Path = ProjectDir,
    until: str | None = typer.Option(None, "--until", help="stop after this step"),
    from_: str | None = typer.Option(None, "--from", help="start at this step (earlier ones must be done)"),
    force: bool = typer.Option(False, "--force", help="re-run the selected steps even if up to date"),
) -> None:
    """Run every step that is not up to date, in order."""
    from . import pipeline

    started = time.time()
    pipeline.run(_open(project), console, until=until, from_=from_, force=force)
    console.print(f"[bold green]all done[/] in {time.time() - started:.0f} s")


@app.command()
def export(
    destination: Path = typer.Argument(..., help="folder to write the model into (must be empty or new)"),
    project: Path = ProjectDir,
    force: bool = typer.Option(False, "--force", help="replace the destination's contents"),
    gguf: str | None = typer.Option(None, "--gguf", metavar="TYPE", help="write one GGUF file (llama.cpp, Ollama) "
                                    "instead: f32, f16, bf16 or q8_0; DESTINATION is then the .gguf file"),
    check: bool = typer.Option(True, "--check/--no-check", help="with --gguf: read the file back and compare it "
                               "with the trained model on held-out text"),
) -> None:
    """Write the trained model as a clean Hugging Face folder: safetensors, tokenizer and a model card."""
    from .project.export import export_model

    if gguf is not None:
        _export_gguf(project, destination, gguf, force, check)
        return
    written = export_model(_open(project), destination, force)
    console.print(f"[green]✓[/] exported to {escape(str(written))}; upload with: huggingface-cli upload NAME {escape(str(written))}")


def _export_gguf(project: Path, destination: Path, out_type: str, force: bool, check: bool) -> None:
    from .models.gguf_export import GGUF_TYPES
    from .project.export import export_gguf

    if out_type not in GGUF_TYPES:
        raise UsageError(f"--gguf {out_type}: choose one of {', '.join(GGUF_TYPES)}")
    summary, result = export_gguf(_open(project), destination, out_type, force, check)
    console.print(f"[green]✓[/] wrote {escape(str(summary.path))} ({summary.architecture}, {out_type}, "
                  f"{summary.bytes / 1e6:,.1f} MB, {summary.vocabulary:,} tokens)")
    if result is None:
        return
    colour = "green" if result.tokenizer_identical else "red"
    console.print(f"  [{colour}]tokenizer read back: same ids on {result.lines_same_ids}/{result.lines} held-out lines[/]; "
                  f"logits: max difference {result.max_abs_logit_diff:.2g} (largest logit {result.max_abs_logit:.3g})")
    if not result.tokenizer_identical:
        raise LangbuildError(f"the GGUF's tokenizer splits held-out text differently, e.g. {result.first_different_line!r}: "
                             "please report this with the model folder")


@app.command()
def status(project: Path = ProjectDir, as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Show each step as done, stale, pending or failed."""
    from . import pipeline

    rows = pipeline.status(_open(project))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="langbuild status")
    for column in ("step", "state", "finished", "seconds", "error"):
        table.add_column(column)
    colours = {"done": "green", "stale": "yellow", "pending": "dim", "failed": "red"}
    for row in rows:
        table.add_row(row["step"], f"[{colours[row['state']]}]{row['state']}[/]", row["finished"] or "",
                      f"{row['seconds']:.1f}" if row["seconds"] else "", escape(row["error"] or ""))
    console.print(table)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="machine-readable output, for bug reports")) -> None:
    """What this machine offers: devices, memory, fast bf16, packages, offline state, caches."""
    from .machine.inventory import machine_report

    report = machine_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(_doctor_table(report))


def _doctor_table(report: dict) -> Table:
    table = Table(title=f"langbuild {report['langbuild']} doctor", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("this machine")
    devices = report["devices"]
    for gpu in devices["gpus"]:
        table.add_row(f"GPU {gpu['index']}", f"{gpu['name']}, {gpu['memory_gb']} GiB, compute {gpu['compute_capability']}")
    if not devices["gpus"]:
        table.add_row("GPU", "[yellow]none[/] (training runs on the CPU)")
    table.add_row("CPU", f"{escape(devices['cpu'])}; {devices['cores_usable']}/{devices['cores']} cores usable, torch "
                  f"threads {devices['torch_threads']}; flags {' '.join(devices['cpu_flags']) or '-'}")
    table.add_row("RAM", f"{devices['ram_gb']} GiB")
    bf16 = report["bf16"]
    table.add_row("fast bf16", ("[green]yes[/]" if bf16["fast"] else "[yellow]no[/]") + f": {escape(bf16['reason'])}")
    table.add_row("python", f"{report['python']} on {escape(report['platform'])}")
    table.add_row("packages", ", ".join(f"{name} {version or '[red]missing[/]'}" for name, version in report["packages"].items()))
    for name, item in report["optional"].items():
        state = f"[green]{item['version']}[/]" if item["version"] else "[dim]not installed[/]"
        table.add_row(f"  {name}", f"{state} ({item['for']})")
    offline = report["offline"]
    table.add_row("offline", f"yes ({', '.join(offline['variables_on'])})" if offline["offline"]
                  else f"no (none of {', '.join(offline['variables_checked'])} is set)")
    for cache in report["caches"]:
        size = f"{cache['size_gb']:.2f} GiB" if cache["exists"] else "[dim]absent[/]"
        table.add_row(cache["name"], f"{escape(cache['path'])}: {size}")
    return table


@config_app.command("get")
def config_get(key: str = typer.Argument(..., help="section.key"), project: Path = ProjectDir) -> None:
    """Print one setting's value."""
    value = _open(project).config.get(key)
    typer.echo(json.dumps(value) if isinstance(value, (list, bool)) else value)


@config_app.command("set")
def config_set(
    key: str = typer.Argument(..., help="section.key"),
    value: str = typer.Argument(..., help="new value (TOML literal or plain text)"),
    project: Path = ProjectDir,
) -> None:
    """Change one setting, keeping the file's comments and layout."""
    import tomlkit

    from .core.config import CONFIG_NAME, read_document

    _save_setting(project, key, value)
    doc = read_document(project / CONFIG_NAME)
    console.print(f"{key} = {tomlkit.item(doc[key.split('.')[0]][key.split('.')[1]]).as_string()}", markup=False)


@app.command()
def demo(
    directory: Path = typer.Argument(Path("langbuild-demo"), help="folder for the demo project"),
    sets: list[str] = typer.Option([], "--set", help="override a demo setting as section.key=value (repeatable)"),
) -> None:
    """Chichewa + SmolLM2-135M, all steps on CPU, from packaged data only (no downloads)."""
    from .project.demo import run_demo

    run_demo(directory, _parse_sets(sets), console)


_register_steps()


def _click_exception_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts) as raised by this Typer: recent ones ship their own copy of click."""
    import click

    errors: tuple[type, ...] = (click.exceptions.ClickException,)
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # older Typer: click itself
        pass
    else:
        errors += (VendoredClickException,)
    return errors, (click.exceptions.Abort, typer.Abort)


_CLICK_ERRORS, _ABORTS = _click_exception_classes()


def main() -> None:
    """Entry point: every user error ends in one line and a non-zero exit; LANGBUILD_DEBUG=1 shows tracebacks."""
    try:
        app(standalone_mode=False)
    except LangbuildError as err:
        _fail(f"error: {one_line(err)}", err.exit_code, err)
    except _ABORTS:
        _fail("aborted", 130, None)
    except _CLICK_ERRORS as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare 'langbuild' or 'langbuild config': help, not an error
            if err.format_message().strip():  # rich help is printed while it is built; plain click returns it
                typer.echo(err.format_message())
            raise SystemExit(err.exit_code) from None
        hint = f" (see: langbuild {_command_words(err.ctx)} --help)" if getattr(err, "ctx", None) and err.ctx.parent else ""
        _fail(f"error: {one_line(err.format_message())}{hint}", 2, err)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to continue where it stopped", 130, None)
    except OSError as err:
        _fail(f"error: {_os_error_message(err)}", 1, err)
    except Exception as err:  # a bug or an environment problem: still one line unless debugging
        _fail(f"error: {type(err).__name__}: {one_line(err)} (set LANGBUILD_DEBUG=1 for the traceback)", 1, err)


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _os_error_message(err: OSError) -> str:
    """The disk problems a user can fix, worded as what to do; finished steps stay in place either way."""
    where = f" {err.filename}" if err.filename else ""
    if err.errno in _NO_SPACE:
        return (f"no space left on the disk{' for' + where if where else ''} ({err.strerror}): free disk space or raise "
                "the file-size limit, then run the same command again (finished steps are kept)")
    if err.errno in _NOT_WRITABLE:
        return (f"cannot write{where} ({err.strerror}): make the project folder writable, or copy it somewhere you can "
                "write, then run the same command again")
    return f"{err.strerror or type(err).__name__}{where} (set LANGBUILD_DEBUG=1 for the traceback)"


def _command_words(ctx) -> str:
    """'config set' for a nested command: the names below the program's own (which may be 'python -m ...')."""
    words = []
    while ctx is not None and ctx.parent is not None:
        words.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(words))


def _fail(message: str, code: int, err: BaseException | None) -> None:
    if err is not None and debug_enabled():
        import traceback

        traceback.print_exception(err)
    # Messages quote user text ('[training]', paths with brackets): never read them as rich markup.
    Console(stderr=True, highlight=False).print(f"[red]{escape(message)}[/]", soft_wrap=True)
    raise SystemExit(code)
