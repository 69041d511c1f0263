"""End to end on tiny projects: every step runs for real, reruns skip, a second run waits its turn.

Kills and resumes are tested by the fault-injection harness in tests/reliability/."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.corpus.shards import split_files
from tests.test_cli import langbuild
from tests.tiny import FAMILIES, own_copy, read_json, tiny_project_through

QUIET = Console(quiet=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_step_writes_its_outputs(finished_projects, family):
    root = finished_projects[family]
    assert split_files(root / "corpus", "train") and split_files(root / "corpus", "valid")
    for rel in ("corpus/stats.json", "tokenizer/spm.model",
                "tokenizer/metrics.json", "select/selection.json", "extend/model/model.safetensors",
                "extend/model/tokenizer.json", "train/model/model.safetensors", "train/metrics.jsonl",
                "eval/metrics.json", "report/report.md"):
        assert (root / rel).is_file(), rel
    metrics = read_json(root / "eval/metrics.json")
    for side in ("target", "source"):
        assert set(metrics[side]["bits_per_byte"]) == {"base", "extended", "trained"}
        assert set(metrics[side]["tokens_per_word"]) == {"base", "extended"}
        assert all(0 < v < 20 for v in metrics[side]["bits_per_byte"].values())
    # The extension must make the target language cheaper to tokenize.
    assert metrics["target"]["tokens_per_word"]["extended"] < metrics["target"]["tokens_per_word"]["base"]
    report = (root / "report/report.md").read_text()
    assert "bits per byte" in report and "tokens per word" in report
    extend = read_json(root / "extend/metrics.json")["zero_shot_bits_per_byte"]["target"]
    assert f"Zero-shot target bits per byte (extended, before training): {extend['extended']:.3f}" in report
    assert [s["state"] for s in pipeline.status(Project(root))] == ["done"] * len(pipeline.STEPS)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_lowers_target_bits_per_byte(finished_projects, family):
    metrics = read_json(finished_projects[family] / "eval/metrics.json")["target"]["bits_per_byte"]
    assert metrics["trained"] < metrics["extended"]


def test_rerun_skips_everything(finished_projects, tmp_path):
    root = own_copy(finished_projects["gpt2-bytelevel"], tmp_path)
    before = (root / "langbuild.lock").read_bytes()
    results = pipeline.run(Project(root), QUIET)
    assert [r["ran"] for r in results] == [False] * len(pipeline.STEPS)
    assert (root / "langbuild.lock").read_bytes() == before


def test_a_second_run_on_the_same_project_exits_cleanly(tiny_models, tmp_path):
    # From a snapshot through extend: the first run still holds the lock for a whole train + eval.
    root = tiny_project_through(tmp_path / "p", tiny_models["gpt2-bytelevel"], step="extend", **{"train.max_steps": 30})
    first = subprocess.Popen([sys.executable, "-m", "langbuild", "run", "-C", str(root)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (root / ".langbuild/staging/train").exists() and time.time() < deadline:
            time.sleep(0.05)  # train's staging folder appears once the first run holds the project lock
        second = langbuild("run", "-C", root, cwd=tmp_path)  # forked from this worker's server: no imports to wait for
        assert second.returncode != 0
        assert second.stderr.count("\n") == 1 and "another langbuild command is running" in second.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    assert [s["state"] for s in pipeline.status(Project(root))] == ["done"] * len(pipeline.STEPS)
