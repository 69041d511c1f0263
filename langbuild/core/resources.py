"""Files langbuild ships besides its code: the templates a project and a local lm-eval task are made from.

They live in ``templates/`` at the top of the repository, where people edit them. A built wheel carries
a copy inside the package (``langbuild/templates``, copied by setup.py's build step), because an
installed package has no repository next to it. A source checkout (editable install, PYTHONPATH) has
no such copy and reads the repository folder. Both are found relative to the package, so the answer
does not depend on the current directory.
"""

from __future__ import annotations

from pathlib import Path

from .errors import LangbuildError

PACKAGE = Path(__file__).resolve().parent.parent
# Checked in this order: the copy a wheel installs, then the repository a source checkout has.
TEMPLATE_FOLDERS = (PACKAGE / "templates", PACKAGE.parent / "templates")
# A file every complete templates folder has, so a stray folder named "templates" is not taken for it.
MARKER = Path("project") / "langbuild.toml"


def templates_dir() -> Path:
    """The folder holding ``project/`` and ``lm_eval/``."""
    for folder in TEMPLATE_FOLDERS:
        if (folder / MARKER).is_file():
            return folder
    raise LangbuildError(
        f"langbuild's templates are missing (looked in {' and '.join(str(f) for f in TEMPLATE_FOLDERS)}): "
        "reinstall langbuild"
    )
