"""Benchmarks built from the held-out split: a cloze task and a whole-document bits-per-byte task.

Items that share an n-gram with the train split are dropped (``cloze.contaminated``), so neither task
scores text the model was trained on.
"""

from __future__ import annotations

from pathlib import Path

from ..corpus.shards import read_split
from ..text.textio import sample_by_bytes
from . import cloze
from .local_tasks import LocalTask, local_task, write_jsonl


def language_slug(language: str) -> str:
    """A task-name prefix from project.language."""
    return "".join(ch if ch.isalnum() else "_" for ch in language.lower())


def cloze_task(held_out: list[str], corpus: Path, folder: Path, *, language: str, seed: int, choices: int,
               max_items: int) -> tuple[LocalTask | None, str | None]:
    """The cloze task written into ``folder`` (``corpus``: the corpus step's folder), or None and why not."""
    items = cloze.build_items(held_out, seed=seed, choices=choices, max_items=max_items)
    dirty = cloze.contaminated([cloze.item_ngrams(i) for i in items], read_split(corpus, "train"))
    clean = [item for index, item in enumerate(items) if index not in dirty]
    if len(clean) < 10:
        return None, (f"cloze: only {len(clean)} clean items could be built from the held-out split (passages of at least "
                      f"{cloze.NGRAM} words, not overlapping the train split): hold out more text (corpus.test_paths)")
    path = folder / "cloze.jsonl"
    write_jsonl(path, (item.as_json() for item in clean))
    task = local_task(path, name=f"{language_slug(language)}_cloze", origin="built from held-out data",
                      description=f"pick a held-out passage's true continuation among {choices}")
    task.extra.update({"built": len(items), "contaminated": len(dirty), "length_baseline": cloze.length_baseline(clean)})
    return task, None


def heldout_bpb_task(held_out: list[str], corpus: Path, folder: Path, *, language: str,
                     max_bytes: int) -> tuple[LocalTask | None, str | None]:
    """Bits per byte of whole held-out documents as an lm-eval task, or None and why not."""
    documents = sample_by_bytes(held_out, max_bytes)
    grams = [cloze.text_ngrams(doc) for doc in documents]
    dirty = cloze.contaminated(grams, read_split(corpus, "train"))
    clean = [doc for index, doc in enumerate(documents) if index not in dirty]
    if not clean:
        return None, "heldout-bpb: every held-out document overlaps the train split: hold out different text"
    path = folder / "heldout_bpb.jsonl"
    write_jsonl(path, ({"text": doc} for doc in clean))
    task = local_task(path, name=f"{language_slug(language)}_heldout_bpb", origin="built from held-out data",
                      description="bits per byte of whole held-out documents, each scored on its own (without the "
                                  "previous document as context, so above the windowed held-out figure)")
    task.extra.update({"contaminated": len(dirty)})
    return task, None
