"""All-or-nothing writes, folder swaps that survive a kill, langbuild.lock, and the project run lock."""

from __future__ import annotations

import json
import os

import pytest

from langbuild.core.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    recover_dir,
    replace_dir,
)
from langbuild.core.errors import LangbuildError
from langbuild.core.lock import LOCK_VERSION, Lock
from langbuild.core.project import Project
from langbuild.project.scaffold import create_project


def _tree(root):
    """Relative path -> bytes of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- atomic writes --------------------------------------------------------------------------------


def test_atomic_write_json_writes_the_object_and_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "out.json"  # the folder is created
    obj = {"b": [1, 2.5, None], "a": "Moni, dziko l\u0101p\u0101nsi"}
    atomic_write_json(path, obj)
    assert json.loads(path.read_text(encoding="utf-8")) == obj
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert "\u0101" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_atomic_write_text_replaces_existing_content(tmp_path):
    path = tmp_path / "note.txt"
    atomic_write_text(path, "old content that is longer\n")
    atomic_write_text(path, "new \u00e9\n")
    assert path.read_bytes() == "new \u00e9\n".encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]


def test_atomic_write_failure_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "data.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})  # not JSON-able: fails before anything is written
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails inside the write, after the temp file exists
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


# --- folder swaps ---------------------------------------------------------------------------------


def _make(folder, files: dict[str, str]):
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def test_replace_dir_swaps_in_the_new_folder(tmp_path):
    final = _make(tmp_path / "corpus", {"train.jsonl": "old", "old-only.txt": "x", "sub/a": "old"})
    staging = _make(tmp_path / "staging" / "corpus", {"train.jsonl": "new", "sub/a": "new"})
    trash = tmp_path / "trash"
    replace_dir(staging, final, trash)
    assert _tree(final) == {"train.jsonl": b"new", "sub/a": b"new"}
    assert not staging.exists()
    assert not (trash / "corpus").exists()


def test_replace_dir_when_there_is_no_old_folder(tmp_path):
    staging = _make(tmp_path / "staging" / "report", {"report.md": "# hi"})
    final = tmp_path / "report"
    replace_dir(staging, final, tmp_path / "trash")
    assert _tree(final) == {"report.md": b"# hi"}
    assert not staging.exists()


def test_replace_dir_clears_a_stale_trash_copy(tmp_path):
    trash = tmp_path / "trash"
    _make(trash / "corpus", {"stale": "from an earlier kill"})
    final = _make(tmp_path / "corpus", {"f": "old"})
    staging = _make(tmp_path / "staging" / "corpus", {"f": "new"})
    replace_dir(staging, final, trash)
    assert _tree(final) == {"f": b"new"}
    assert not (trash / "corpus").exists()


def test_recover_dir_restores_the_old_folder_after_a_kill_between_the_renames(tmp_path):
    final = _make(tmp_path / "corpus", {"train.jsonl": "old train", "stats.json": "{}"})
    before = _tree(final)
    trash = tmp_path / "trash"
    trash.mkdir()
    os.replace(final, trash / "corpus")  # replace_dir's first rename; the kill lands here
    assert not final.exists()
    recover_dir(final, trash)
    assert _tree(final) == before
    assert not (trash / "corpus").exists()


def test_recover_dir_drops_the_trash_copy_when_the_swap_finished(tmp_path):
    trash = tmp_path / "trash"
    _make(trash / "corpus", {"train.jsonl": "old"})  # the kill landed before the final rmtree
    final = _make(tmp_path / "corpus", {"train.jsonl": "new"})
    recover_dir(final, trash)
    assert _tree(final) == {"train.jsonl": b"new"}
    assert not (trash / "corpus").exists()


def test_recover_dir_without_trash_does_nothing(tmp_path):
    final = _make(tmp_path / "corpus", {"a": "1"})
    recover_dir(final, tmp_path / "no-trash-here")
    recover_dir(tmp_path / "missing", tmp_path / "no-trash-here")
    assert _tree(final) == {"a": b"1"}
    assert not (tmp_path / "missing").exists()


# --- langbuild.lock -------------------------------------------------------------------------------


def test_lock_starts_empty_without_a_file(tmp_path):
    lock = Lock(tmp_path / "langbuild.lock")
    assert lock.entry("corpus") is None
    assert not (tmp_path / "langbuild.lock").exists()  # nothing is written until something is recorded


def test_lock_record_success_round_trip(tmp_path):
    path = tmp_path / "langbuild.lock"
    outputs = {"train.jsonl": {"size": 12, "sha256": "ab" * 32}}
    Lock(path).record_success("corpus", "fp1", outputs, 1.234, {"train_documents": 3})
    entry = Lock(path).entry("corpus")
    assert entry["status"] == "done"
    assert entry["fingerprint"] == "fp1"
    assert entry["outputs"] == outputs
    assert entry["seconds"] == 1.23
    assert entry["summary"] == {"train_documents": 3}
    assert entry["finished"]
    data = json.loads(path.read_text())
    assert data["version"] == LOCK_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["langbuild.lock"]


def test_lock_record_failure_keeps_the_last_good_record(tmp_path):
    path = tmp_path / "langbuild.lock"
    Lock(path).record_success("corpus", "fp1", {"a": {"size": 1}}, 0.5, {})
    Lock(path).record_failure("corpus", "fp2", "corpus path 'x' does not exist")
    entry = Lock(path).entry("corpus")
    assert entry["fingerprint"] == "fp1" and entry["outputs"] == {"a": {"size": 1}}
    assert entry["failed"]["fingerprint"] == "fp2"
    assert entry["failed"]["message"] == "corpus path 'x' does not exist"
    Lock(path).record_success("corpus", "fp2", {}, 0.1, {})
    assert "failed" not in Lock(path).entry("corpus")  # a later success clears the failure


def test_lock_record_failure_of_a_step_that_never_succeeded(tmp_path):
    path = tmp_path / "langbuild.lock"
    Lock(path).record_failure("train", "fp", "boom")
    entry = Lock(path).entry("train")
    assert "fingerprint" not in entry and entry["failed"]["message"] == "boom"


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage"])
def test_corrupt_lock_tells_the_user_to_delete_it(tmp_path, content):
    path = tmp_path / "langbuild.lock"
    path.write_bytes(content)
    with pytest.raises(LangbuildError) as info:
        Lock(path)
    message = str(info.value)
    assert str(path) in message and "corrupt" in message and "delete it" in message


@pytest.mark.parametrize("data", [[], {"version": 1}, {"steps": []}, "text"])
def test_lock_with_an_unknown_layout_tells_the_user_to_delete_it(tmp_path, data):
    path = tmp_path / "langbuild.lock"
    path.write_text(json.dumps(data))
    with pytest.raises(LangbuildError, match="delete it"):
        Lock(path)


# --- the project's run lock -----------------------------------------------------------------------


@pytest.fixture
def project_root(tmp_path):
    return create_project(tmp_path / "proj", {"project.language": "nya", "corpus.paths": ["data.txt"]})


def test_exclusive_refuses_a_second_run_while_held(project_root):
    first = Project(project_root)
    with first.exclusive():
        with pytest.raises(LangbuildError, match="another langbuild command is running") as info:
            with Project(project_root).exclusive():
                pytest.fail("the second acquisition must not get in")
        assert str(first.root) in str(info.value)
    with Project(project_root).exclusive():  # released: the next run gets it
        pass


def test_exclusive_is_released_when_the_body_fails(project_root):
    with pytest.raises(RuntimeError):
        with Project(project_root).exclusive():
            raise RuntimeError("step crashed")
    with Project(project_root).exclusive():
        pass


def test_project_refuses_a_folder_without_langbuild_toml(tmp_path):
    with pytest.raises(LangbuildError, match="not a langbuild project"):
        Project(tmp_path)


def test_project_resolves_paths_relative_to_its_folder(project_root):
    project = Project(project_root)
    assert project.resolve_path("data/a.txt") == project.root / "data/a.txt"
    assert project.resolve_path("/abs/a.txt").as_posix() == "/abs/a.txt"
