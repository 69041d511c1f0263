"""kill -9 at random moments of every step and at the named crash points; every resume must match.

The default run kills each step once (seeded) plus every crash point. The full campaign is
``python -m tests.reliability.faults --kills 56`` (or LANGBUILD_FAULT_KILLS=56 for this test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from langbuild.pipeline import STEP_NAMES
from tests.reliability.faults import CRASH_TRIALS, FaultHarness, failures, markdown_table
from tests.tiny import still_running

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def harness(tiny_models, tmp_path_factory) -> Iterator[FaultHarness]:
    prepared = FaultHarness(tmp_path_factory.mktemp("faults"), tiny_models["gpt2-bytelevel"], seed=1)
    try:
        prepared.prepare()
        yield prepared
    finally:
        prepared.close()


def test_random_kills_in_every_step_resume_to_identical_outputs(harness):
    kills = int(os.environ.get("LANGBUILD_FAULT_KILLS", len(STEP_NAMES)))
    trials = harness.random_kills(kills)
    print("\n" + markdown_table(trials))
    assert sum(t.killed for t in trials) == kills, failures(trials)
    assert not failures(trials)


def test_crash_points_resume_to_identical_outputs(harness):
    trials = harness.crash_points()
    print("\n" + markdown_table(trials))
    assert len(trials) == len(CRASH_TRIALS) and not failures(trials)
    checkpointed = [t for t in trials if t.kind.startswith("checkpoint:")]
    # The second and third checkpoint saves were cut short: the first (or second) complete one resumes.
    assert checkpointed and all(t.resumed_from_checkpoint for t in checkpointed)


def test_a_killed_run_leaves_no_worker_behind(tiny_models, tmp_path):
    """Corpus workers die with langbuild: none may go on writing into the staging folder the next run rebuilds."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from tests.tiny import make_tiny_project

    root = make_tiny_project(tmp_path / "p", tiny_models["llama-spm"], train_books=8, **{"corpus.workers": 2})
    proc = subprocess.Popen([sys.executable, "-m", "langbuild", "run", "-C", str(root), "--until", "corpus"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while len(workers := parent.children(recursive=True)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert len(workers) >= 2, "the corpus step should have started its worker processes"
    proc.send_signal(signal.SIGKILL)  # the work units are queued; the workers are still starting up
    proc.wait()
    killed_at = time.time()
    psutil.wait_procs(workers, timeout=5)  # a worker that outlives its parent could write on: give it the time
    written_later = [p for p in (root / ".langbuild/staging").rglob("*") if p.stat().st_mtime > killed_at]
    assert not written_later, f"files written after the kill: {written_later[:3]}"
    assert not [w for w in workers if still_running(w)]
