"""The corpus step's output: zstd-compressed JSON-lines shards, and reading a split back.

``corpus/train-00003.jsonl.zst`` holds the train documents of work unit 3 as ``{"text": ..., "id": ...}``
lines. Shards are numbered by work unit, so their order, and the order of documents in them, does not
depend on how many processes wrote them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

SUFFIX = ".jsonl.zst"
SPLITS = ("train", "valid", "test")
_LEVEL = 3  # zstd's default: about 3x smaller than the text at several hundred MB/s


class ShardWriter:
    """JSON lines into a .jsonl.zst file; the file is removed again if nothing was written."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._raw = open(path, "wb")
        self._zstd = zstandard.ZstdCompressor(level=_LEVEL).stream_writer(self._raw, closefd=False)
        self._text = io.TextIOWrapper(self._zstd, encoding="utf-8", write_through=False)

    def write(self, record: dict) -> None:
        self._text.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._text.flush()
        self._zstd.flush(zstandard.FLUSH_FRAME)
        self._text.close()
        self._raw.close()
        if self.count == 0:
            self.path.unlink()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as raw:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        for line in reader:
            if line.strip():
                yield json.loads(line)


def split_files(corpus_dir: Path, split: str) -> list[Path]:
    """The shards of one split, in order; also accepts the single ``<split>.jsonl`` of older projects."""
    shards = sorted(Path(corpus_dir).glob(f"{split}-*{SUFFIX}"))
    legacy = Path(corpus_dir) / f"{split}.jsonl"
    return shards or ([legacy] if legacy.is_file() else [])


def read_split(corpus_dir: Path, split: str) -> Iterator[str]:
    """The texts of a split (train, valid or test), streamed shard by shard."""
    for path in split_files(corpus_dir, split):
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)["text"]
        else:
            for record in read_records(path):
                yield record["text"]


def write_split(corpus_dir: Path, split: str, texts: Iterable[str]) -> int:
    """Write texts as one shard of a split (tests and benchmarks that build a corpus folder by hand)."""
    with ShardWriter(Path(corpus_dir) / f"{split}-00000{SUFFIX}") as writer:
        for text in texts:
            writer.write({"text": text})
        return writer.count


def scored_split(corpus_dir: Path) -> str:
    """The split eval scores: test, which no step tuned on; valid where the corpus has no test split
    (corpus.test_fraction = 0, or a corpus written before test splits existed)."""
    return "test" if split_files(corpus_dir, "test") else "valid"


SPLIT_NOTES = {
    "test": "the test split, which no earlier step read: select, the extension probe, the automatic vocabulary "
            "size and early stopping used the valid split",
    "valid": "the valid split, because this corpus has no test split (corpus.test_fraction = 0 and no "
             "corpus.test_paths, or a project made before test splits); the valid split also chose the base model, "
             "the initialisation, the vocabulary size and when training stopped, so these scores are optimistic: "
             "set corpus.test_fraction for unbiased ones",
}


def split_record(split: str, documents: int) -> dict:
    """Which split eval scored and what that means, for metrics.json, the report and the model card."""
    return {"split": split, "documents": documents, "note": SPLIT_NOTES[split]}
