"""Content hashes for fingerprints and output records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_json(obj: Any) -> str:
    """Hash of a JSON-able value, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def hash_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every file under ``root`` (relative path → size and sha256); hidden files and ``skip`` folders excluded."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in skip:
            continue
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            records[rel.as_posix()] = {"size": path.stat().st_size, "sha256": hash_file(path)}
    return records
