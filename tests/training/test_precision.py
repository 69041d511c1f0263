"""Precision: auto's choice per machine, and bf16 training over fp32 master weights (exact to a hand
computation, small updates kept, old rows untouched, resume and kill -9 repeating the losses exactly)."""

from __future__ import annotations

import json
import math
import shutil
import signal

import pytest
import torch
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.models.loading import load_model
from langbuild.training import precision
from langbuild.training.precision import MasterWeights, resolve_precision
from langbuild.training.stages import setup_stage
from tests.steps.test_train_recipes import _interrupt_at, _set, _train, train_until_logged
from tests.tiny import make_tiny_project, read_json

QUIET = Console(quiet=True)
needs_cpu = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's choice")


# -- choosing --------------------------------------------------------------------------------------------

@needs_cpu
def test_auto_picks_fp32_where_the_measurement_shows_bf16_slower(monkeypatch):
    monkeypatch.delenv(precision.SPEEDUP_ENV, raising=False)
    monkeypatch.setattr(precision, "_measured", {})
    slow = {torch.float32: 1.0, torch.bfloat16: 8.0}  # a CPU without bf16 units: emulated, 8x slower
    monkeypatch.setattr(precision, "_best_times", lambda passes, repeats, settled: {d: slow[d] for d in passes})
    choice = resolve_precision("auto")
    assert choice.name == "fp32" and choice.speedup == pytest.approx(0.125) and "0.12x" in choice.describe()
    monkeypatch.setattr(precision, "_measured", {})
    fast = {torch.float32: 5.0, torch.bfloat16: 1.0}  # AMX
    monkeypatch.setattr(precision, "_best_times", lambda passes, repeats, settled: {d: fast[d] for d in passes})
    assert resolve_precision("auto").name == "bf16"


def test_the_measurement_stops_once_bf16_is_plainly_emulated():
    calls = {"fp32": 0, "bf16": 0}

    def counted(key):
        return lambda: calls.__setitem__(key, calls[key] + 1)

    passes = {key: counted(key) for key in calls}
    precision._best_times(passes, 7, settled=lambda best: True)
    assert calls == {"fp32": 2, "bf16": 2}  # the warm-up and one timed round
    precision._best_times(passes, 7)
    assert calls == {"fp32": 10, "bf16": 10}  # all seven rounds when nothing settles it


@needs_cpu
def test_the_measurement_is_real_and_the_variable_replaces_it(monkeypatch):
    monkeypatch.delenv(precision.SPEEDUP_ENV, raising=False)
    monkeypatch.setattr(precision, "_measured", {})
    measured = precision.bf16_speedup()
    assert math.isfinite(measured) and measured > 0
    monkeypatch.setenv(precision.SPEEDUP_ENV, "0.5")
    assert resolve_precision("auto").name == "fp32"
    monkeypatch.setenv(precision.SPEEDUP_ENV, "fast")
    with pytest.raises(LangbuildError, match="must be a number"):
        resolve_precision("auto")


@needs_cpu
def test_forced_choices_and_fp16_on_a_cpu(monkeypatch):
    monkeypatch.setenv(precision.SPEEDUP_ENV, "0.1")  # bf16 slow here, yet forced bf16 runs
    assert resolve_precision("bf16").name == "bf16" and resolve_precision("fp32").name == "fp32"
    with pytest.raises(LangbuildError) as caught:
        resolve_precision("fp16")
    assert str(caught.value) == "train.precision = fp16 needs a GPU: use fp32 or bf16 on the CPU"


# -- bf16 over fp32 master weights ---------------------------------------------------------------------

class _Plan:
    new_rows: list = []
    unfreeze_layers = 0
    learning_rate = 1e-2
    embedding_learning_rate = 1e-2
    weight_decay = 0.1
    lora_rank = 4
    lora_alpha = 8
    gradient_checkpointing = False


def _batches(vocab: int, steps: int):
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, (2, 16), generator=generator) for _ in range(steps)]


def _train_with_masters(folder, batches, lr, max_norm=1.0):
    model = load_model(folder)
    setup = setup_stage(model, "full", _Plan(), seed=0)
    masters = MasterWeights(setup.model, setup.groups, setup.row_masks)
    optimizer = torch.optim.AdamW(masters.groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for batch in batches:
        model(input_ids=batch, labels=batch).loss.backward()
        masters.collect_gradients()
        torch.nn.utils.clip_grad_norm_(masters.masters, max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        masters.publish()
    return model, masters


def _by_hand(folder, batches, lr, max_norm=1.0, beta1=0.9, beta2=0.95, eps=1e-8, decay=0.1):
    """The same training written out: fp32 weights, gradients from a bf16 copy, AdamW by its formula."""
    weights = {n: p.detach().clone() for n, p in load_model(folder).named_parameters()}
    first = {n: torch.zeros_like(w) for n, w in weights.items()}
    second = {n: torch.zeros_like(w) for n, w in weights.items()}
    for t, batch in enumerate(batches, start=1):
        compute = load_model(folder)
        with torch.no_grad():
            for name, param in compute.named_parameters():
                param.copy_(weights[name])
        for param in compute.parameters():  # parameters only: buffers such as rotary frequencies stay fp32
            param.data = param.data.to(torch.bfloat16)
        compute(input_ids=batch, labels=batch).loss.backward()
        grads = {n: p.grad.float() for n, p in compute.named_parameters()}
        norm = torch.sqrt(sum((g * g).sum() for g in grads.values()))
        scale = min(1.0, max_norm / (float(norm) + 1e-6))
        for name, w in weights.items():
            g = grads[name] * scale
            w.mul_(1 - lr * decay)
            first[name] = beta1 * first[name] + (1 - beta1) * g
            second[name] = beta2 * second[name] + (1 - beta2) * g * g
            m_hat, v_hat = first[name] / (1 - beta1**t), second[name] / (1 - beta2**t)
            w.sub_(lr * m_hat / (v_hat.sqrt() + eps))
    return weights


def test_bf16_training_keeps_fp32_masters_equal_to_a_hand_computation(tiny_models):
    folder = tiny_models["llama-spm"]
    batches = _batches(200, 3)
    model, masters = _train_with_masters(folder, batches, lr=1e-2)
    expected = _by_hand(folder, batches, lr=1e-2)
    model_params = dict(model.named_parameters())
    with masters.fp32_weights():
        exact = {n: p.detach().clone() for n, p in model.named_parameters()}
    for name, value in expected.items():
        assert model_params[name].dtype == torch.bfloat16
        assert torch.allclose(exact[name], value, rtol=1e-5, atol=1e-6), name
        # the model computes with the masters rounded to bf16
        assert torch.equal(model_params[name], exact[name].to(torch.bfloat16)), name
    assert any(not torch.equal(exact[n], p.float()) for n, p in model_params.items())  # masters hold more than bf16


def test_updates_too_small_for_bf16_are_kept_by_the_masters(tiny_models):
    """lr 1e-6 moves weights of ~0.02 by ~0.005 %: far below bf16's resolution (~0.4 %)."""
    folder = tiny_models["llama-spm"]
    batches = _batches(200, 2)
    start = {n: p.detach().clone() for n, p in load_model(folder).named_parameters()}
    pure = load_model(folder).to(torch.bfloat16)  # weights themselves in bf16: the updates round away
    optimizer = torch.optim.AdamW(pure.parameters(), lr=1e-6, weight_decay=0.0)
    for batch in batches:
        pure(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    name = "model.layers.0.mlp.up_proj.weight"
    unchanged = (dict(pure.named_parameters())[name].float() == start[name].to(torch.bfloat16).float()).float().mean()
    assert unchanged > 0.9
    model, masters = _train_with_masters(folder, batches, lr=1e-6)
    with masters.fp32_weights():
        kept = dict(model.named_parameters())[name].detach().clone()
    assert (kept != start[name]).float().mean() > 0.9


def test_release_gives_back_an_fp32_model_with_the_masters_values(tiny_models):
    model, masters = _train_with_masters(tiny_models["gpt2-bytelevel"], _batches(200, 2), lr=1e-3)
    with masters.fp32_weights():
        exact = {n: p.detach().clone() for n, p in model.named_parameters()}
    released = masters.release()
    for name, param in released.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, exact[name]), name
    # a tied embedding and head stay one tensor
    assert released.get_input_embeddings().weight is released.get_output_embeddings().weight


# -- the train step in bf16 ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extended_bf16(tiny_models, tmp_path_factory):
    root = make_tiny_project(tmp_path_factory.mktemp("extended-bf16"), tiny_models["llama-spm"])
    _set(root, train__precision="bf16")
    pipeline.run(Project(root), QUIET, until="extend")
    return root


def test_the_bf16_embeddings_stage_keeps_every_old_row_bit_identical(extended_bf16, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(extended_bf16, root)
    _set(root, train__stages=["embeddings"], train__max_steps=3)
    _train(root)
    summary = read_json(root / "train/summary.json")
    assert summary["precision"]["name"] == "bf16" and summary["precision"]["requested"] == "bf16"
    new_rows = [t["id"] for t in read_json(root / "extend/new_tokens.json")]
    before, after = load_model(root / "extend/model"), load_model(root / "train/model")
    assert all(p.dtype == torch.float32 for p in after.parameters())  # saved from the fp32 masters
    old = torch.ones(before.get_input_embeddings().weight.shape[0], dtype=torch.bool)
    old[new_rows] = False
    for b, a in zip(before.parameters(), after.parameters()):
        if b.shape[0] == old.shape[0]:
            assert torch.equal(a[old], b[old]) and not torch.equal(a[~old], b[~old])
        else:
            assert torch.equal(a, b)  # frozen: exactly the fp32 values, not a bf16 round trip


@pytest.mark.parametrize("stages", [["embeddings", "lora"], ["embeddings", "full"]])
def test_an_interrupted_bf16_run_resumes_with_exactly_the_same_losses(extended_bf16, tmp_path, monkeypatch, stages):
    settings = {"train__stages": stages, "train__embedding_steps": 3, "train__max_steps": 8, "train__save_every": 2,
                "train__replay_fraction": 0.3, "train__lora_rank": 4, "train__tokens_per_step": 2 * 2 * 32}
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for root in (reference, interrupted):
        shutil.copytree(extended_bf16, root)
        _set(root, **settings)
    expected = {r["step"]: r["loss"] for r in _train(reference)}
    for fail_at in (2, 5):
        _interrupt_at(monkeypatch, fail_at)
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(Project(interrupted), QUIET, until="train")
        monkeypatch.undo()
    resumed = {r["step"]: r["loss"] for r in _train(interrupted)}
    assert resumed == expected  # exactly: the checkpoints hold the fp32 masters and the fp32 optimizer state
    a, b = load_model(reference / "train/model"), load_model(interrupted / "train/model")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_kill_9_in_a_bf16_run_resumes_to_the_uninterrupted_losses(extended_bf16, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for root in (reference, killed):
        shutil.copytree(extended_bf16, root)
        _set(root, train__max_steps=150, train__save_every=3)
    expected = _train(reference)
    proc = train_until_logged(killed, steps=7)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before the kill: give it more steps"
    pipeline.run(Project(killed), QUIET, until="train")
    resumed = [json.loads(line) for line in (killed / "train/metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in expected]


def test_auto_keeps_the_checkpoints_precision_unless_the_machine_plainly_calls_for_the_other():
    measured = lambda speedup: precision.PrecisionChoice(  # noqa: E731
        "bf16" if speedup >= precision.MIN_SPEEDUP else "fp32", "auto", "fresh", speedup)
    assert precision.resumed_choice(measured(1.2), None).name == "fp32"  # a fresh run: the measurement
    assert precision.resumed_choice(measured(1.2), "bf16").name == "bf16"  # near the threshold: kept
    assert precision.resumed_choice(measured(1.6), "fp32").name == "fp32"
    assert precision.resumed_choice(measured(0.5), "bf16").name == "fp32"  # bf16 slower here: switch
    assert precision.resumed_choice(measured(5.0), "fp32").name == "bf16"  # AMX-fast here: switch
    forced = precision.PrecisionChoice("fp32", "fp32", "set by train.precision")
    assert precision.resumed_choice(forced, "bf16") is forced


@pytest.mark.parametrize(("resumed_speedup", "kept"), [("1.2", True), ("0.5", False)])
def test_a_resumed_auto_run_keeps_its_precision_on_a_machine_measuring_near_the_threshold(
        extended_bf16, tmp_path, monkeypatch, resumed_speedup, kept):
    """A busy machine measures bf16 at 1.5x, then 1.2x after a restart: auto must not flip the run to
    fp32 halfway (its losses would no longer repeat); a machine where bf16 is slower does switch."""
    settings = {"train__precision": "auto", "train__max_steps": 6, "train__save_every": 2}
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for root in (reference, interrupted):
        shutil.copytree(extended_bf16, root)
        _set(root, **settings)
    monkeypatch.setenv(precision.SPEEDUP_ENV, "1.5")
    expected = [r["loss"] for r in _train(reference)]
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(Project(interrupted), QUIET, until="train")
    monkeypatch.undo()
    monkeypatch.setenv(precision.SPEEDUP_ENV, resumed_speedup)
    resumed = [r["loss"] for r in _train(interrupted)]
    choice = read_json(interrupted / "train/summary.json")["precision"]
    assert choice["name"] == ("bf16" if kept else "fp32")
    assert ("kept from the checkpoint" in choice["reason"]) == kept
    assert resumed[:2] == expected[:2]
    assert (resumed == expected) == kept  # fp32 steps after the resume compute different losses


# -- scoring -------------------------------------------------------------------------------------------

def test_scoring_in_bf16_casts_parameters_only_and_moves_bits_per_byte_slightly(tiny_models):
    from transformers import AutoTokenizer

    from langbuild.models.scoring import bits_per_byte
    from langbuild.training.precision import cast_parameters
    from tests.tiny import chichewa_split

    folder = tiny_models["llama-spm"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = chichewa_split(1)[1][:20]
    exact = bits_per_byte(load_model(folder), tokenizer, texts)["bits_per_byte"]
    model = cast_parameters(load_model(folder), "bf16")
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(b.dtype == torch.float32 for b in model.buffers() if b.is_floating_point())  # rotary frequencies
    rounded = bits_per_byte(model, tokenizer, texts)["bits_per_byte"]
    assert rounded != exact and abs(rounded / exact - 1) < 0.01
