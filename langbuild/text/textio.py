"""Reading the corpus folder's JSONL documents, and small text measures shared by the steps."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path


def read_jsonl_texts(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)["text"]


def write_jsonl_texts(path: Path, texts: Iterable[str]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            count += 1
    return count


def script_of(char: str) -> str | None:
    """The Unicode script of a letter, read from its name (LATIN, CYRILLIC, ETHIOPIC, ...)."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def script_counts(texts: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        counts.update(filter(None, map(script_of, text)))
    return counts


def sample_by_bytes(texts: Iterable[str], max_bytes: int) -> list[str]:
    """The first documents whose UTF-8 size adds up to at most ``max_bytes`` (0: all of them)."""
    chosen: list[str] = []
    total = 0
    for text in texts:
        size = len(text.encode("utf-8")) + 1
        if max_bytes and total + size > max_bytes and chosen:
            break
        chosen.append(text)
        total += size
    return chosen
