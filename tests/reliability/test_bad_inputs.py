"""The bad-input suite (tests/reliability/bad_inputs.py): one clear line, a non-zero exit, nothing lost."""

from __future__ import annotations

import pytest

from tests.reliability.bad_inputs import CASES, Outcome, markdown_table, run_cases

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def outcomes(finished_projects) -> dict[str, Outcome]:
    results = run_cases(finished_projects["gpt2-bytelevel"])
    print("\n" + markdown_table(results))
    return {outcome.case.name: outcome for outcome in results}


def test_the_suite_covers_every_step_with_at_least_30_cases():
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)
    covered = {case.step for case in CASES}
    assert {"corpus", "tokenizer", "select", "extend", "train", "eval", "report", "config", "cli"} <= covered


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_bad_input_ends_cleanly_and_loses_nothing(outcomes, name):
    outcome = outcomes[name]
    if not outcome.ran:
        pytest.skip(outcome.note)
    assert outcome.clean_error, f"exit {outcome.exit_code}: {outcome.message} {outcome.note}"
    assert outcome.intact, outcome.note
