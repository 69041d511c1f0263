"""corpus: gather target-language text, clean it, drop exact duplicates, split train/valid.

Inputs are .txt files (one document per line), .jsonl files (one JSON object per line, the text in
``corpus.text_field``), folders (searched recursively for both) and globs. Output is
``corpus/train.jsonl``, ``corpus/valid.jsonl`` and ``corpus/stats.json``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..core.hashing import hash_file
from ..textio import script_counts, write_jsonl_texts

TEXT_SUFFIXES = {".txt", ".text", ".md"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_JOINERS = {"\u200c", "\u200d"}
_CONTROL_SPACES = re.compile(r"[\t\v\f\r\x1c-\x1f\x85]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")


def expand_sources(patterns: list[str], root: Path) -> list[Path]:
    """Files named by paths, folders (recursive) and globs, in a stable order."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        path = path if path.is_absolute() else root / path
        if any(ch in pattern for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not matches:
                raise LangbuildError(f"corpus glob '{pattern}' matches no file: fix corpus.paths in langbuild.toml")
            files.extend(matches)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES | JSONL_SUFFIXES)
            if not found:
                raise LangbuildError(f"corpus folder '{pattern}' holds no .txt or .jsonl file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise LangbuildError(f"corpus path '{pattern}' does not exist: fix corpus.paths in langbuild.toml")
    return list(dict.fromkeys(files))


def fingerprint_sources(project) -> dict[str, Any]:
    config = project.config
    result = {}
    for key in ("corpus.paths", "corpus.valid_paths"):
        for path in expand_sources(config.get(key), project.root):
            # Keys relative to the project, so a moved or copied project stays up to date.
            name = path.relative_to(project.root).as_posix() if path.is_relative_to(project.root) else str(path)
            try:
                result[name] = hash_file(path)
            except OSError as err:
                raise LangbuildError(f"cannot read corpus file {path} ({err.strerror}): check its permissions") from None
    return result


def _check_text_file(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise LangbuildError(f"{path} looks binary (NUL bytes): corpus files must be UTF-8 text or JSONL")


def _decode_line(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LangbuildError(
            f"{path} line {line_no} is not UTF-8 (byte {raw[err.start]:#04x}): "
            f"convert the file, e.g. 'iconv -f LATIN1 -t UTF-8', or remove it from corpus.paths"
        ) from None


def read_documents(path: Path, text_field: str) -> Iterator[str]:
    _check_text_file(path)
    is_jsonl = path.suffix.lower() in JSONL_SUFFIXES
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            line = _decode_line(raw, path, line_no)
            if not is_jsonl:
                yield line
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise LangbuildError(f"{path} line {line_no} is not valid JSON: fix or remove that line") from None
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise LangbuildError(
                    f"{path} line {line_no} has no text field '{text_field}': set corpus.text_field"
                )
            yield record[text_field]


def clean(text: str) -> str:
    """NFC, no control characters, runs of spaces collapsed, blank lines dropped, ends trimmed."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_SPACES.sub(" ", text)  # tabs and the like separate words: a space, not nothing
    # Zero-width (non-)joiners are spelling in Persian, Kurdish, Indic scripts and emoji: they stay.
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") or ch in _JOINERS)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _doc_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _in_valid(text: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class _Collector:
    """Cleans, filters and de-duplicates documents while counting what was removed and why."""

    def __init__(self, min_chars: int, seen: set[str] | None = None):
        self.min_chars = min_chars
        self.seen: set[str] = seen if seen is not None else set()
        self.removed: Counter = Counter()
        self.read = 0

    def take(self, texts: Iterator[str]) -> Iterator[str]:
        for raw in texts:
            self.read += 1
            text = clean(raw)
            if not text:
                self.removed["empty"] += 1
                continue
            if len(text) < self.min_chars:
                self.removed["too_short"] += 1
                continue
            key = _doc_hash(text)
            if key in self.seen:
                self.removed["duplicate"] += 1
                continue
            self.seen.add(key)
            yield text


def _gather(patterns: list[str], root: Path, field: str, collector: _Collector) -> list[str]:
    docs: list[str] = []
    for path in expand_sources(patterns, root):
        docs.extend(collector.take(read_documents(path, field)))
    return docs


def _describe(texts: list[str]) -> dict[str, Any]:
    return {
        "documents": len(texts),
        "characters": sum(len(t) for t in texts),
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "words": sum(len(t.split()) for t in texts),
    }


def run(ctx) -> dict:
    config = ctx.config
    root = ctx.project.root
    field = config.get("corpus.text_field")
    collector = _Collector(config.get("corpus.min_chars"))
    if config.get("corpus.valid_paths"):
        valid = _gather(config.get("corpus.valid_paths"), root, field, collector)
        train = _gather(config.get("corpus.paths"), root, field, collector)  # drops copies of valid text too
    else:
        docs = _gather(config.get("corpus.paths"), root, field, collector)
        seed, fraction = config.get("project.seed"), config.get("corpus.valid_fraction")
        valid = [d for d in docs if _in_valid(d, seed, fraction)]
        if not valid and len(docs) >= 2:
            valid = [min(docs, key=lambda d: _doc_hash(f"{seed}:{d}"))]
        valid_set = set(valid)
        train = [d for d in docs if d not in valid_set]
    if not train:
        raise LangbuildError(
            f"no training documents left after cleaning ({collector.read} read, "
            f"{dict(collector.removed)} removed): add text to corpus.paths or lower corpus.min_chars"
        )
    if not valid:
        raise LangbuildError("no held-out documents: give corpus.valid_paths or more text")
    write_jsonl_texts(ctx.out / "train.jsonl", train)
    write_jsonl_texts(ctx.out / "valid.jsonl", valid)
    scripts = script_counts(train[:20000])
    stats = {
        "language": config.get("project.language"),
        "read": collector.read,
        "removed": dict(collector.removed),
        "train": _describe(train),
        "valid": _describe(valid),
        "scripts": dict(scripts.most_common()),
    }
    atomic_write_json(ctx.out / "stats.json", stats)
    ctx.console.print(
        f"  {stats['train']['documents']:,} train / {stats['valid']['documents']:,} valid documents, "
        f"{stats['train']['words']:,} train words; removed {dict(collector.removed) or 'nothing'}; "
        f"scripts {', '.join(list(scripts)[:3]) or '-'}"
    )
    return {"train_documents": len(train), "valid_documents": len(valid)}
