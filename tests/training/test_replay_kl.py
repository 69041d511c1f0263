"""train.replay_kl: the chunked KL(teacher || student) on replay rows equals the full-logits formula in value
and gradients (soft-capped and tied heads too), 0 changes nothing, a positive weight keeps the replay
rows' distributions nearer the model training started from, and resumed runs repeat the losses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.models.loading import load_model, load_tokenizer
from langbuild.training import loop
from langbuild.training.data import TokenBlocks, process_rows, replay_rows, tokenise_to_file
from langbuild.training.loss import causal_lm_loss, enable_chunked_loss, head_kl, model_parts, teacher_inputs
from tests.steps.test_train_recipes import _interrupt_at, _set, _train
from tests.tiny import chichewa_split, english_lines, make_tiny_project
from tests.training.test_loss import FAMILIES, batch_with_ignored, tiny_model
from tests.training.test_out_of_memory import _plan

QUIET = Console(quiet=True)
REPLAY = [True, False, True]  # rows of batch_with_ignored's three that are replay


def _reference_loss(student, teacher, ids, labels, beta: float):
    """(CE sum + beta * KL sum over the replay rows' labelled positions) / labelled positions, from full logits."""
    logits = student(input_ids=ids).logits.float()
    with torch.no_grad():
        teacher_logits = teacher(input_ids=ids).logits.float()
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")
    rows = torch.tensor([r for r, is_replay in enumerate(REPLAY) if is_replay])
    kept = targets[rows] != -100
    kl = F.kl_div(F.log_softmax(logits[rows][kept], -1), F.log_softmax(teacher_logits[rows][kept], -1),
                  log_target=True, reduction="sum")
    return (ce + beta * kl) / (targets != -100).sum()


def _gradients(model) -> dict:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_close(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys() and ours
    for name in ours:
        scale = max(theirs[name].abs().max().item(), 1e-6)
        assert (ours[name] - theirs[name]).abs().max().item() <= 1e-5 * scale, name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("chunk", [5, None])
def test_the_chunked_kl_equals_the_full_logits_formula_in_value_and_gradient(family, chunk):
    student, teacher = tiny_model(family, seed=0), tiny_model(family, seed=1).eval()
    ids, labels = batch_with_ignored()
    hidden = torch.randn(17, 32, dtype=torch.float32, requires_grad=True)
    teacher_hidden = torch.randn(17, 32)
    (_, head), (_, teacher_head) = model_parts(student), model_parts(teacher)
    kl = head_kl(hidden, head, teacher_hidden, teacher_head, chunk=chunk)
    kl.mul(torch.linspace(0.5, 2.0, 17)).sum().backward()  # an uneven incoming gradient
    ours = {"hidden": hidden.grad.clone(), "weight": head.weight.grad.clone()}
    hidden.grad, head.weight.grad = None, None
    from langbuild.training.loss import _chunk_logits

    logits, _ = _chunk_logits(hidden, head.weight, head.bias, head.scale, head.softcap)
    teacher_logits, _ = _chunk_logits(teacher_hidden, teacher_head.weight, teacher_head.bias, teacher_head.scale,
                                      teacher_head.softcap)
    reference = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(teacher_logits, -1), log_target=True,
                         reduction="none").sum(-1)
    assert torch.allclose(kl, reference.detach(), rtol=1e-5, atol=1e-6)
    reference.mul(torch.linspace(0.5, 2.0, 17)).sum().backward()
    _assert_close(ours, {"hidden": hidden.grad, "weight": head.weight.grad})


@pytest.mark.parametrize("family", FAMILIES)
def test_the_loss_with_a_teacher_equals_ce_plus_beta_kl_through_the_forward(family):
    student, teacher = tiny_model(family, seed=0), tiny_model(family, seed=1).eval()
    ids, labels = batch_with_ignored()
    enable_chunked_loss(student)
    # Twice without zeroing: the second backward of a tied head adds into the existing .grad (into_grad).
    for _ in range(2):
        replay_teacher = teacher_inputs(teacher, ids, REPLAY, 0.7)
        ours = student(input_ids=ids, labels=labels, chunked_loss=True, replay_teacher=replay_teacher).loss
        ours.backward()
    ours_grads = _gradients(student)
    for _ in range(2):
        reference = _reference_loss(student, teacher, ids, labels, 0.7)
        reference.backward()
    assert abs(ours.item() - reference.item()) <= 1e-5 * abs(reference.item())
    _assert_close(ours_grads, _gradients(student))


def test_softcapping_bends_the_kl():
    capped, plain = tiny_model("gemma3-softcap"), tiny_model("gemma3")
    teacher_capped, teacher_plain = tiny_model("gemma3-softcap", 1), tiny_model("gemma3", 1)
    ids, labels = batch_with_ignored()
    with_cap = causal_lm_loss(capped, ids, labels, teacher=teacher_inputs(teacher_capped, ids, REPLAY, 1.0))[0]
    without = causal_lm_loss(plain, ids, labels, teacher=teacher_inputs(teacher_plain, ids, REPLAY, 1.0))[0]
    assert abs(with_cap.item() - without.item()) > 1e-3


def test_no_replay_row_or_a_zero_weight_means_no_teacher():
    teacher = tiny_model("llama", 1).eval()
    ids, _ = batch_with_ignored()
    assert teacher_inputs(teacher, ids, [False] * 3, 1.0) is None
    assert teacher_inputs(teacher, ids, REPLAY, 0.0) is None


def test_a_lora_student_gets_the_reference_adapter_gradients():
    from peft import LoraConfig, get_peft_model

    teacher = tiny_model("llama", 0).eval()
    student = get_peft_model(tiny_model("llama", 0), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    ids, labels = batch_with_ignored()
    enable_chunked_loss(student)
    ours = student(input_ids=ids, labels=labels, chunked_loss=True,
                   replay_teacher=teacher_inputs(teacher, ids, REPLAY, 2.0)).loss
    ours.backward()
    ours_grads = _gradients(student)
    reference = _reference_loss(student, teacher, ids, labels, 2.0)
    reference.backward()
    assert abs(ours.item() - reference.item()) <= 1e-5 * abs(reference.item())
    _assert_close(ours_grads, _gradients(student))


# -- the Trainer ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens(tiny_models, tmp_path_factory):
    source = tiny_models["llama-spm"]
    train, valid = chichewa_split(1)
    path = tmp_path_factory.mktemp("tokens") / "train.bin"
    return source, path, tokenise_to_file(load_tokenizer(source), train, path), valid[:10]


@pytest.fixture(scope="module")
def replay_tokens(tokens, tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "replay.bin"
    return path, tokenise_to_file(load_tokenizer(tokens[0]), english_lines()[:300], path)


def _replay_plan(tokens, replay_tokens, out, **changes):
    path, count = replay_tokens
    return _plan(tokens, out, replay_tokens=str(path), replay_token_count=count, replay_fraction=0.5, total_steps=8,
                 stages=[loop.Stage("full", 0, 8)], batch_size=4, save_every=100, **changes)


def _losses(out) -> list[float]:
    import json

    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_replay_kl_zero_calls_the_forward_as_before_and_loads_no_teacher(tokens, replay_tokens, tmp_path, monkeypatch):
    calls = []
    original = loop.Trainer._teacher_kwargs

    def recorded(self, rows, replay):
        calls.append(original(self, rows, replay))
        return calls[-1]

    monkeypatch.setattr(loop.Trainer, "_teacher_kwargs", recorded)
    trainer = loop.Trainer(_replay_plan(tokens, replay_tokens, tmp_path / "a"), QUIET)
    trainer.run()
    assert trainer.teacher is None and calls and all(kwargs == {} for kwargs in calls)
    loop.Trainer(_replay_plan(tokens, replay_tokens, tmp_path / "b", replay_kl=0.0), QUIET).run()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_the_teacher_sees_exactly_the_rows_read_from_the_replay_text(tokens, replay_tokens, tmp_path):
    plan = _replay_plan(tokens, replay_tokens, tmp_path / "x", replay_kl=1.0)
    trainer = loop.Trainer(plan, QUIET)
    trainer.teacher = object()  # only its presence matters here
    target = TokenBlocks(Path(plan.train_tokens), plan.train_token_count, plan.seq_len, "t")
    replay = TokenBlocks(Path(plan.replay_tokens), plan.replay_token_count, plan.seq_len, "r")
    seen = 0
    for step in range(4):
        drawn = trainer._my_replay_rows(step)
        assert drawn == replay_rows(step, plan.global_batch, plan.replay_fraction, plan.seed)
        rows = process_rows(step, plan.global_batch, target, replay, plan.replay_fraction, plan.seed)
        all_replay = process_rows(step, plan.global_batch, target, replay, 1.0, plan.seed)  # same replay order
        assert [torch.equal(rows[r], all_replay[r]) for r in range(len(drawn))] == drawn
        seen += sum(drawn)
    assert 0 < seen < 4 * plan.global_batch


def _replay_kl_to_source(model, source, blocks) -> float:
    """Mean KL(source || model) over the replay blocks' positions."""
    with torch.no_grad():
        p = F.log_softmax(source(input_ids=blocks).logits.float(), -1)
        q = F.log_softmax(model(input_ids=blocks).logits.float(), -1)
    return F.kl_div(q, p, log_target=True, reduction="batchmean").item() / blocks.shape[1]


def test_a_positive_weight_moves_the_replay_rows_less_from_the_teacher(tokens, replay_tokens, tmp_path):
    kl = {}
    # Eight steps of a tiny model: the KL starts at 0 and acts only once the student has drifted, so the
    # weight is large (5 gives ~10 %, 50 ~70 % less drift here).
    for beta in (0.0, 50.0):
        out = tmp_path / f"beta-{beta}"
        loop.Trainer(_replay_plan(tokens, replay_tokens, out, replay_kl=beta, learning_rate=1e-2), QUIET).run()
        source, trained = load_model(tokens[0]).eval(), load_model(out / "model").eval()
        blocks = TokenBlocks(*replay_tokens, 32, "replay")[list(range(8))]
        kl[beta] = _replay_kl_to_source(trained, source, blocks)
    assert kl[50.0] < 0.5 * kl[0.0], kl


# -- through the pipeline: resume in every stage, bf16 masters -------------------------------------------

@pytest.fixture(scope="module")
def extended_bf16(tiny_models, tmp_path_factory):
    root = make_tiny_project(tmp_path_factory.mktemp("extended-kl"), tiny_models["llama-spm"])
    _set(root, train__precision="bf16")  # bf16 master weights: the teacher computes in bf16 too
    pipeline.run(Project(root), QUIET, until="extend")
    return root


@pytest.mark.parametrize("stages", [["embeddings", "lora"], ["embeddings", "full"]])
def test_an_interrupted_bf16_run_with_replay_kl_resumes_with_the_same_losses(extended_bf16, tmp_path, monkeypatch,
                                                                             stages):
    extended = extended_bf16
    settings = {"train__stages": stages, "train__embedding_steps": 3, "train__max_steps": 7, "train__save_every": 2,
                "train__replay_fraction": 0.4, "train__replay_kl": 1.0, "train__lora_rank": 4,
                "train__tokens_per_step": 2 * 2 * 32}
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for root in (reference, interrupted):
        shutil.copytree(extended, root)
        _set(root, **settings)
    expected = {r["step"]: r["loss"] for r in _train(reference)}
    _interrupt_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(Project(interrupted), QUIET, until="train")
    monkeypatch.undo()
    assert {r["step"]: r["loss"] for r in _train(interrupted)} == expected
