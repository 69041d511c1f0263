"""langbuild export: a clean, loadable model folder, and the places it refuses to write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.project.export import export_model
from tests.steps.test_report import _front_matter
from tests.tiny import own_copy


def _logits(folder: Path, text: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return ids["input_ids"], model(**ids).logits


@pytest.mark.parametrize("family", ["llama-spm", "gpt2-bytelevel"])
def test_export_writes_a_clean_loadable_folder(finished_projects, tmp_path, family):
    import torch

    root = own_copy(finished_projects[family], tmp_path)
    destination = export_model(Project(root), tmp_path / "hf" / "model")
    names = sorted(p.name for p in destination.iterdir())
    assert "README.md" in names and "config.json" in names and "model.safetensors" in names
    assert all(p.is_file() for p in destination.iterdir())  # no checkpoints/ or other folders
    assert not [n for n in names if n.endswith((".pt", ".bin", ".pth", ".pkl")) or "optimizer" in n or "checkpoint" in n]
    assert not [p for p in destination.parent.iterdir() if p.name != "model"]  # no staging or trash left behind
    assert _front_matter((destination / "README.md").read_text(encoding="utf-8"))["language"] == ["nya"]
    text = "Pachiyambi Mulungu adalenga"
    ids, logits = _logits(destination, text)
    expected_ids, expected = _logits(root / "train" / "model", text)
    assert torch.equal(ids, expected_ids) and torch.allclose(logits, expected)


def test_export_refuses_a_non_empty_destination_unless_forced(finished_projects, tmp_path):
    project = Project(own_copy(finished_projects["llama-spm"], tmp_path))
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(LangbuildError, match="is not empty: choose a new folder, or pass --force"):
        export_model(project, destination)
    assert (destination / "notes.txt").read_text(encoding="utf-8") == "mine"
    with pytest.raises(LangbuildError, match="not a langbuild export"):  # --force replaces only an earlier export
        export_model(project, destination, force=True)
    assert (destination / "notes.txt").read_text(encoding="utf-8") == "mine"
    (destination / "notes.txt").unlink()
    export_model(project, destination)
    (destination / "notes.txt").write_text("mine", encoding="utf-8")
    export_model(project, destination, force=True)
    assert not (destination / "notes.txt").exists() and (destination / "model.safetensors").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_model(project, empty) == empty.resolve()  # an empty folder is fine without --force


def test_export_refuses_step_folders_and_unsafe_places(finished_projects, tmp_path, monkeypatch):
    root = own_copy(finished_projects["llama-spm"], tmp_path / "own")
    project = Project(root)
    for inside in (root / "train" / "exported", root / "report", root / ".langbuild" / "x"):
        with pytest.raises(LangbuildError, match="inside the step folder"):
            export_model(project, inside, force=True)
    with pytest.raises(LangbuildError, match="contains the project itself"):
        export_model(project, root.parent, force=True)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(LangbuildError, match="contains the current folder"):
        export_model(project, elsewhere, force=True)
    assert (root / "train" / "model" / "config.json").is_file()


def test_export_copies_only_model_files(tmp_path):
    from langbuild.project.export import model_files

    folder = tmp_path / "model"
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
                 "tokenizer_config.json", "pytorch_model.bin", "optimizer.pt", "training_args.bin", "state.json"):
        (folder / name).write_text("x", encoding="utf-8")
    kept = [p.name for p in model_files(folder)]
    assert kept == ["config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
                    "tokenizer_config.json"]
    shutil.rmtree(folder)
    assert model_files(folder) == []
