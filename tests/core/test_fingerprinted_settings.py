"""The schema says which settings change which step's output; the pipeline fingerprints exactly those."""

import os

import pytest

from langbuild.core.config import SCHEMA, STEP_NAMES, changes_nothing, fingerprinted_settings, lookup, steps_changed_by
from langbuild.pipeline import CHECK_READS, STEPS, get_step, unfingerprinted_reads

ALL_KEYS = [f"{section}.{name}" for section, items in SCHEMA.items() for name in items]


def test_the_schema_knows_the_pipeline_steps():
    assert list(STEP_NAMES) == [step.name for step in STEPS]
    for key in ALL_KEYS:
        assert set(steps_changed_by(key)) <= set(STEP_NAMES), key


def test_every_setting_changes_a_step_or_is_declared_to_change_nothing():
    for key in ALL_KEYS:
        fingerprinted = any(key in _expanded(fingerprinted_settings(step)) for step in STEP_NAMES)
        assert fingerprinted or changes_nothing(key) or lookup(key).fingerprinted_with_inputs, key


def _expanded(entries) -> set[str]:
    return {key for entry in entries for key in ([f"{entry}.{name}" for name in SCHEMA[entry]] if "." not in entry else [entry])}


def test_how_a_step_runs_never_reruns_it():
    train = _expanded(get_step("train").reads)
    for key in ("train.threads", "train.num_processes", "train.launcher", "train.save_every", "train.keep_checkpoints",
                "train.tensorboard", "corpus.workers"):
        assert changes_nothing(key) and key not in train


def test_a_section_whose_every_setting_counts_is_fingerprinted_by_its_name():
    assert "extend" in get_step("extend").reads and "extend.init" not in get_step("extend").reads
    assert "train" not in get_step("train").reads and "train.learning_rate" in get_step("train").reads
    assert "train.replay_kl" in get_step("train").reads and "train.learning_rate" not in get_step("select").reads
    # Select estimates training memory, so the training plan behind the estimate re-runs it.
    assert {"train.seq_len", "train.batch_size", "train.stages", "train.precision", "train.lora_rank"} <= set(get_step("select").reads)


@pytest.mark.parametrize("step, key, stale", [
    ("extend", "extend.init", False),           # its own
    ("extend", "corpus.min_chars", False),       # upstream: corpus's fingerprint reaches extend
    ("extend", "train.threads", False),          # changes nothing
    ("extend", "select.rule", True),             # select passes on only the chosen model
    ("extend", "train.learning_rate", True),     # downstream
    ("report", "select.rule", False),            # the report depends on every upstream output
    ("train", "train.replay_tokens", False),     # fingerprinted with the replay inputs
    ("train", "train.replay_kl", False),         # its own: the loss of replay rows
    ("corpus", "tokenizer.vocab_size", True),
])
def test_a_read_no_fingerprint_holds_is_found(step, key, stale):
    assert bool(unfingerprinted_reads(get_step(step), {key})) is stale


def test_the_suite_checks_every_step_it_runs():
    assert os.environ.get(CHECK_READS)  # tests/conftest.py: a step reading an undeclared setting fails its test
