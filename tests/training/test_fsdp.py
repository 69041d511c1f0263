"""FSDP (torch's fully_shard) on CPU processes with gloo: sharded training equals DDP and one process,
consolidated checkpoints resume exactly after a kill -9, the embeddings stage's row mask holds under
sharding, and stages switch from a sharded model to the next stage's."""

from __future__ import annotations

import json
import shutil
import signal

import pytest
import torch
from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.models.loading import load_model
from tests.steps.test_train_recipes import _cli, _set, _train, train_until_logged
from tests.tiny import make_tiny_project, read_json

QUIET = Console(quiet=True)
SMALL_STEPS = {"train__batch_size": 2, "train__tokens_per_step": 4 * 32, "train__save_every": 3}


@pytest.fixture(scope="module")
def extended(tiny_models, tmp_path_factory):
    root = make_tiny_project(tmp_path_factory.mktemp("fsdp"), tiny_models["llama-spm"])
    # Select's fingerprint holds the batch size and stages (its memory estimate and timed steps use them):
    # set here as most tests copy them, so a copy does not re-run select.
    _set(root, train__precision="fp32", train__stages=["embeddings", "full"], **SMALL_STEPS)
    pipeline.run(Project(root), QUIET, until="extend")
    return root


def _copy(extended, folder, **settings):
    shutil.copytree(extended, folder)
    _set(folder, **{**SMALL_STEPS, **settings})
    return folder


def _metrics(root):
    return [json.loads(line) for line in (root / "train/metrics.jsonl").read_text().splitlines()]


def _max_loss_gap(first, second):
    assert [r["step"] for r in first] == [r["step"] for r in second]
    return max(abs(a["loss"] - b["loss"]) for a, b in zip(first, second))


def _assert_same_weights(first, second, atol):
    a, b = load_model(first / "train/model"), load_model(second / "train/model")
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(x, y, atol=atol), name


def test_fsdp_in_one_process_trains_like_the_plain_loop_through_stages_and_resume(extended, tmp_path, monkeypatch):
    """World size 1: sharding, the stage switch (a sharded model gathered into the next stage's), the
    consolidated checkpoint and its resume, all in this process."""
    settings = {"train__stages": ["embeddings", "full"], "train__embedding_steps": 3, "train__max_steps": 7,
                "train__replay_fraction": 0.3}
    plain = _copy(extended, tmp_path / "plain", **settings)
    sharded = _copy(extended, tmp_path / "sharded", train__launcher="fsdp", **settings)
    expected = _train(plain)
    assert _max_loss_gap(expected, _train(sharded)) < 1e-5
    _assert_same_weights(plain, sharded, 1e-5)

    from tests.steps.test_train_recipes import _interrupt_at

    resumed = _copy(extended, tmp_path / "resumed", train__launcher="fsdp", **settings)
    _interrupt_at(monkeypatch, 5)  # after the step-3 checkpoint, inside the full stage
    with pytest.raises(KeyboardInterrupt):
        _train(resumed)
    monkeypatch.undo()
    assert _max_loss_gap(expected, _train(resumed)) < 1e-5


def test_fsdp_lora_stage_in_one_process(extended, tmp_path):
    settings = {"train__stages": ["embeddings", "lora"], "train__embedding_steps": 2, "train__max_steps": 5,
                "train__lora_rank": 4, "train__unfreeze_layers": 1}
    plain = _copy(extended, tmp_path / "plain", **settings)
    sharded = _copy(extended, tmp_path / "sharded", train__launcher="fsdp", **settings)
    assert _max_loss_gap(_train(plain), _train(sharded)) < 1e-5
    _assert_same_weights(plain, sharded, 1e-5)


def test_two_fsdp_processes_train_like_one_process_and_keep_old_rows_bit_identical(extended, tmp_path):
    """The embeddings stage under sharding: each process masks its own rows of the gradient. The
    reference is the plain loop in this process (two DDP processes train like it: test_train_recipes)."""
    settings = {"train__stages": ["embeddings"], "train__max_steps": 4, "train__eval_every": 2}
    single = _copy(extended, tmp_path / "single", **settings)
    fsdp = _copy(extended, tmp_path / "fsdp", train__launcher="fsdp", **settings)
    expected = _train(single)
    result = _cli("train", "-C", str(fsdp), "--num-processes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_json(fsdp / "train/summary.json")["processes"] == 2
    assert _max_loss_gap(expected, _metrics(fsdp)) < 1e-4
    held_out = [(r.get("valid_bits_per_byte"), s.get("valid_bits_per_byte")) for r, s in zip(expected, _metrics(fsdp))]
    assert all((a is None) == (b is None) and (a is None or abs(a - b) < 1e-4) for a, b in held_out)
    assert any(a is not None for a, _ in held_out)
    _assert_same_weights(single, fsdp, 1e-4)
    new_rows = [t["id"] for t in read_json(fsdp / "extend/new_tokens.json")]
    before, after = load_model(fsdp / "extend/model"), load_model(fsdp / "train/model")
    old = torch.ones(before.get_input_embeddings().weight.shape[0], dtype=torch.bool)
    old[new_rows] = False
    for matrix in ("get_input_embeddings", "get_output_embeddings"):
        first, second = getattr(before, matrix)().weight, getattr(after, matrix)().weight
        assert torch.equal(first[old], second[old]), matrix
        assert not torch.equal(first[new_rows], second[new_rows]), matrix


def test_a_killed_two_process_fsdp_run_resumes_to_the_uninterrupted_losses(extended, tmp_path):
    """kill -9 mid-run, then a rerun: the consolidated checkpoint (model and every shard of the
    optimizer state) resumes to the losses of an uninterrupted run, through a stage switch. The
    uninterrupted run is sharded in this process (world size 1: two processes train like one, above)."""
    settings = {"train__stages": ["embeddings", "full"], "train__embedding_steps": 4, "train__max_steps": 30,
                "train__launcher": "fsdp"}
    reference = _copy(extended, tmp_path / "reference", **settings)
    killed = _copy(extended, tmp_path / "killed", train__num_processes=2, **settings)
    expected = _train(reference)
    proc = train_until_logged(killed, steps=8)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = _cli("train", "-C", str(killed), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from checkpoint" in result.stdout
    assert _max_loss_gap(expected, _metrics(killed)) < 1e-4
    checkpoints = sorted((killed / "train/checkpoints").glob("step-*"))
    assert checkpoints, "a consolidated checkpoint is kept"
    assert read_json(killed / "train/summary.json")["processes"] == 2


def test_bf16_under_fsdp_keeps_fp32_shards_and_trains_like_the_bf16_master_weights(extended, tmp_path):
    """FSDP's mixed precision (bf16 compute over fp32 shards, fp32 gradient reduction) against
    langbuild's own bf16 master weights in one process: the same recipe, so the same losses to bf16
    rounding; the saved model is fp32."""
    settings = {"train__stages": ["full"], "train__max_steps": 4, "train__precision": "bf16"}
    single = _copy(extended, tmp_path / "single", **settings)
    sharded = _copy(extended, tmp_path / "sharded", train__launcher="fsdp", **settings)
    expected = _train(single)
    result = _cli("train", "-C", str(sharded), "--num-processes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_json(sharded / "train/summary.json")["precision"]["name"] == "bf16"
    assert _max_loss_gap(expected, _metrics(sharded)) < 2e-2
    model = load_model(sharded / "train/model")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    _assert_same_weights(single, sharded, 2e-2)


def test_fp16_under_fsdp_is_refused_in_one_line():
    """fp16 needs loss scaling that the sharded path does not have (on a CPU, fp16 is refused earlier)."""
    from langbuild.core.errors import LangbuildError
    from langbuild.training.launch import check_launcher

    check_launcher("fsdp", "bf16")
    with pytest.raises(LangbuildError, match="set train.precision = bf16"):
        check_launcher("fsdp", "fp16")
