"""Writes that are all-or-nothing: a kill at any moment leaves the old file or the new one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .faults import crash_point


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0666 minus the umask (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _default_mode())  # reports and settings are meant to be shared like any other file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            crash_point(f"write-partial:{path.name}")
            handle.write(data[len(data) // 2:])
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def replace_dir(staging: Path, final: Path, trash_root: Path) -> None:
    """Move ``staging`` into place as ``final``.

    Linux cannot rename a folder over a non-empty one, so the old folder first moves to
    ``trash_root``; :func:`recover_dir` puts it back if a kill lands between the two renames.
    """
    trash_root.mkdir(parents=True, exist_ok=True)
    trash = trash_root / final.name
    if trash.exists():
        shutil.rmtree(trash)
    if final.exists():
        os.replace(final, trash)
        crash_point("staging-move:between-renames")
    os.replace(staging, final)
    _fsync_dir(final.parent)
    shutil.rmtree(trash, ignore_errors=True)


def recover_dir(final: Path, trash_root: Path) -> None:
    """Undo a half-finished :func:`replace_dir`: restore the old folder or drop the stale copy."""
    trash = trash_root / final.name
    if not trash.exists():
        return
    if final.exists():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(trash, final)
