"""templates/project/langbuild.toml, written from the schema: every setting, its default and its help.

The schema (config.py) is the one place a setting is described; the template a new project starts
from is generated from it, so the two cannot drift. After changing the schema, regenerate with
``python -m langbuild.core.settings_template`` (a test fails until the file matches).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomlkit

from .config import SCHEMA, SECTION_HELP, Setting

HEADER = (
    "# langbuild project settings. Paths are relative to this folder.\n"
    "# Change one value from a script with: langbuild config set SECTION.KEY VALUE\n"
)


def _comment(setting: Setting) -> str:
    choices = f" ({' | '.join(setting.choices)})" if setting.choices else ""
    required = " [required]" if setting.required else ""
    return f"# {setting.help}{choices}{required}"


def _value(setting: Setting) -> str:
    return tomlkit.item(setting.default).as_string()


def settings_template() -> str:
    """The text of templates/project/langbuild.toml."""
    blocks = [HEADER]
    for section, items in SCHEMA.items():
        lines = [f"# {SECTION_HELP[section]}", f"[{section}]"]
        for name, setting in items.items():
            lines += [_comment(setting), f"{name} = {_value(setting)}"]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def template_path() -> Path:
    """The template in this source checkout (the generator is a tool for changing langbuild itself)."""
    return Path(__file__).resolve().parents[2] / "templates" / "project" / "langbuild.toml"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else template_path()
    path.write_text(settings_template(), encoding="utf-8")
    print(f"wrote {path}")
