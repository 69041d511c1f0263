"""kill -9 at random moments of every step and at the named crash points; every resume must match.

The default run kills each step once (seeded) plus every crash point. The full campaign is
``python -m tests.reliability.faults --kills 56`` (or LANGBUILD_FAULT_KILLS=56 for this test).
"""

from __future__ import annotations

import os

import pytest

from langbuild.pipeline import STEP_NAMES
from tests.reliability.faults import CRASH_TRIALS, FaultHarness, failures, markdown_table

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def harness(tiny_models, tmp_path_factory) -> FaultHarness:
    prepared = FaultHarness(tmp_path_factory.mktemp("faults"), tiny_models["gpt2-bytelevel"], seed=1)
    prepared.prepare()
    return prepared


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
