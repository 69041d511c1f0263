"""The reliability campaign: kill -9 langbuild at random moments and at named crash points, then feed
it bad input; record both tables in benchmarks/RESULTS.md.

    python benchmarks/reliability.py [--kills 56] [--seed 0]

The harnesses live in tests/reliability (faults.py, bad_inputs.py) and also run, smaller, in the
test suite. Here the fault campaign spreads ``--kills`` random kills evenly over the seven steps of a
tiny project (GPT-2-style model with dropout, 24 training steps with a checkpoint every 4) and adds
every crash point; the bad-input suite runs its cases against a finished tiny project.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package

from tests.reliability import bad_inputs, faults  # noqa: E402
from tests.tiny import build_tiny_model, make_tiny_project  # noqa: E402

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section


def finished_project(folder: Path) -> Path:
    from rich.console import Console

    from langbuild import pipeline
    from langbuild.core.project import Project

    model = build_tiny_model(folder / "model", "gpt2-bytelevel")
    root = make_tiny_project(folder / "project", model)
    pipeline.run(Project(root), Console(quiet=True))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=56)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    trials, fault_seconds = faults.run_campaign(args.kills, args.seed)
    fault_table = faults.markdown_table(trials)
    print(fault_table)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="langbuild-reliability-") as tmp:
        outcomes = bad_inputs.run_cases(finished_project(Path(tmp)))
    bad_seconds = time.time() - started
    bad_table = bad_inputs.markdown_table(outcomes)
    print(bad_table)
    problems = faults.failures(trials) + [f"{o.case.name}: {o.message} {o.note}" for o in outcomes if o.ran and not o.passed]
    for problem in problems:
        print("FAILED:", problem)

    killed = [t for t in trials if t.killed]
    ran = [o for o in outcomes if o.ran]
    body = (
        f"`python benchmarks/reliability.py --kills {args.kills} --seed {args.seed}` on {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d')}.\n\n"
        "| campaign | tried | converged / clean | identical / intact |\n|---|---:|---:|---:|\n"
        f"| kill -9 (random moments + crash points) | {len(killed)} kills | {sum(t.converged for t in killed)} runs converged | "
        f"{sum(t.identical for t in killed)} outputs identical |\n"
        f"| bad input | {len(outcomes)} cases ({len(ran)} ran) | {sum(o.clean_error for o in ran)} clean errors or recoveries | "
        f"{sum(o.intact for o in ran)} outputs intact |\n\n"
        f"### Kills ({fault_seconds / 60:.0f} min)\n\n"
        "After each kill, `langbuild run --until STEP` ran again; *converged*: it exited 0 and every step up to STEP "
        "is done; *identical*: every output file equals the uninterrupted run's (JSON timing fields aside) and the "
        "training loss curve matches within 1e-4 (the gap column).\n\n"
        f"{fault_table}\n\n"
        f"### Bad input ({bad_seconds / 60:.0f} min)\n\n"
        "Each case breaks one thing in a copy of a finished tiny project and runs the CLI: *clean*: exit ≠ 0 with "
        "one line on stderr and no traceback (or, for the cases marked recovered, success with the expected note); "
        "*intact*: every file is unchanged except the folders of steps that re-ran to success.\n\n"
        f"{bad_table}\n"
    )
    record_section("reliability", "Reliability: kill -9, crash points and bad input", body)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
