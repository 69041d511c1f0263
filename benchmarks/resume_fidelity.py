"""Resume fidelity on the real model: kill -9 mid-training, rerun, compare with an uninterrupted run.

    python benchmarks/resume_fidelity.py [--project DIR]

Uses a project already run up to extend (by default the one benchmarks/training_recipes.py builds:
SmolLM2-135M + 4,000 Chichewa tokens). For each recipe (full; embeddings then full; embeddings then
LoRA with replay), one copy trains uninterrupted and another is killed with SIGKILL at two moments
(inside each stage) and resumed by ``langbuild run``; the table gives the largest absolute difference
between the two loss curves over every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomlkit

try:
    from results import record_section, scratch_dir  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section, scratch_dir

STEPS, SAVE_EVERY = 12, 3
COMMON = {"max_steps": STEPS, "save_every": SAVE_EVERY, "seq_len": 128, "batch_size": 2, "warmup_steps": 2}
RECIPES = {
    "full": {"stages": ["full"]},
    "embeddings → full": {"stages": ["embeddings", "full"], "embedding_steps": 4, "embedding_learning_rate": 1e-3},
    "embeddings → lora, replay 0.25": {"stages": ["embeddings", "lora"], "embedding_steps": 4, "replay_fraction": 0.25},
}
KILL_AFTER = (2, 7)  # metric lines seen before each kill: one in the first stage, one in the second


def copy_project(source: Path, target: Path, settings: dict) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("train", "eval", "report", "staging"))
    doc = tomlkit.parse((target / "langbuild.toml").read_text())
    for key, value in {**COMMON, **settings}.items():
        doc["train"][key] = value
    (target / "langbuild.toml").write_text(tomlkit.dumps(doc))
    return target


def langbuild(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "langbuild", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LANGBUILD_DEBUG": "0"})


def losses(root: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (root / "train/metrics.jsonl").read_text().splitlines())}


def killed_run(root: Path) -> int:
    metrics = root / ".langbuild/staging/train/metrics.jsonl"
    kills = 0
    for lines in KILL_AFTER:
        proc = langbuild("train", "-C", str(root))
        while proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= lines:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.05)
        proc.wait()
    if langbuild("train", "-C", str(root)).wait() != 0:
        raise SystemExit(f"the resumed run in {root} failed")
    return kills


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, default=Path(tempfile.gettempdir()) / "langbuild-bench-train" / "project")
    args = parser.parse_args()
    work = scratch_dir("resume-")
    rows = []
    for index, (name, settings) in enumerate(RECIPES.items()):
        reference = copy_project(args.project, work / f"{index}-reference", settings)
        if langbuild("train", "-C", str(reference)).wait() != 0:
            raise SystemExit(f"the reference run in {reference} failed")
        interrupted = copy_project(args.project, work / f"{index}-killed", settings)
        kills = killed_run(interrupted)
        expected, resumed = losses(reference), losses(interrupted)
        assert sorted(resumed) == sorted(expected) == list(range(1, STEPS + 1))
        rows.append((name, kills, max(abs(resumed[s] - expected[s]) for s in expected)))
        print(rows[-1], flush=True)
        shutil.rmtree(reference)
        shutil.rmtree(interrupted)
    lines = [f"SmolLM2-135M + 4,000 Chichewa tokens, {STEPS} steps of 2 x 128 tokens, a checkpoint every {SAVE_EVERY} steps; "
             "`kill -9` of `langbuild train` at two moments, then `langbuild train` again.", "",
             "| recipe | kills | max abs loss difference over the curve |", "|---|---:|---:|"]
    lines += [f"| {name} | {kills} | {diff:.1e} |" for name, kills, diff in rows]
    record_section("resume-fidelity", "Resume fidelity after kill -9 (real model)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
