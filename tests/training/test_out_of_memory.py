"""Out of memory anywhere in training ends in one line naming what to lower, and a failed checkpoint
write leaves the earlier checkpoints to resume from. The errors are raised where a real one would come
from (the optimizer's step, the scoring pass, safetensors' writer), through the real Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from langbuild.core.errors import LangbuildError, is_out_of_memory, out_of_memory_becomes
from langbuild.models.loading import load_tokenizer
from langbuild.training import checkpoints, loop, memory
from langbuild.training.checkpoints import load_latest_checkpoint
from langbuild.training.data import tokenise_to_file
from langbuild.training.plan import Stage, TrainPlan
from tests.tiny import chichewa_split

QUIET = Console(quiet=True)
CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes. Error code 12"


@pytest.fixture(scope="module")
def tokens(tiny_models, tmp_path_factory):
    source = tiny_models["llama-spm"]
    train, valid = chichewa_split(1)
    path = tmp_path_factory.mktemp("tokens") / "train.bin"
    return source, path, tokenise_to_file(load_tokenizer(source), train, path), valid[:10]


def _plan(tokens, out: Path, **changes) -> TrainPlan:
    source, path, count, valid = tokens
    plan = TrainPlan(source=str(source), train_tokens=str(path), train_token_count=count, out=str(out), seq_len=32,
                     batch_size=2, accumulation=1, num_processes=1, total_steps=6, stages=[Stage("full", 0, 6)],
                     learning_rate=3e-3, embedding_learning_rate=3e-3, warmup_steps=1, schedule="cosine",
                     decay_fraction=0.2, weight_decay=0.0, max_grad_norm=1.0, precision="fp32",
                     gradient_checkpointing=False, new_rows=[], lora_rank=4, lora_alpha=8, unfreeze_layers=0, seed=0,
                     threads=1, save_every=2, keep_checkpoints=2, eval_every=0, early_stopping=0, valid_texts=valid)
    for key, value in changes.items():
        setattr(plan, key, value)
    return plan


def _fail_on_call(monkeypatch, owner, name: str, call: int, error: Exception) -> None:
    """``owner.name`` raises ``error`` on its ``call``-th call and works before it."""
    original, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


def _run_error(plan: TrainPlan) -> str:
    with pytest.raises(LangbuildError) as caught:
        loop.Trainer(plan, QUIET).run()
    message = str(caught.value)
    assert "\n" not in message and len(message) <= 400 and message.startswith("out of memory"), message
    return message


def _steps_saved(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def test_out_of_memory_in_the_optimizer_step_names_the_weights_trained(tokens, tmp_path, monkeypatch):
    out = tmp_path / "run"  # not created: the Trainer makes it (benchmarks/gpu_train.py crashed without)
    # AdamW allocates its state at the first step of a run; here the third step runs out (after step 2's checkpoint).
    _fail_on_call(monkeypatch, torch.optim.AdamW, "step", 3, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    message = _run_error(_plan(tokens, out))
    assert "optimizer step at step 3" in message and "train.stages" in message and "fsdp" in message
    assert _steps_saved(out) == ["step-000002"]
    monkeypatch.undo()
    summary = loop.Trainer(_plan(tokens, out), QUIET).run()  # the rerun resumes from step 2 and finishes
    assert summary["steps"] == 6


def test_out_of_memory_in_the_held_out_check_names_its_settings(tokens, tmp_path, monkeypatch):
    from langbuild.models import scoring as metrics

    _fail_on_call(monkeypatch, metrics, "bits_per_byte", 2, RuntimeError(CPU_OOM))
    message = _run_error(_plan(tokens, tmp_path / "run", eval_every=2))
    assert "held-out check at step 4" in message and "train.eval_every = 0" in message
    assert "train.batch_size" in message and "2 windows of 32 tokens" in message  # never more windows than the batch


def test_a_checkpoint_that_runs_out_of_memory_leaves_the_earlier_ones(tokens, tmp_path, monkeypatch):
    import safetensors.torch

    out = tmp_path / "run"
    _fail_on_call(monkeypatch, safetensors.torch, "save_model", 2, RuntimeError(CPU_OOM))
    message = _run_error(_plan(tokens, out))
    assert "writing the checkpoint at step 4" in message and "rerun resumes" in message
    assert _steps_saved(out) == ["step-000002"]  # no half-written .tmp-step-000004 left either
    monkeypatch.undo()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    loop.Trainer(_plan(tokens, out), QUIET).run()
    assert (out / "model" / "model.safetensors").is_file()


def test_writing_the_trained_model_out_of_memory_keeps_the_last_checkpoint(tokens, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    out = tmp_path / "run"
    _fail_on_call(monkeypatch, PreTrainedModel, "save_pretrained", 1, torch.OutOfMemoryError("CUDA out of memory."))
    message = _run_error(_plan(tokens, out))
    assert "writing the trained model" in message
    assert _steps_saved(out) == ["step-000002", "step-000004"]


def test_out_of_memory_in_a_pass_names_the_batch(tokens, tmp_path, monkeypatch):
    # The first matrix product of the first forward pass (every linear layer goes through F.linear).
    _fail_on_call(monkeypatch, torch.nn.functional, "linear", 1, RuntimeError(CPU_OOM))
    message = _run_error(_plan(tokens, tmp_path / "run"))
    assert message == str(memory.out_of_memory_error(_plan(tokens, tmp_path)))


def test_every_training_message_is_one_short_line(tokens, tmp_path):
    plan = _plan(tokens, tmp_path, batch_size=16, seq_len=1024)
    for where in ("load", "passes", "optimizer", "held-out", "save", "finish"):
        message = memory.out_of_memory_message(plan, where, 1234)
        assert "\n" not in message and len(message) <= 400, (where, len(message))


def test_a_checkpoint_that_cannot_be_loaded_for_lack_of_memory_is_not_skipped_as_damaged(tmp_path):
    (tmp_path / "step-000002").mkdir()
    (tmp_path / "step-000002" / "state.json").write_text('{"step": 2}')

    def restore(path, state):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    # An older checkpoint (or none: starting over) would silently throw the newest one's steps away.
    with pytest.raises(torch.OutOfMemoryError):
        load_latest_checkpoint(tmp_path, restore, QUIET)
    assert checkpoints.checkpoints(tmp_path)


def test_only_out_of_memory_errors_become_the_message():
    assert is_out_of_memory(RuntimeError(CPU_OOM)) and is_out_of_memory(torch.OutOfMemoryError("x"))
    with pytest.raises(LangbuildError, match="lower it"):
        with out_of_memory_becomes("lower it"):
            raise RuntimeError(CPU_OOM)
    with pytest.raises(ValueError):
        with out_of_memory_becomes("lower it"):
            raise ValueError("shape mismatch")
