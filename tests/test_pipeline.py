"""The resumable core: fingerprints decide what re-runs; failures keep earlier outputs."""

from __future__ import annotations

import shutil

import pytest
import tomlkit
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.lock import Lock
from langbuild.core.project import Project
from langbuild.corpus.shards import read_split
from tests.tiny import make_tiny_project, read_json

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def done_project(tiny_models, tmp_path_factory):
    root = make_tiny_project(tmp_path_factory.mktemp("done"), tiny_models["gpt2-bytelevel"])
    pipeline.run(Project(root), QUIET)
    return root


@pytest.fixture
def project(done_project, tmp_path):
    """A private copy of the finished project, so tests can change it freely."""
    root = tmp_path / "p"
    shutil.copytree(done_project, root)
    return root


def _set(root, key, value):
    path = root / "langbuild.toml"
    doc = tomlkit.parse(path.read_text())
    section, name = key.split(".")
    doc[section][name] = value
    path.write_text(tomlkit.dumps(doc))


def _ran(root, **kw) -> list[str]:
    return [r["step"] for r in pipeline.run(Project(root), QUIET, **kw) if r["ran"]]


def test_fingerprints_are_stable_and_cascade(project):
    first = pipeline.fingerprints(Project(project))
    assert first == pipeline.fingerprints(Project(project))
    _set(project, "extend.num_new_tokens", 50)
    second = pipeline.fingerprints(Project(project))
    changed = [step for step in first if first[step] != second[step]]
    assert changed == ["extend", "train", "eval", "report"]


def test_changed_setting_reruns_that_step_and_downstream_only(project):
    _set(project, "eval.max_bytes", 2000)
    states = {row["step"]: row["state"] for row in pipeline.status(Project(project))}
    assert states == {"corpus": "done", "tokenizer": "done", "select": "done", "extend": "done",
                      "train": "done", "eval": "stale", "report": "stale"}
    assert _ran(project) == ["eval", "report"]
    assert read_json(project / "eval/metrics.json")["target"]["bytes"] <= 2000


def test_changed_input_file_reruns_everything(project):
    with open(project / "data/train.txt", "a", encoding="utf-8") as handle:
        handle.write("Ichi ndi chiganizo chatsopano chomwe sichinali m'buku.\n")
    assert _ran(project) == [step.name for step in pipeline.STEPS]


def test_missing_output_makes_a_step_stale(project):
    (project / "tokenizer/metrics.json").unlink()
    assert {r["step"]: r["state"] for r in pipeline.status(Project(project))}["tokenizer"] == "stale"
    # The tokenizer step is deterministic: its outputs come back identical, so nothing after it re-runs.
    assert _ran(project) == ["tokenizer"]


def test_an_upstream_rerun_with_different_outputs_reruns_downstream(project):
    lock_path = project / "langbuild.lock"
    lock = read_json(lock_path)
    lock["steps"]["eval"]["outputs"]["metrics.json"]["sha256"] = "0" * 64  # as if eval had produced other numbers
    lock_path.write_text(__import__("json").dumps(lock))
    assert _ran(project) == ["report"]


def test_deleting_checkpoints_or_changing_their_cadence_keeps_training(project):
    shutil.rmtree(project / "train/checkpoints")
    _set(project, "train.save_every", 3)
    _set(project, "train.keep_checkpoints", 1)
    assert _ran(project) == []


def test_a_kill_during_the_folder_swap_reruns_the_step(project):
    lock = Lock(project / "langbuild.lock")
    lock.mark_replacing("eval")  # what a kill between marking and recording success leaves behind
    assert {r["step"]: r["state"] for r in pipeline.status(Project(project))}["eval"] == "pending"
    assert _ran(project)[0] == "eval"
    assert [r["state"] for r in pipeline.status(Project(project))] == ["done"] * len(pipeline.STEPS)


def test_force_until_and_from(project):
    assert _ran(project, until="corpus", force=True) == ["corpus"]
    assert _ran(project, from_="eval", force=True) == ["eval", "report"]
    with pytest.raises(LangbuildError):
        pipeline.run(Project(project), QUIET, until="corpus", from_="eval")


def test_from_refuses_when_an_earlier_step_is_not_done(project):
    _set(project, "tokenizer.vocab_size", 300)
    with pytest.raises(LangbuildError, match="tokenizer"):
        pipeline.run(Project(project), QUIET, from_="eval")


def test_failed_step_keeps_previous_outputs_and_is_reported(project):
    before = list(read_split(project / "corpus", "train"))
    (project / "data/train.txt").write_bytes(b"caf\xe9 ndi chakumwa chotentha kwambiri\n")
    with pytest.raises(LangbuildError, match="not UTF-8"):
        pipeline.run(Project(project), QUIET)
    assert list(read_split(project / "corpus", "train")) == before
    rows = {r["step"]: r for r in pipeline.status(Project(project))}
    assert rows["corpus"]["state"] == "failed" and "UTF-8" in rows["corpus"]["error"]


def test_interrupted_folder_swap_is_recovered(project):
    # A kill between the two renames of a swap leaves the old folder in the trash; it comes back.
    trash = project / ".langbuild/trash"
    trash.mkdir(parents=True, exist_ok=True)
    (project / "report").rename(trash / "report")
    assert _ran(project) == []  # run puts the folder back first, so nothing needs re-running
    assert (project / "report/report.md").is_file()


def test_select_rerun_with_the_same_choice_keeps_the_model_steps(project):
    # Its timings differ on every run, but extend, train and eval depend only on the chosen model.
    assert _ran(project, force={"select"}) == ["select", "report"]
    _set(project, "select.timing_steps", 3)
    assert _ran(project) == ["select", "report"]


def test_a_benchmark_without_data_reruns_eval_not_training(project):
    """eval.tasks reaches the corpus step only through the task data it names (decontamination)."""
    _set(project, "eval.tasks", ["cloze", "no_such_benchmark_xyz"])
    assert _ran(project) == ["eval", "report"]


def test_changing_the_source_text_reruns_scoring_not_training(project, tmp_path):
    english = tmp_path / "english.txt"
    english.write_text("A short English text for scoring.\nAnother line of it, for the check.\n", encoding="utf-8")
    _set(project, "eval.source_text", str(english))
    assert _ran(project) == ["select", "eval", "report"]
