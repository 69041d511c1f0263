"""Fault injection: kill -9 langbuild at random moments of every step, and at the named crash points.

For each step the harness keeps a snapshot of a tiny project with the earlier steps done, runs the
step once uninterrupted (the reference), then, per trial: restores the snapshot, starts
``langbuild run --until STEP``, waits until the step has begun (its staging folder appears), sleeps a
seeded random fraction of the step's reference duration and sends SIGKILL. It then runs the same
command again and checks that it succeeds, that every step is done, and that every output equals
the reference: byte for byte, except the measured timings inside JSON files (and lm-eval's flag
saying it answered from its cache), which are dropped before hashing. Training's loss curve must match within 1e-4.
Each command is a process of its own, forked from a server that imported langbuild, torch and
transformers once (tests/forked_cli.py): SIGKILL ends a real process, which did not spend ~2.5 s on imports.

Crash-point trials use ``LANGBUILD_CRASH_AT`` (langbuild/core/faults.py) to die at exact moments a
random kill rarely hits: halfway through writing the lock, between writing it and renaming it, inside
a checkpoint save, between the two renames of a folder swap, and after the swap but before the lock
records it.

Run the full campaign (56 random kills plus the crash points) and print its table:

    python -m tests.reliability.faults --kills 56

(benchmarks/reliability.py runs it together with the bad-input suite and records both tables.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from langbuild.core.faults import CRASH_ENV
from langbuild.pipeline import STEP_NAMES
from tests.forked_cli import ForkedCli

# Measured durations and speeds differ between any two runs, killed or not; "cached" says whether
# lm-eval answered from its request cache, which a resumed evaluation rightly does.
VOLATILE_KEYS = frozenset({"seconds", "seconds_per_million_tokens", "tokens_per_s", "seconds_per_step", "elapsed",
                           "chars_per_second", "tokens_per_second", "speedup", "seconds_by_model", "cached"})
LOSS_TOLERANCE = 1e-4
# Long enough that a kill lands mid-training; GPT-2 keeps dropout, so resume must restore randomness.
# fp32 pinned: "auto" measures bf16 against fp32 in every fresh run, and on a busy machine (two xdist
# workers) the uninterrupted reference run and a trial run can choose differently, so their losses differ
# by ~1e-4 for a reason that is not the crash (a resumption keeps its checkpoint's precision). bf16 kill
# and resume are tested in tests/training/test_precision.py.
HARNESS_SETTINGS = {"train.max_steps": 16, "train.save_every": 4, "train.precision": "fp32"}
# (step, crash point, command): "run" is 'langbuild run --until STEP' on a project whose earlier steps
# are done; "force" is 'langbuild STEP --force' on a finished project, so an old folder is swapped out.
CRASH_TRIALS = (
    ("corpus", "write-partial:langbuild.lock", "run"),
    ("tokenizer", "write:langbuild.lock", "run"),
    ("train", "checkpoint:weights-written@2", "run"),
    ("train", "checkpoint:before-rename@3", "run"),
    ("extend", "staging-move:between-renames", "force"),
    ("report", "staging-move:between-renames", "force"),
    ("eval", "staging-move:before-lock", "run"),
    ("select", "write:langbuild.lock", "force"),
)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "LANGBUILD_DEBUG": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop(CRASH_ENV, None)  # only the trial that asks for a crash point gets one
    return {**env, **extra}


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def output_digest(path: Path) -> str:
    """sha256 of a file; JSON and JSON Lines files are hashed without their volatile fields."""
    data = path.read_bytes()
    if path.suffix in (".json", ".jsonl"):
        try:
            lines = [data] if path.suffix == ".json" else data.splitlines()
            data = "\n".join(json.dumps(_without_timings(json.loads(line)), sort_keys=True)
                             for line in lines if line.strip()).encode()
        except json.JSONDecodeError:
            pass  # a torn file: its raw bytes will differ from the reference's, as they should
    return hashlib.sha256(data).hexdigest()


def project_digest(root: Path, steps: list[str]) -> dict[str, str]:
    """Every file the given steps produced (checkpoints aside), plus any stray file langbuild left behind."""
    digest = {}
    for step in steps:
        folder = root / step
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            rel = path.relative_to(root)
            if path.is_file() and "checkpoints" not in rel.parts:
                digest[rel.as_posix()] = output_digest(path)
    for stray in root.glob(".*.tmp"):
        digest[f"stray:{stray.name}"] = "present"
    return digest


def loss_curve(root: Path) -> dict[int, float]:
    path = root / "train/metrics.jsonl"
    if not path.is_file():
        return {}
    return {row["step"]: row["loss"] for row in map(json.loads, path.read_text().splitlines()) if "loss" in row}


def step_states(root: Path, cli: ForkedCli) -> list[str]:
    result = cli.run(("status", "-C", str(root), "--json"), cwd=root.parent)
    if result.returncode != 0:
        raise RuntimeError(f"langbuild status failed: {result.stderr.strip()}")
    return [row["state"] for row in json.loads(result.stdout)]


@dataclass
class Trial:
    step: str
    kind: str  # "random" or the crash point's name
    delay: float = 0.0
    killed: bool = False
    converged: bool = False
    identical: bool = False
    loss_gap: float = 0.0
    resumed_from_checkpoint: bool = False
    problem: str = ""


@dataclass
class FaultHarness:
    workdir: Path
    model_folder: Path
    seed: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    references: dict[str, dict[str, str]] = field(default_factory=dict)
    reference_losses: dict[int, float] = field(default_factory=dict)
    # Every command runs in a process of its own, forked from this server (tests/forked_cli.py): a kill -9
    # still ends a real process, without ~2.5 s of imports before each run. Started by prepare(); close() ends it.
    cli: ForkedCli | None = field(default=None, repr=False)

    @property
    def trial_root(self) -> Path:
        # Every run happens at this one path, so outputs that mention the project path compare equal.
        return self.workdir / "project"

    def snapshot(self, name: str) -> Path:
        return self.workdir / "snapshots" / name

    def prepare(self) -> None:
        """Snapshots before each step and after the last, and each step's reference outputs and duration."""
        from tests.tiny import make_tiny_project

        self.cli = self.cli or ForkedCli(child_env())
        if self.trial_root.exists():
            shutil.rmtree(self.trial_root)
        make_tiny_project(self.trial_root, self.model_folder, **HARNESS_SETTINGS)
        for index, step in enumerate(STEP_NAMES):
            self._save(step)
            self.durations[step] = self._timed_run(step)
            self.references[step] = project_digest(self.trial_root, STEP_NAMES[: index + 1])
        self._save("finished")
        self.reference_losses = loss_curve(self.trial_root)

    def close(self) -> None:
        if self.cli is not None:
            self.cli.close()
            self.cli = None

    def _langbuild(self, *args: str, **crash: str):
        """``langbuild ARGS`` started in a forked process (``crash``: LANGBUILD_CRASH_AT, if any)."""
        return self.cli.start(args, cwd=self.workdir, env=crash)

    def _save(self, name: str) -> None:
        target = self.snapshot(name)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.trial_root, target, symlinks=True)

    def _restore(self, name: str) -> None:
        shutil.rmtree(self.trial_root, ignore_errors=True)
        shutil.copytree(self.snapshot(name), self.trial_root, symlinks=True)

    def _timed_run(self, step: str) -> float:
        """Seconds from the moment the step starts (its staging folder appears) to the command's exit."""
        proc = self._langbuild("run", "-C", str(self.trial_root), "--until", step)
        started = self._wait_for_step_start(proc, step)
        if proc.wait() != 0:
            raise RuntimeError(f"the uninterrupted reference run of {step} failed: {proc.stderr.strip()}")
        return time.monotonic() - started

    def _wait_for_step_start(self, proc, step: str) -> float:
        staging = self.trial_root / ".langbuild/staging" / step
        while not staging.exists() and proc.poll() is None:
            time.sleep(0.005)
        return time.monotonic()

    # ------------------------------------------------------------------ trials

    def random_kills(self, kills: int) -> list[Trial]:
        """``kills`` SIGKILLs spread evenly over the steps, each at a seeded random moment of its step."""
        rng = random.Random(self.seed)
        trials = []
        for number in range(kills):
            step = STEP_NAMES[number % len(STEP_NAMES)]
            trials.append(self._random_trial(step, rng))
        return trials

    def _random_trial(self, step: str, rng: random.Random, attempts: int = 5) -> Trial:
        trial = Trial(step, "random")
        for _ in range(attempts):  # a draw past the step's end kills nothing: draw again
            self._restore(step)
            trial.delay = rng.uniform(0.0, 0.95 * self.durations[step])
            proc = self._langbuild("run", "-C", str(self.trial_root), "--until", step)
            self._wait_for_step_start(proc, step)
            time.sleep(trial.delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                trial.killed = True
                break
            proc.wait()
        if trial.killed:
            self._resume_and_check(trial)
        return trial

    def crash_points(self) -> list[Trial]:
        return [self._crash_trial(step, point, command) for step, point, command in CRASH_TRIALS]

    def _crash_trial(self, step: str, point: str, command: str) -> Trial:
        trial = Trial(step, point)
        if command == "force":
            self._restore("finished")
            args = (step, "-C", str(self.trial_root), "--force")
        else:
            self._restore(step)
            args = ("run", "-C", str(self.trial_root), "--until", step)
        result = self._langbuild(*args, **{CRASH_ENV: point})
        result.wait()
        trial.killed = result.returncode == -signal.SIGKILL
        if not trial.killed:
            trial.problem = f"the crash point was not reached (exit {result.returncode}): {result.stderr.strip()[-300:]}"
            return trial
        self._resume_and_check(trial)
        return trial

    def _resume_and_check(self, trial: Trial) -> None:
        result = self._langbuild("run", "-C", str(self.trial_root), "--until", trial.step)
        result.wait()
        trial.resumed_from_checkpoint = "resuming from checkpoint" in result.stdout
        upto = STEP_NAMES.index(trial.step) + 1
        states = step_states(self.trial_root, self.cli)[:upto]
        trial.converged = result.returncode == 0 and states == ["done"] * upto
        if not trial.converged:
            trial.problem = f"resume exited {result.returncode}, states {states}: {result.stderr.strip()[-300:]}"
            return
        digest = project_digest(self.trial_root, STEP_NAMES[:upto])
        reference = self.references[trial.step]
        different = sorted(k for k in digest.keys() | reference.keys() if digest.get(k) != reference.get(k))
        trial.identical = not different
        if different:
            trial.problem = f"outputs differ from the uninterrupted run: {', '.join(different[:5])}"
        if upto > STEP_NAMES.index("train"):
            self._check_losses(trial)

    def _check_losses(self, trial: Trial) -> None:
        losses = loss_curve(self.trial_root)
        if sorted(losses) != sorted(self.reference_losses):
            trial.identical = False
            trial.problem = f"training logged steps {sorted(losses)}, expected {sorted(self.reference_losses)}"
            return
        trial.loss_gap = max((abs(losses[s] - loss) for s, loss in self.reference_losses.items()), default=0.0)
        if trial.loss_gap > LOSS_TOLERANCE:
            trial.identical = False
            trial.problem = f"loss curve differs by {trial.loss_gap:.2e}"


# ---------------------------------------------------------------------- reporting

def summary_rows(trials: list[Trial]) -> list[tuple[str, int, int, int, str]]:
    """(step, kills, converged, identical, largest loss gap) per step, random kills first, then crash points."""
    rows = []
    for kind in ("random", "crash point"):
        chosen = [t for t in trials if (t.kind == "random") == (kind == "random")]
        for step in STEP_NAMES:
            mine = [t for t in chosen if t.step == step and t.killed]
            if not mine:
                continue
            label = step if kind == "random" else f"{step}: " + ", ".join(sorted({t.kind for t in mine}))
            gap = max(t.loss_gap for t in mine)
            rows.append((f"{kind}: {label}", len(mine), sum(t.converged for t in mine), sum(t.identical for t in mine),
                         f"{gap:.1e}" if step in ("train", "eval", "report") else "—"))
    return rows


def markdown_table(trials: list[Trial]) -> str:
    rows = summary_rows(trials)
    lines = ["| where | kills injected | runs that converged | outputs identical | max loss-curve gap |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {where} | {kills} | {converged} | {identical} | {gap} |" for where, kills, converged, identical, gap in rows]
    killed = [t for t in trials if t.killed]
    lines.append(f"| **all** | **{len(killed)}** | **{sum(t.converged for t in killed)}** | "
                 f"**{sum(t.identical for t in killed)}** | |")
    return "\n".join(lines)


def failures(trials: list[Trial]) -> list[str]:
    return [f"{t.step} ({t.kind}, delay {t.delay:.2f} s): {t.problem or 'not killed'}"
            for t in trials if not (t.killed and t.converged and t.identical)]


def run_campaign(kills: int, seed: int) -> tuple[list[Trial], float]:
    """Build a tiny model, prepare the snapshots, run ``kills`` random kills and every crash point."""
    from tests.tiny import build_tiny_model

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="langbuild-faults-") as tmp:
        workdir = Path(tmp)
        harness = FaultHarness(workdir, build_tiny_model(workdir / "model", "gpt2-bytelevel"), seed=seed)
        try:
            harness.prepare()
            trials = harness.random_kills(kills) + harness.crash_points()
        finally:
            harness.close()
    return trials, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=56, help="random kills, spread evenly over the steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    trials, seconds = run_campaign(args.kills, args.seed)
    print(markdown_table(trials))
    problems = failures(trials)
    for problem in problems:
        print("FAILED:", problem)
    print(f"{seconds / 60:.1f} minutes")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
