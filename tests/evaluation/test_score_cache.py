"""Held-out bits per byte and generation speed are cached per model identity: a re-run reuses them, a
changed weight does not, and the trained model (the extended model's shape) is never timed itself."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file, save_file

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.evaluation import harness, score_cache
from tests.tiny import read_json, tiny_project_through


def _cache_files(root, kind: str) -> set[str]:
    return {p.name for p in (root / ".langbuild/cache/scores").glob(f"{kind}-*.json")}


def _nudge_one_weight(model_folder) -> None:
    path = next(model_folder.glob("*.safetensors"))
    weights = load_file(path)
    name = sorted(weights)[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] += 0.5
    save_file(weights, path, metadata={"format": "pt"})


def test_scores_cached_per_model_identity(tiny_models, tmp_path):
    root = tiny_project_through(tmp_path / "p", tiny_models["llama-spm"], step="train", **{"eval.precision": "fp32"})
    out = io.StringIO()
    pipeline.run(Project(root), Console(file=out, force_terminal=False, width=120), until="eval")
    first = read_json(root / "eval/metrics.json")
    held_out, speeds = _cache_files(root, "held-out"), _cache_files(root, "speed")
    assert len(held_out) == 3  # base, extended, trained
    assert len(speeds) == 2  # base and extended: the trained model has the extended model's shape
    samples = _cache_files(root, "samples")
    assert len(samples) == 3 and first["samples"]["prompts"]
    models = first["generation"]["models"]
    assert models["trained"] == models["extended"]
    log = out.getvalue()
    assert "target text:" in log and "generation speed:" in log and "lm-eval requests:" in log  # progress, plain lines

    pipeline.run(Project(root), Console(quiet=True), until="eval", force={"eval"})
    again = read_json(root / "eval/metrics.json")
    assert (_cache_files(root, "held-out"), _cache_files(root, "speed")) == (held_out, speeds)
    assert _cache_files(root, "samples") == samples
    assert again["target"] == first["target"] and again["generation"] == first["generation"]
    assert again["samples"] == first["samples"]

    _nudge_one_weight(root / "train/model")
    pipeline.run(Project(root), Console(quiet=True), until="eval", force={"eval"})
    changed = read_json(root / "eval/metrics.json")
    assert len(_cache_files(root, "held-out") - held_out) == 1  # the trained model was scored afresh
    assert _cache_files(root, "speed") == speeds  # its shape did not change
    assert len(_cache_files(root, "samples") - samples) == 1  # new weights write new text
    bpb, before = changed["target"]["bits_per_byte"], first["target"]["bits_per_byte"]
    assert bpb["trained"] != before["trained"]
    assert (bpb["base"], bpb["extended"]) == (before["base"], before["extended"])


def test_shape_ignores_names_but_not_sizes(tiny_models):
    from langbuild.models.loading import load_model

    model = load_model(tiny_models["llama-spm"])
    shape = score_cache.shape_of(model)
    model.config._name_or_path = "elsewhere"
    assert score_cache.shape_of(model) == shape
    model.to(torch.bfloat16)
    assert score_cache.shape_of(model) != shape


def test_the_request_cache_commits_while_answers_come_in_and_on_the_way_out(tiny_models, tmp_path, monkeypatch):
    """lm-eval's answers are kept as they come (a killed eval loses at most COMMIT_EVERY_S of them), and
    all of them once the evaluation ends, by an exception too; lm-eval's CachingLM is put back."""
    import lm_eval.api.model as lm_model
    from sqlitedict import SqliteDict

    from langbuild.evaluation.request_scorer import make_shared_prefix_lm
    from langbuild.models.loading import load_model, load_tokenizer

    folder = tiny_models["llama-spm"]
    lm = make_shared_prefix_lm(load_model(folder), load_tokenizer(folder), batch_size=2)
    original = lm_model.CachingLM

    def stored(path):
        with SqliteDict(str(path), flag="r") as reader:  # another connection: only what was committed
            return dict(reader.items())

    monkeypatch.setattr(harness, "COMMIT_EVERY_S", 0.0)
    with harness._request_cache_committed_in_batches():
        caching = lm_model.CachingLM(lm, str(tmp_path / "soon.db"))
        lm.cache_hook.add_partial("loglikelihood", ("context", " answer"), (-1.5, True))  # how the scorer stores one
        assert len(caching.dbdict) == 1  # a read on the store's thread: behind the write and its commit
        assert list(stored(tmp_path / "soon.db").values()) == [(-1.5, True)]

    monkeypatch.setattr(harness, "COMMIT_EVERY_S", 3600.0)
    with pytest.raises(RuntimeError), harness._request_cache_committed_in_batches():
        caching = lm_model.CachingLM(lm, str(tmp_path / "late.db"))
        caching.dbdict["key"] = (-2.0, False)
        raise RuntimeError("an evaluation that fails half-way")
    assert stored(tmp_path / "late.db") == {"key": (-2.0, False)}
    assert lm_model.CachingLM is original
