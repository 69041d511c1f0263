"""The eval step end to end on a tiny project: lm-eval on local tasks of every template, bad tasks and
bad models skipped with one line while the rest runs, the request cache, and the CLI's task listing."""

from __future__ import annotations

import json
import shutil

import pytest
import tomlkit
from rich.console import Console
from typer.testing import CliRunner

from langbuild import pipeline
from langbuild.cli import app
from langbuild.core.project import Project
from langbuild.corpus.shards import read_split
from tests.tiny import corpus_splits_read, files_opened, make_tiny_project, read_json

QUIET = Console(quiet=True)
SPLITS_READ: dict[str, set[str]] = {}  # by the steps after corpus up to train, and by eval (the fixtures below)


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """A tiny llama project run up to train (eval not yet run); the corpus splits that tokenizer, select,
    extend and train opened are kept in SPLITS_READ["tuning"]."""
    root = make_tiny_project(tmp_path_factory.mktemp("trained"), tiny_models["llama-spm"])
    pipeline.run(Project(root), QUIET, until="corpus")
    with files_opened() as opened:
        pipeline.run(Project(root), QUIET, until="train")
    SPLITS_READ["tuning"] = corpus_splits_read(opened, root / "corpus")
    return root


@pytest.fixture
def project(trained, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(trained, root)
    return root


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    """The same project with eval and report run once on the defaults (lm-eval's slowest part). Read-only."""
    root = tmp_path_factory.mktemp("evaluated") / "p"
    shutil.copytree(trained, root)
    with files_opened() as opened:
        pipeline.run(Project(root), QUIET, until="eval")
    SPLITS_READ["eval"] = corpus_splits_read(opened, root / "corpus")
    pipeline.run(Project(root), QUIET)
    return root


def _set(root, **values):
    path = root / "langbuild.toml"
    doc = tomlkit.parse(path.read_text())
    for key, value in values.items():
        section, name = key.split("__")
        doc[section][name] = value
    path.write_text(tomlkit.dumps(doc))


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_default_tasks_score_every_model_with_intervals(evaluated):
    project = evaluated
    metrics = read_json(project / "eval/metrics.json")
    cloze, bpb = metrics["tasks"]["nya_cloze"], metrics["tasks"]["nya_heldout_bpb"]
    assert (cloze["metric"], cloze["direction"], cloze["chance"]) == ("acc", "higher is better", 0.25)
    assert (bpb["metric"], bpb["direction"]) == ("bits_per_byte", "lower is better")
    for task in (cloze, bpb):
        assert set(task["scores"]) == {"base", "extended", "trained"}
        for score in task["scores"].values():
            low, high = score["interval"]
            assert low <= score["value"] <= high
    assert cloze["construction"]["built"] == cloze["items"] == 40
    assert cloze["trained_minus_base"]["interval"] is not None
    # lm-eval's rolling bits per byte and langbuild's own agree on what they measure: training lowered both.
    assert bpb["scores"]["trained"]["value"] < bpb["scores"]["base"]["value"]
    assert metrics["target"]["bits_per_byte"]["trained"] < metrics["target"]["bits_per_byte"]["base"]
    generation = metrics["generation"]
    assert generation["models"]["base"]["chars"] == generation["models"]["extended"]["chars"] > 0  # the same text
    assert generation["models"]["extended"]["chars_per_token"] > generation["models"]["base"]["chars_per_token"]
    items = (project / "eval/items/trained/nya_cloze.jsonl").read_text().splitlines()
    assert len(items) == 40
    assert not metrics["skipped"]


def test_only_eval_reads_the_test_split(evaluated):
    # select, the extension probe and size, and early stopping tune on valid; the test split is for the final scores.
    assert {"train", "valid"} <= SPLITS_READ["tuning"] and "test" not in SPLITS_READ["tuning"]
    assert "test" in SPLITS_READ["eval"] and "valid" not in SPLITS_READ["eval"]
    metrics = read_json(evaluated / "eval/metrics.json")
    test = list(read_split(evaluated / "corpus", "test"))
    assert metrics["held_out"]["split"] == "test" and metrics["held_out"]["documents"] == len(test) >= 40
    report = (evaluated / "report/report.md").read_text()
    assert "Held-out scores come from the test split, which no earlier step read" in report
    assert "Test split (read only for the final scores" in (evaluated / "report/model_card.md").read_text()


def test_samples_of_every_model_on_test_prompts_are_in_the_report(evaluated):
    samples = read_json(evaluated / "eval/metrics.json")["samples"]
    test = list(read_split(evaluated / "corpus", "test"))
    assert samples["split"] == "test" and len(samples["prompts"]) == 3 and samples["new_tokens"] == 40
    for prompt in samples["prompts"]:
        assert any(doc.startswith(prompt["prompt"]) for doc in test)  # a held-out document's opening words
        assert set(prompt["models"]) == {"base", "extended", "trained"}
        for row in prompt["models"].values():
            assert row["greedy"] and row["sampled"] and 0 <= row["greedy_repetition"] <= 1
    assert set(samples["repetition"]) == {"base", "extended", "trained"}
    markdown, html = (evaluated / "report/report.md").read_text(), (evaluated / "report/report.html").read_text()
    assert "## Samples" in markdown and "Samples</h2>" in html
    first = samples["prompts"][0]["models"]["trained"]
    assert first["sampled"].split()[0] in markdown and first["sampled"].split()[0] in html
    assert "repeated 3-grams" in markdown


def test_a_project_without_test_split_scores_valid_and_says_so(project):
    _set(project, corpus__test_fraction=0.0, eval__sample_prompts=1)
    pipeline.run(Project(project), QUIET)
    assert not list((project / "corpus").glob("test-*"))
    metrics = read_json(project / "eval/metrics.json")
    assert metrics["held_out"]["split"] == "valid" and "optimistic" in metrics["held_out"]["note"]
    assert metrics["held_out"]["documents"] == len(list(read_split(project / "corpus", "valid")))
    assert "Held-out scores come from the valid split, because this corpus has no test split" in \
        (project / "report/report.md").read_text()
    assert len(metrics["samples"]["prompts"]) == 1 and metrics["samples"]["split"] == "valid"


def test_bad_tasks_and_models_are_skipped_while_the_rest_runs(project, tmp_path):
    _jsonl(project / "tasks/quiz.jsonl", [{"query": "Ndipo Yesu", "choices": [" anati", " mphaka"], "gold": 0}] * 12)
    _jsonl(project / "tasks/broken.jsonl", [{"query": "Q", "answers": ["a", "b"]}])
    _jsonl(project / "tasks/answers.jsonl", [{"prompt": "Ndipo Yesu", "answer": "anati"}] * 3)
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(project / "train/model", no_tokenizer)
    for path in no_tokenizer.glob("tokenizer*"):
        path.unlink()
    _set(project, eval__tasks=["cloze", "tasks/quiz.jsonl", "tasks/broken.jsonl", "tasks/answers.jsonl", "tasks/missing.jsonl",
                               "belebele_nya_latn", "belebele_nya_Latn"],
         eval__models=[str(no_tokenizer)], eval__max_new_tokens=4)
    pipeline.run(Project(project), QUIET)
    metrics = read_json(project / "eval/metrics.json")
    assert set(metrics["tasks"]) == {"nya_cloze", "local_quiz", "local_answers"}
    assert metrics["tasks"]["local_answers"]["metric"] == "exact_match"
    reasons = {entry.get("task") or entry.get("model"): entry["reason"] for entry in metrics["skipped"]}
    assert "lacks" in reasons["tasks/broken.jsonl"] or "fit no task template" in reasons["tasks/broken.jsonl"]
    assert "not found" in reasons["tasks/missing.jsonl"]
    assert "belebele_nya_Latn" in reasons["belebele_nya_latn"]  # the close match is suggested
    assert "tokenizer" in reasons[str(no_tokenizer)]
    assert "hub" in reasons["belebele_nya_Latn"]  # a real task, but its data is out of reach offline
    assert all("\n" not in reason for reason in reasons.values())
    assert (project / "report/report.md").is_file()


def test_rerun_answers_from_the_request_cache(evaluated, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(evaluated, project)  # the request cache travels with the project folder
    first = read_json(project / "eval/metrics.json")
    assert not first["lm_eval"]["cached"]
    pipeline.run(Project(project), QUIET, until="eval", force={"eval"})
    second = read_json(project / "eval/metrics.json")
    assert second["lm_eval"]["cached"]
    assert second["tasks"] == first["tasks"]
    assert first["precision"]["requested"] == "auto"  # the default
    # Scoring in the other precision asks lm-eval afresh (the same weights answer differently in it)
    other = "fp32" if first["precision"]["name"] == "bf16" else "bf16"
    _set(project, eval__precision=other)
    pipeline.run(Project(project), QUIET, until="eval")
    second = read_json(project / "eval/metrics.json")
    assert second["precision"]["name"] == other and not second["lm_eval"]["cached"]
    for label, value in first["target"]["bits_per_byte"].items():
        assert abs(second["target"]["bits_per_byte"][label] / value - 1) < 0.02, label


def test_list_tasks_for_a_language():
    result = CliRunner().invoke(app, ["eval", "--list-tasks", "--language", "nya"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "belebele_nya_Latn" in result.output
    assert "cloze" in result.output
