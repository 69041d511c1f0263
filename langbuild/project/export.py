"""``langbuild export``: the trained model as a clean Hugging Face folder, ready to upload or share.

Only what loading needs travels: safetensors weights (and their index), config.json,
generation_config.json, the tokenizer files, and README.md = the model card. Checkpoints, optimizer
state and pickled ``.bin``/``.pt`` files never do: they are large, and pickles run code when loaded.

The folder is assembled in a staging folder next to the destination and renamed into place at the
end, so an interrupted export leaves either the previous folder or the new one, never half of each.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..core.atomic import replace_dir
from ..core.errors import LangbuildError

CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt", "vocab.txt",
                   "chat_template.jinja", "chat_template.json")


def _project(project):
    from ..core.project import Project

    return project if isinstance(project, Project) else Project(Path(project))


def _step_states(project) -> dict[str, str]:
    from ..pipeline import status

    return {row["step"]: row["state"] for row in status(project)}


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def model_files(model_dir: Path) -> list[Path]:
    """The files of ``model_dir`` an exported folder keeps: weights as safetensors only, config, tokenizer, code."""
    if not model_dir.is_dir():
        return []
    keep = []
    for path in sorted(model_dir.iterdir()):
        if not path.is_file():
            continue  # checkpoints and any other sub-folder stay behind
        name = path.name
        if (name.endswith(".safetensors") or name.endswith(".safetensors.index.json") or name in CONFIG_FILES
                or name in TOKENIZER_FILES or name.endswith(".py")):  # .py: a trust_remote_code model's own code
            keep.append(path)
    return keep


def _check_trained(project, states: dict[str, str]) -> list[Path]:
    state = states.get("train", "pending")
    model_dir = project.step_dir("train") / "model"
    files = model_files(model_dir)
    if state != "done" or not (model_dir / "config.json").is_file():
        raise LangbuildError(f"there is no up-to-date trained model to export (train is {state}): run 'langbuild run' first")
    if not any(p.name.endswith(".safetensors") for p in files):
        raise LangbuildError(f"{model_dir} has no .safetensors weights: re-run training with 'langbuild run --force train'")
    return files


def _dangerous(destination: Path, project_root: Path) -> str | None:
    """Why replacing ``destination`` could destroy something that is not an old export, else None."""
    if _is_within(project_root, destination):
        return "it contains the project itself"
    if destination == Path(destination.anchor) or _is_within(Path.home().resolve(), destination):
        return "it is a root folder or contains your home folder"
    if _is_within(Path.cwd().resolve(), destination):
        return "it contains the current folder"
    return None


def check_destination(project, destination: Path, force: bool) -> Path:
    """The resolved destination, or a one-line refusal: inside a step folder, non-empty without --force, unsafe."""
    destination = Path(os.path.expanduser(str(destination))).resolve()
    for folder in [project.step_dir(step) for step in _step_names()] + [project.state_dir]:
        if _is_within(destination, folder.resolve()):
            raise LangbuildError(f"{destination} is inside the step folder {folder.name}/, which langbuild replaces on every "
                                 "run: export somewhere else")
    danger = _dangerous(destination, project.root.resolve())
    if danger:
        raise LangbuildError(f"will not export into {destination}: {danger}; choose a new folder")
    if destination.exists() and not destination.is_dir():
        raise LangbuildError(f"{destination} exists and is not a folder: choose a folder path")
    if destination.is_dir() and any(destination.iterdir()):
        if not force:
            raise LangbuildError(f"{destination} is not empty: choose a new folder, or pass --force to replace it")
        if not (destination / EXPORT_MARKER).is_file():  # --force replaces earlier exports, nothing else
            raise LangbuildError(f"{destination} is not a langbuild export (no {EXPORT_MARKER}), so --force will not "
                                 "replace it: choose a new or empty folder")
    return destination


EXPORT_MARKER = ".langbuild-export"


def _step_names() -> list[str]:
    from ..pipeline import STEP_NAMES

    return STEP_NAMES


def _copy(files: list[Path], staging: Path) -> None:
    for source in files:
        target = staging / source.name
        shutil.copyfile(source, target)
        if target.stat().st_size != source.stat().st_size:
            raise LangbuildError(f"copying {source} to {target} came out short: is the disk full?")


def export_model(project, destination: Path, force: bool = False) -> Path:
    """Write the trained model of ``project`` as a Hugging Face folder at ``destination``; returns its path.

    Holds the project's run lock, so a ``langbuild run`` cannot replace train/ mid-copy (callers must not
    hold it themselves). The card includes eval's numbers only when eval is up to date with the model.
    """
    from ..reporting.card import render_card

    project = _project(project)
    with project.exclusive():
        destination = check_destination(project, Path(destination), force)
        states = _step_states(project)
        files = _check_trained(project, states)
        card = render_card(project, include_eval=states.get("eval") == "done")
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Not mkdtemp: its 0700 mode would carry over to the exported folder.
        staging = destination.parent / f".{destination.name}.export-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        trash = destination.parent / f".{destination.name}.export-trash"
        try:
            _copy(files, staging)
            (staging / "README.md").write_text(card, encoding="utf-8")
            (staging / EXPORT_MARKER).write_text(f"exported from {project.root}\n", encoding="utf-8")
            replace_dir(staging, destination, trash)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(trash, ignore_errors=True)
    return destination


def _held_out_lines(project, limit: int = 200) -> list[str]:
    """Up to ``limit`` non-empty lines of the project's validation text, for checking the GGUF."""
    from itertools import islice

    from ..corpus.shards import read_split

    documents = (line for doc in read_split(project.step_dir("corpus"), "valid") for line in doc.splitlines())
    return list(islice((line for line in documents if line.strip()), limit))


def export_gguf(project, destination: Path, out_type: str, force: bool = False, check: bool = True):
    """Write the trained model of ``project`` as the GGUF file ``destination``; returns (summary, check or None).

    With ``check``, the file is read back by transformers' GGUF loader and compared with the trained
    model on the project's held-out text (token ids of every line, logits on a few).
    """
    from ..models.gguf_export import check_gguf, write_gguf

    project = _project(project)
    destination = Path(os.path.expanduser(str(destination))).resolve()
    if destination.suffix != ".gguf":
        raise LangbuildError(f"{destination.name} does not end in .gguf: name the file to write, e.g. model-{out_type}.gguf")
    if destination.exists() and not force:
        raise LangbuildError(f"{destination} exists: choose a new file name, or pass --force to replace it")
    if destination.is_dir():
        raise LangbuildError(f"{destination} is a folder: name a .gguf file")
    with project.exclusive():
        _check_trained(project, _step_states(project))
        model_dir = project.step_dir("train") / "model"
        destination.parent.mkdir(parents=True, exist_ok=True)
        summary = write_gguf(model_dir, destination, out_type, name=f"{project.root.name} (langbuild)")
        lines = _held_out_lines(project) if check else []
        result = check_gguf(model_dir, destination, lines) if lines else None
    return summary, result
