"""How extend starts the new rows: FOCUS/TokenAdapt/WECHSEL through the step, the probe behind
--compare and init = auto, and the zero-shot diagnostics written after every extension."""

from __future__ import annotations

import math
import random

import pytest
import torch
from rich.console import Console
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from langbuild import pipeline
from langbuild.cli import app
from langbuild.core.config import AUTO_COMPARE, INIT_METHODS
from langbuild.core.errors import ConfigError
from langbuild.core.project import Project
from langbuild.embedding_init import METHODS
from tests.test_cli import langbuild
from tests.tiny import chichewa_split, english_lines, make_tiny_project, read_json, tiny_project_through, write_lines

QUIET = Console(quiet=True)


def test_every_configurable_method_is_implemented():
    assert set(INIT_METHODS) == set(METHODS)
    assert set(AUTO_COMPARE) <= set(METHODS)


def _new_rows(root, family_models, family):
    base = AutoModelForCausalLM.from_pretrained(family_models[family])
    extended = AutoModelForCausalLM.from_pretrained(root / "extend/model")
    old = base.get_input_embeddings().weight.shape[0]
    metrics = read_json(root / "extend/metrics.json")
    new_ids = [row["id"] for row in read_json(root / "extend/new_tokens.json")]
    return base, extended, old, metrics, new_ids


@pytest.mark.parametrize("family", ["llama-spm", "gpt2-bytelevel"])
def test_focus_through_the_step_keeps_old_rows_and_ties(tmp_path, tiny_models, family):
    root = tiny_project_through(tmp_path, tiny_models[family], **{"extend.init": "focus"})
    pipeline.run(Project(root), QUIET, until="extend")
    base, extended, old, metrics, new_ids = _new_rows(root, tiny_models, family)
    assert metrics["init"] == "focus" and metrics["added_tokens"] == len(new_ids) > 0
    assert torch.equal(extended.get_input_embeddings().weight[:old], base.get_input_embeddings().weight)
    rows = extended.get_input_embeddings().weight[new_ids]
    assert torch.isfinite(rows).all()
    # Convex mixes of base rows: no new row is longer than the longest base row.
    assert rows.norm(dim=1).max() <= base.get_input_embeddings().weight.norm(dim=1).max() + 1e-5
    tied = family == "gpt2-bytelevel"
    assert metrics["tied_embeddings"] is tied
    output = extended.get_output_embeddings().weight
    assert (output.data_ptr() == extended.get_input_embeddings().weight.data_ptr()) is tied
    if not tied:  # the untied head is mixed from its own rows, with the same weights
        assert not torch.equal(output[new_ids], rows)
        assert torch.equal(output[:old], base.get_output_embeddings().weight)


def test_tokenadapt_in_replace_mode(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"], train_books=1, **{
        "extend.mode": "replace", "extend.init": "tokenadapt", "tokenizer.library": "huggingface",
        "tokenizer.model_type": "bpe"})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    assert metrics["init"] == "tokenadapt" and metrics["checks"]["rows_copied_from_base"] > 50
    model = AutoModelForCausalLM.from_pretrained(root / "extend/model")
    assert torch.isfinite(model.get_input_embeddings().weight).all()


def test_compare_probes_each_method_and_keeps_the_best(tmp_path, tiny_models):
    methods = ["random", "subword-mean", "focus"]
    root = tiny_project_through(tmp_path, tiny_models["llama-spm"], **{"extend.compare": methods})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    table = metrics["init_comparison"]
    assert [row["method"] for row in table] == methods
    best = min(table, key=lambda row: row["probe_bits_per_byte"])
    assert metrics["init"] == best["method"] and best["chosen"]
    assert all(math.isfinite(row["zero_shot_bits_per_byte"]) and math.isfinite(row["probe_bits_per_byte"]) for row in table)
    # The probe trains: held-out bits per byte moves for every method.
    assert all(row["probe_bits_per_byte"] != row["zero_shot_bits_per_byte"] for row in table)
    assert "| focus" in (root / "extend/init_comparison.md").read_text()
    # The kept model is the chosen method's initialisation, not a probe-trained one.
    zero_shot = metrics["zero_shot_bits_per_byte"]["target"]["extended"]
    assert zero_shot == pytest.approx(best["zero_shot_bits_per_byte"], rel=1e-5)


def test_auto_compares_the_default_list(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"], **{"extend.init": "auto"})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    assert [row["method"] for row in metrics["init_comparison"]] == list(AUTO_COMPARE)
    assert metrics["init"] in AUTO_COMPARE


def test_zero_shot_diagnostics_after_every_extension(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"], **{"extend.init": "mean"})
    pipeline.run(Project(root), QUIET, until="extend")
    zero_shot = read_json(root / "extend/metrics.json")["zero_shot_bits_per_byte"]
    assert set(zero_shot) == {"target", "source"}
    for row in zero_shot.values():
        assert row["bytes"] > 1000 and row["ratio"] == pytest.approx(row["extended"] / row["base"])
    # Protected English keeps its tokens, so only the new output rows can move source bits per byte.
    assert abs(zero_shot["source"]["ratio"] - 1) < 0.05


def test_zero_shot_diagnostics_can_be_switched_off(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"], **{"extend.zero_shot_max_bytes": 0})
    pipeline.run(Project(root), QUIET, until="extend")
    assert read_json(root / "extend/metrics.json")["zero_shot_bits_per_byte"] == {}


def _write_vectors(path, words, vectors):
    lines = [f"{len(words)} {vectors.shape[1]}"] + [f"{w} {' '.join(f'{x:.5f}' for x in v.tolist())}" for w, v in zip(words, vectors)]
    write_lines(path, lines)


def _word_vector_files(folder, dim_target: int = 12):
    """Source (English) and target (Chichewa) vectors in one random space, and a dictionary pairing 30 words."""
    english = list(dict.fromkeys(w for line in english_lines() for w in line.split() if w.isalpha()))[:300]
    chichewa = list(dict.fromkeys(w for line in chichewa_split(1)[0] for w in line.split() if w.isalpha()))[:300]
    generator = torch.Generator().manual_seed(0)
    source = torch.randn((len(english), 12), generator=generator)
    target = torch.randn((len(chichewa), dim_target), generator=generator)
    pairs = random.Random(0).sample(range(min(len(english), len(chichewa))), 30)
    if dim_target == 12:
        target[pairs] = source[pairs]  # the dictionary's pairs sit together
    _write_vectors(folder / "en.vec", english, source)
    _write_vectors(folder / "ny.vec", chichewa, target)
    write_lines(folder / "dict.txt", [f"{english[i]}\t{chichewa[i]}" for i in pairs])
    return {"extend.source_vectors": str(folder / "en.vec"), "extend.target_vectors": str(folder / "ny.vec"),
            "extend.dictionary": str(folder / "dict.txt")}


def test_wechsel_through_the_step(tmp_path, tiny_models):
    files = _word_vector_files(tmp_path)
    root = tiny_project_through(tmp_path / "p", tiny_models["gpt2-bytelevel"], **{"extend.init": "wechsel", **files})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    assert metrics["init"] == "wechsel" and metrics["added_tokens"] > 0


def _failing_extend(root) -> str:
    """Run extend as a user would (earlier steps done in-process first): one error line, nothing left behind."""
    pipeline.run(Project(root), QUIET, until="select")
    result = langbuild("extend", "-C", root, cwd=root, check_fail=True)
    assert not (root / "extend" / "model").exists()
    return result.stderr


def test_wechsel_without_its_files_is_one_clear_line(tmp_path, tiny_models):
    with pytest.raises(ConfigError, match="extend.init = wechsel needs extend.source_vectors"):  # refused by init
        make_tiny_project(tmp_path / "refused", tiny_models["gpt2-bytelevel"], **{"extend.init": "wechsel"})
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"])
    pipeline.run(Project(root), QUIET, until="select")
    config = root / "langbuild.toml"  # then chosen by editing the file, as people do
    config.write_text(config.read_text().replace('init = "subword-mean"', 'init = "wechsel"'))
    message = langbuild("extend", "-C", root, cwd=root, check_fail=True).stderr  # refused before any work
    assert "extend.source_vectors" in message and "extend.dictionary" in message
    assert not (root / "extend").exists()


def test_wechsel_with_vectors_of_the_wrong_dimension_is_one_clear_line(tmp_path, tiny_models):
    files = _word_vector_files(tmp_path, dim_target=8)
    root = tiny_project_through(tmp_path / "p", tiny_models["gpt2-bytelevel"], **{"extend.init": "wechsel", **files})
    assert "wrong dimension" in _failing_extend(root)


def test_compare_flag_saves_the_list_and_rejects_unknown_methods(tmp_path, tiny_models):
    root = tiny_project_through(tmp_path, tiny_models["gpt2-bytelevel"])
    result = langbuild("extend", "-C", root, "--compare", "mean,bogus", cwd=root, check_fail=True)
    assert "bogus" in result.stderr and "focus" in result.stderr
    assert "bogus" not in (root / "langbuild.toml").read_text()
    result = CliRunner().invoke(app, ["extend", "-C", str(root), "--compare", "mean,subword-mean"])
    assert result.exit_code == 0, result.output
    assert Project(root).config.get("extend.compare") == ["mean", "subword-mean"]
    assert read_json(root / "extend/metrics.json")["init"] in ("mean", "subword-mean")

