"""Several `langbuild run` started at the same instant on one project: one works, the others exit clearly."""

from __future__ import annotations

import os
import subprocess
import sys

from langbuild import pipeline
from langbuild.core.hashing import hash_tree
from langbuild.core.project import Project
from tests.tiny import make_tiny_project, read_json


def test_simultaneous_runs_never_interleave(tiny_models, tmp_path):
    root = make_tiny_project(tmp_path / "p", tiny_models["llama-spm"])
    env = {**os.environ, "LANGBUILD_DEBUG": "0"}
    # Up to select: the lock is taken before the first step, so three steps show interleaving as well as seven.
    runs = [subprocess.Popen([sys.executable, "-m", "langbuild", "run", "--until", "select", "-C", str(root)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    winners = [code for code, _ in results if code == 0]
    losers = [err for code, err in results if code != 0]
    assert len(winners) == 1, results
    for err in losers:
        assert err.count("\n") == 1 and "another langbuild command is running" in err
    states = [s["state"] for s in pipeline.status(Project(root))]
    assert states[:3] == ["done"] * 3 and "done" not in states[3:]
    lock = read_json(root / "langbuild.lock")
    for step, entry in lock["steps"].items():
        assert hash_tree(root / step, skip=("checkpoints",)) == entry["outputs"], step
