"""The interactive set-up: it only gathers answers, then calls the same create_project as the flags."""

from __future__ import annotations

from typing import Any

import typer

from ..core.config import SCHEMA, parse_cli_value


def _ask_list(question: str, default: list[str]) -> list[str]:
    text = typer.prompt(question + " (comma-separated)", default=", ".join(default) if default else None)
    return [part.strip() for part in text.split(",") if part.strip()]


def _ask_typed(question: str, key: str, default: Any) -> Any:
    while True:
        text = typer.prompt(question, default=str(default))
        try:
            return parse_cli_value(key, text)
        except Exception as err:  # re-ask instead of failing: a person is typing
            typer.secho(f"  {err}", fg="red")


def ask(answers: dict[str, Any]) -> dict[str, Any]:
    """Ask for what a project needs, offering the flags' values (or the defaults) as defaults."""
    result = dict(answers)
    result["project.language"] = typer.prompt(
        "Target language code (ISO 639, e.g. nya)", default=answers.get("project.language") or None
    ).strip()
    result["corpus.paths"] = _ask_list("Corpus files, folders or globs", answers.get("corpus.paths") or [])
    result["select.candidates"] = _ask_list(
        "Candidate base models (local folder, smollm2-135m, gemma3-270m or a hub id)",
        answers.get("select.candidates") or SCHEMA["select"]["candidates"].default,
    )
    for key, question in (
        ("tokenizer.vocab_size", "Target tokenizer vocabulary size (a number, or auto)"),
        ("extend.num_new_tokens", "New tokens to add to the base model (a number, or auto)"),
        ("train.max_steps", "Training steps (budget)"),
    ):
        section, name = key.split(".")
        result[key] = _ask_typed(question, key, answers.get(key, SCHEMA[section][name].default))
    return result
