"""Creating a project folder from templates/project: the one function both the wizard and the flags call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from ..core.atomic import atomic_write_text
from ..core.config import CONFIG_NAME, check_required, check_rules, set_value, validate_document
from ..core.errors import LangbuildError
from ..core.resources import templates_dir


def template_dir() -> Path:
    """The project template: the langbuild.toml, README.md and gitignore a new project starts from."""
    return templates_dir() / "project"


def render_config(answers: dict[str, Any]) -> str:
    """The template's langbuild.toml with ``answers`` (dotted keys, typed values) filled in, comments kept."""
    doc = tomlkit.parse((template_dir() / CONFIG_NAME).read_text(encoding="utf-8"))
    for key, value in answers.items():
        set_value(doc, key, value)
    config = validate_document(doc.unwrap(), CONFIG_NAME)
    check_required(config, CONFIG_NAME)
    check_rules(config, CONFIG_NAME)
    return tomlkit.dumps(doc)


def create_project(directory: Path, answers: dict[str, Any]) -> Path:
    """Write langbuild.toml, README.md and .gitignore into ``directory``; never overwrite a project."""
    directory = Path(directory)
    if (directory / CONFIG_NAME).exists():
        raise LangbuildError(
            f"{directory} already holds a langbuild project: change it with 'langbuild config set', or pick a new folder"
        )
    if directory.exists() and not directory.is_dir():
        raise LangbuildError(f"{directory} exists and is not a folder: pick another project folder")
    config_text = render_config(answers)  # validate everything before writing anything
    name = answers.get("project.name") or directory.resolve().name
    readme = (template_dir() / "README.md").read_text(encoding="utf-8")
    readme = readme.replace("{{name}}", name).replace("{{language}}", str(answers.get("project.language", "")))
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "README.md").exists():  # a folder of the user's may already have one
        atomic_write_text(directory / "README.md", readme)
    atomic_write_text(directory / ".gitignore", (template_dir() / "gitignore").read_text(encoding="utf-8"))
    atomic_write_text(directory / CONFIG_NAME, config_text)  # last: its presence marks a finished project
    return directory
