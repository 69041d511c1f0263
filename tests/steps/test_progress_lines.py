"""Progress of the long parts of corpus, tokenizer, select and extend, read as a CI log reads it: plain
lines with the right totals off a terminal, and nothing at all on a quiet console."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.progress import PLAIN_STEPS
from langbuild.core.project import Project
from langbuild.corpus.pipeline import build_corpus
from langbuild.corpus.settings import settings_from_config
from langbuild.embedding_init.token_vectors import VectorSettings, train_token_vectors
from langbuild.extension import size as extend_size
from langbuild.models.budget import GB
from langbuild.models.selection import Plan, score_candidates
from langbuild.tokenization.sweep import vocab_curve
from langbuild.tokenization.training import Recipe
from tests.tiny import chichewa_split, make_tiny_project, read_json, tiny_project_through


def _plain() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=300), buffer


def _quiet() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, quiet=True), buffer


def _bar_lines(buffer: io.StringIO, label: str) -> list[tuple[int, int, str]]:
    """(done, total, unit) of every plain progress line of the bar ``label``."""
    found = []
    for line in buffer.getvalue().splitlines():
        head, _, rest = line.strip().rpartition(": ")
        if head == label and "ETA" in rest:
            count, unit = rest.split(",")[0].split()
            done, total = count.split("/")
            found.append((int(done), int(total), unit))
    return found


def _finished(buffer: io.StringIO, label: str) -> tuple[int, str]:
    """The bar's total and unit, checking it ended at its total within the lines a log may get."""
    lines = _bar_lines(buffer, label)
    assert lines, f"no progress line for {label!r} in:\n{buffer.getvalue()}"
    assert len(lines) <= PLAIN_STEPS + 1
    done, total, unit = lines[-1]
    assert done == total
    return total, unit


def test_corpus_units_from_worker_processes(tmp_path, tiny_models):
    root = make_tiny_project(tmp_path, tiny_models["llama-spm"], **{"corpus.workers": 2})
    settings = settings_from_config(Project(root).config, root)
    settings.unit_bytes = 40_000  # several units from the three books
    console, buffer = _plain()
    stats, timing = build_corpus(settings, root, root / "out", log=console.print, console=console)
    assert timing["processes"] == 2 and stats["work_units"] > 2
    assert _finished(buffer, "corpus filter") == (stats["work_units"], "units")
    assert _finished(buffer, "corpus write") == (stats["work_units"], "units")

    settings.workers = 1
    quiet, silent = _quiet()
    build_corpus(settings, root, root / "again", log=quiet.print, console=quiet)
    assert silent.getvalue() == ""


def test_tokenizer_sweep_counts_the_sizes_it_trains(tmp_path):
    train, valid = chichewa_split(1)
    console, buffer = _plain()
    curve = vocab_curve(train, valid, Recipe("sentencepiece", "bpe"), tmp_path, console)
    # The plan grows when the corpus caps the grid (smaller sizes are added) and ends at what was trained.
    assert _finished(buffer, "vocabulary sweep") == (len(curve["points"]), "sizes")

    quiet, silent = _quiet()
    vocab_curve(train, valid, Recipe("sentencepiece", "bpe"), tmp_path, quiet)
    assert silent.getvalue() == ""


def test_select_counts_candidates_windows_and_timed_steps(tmp_path, tiny_models):
    model = str(tiny_models["llama-spm"])
    sample = chichewa_split(1)[1][:200]
    plan = Plan(batch_size=2, seq_len=32, timing_steps=3, seed=0, budget=64 * GB, budget_source="test",
                machine=64 * GB, machine_source="RAM")
    console, buffer = _plain()
    [scores] = score_candidates([model], tmp_path, False, sample, None, plan, console)
    assert _finished(buffer, "select candidates") == (1, "candidates")
    windows = math.ceil(scores["tokens"] / (min(512, scores["context"]) - 1))
    assert _finished(buffer, f"{model}: target windows") == (windows, "windows")
    assert _finished(buffer, "timing steps") == (3, "steps")
    assert f"scoring {model} ..." in buffer.getvalue()

    quiet, silent = _quiet()
    score_candidates([model], tmp_path, False, sample, None, plan, quiet)
    assert silent.getvalue() == ""


def test_token_vectors_count_epochs():
    sequences = [[i % 17, (i * 7) % 17, (i * 3) % 17, i % 5] * 8 for i in range(200)]
    settings = VectorSettings(dim=8, epochs=4, min_count=1)
    console, buffer = _plain()
    train_token_vectors(sequences, 20, 0, settings, console=console)
    assert _finished(buffer, "token vectors") == (4, "epochs")
    quiet, silent = _quiet()
    train_token_vectors(sequences, 20, 0, settings, console=quiet)
    assert silent.getvalue() == ""


EXTEND = {"extend.num_new_tokens": "auto", "extend.compare": ["random", "focus"], "extend.probe_steps": 6}


@pytest.fixture()
def wide_band(monkeypatch):
    # As test_extend_size: a band as wide as the curve, so auto adds tokens on the tiny taught model
    # (with none added there is no probe to show).
    monkeypatch.setattr(extend_size, "TOKENS_PER_WORD_TOLERANCE", 10.0)


def test_extend_shows_size_candidates_probe_steps_token_vectors_and_zero_shot_windows(tmp_path, taught_model, wide_band):
    root = tiny_project_through(tmp_path, taught_model, train_books=1, **EXTEND)
    console, buffer = _plain()
    pipeline.run(Project(root), console, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    assert metrics["added_tokens"] > 0  # the probe ran
    assert _finished(buffer, "auto size candidates") == (metrics["auto_size"]["sizes_scored"], "sizes")
    assert _finished(buffer, "probe") == (2 * 6, "steps")  # both methods' steps
    assert _finished(buffer, "token vectors") == (VectorSettings().epochs, "epochs")
    assert _finished(buffer, f"{metrics['added_tokens']:,} new tokens")[1] == "windows"
    assert _finished(buffer, "probe focus: start")[1] == "windows"
    # The kept init is not the one auto scored with (subword-mean), so the zero-shot scores run again.
    for side in metrics["zero_shot_bits_per_byte"]:
        assert _finished(buffer, f"zero-shot {side}: base")[1] == "windows"
        assert _finished(buffer, f"zero-shot {side}: extended")[1] == "windows"
    assert "\r" not in buffer.getvalue()


def test_extend_on_a_quiet_console_prints_nothing(tmp_path, taught_model, wide_band):
    root = tiny_project_through(tmp_path, taught_model, train_books=1, **EXTEND)
    quiet, silent = _quiet()
    pipeline.run(Project(root), quiet, until="extend")
    assert read_json(root / "extend/metrics.json")["init_comparison"]  # the probe ran here too
    assert silent.getvalue() == ""
