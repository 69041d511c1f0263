"""The train step end to end on tiny projects: stages, LoRA, replay, accumulation, budgets, held-out
checks, resume inside every stage, several processes through accelerate, and every bad setting."""

from __future__ import annotations

import json
import shutil

import pytest
import tomlkit
import torch
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.models.loading import load_model
from langbuild.training import loop
from tests import forked_cli
from tests.tiny import english_lines, make_tiny_project, read_json, still_running, write_lines

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def extended(tiny_models, tmp_path_factory):
    """A tiny llama project (untied head, no dropout) run up to extend, training in fp32: the equality
    tests here compare losses to 1e-5 (bf16 runs: tests/training/test_precision.py)."""
    root = make_tiny_project(tmp_path_factory.mktemp("extended"), tiny_models["llama-spm"])
    _set(root, train__precision="fp32")
    pipeline.run(Project(root), QUIET, until="extend")
    return root


@pytest.fixture
def project(extended, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(extended, root)
    return root


def _set(root, **settings):
    path = root / "langbuild.toml"
    doc = tomlkit.parse(path.read_text())
    for key, value in settings.items():
        section, name = key.split("__")
        doc[section][name] = value
    path.write_text(tomlkit.dumps(doc))


def _train(root):
    pipeline.run(Project(root), QUIET, until="train")
    return [json.loads(line) for line in (root / "train/metrics.jsonl").read_text().splitlines()]


def _matrices(folder):
    model = load_model(folder)
    return model, model.get_input_embeddings().weight.detach(), model.get_output_embeddings().weight.detach()


def test_training_in_process_puts_the_thread_count_back(project, monkeypatch):
    """The run trains on train.threads; eval, run next in the same process, gets the process's count back."""
    _set(project, train__max_steps=1, train__threads=3)
    before = torch.get_num_threads()
    during = []
    original = loop.Trainer.run
    monkeypatch.setattr(loop.Trainer, "run", lambda self: during.append(torch.get_num_threads()) or original(self))
    _train(project)
    assert during == [3] and torch.get_num_threads() == before != 3


def test_the_embeddings_stage_changes_only_new_rows_then_full_training_changes_everything(project):
    _set(project, train__stages=["embeddings"], train__max_steps=3)
    records = _train(project)
    assert [r["stage"] for r in records] == ["embeddings"] * 3
    new_rows = [t["id"] for t in read_json(project / "extend/new_tokens.json")]
    before, before_in, before_out = _matrices(project / "extend/model")
    after, after_in, after_out = _matrices(project / "train/model")
    old = torch.ones(before_in.shape[0], dtype=torch.bool)
    old[new_rows] = False
    assert torch.equal(before_in[old], after_in[old]) and torch.equal(before_out[old], after_out[old])
    assert not torch.equal(before_out[new_rows], after_out[new_rows])
    body = {n: p for n, p in before.named_parameters() if "embed" not in n and "lm_head" not in n}
    for name, param in after.named_parameters():
        if name in body:
            assert torch.equal(param, body[name]), name

    _set(project, train__stages=["embeddings", "full"], train__embedding_steps=2, train__max_steps=5)
    records = _train(project)
    assert [r["stage"] for r in records] == ["embeddings"] * 2 + ["full"] * 3
    assert read_json(project / "train/summary.json")["stages"] == [{"name": "embeddings", "steps": 2},
                                                                  {"name": "full", "steps": 3}]
    trained, _, _ = _matrices(project / "train/model")
    layer = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(dict(trained.named_parameters())[layer], dict(before.named_parameters())[layer])


def test_a_lora_stage_saves_a_plain_merged_model_that_learned(project):
    _set(project, train__stages=["embeddings", "lora"], train__embedding_steps=2, train__max_steps=8,
         train__lora_rank=4, train__learning_rate=0.01, train__unfreeze_layers=1)
    records = _train(project)
    assert [r["stage"] for r in records] == ["embeddings"] * 2 + ["lora"] * 6
    model, _, _ = _matrices(project / "train/model")
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert records[-1]["loss"] < records[0]["loss"]


def _interrupt_at(monkeypatch, step_to_fail: int):
    original = loop.Trainer._optimizer_step

    def failing(self, model, optimizer, setup, params, step):
        if step == step_to_fail:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill would, after the checkpoint before it
        return original(self, model, optimizer, setup, params, step)

    monkeypatch.setattr(loop.Trainer, "_optimizer_step", failing)


@pytest.mark.parametrize("stages", [["embeddings", "lora"], ["embeddings", "full"]])
def test_an_interrupted_run_resumes_in_any_stage_with_the_same_losses(extended, tmp_path, monkeypatch, stages):
    settings = {"train__stages": stages, "train__embedding_steps": 3, "train__max_steps": 9, "train__save_every": 2,
                "train__replay_fraction": 0.3, "train__lora_rank": 4}
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for root in (reference, interrupted):
        shutil.copytree(extended, root)
        _set(root, **settings)
    expected = {r["step"]: r["loss"] for r in _train(reference)}
    for fail_at in (2, 6):  # the first inside the embeddings stage, the second after the switch (step 3 saved)
        _interrupt_at(monkeypatch, fail_at)
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(Project(interrupted), QUIET, until="train")
        monkeypatch.undo()
    resumed = {r["step"]: r["loss"] for r in _train(interrupted)}
    assert sorted(resumed) == list(range(1, 10))
    assert max(abs(resumed[s] - expected[s]) for s in expected) < 1e-5


def test_accumulation_gives_the_losses_of_one_big_batch(extended, tmp_path):
    big, accumulated = tmp_path / "big", tmp_path / "accumulated"
    for root in (big, accumulated):
        shutil.copytree(extended, root)
    _set(big, train__batch_size=4, train__max_steps=4)
    _set(accumulated, train__batch_size=1, train__tokens_per_step=4 * 32, train__max_steps=4)
    one, four = _train(big), _train(accumulated)
    assert read_json(accumulated / "train/summary.json")["tokens_per_step"] == 128
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(one, four)) < 1e-5


def test_a_token_budget_sets_the_steps(project):
    _set(project, train__tokens=5 * 64, train__max_steps=100)
    assert len(_train(project)) == 5


def test_held_out_checks_are_logged_and_early_stopping_stops(project):
    _set(project, train__eval_every=2, train__max_steps=6)
    records = _train(project)
    assert [r["step"] for r in records if "valid_bits_per_byte" in r] == [2, 4, 6]
    summary = read_json(project / "train/summary.json")
    assert [h["step"] for h in summary["held_out"]] == [2, 4, 6] and not summary["stopped_early"]
    # A learning rate this high makes the held-out score worse at once: patience 1 stops at the second check.
    _set(project, train__eval_every=1, train__early_stopping=1, train__max_steps=30, train__learning_rate=0.5,
         train__embedding_learning_rate=0.0,
         train__warmup_steps=0, train__max_grad_norm=0.0)
    records = _train(project)
    summary = read_json(project / "train/summary.json")
    assert summary["stopped_early"] and summary["steps"] == len(records) < 30


def test_replay_text_is_fingerprinted_only_when_replayed(project):
    write_lines(project / "english.txt", english_lines()[:200])
    _set(project, train__replay_text="english.txt", train__replay_fraction=0.0, train__max_steps=2)
    _train(project)
    (project / "english.txt").write_text("changed\n" * 300)
    assert not any(r["ran"] for r in pipeline.run(Project(project), QUIET, until="train"))
    _set(project, train__replay_fraction=0.5)
    _train(project)
    (project / "english.txt").write_text("changed again and again\n" * 300)
    assert [r["step"] for r in pipeline.run(Project(project), QUIET, until="train") if r["ran"]] == ["train"]


def _cli(*args, cwd):
    """``python -m langbuild ARGS`` in a process of its own, forked from this worker's server (its
    imports already done, tests/forked_cli.py); the launcher and training processes it starts are fresh."""
    return forked_cli.SESSION.get().run(args, cwd=cwd, env={"LANGBUILD_DEBUG": "0"}, timeout=600)


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"train__stages": []}, "nothing would train"),
    ({"train__stages": ["lora", "embeddings"]}, "must come first"),
    ({"train__learning_rate": 0.0}, "train.learning_rate=0.0 must be greater than 0"),
    ({"train__tokens_per_step": 100}, "not a multiple"),
    ({"train__early_stopping": 3}, "set train.eval_every"),
    ({"train__precision": "fp16"}, "needs a GPU"),
    ({"train__num_processes": 512}, "lower it"),
    ({"train__replay_fraction": 0.2, "train__replay_text": "missing.txt"}, "missing.txt"),
    ({"train__tensorboard": True}, None),  # fine when tensorboard is installed, one line when it is not
])
def test_bad_training_settings_are_one_line_and_keep_the_previous_model(extended, tmp_path, settings, fragment):
    root = tmp_path / "p"
    shutil.copytree(extended, root)
    _set(root, train__max_steps=2)
    _train(root)
    kept = (root / "train/model/model.safetensors").read_bytes()
    _set(root, **settings)
    result = _cli("train", "-C", str(root), "--force", cwd=tmp_path)  # process settings alone do not make it stale
    if fragment is None:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            fragment = "pip install tensorboard"
        else:
            assert result.returncode == 0, result.stderr
            return
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert (root / "train/model/model.safetensors").read_bytes() == kept


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-4), ("bf16", 2e-2)])
def test_two_cpu_processes_train_the_model_one_process_trains(extended, tmp_path, precision, tolerance):
    """accelerate launch, gloo on the CPU: the same global batch split over two processes gives the
    same losses and weights (to float rounding) as one process, through the embeddings stage (its row
    mask over the reduced gradient) and the switch to full training. In bf16 the fp32 master gradients
    are averaged by langbuild, not DDP; bf16 rounding of different batch shapes sets the tolerance."""
    single, double = tmp_path / "single", tmp_path / "double"
    for root in (single, double):
        shutil.copytree(extended, root)
        _set(root, train__batch_size=2, train__tokens_per_step=4 * 32, train__max_steps=6, train__save_every=3,
             train__stages=["embeddings", "full"], train__embedding_steps=3, train__precision=precision)
    one = _train(single)
    result = _cli("train", "-C", str(double), "--num-processes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    two = [json.loads(line) for line in (double / "train/metrics.jsonl").read_text().splitlines()]
    assert read_json(double / "train/summary.json")["processes"] == 2
    assert tomlkit.parse((double / "langbuild.toml").read_text())["train"]["num_processes"] == 2
    assert [r["step"] for r in two] == [r["step"] for r in one]
    assert read_json(double / "train/summary.json")["precision"]["name"] == precision
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(one, two)) < tolerance
    first, second = load_model(single / "train/model"), load_model(double / "train/model")
    for (name, a), b in zip(first.named_parameters(), second.parameters()):
        assert torch.allclose(a, b, atol=tolerance), name


def test_an_out_of_memory_error_names_the_settings_to_lower():
    from langbuild.training.plan import Stage, TrainPlan

    plan = TrainPlan(source="", train_tokens="", train_token_count=0, out="", seq_len=256, batch_size=16, accumulation=1,
                     num_processes=1, total_steps=1, stages=[Stage("full", 0, 1)], learning_rate=1e-3,
                     embedding_learning_rate=1e-3, warmup_steps=0, schedule="cosine", decay_fraction=0.2, weight_decay=0.0,
                     max_grad_norm=1.0, precision="fp32", gradient_checkpointing=False, new_rows=[], lora_rank=4,
                     lora_alpha=8, unfreeze_layers=0, seed=0, threads=1, save_every=1, keep_checkpoints=1, eval_every=0,
                     early_stopping=0)
    assert TrainPlan.from_json(plan.to_json()) == plan
    message = str(loop.out_of_memory_error(plan))
    assert "lower train.batch_size" in message and "train.gradient_checkpointing" in message
    assert isinstance(loop.out_of_memory_error(plan), LangbuildError)


def train_until_logged(root, steps: int, poll: float = 0.01):
    """``langbuild train`` started in a process of its own (forked, as ``_cli``), returned once it has logged ``steps`` steps (or ended)."""
    import time

    metrics = root / ".langbuild/staging/train/metrics.jsonl"
    proc = forked_cli.SESSION.get().start(["train", "-C", str(root)], cwd=root)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (metrics.exists() and len(metrics.read_text().splitlines()) >= steps):
        time.sleep(poll)
    return proc


def test_a_killed_two_process_run_leaves_no_process_behind_and_resumes_exactly(extended, tmp_path):
    """kill -9 of langbuild during a 2-process run: the launcher and both training processes die with it,
    and the resumed run repeats the uninterrupted losses."""
    import signal

    import psutil

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for root, processes in ((reference, 1), (killed, 2)):  # two processes train like one (above)
        shutil.copytree(extended, root)
        _set(root, train__batch_size=2, train__tokens_per_step=4 * 32, train__max_steps=30, train__save_every=3,
             train__num_processes=processes)
    expected = _train(reference)
    proc = train_until_logged(killed, steps=5)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert len(descendants) >= 3, "expected the launcher and two training processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=2)  # orphans would train on for many seconds
    running = [p for p in alive if still_running(p)]
    assert not running, [p.cmdline()[-3:] for p in running]
    result = _cli("train", "-C", str(killed), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from checkpoint" in result.stdout
    resumed = [json.loads(line) for line in (killed / "train/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [r["step"] for r in expected]
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(expected, resumed)) < 1e-4
