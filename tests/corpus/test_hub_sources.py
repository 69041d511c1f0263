"""hf: sources as people name hub corpora: the syntax, fingerprints, streaming online, the local copy offline.

Nothing here reaches the hub. Online reading is checked on the arguments ``datasets.load_dataset`` is
given (replaced by a stand-in); offline reading runs against a datasets cache written in a temporary
folder in the layout datasets reads offline (``<namespace>___<name>/<config>/0.0.0/<revision>/``),
through the real corpus step, train.replay_text, and the console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.datasets_cache import write_offline_copy
from langbuild.core.environment import OFFLINE_VARIABLES
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.corpus.fingerprint import fingerprint_location
from langbuild.corpus.hub_source import HubSource
from langbuild.corpus.shards import read_split
from langbuild.corpus.sources import ReadCounts, ReadOptions, Source, plan_units, read_unit, source_files
from langbuild.project.scaffold import create_project
from langbuild.training.replay import read_replay_text

REPO = Path(__file__).resolve().parents[2]
QUIET = Console(quiet=True)
REPO_ID = "someorg/tiny-corpus"
WORDS = ("mlimi anabzala chimanga nyemba munda mtsinje madzi nyumba mbuzi ana sukulu anaphunzira kuwerenga kulemba "
         "mudzi msika nsomba bwato mvula dzuwa phiri nkhalango mbalame galu mphaka chakudya nsima ndiwo tiyi "
         "banja agogo amayi abambo mwana mkazi mwamuna mnzake ulendo galimoto njinga msewu tawuni boma").split()


def _documents(count: int, seed: int) -> list[str]:
    """Invented Chichewa-looking documents, long enough for the corpus step's filters and far enough apart
    that near-duplicate removal keeps them all."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, 14)).capitalize() + "." for _ in range(count)]


TRAIN = _documents(40, 1)
TEST = _documents(6, 2)


# --- the syntax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "repo_id", "config", "split"), [
    ("hf:someorg/corpus", "someorg/corpus", None, "train"),
    ("hf:corpus", "corpus", None, "train"),
    # two parts, as before: a usual split name is a split ...
    ("hf:someorg/corpus:train", "someorg/corpus", None, "train"),
    ("hf:someorg/corpus:test", "someorg/corpus", None, "test"),
    ("hf:someorg/corpus:validation", "someorg/corpus", None, "validation"),
    ("hf:someorg/corpus:valid", "someorg/corpus", None, "valid"),
    ("hf:someorg/corpus:dev", "someorg/corpus", None, "dev"),
    # ... anything else a config, read with split train
    ("hf:HuggingFaceFW/fineweb-2:nya_Latn", "HuggingFaceFW/fineweb-2", "nya_Latn", "train"),
    ("hf:wikimedia/wikipedia:20231101.ny", "wikimedia/wikipedia", "20231101.ny", "train"),
    ("hf:someorg/corpus:", "someorg/corpus", None, "train"),
    # three parts: config and split, either left empty for its default
    ("hf:HuggingFaceFW/fineweb-2:nya_Latn:test", "HuggingFaceFW/fineweb-2", "nya_Latn", "test"),
    ("hf:someorg/corpus::validation", "someorg/corpus", None, "validation"),
    ("hf:someorg/corpus:nya_Latn:", "someorg/corpus", "nya_Latn", "train"),
])
def test_id_config_and_split(spec, repo_id, config, split):
    source = HubSource.parse(spec)
    assert (source.repo_id, source.config, source.split) == (repo_id, config, split)
    assert (source.revision, source.data_dir, source.data_files) == (None, None, ())
    assert HubSource.parse(source.spec()) == source  # the canonical form reads back as the same source


def test_options_after_a_question_mark():
    source = HubSource.parse("hf:HuggingFaceFW/fineweb-2:nya_Latn:train?revision=1a2b3c&data_dir=data/nya_Latn"
                             "&data_files=a/*.parquet&data_files=b/*.parquet")
    assert source == HubSource("HuggingFaceFW/fineweb-2", "nya_Latn", "train", "1a2b3c", "data/nya_Latn",
                               ("a/*.parquet", "b/*.parquet"))
    assert source.spec() == ("hf:HuggingFaceFW/fineweb-2:nya_Latn:train?revision=1a2b3c&data_dir=data/nya_Latn"
                             "&data_files=a/*.parquet&data_files=b/*.parquet")
    assert source.describe() == ("HuggingFaceFW/fineweb-2 (config nya_Latn, split train, revision 1a2b3c, "
                                 "data_dir data/nya_Latn, data_files a/*.parquet, b/*.parquet)")
    assert source.load_arguments() == {"path": "HuggingFaceFW/fineweb-2", "name": "nya_Latn", "split": "train",
                                       "revision": "1a2b3c", "data_dir": "data/nya_Latn",
                                       "data_files": ["a/*.parquet", "b/*.parquet"]}
    # Two-part compatibility holds with options too; one data_files is passed as a string.
    one = HubSource.parse("hf:someorg/corpus:test?data_files=x.parquet")
    assert (one.config, one.split, one.load_arguments()["data_files"]) == (None, "test", "x.parquet")
    assert HubSource.parse("hf:someorg/corpus").load_arguments() == {"path": "someorg/corpus", "name": None, "split": "train"}


@pytest.mark.parametrize(("spec", "fragments"), [
    ("hf:someorg/corpus:nya_Latn?colour=red", ["unknown option 'colour'", "allowed: revision, data_dir, data_files"]),
    ("hf:someorg/corpus?revision=a&revision=b", ["option 'revision' is given twice"]),
    ("hf:someorg/corpus?revision=", ["option 'revision' has no value"]),
    ("hf:someorg/corpus?data_dir", ["option 'data_dir' has no value"]),
    ("hf:someorg/corpus:train[:1000]", ["cannot be sliced", "train[:1000]"]),
    ("hf:someorg/corpus:nya_Latn:train[:10%]", ["cannot be sliced"]),
    ("hf:", ["is not a hub dataset", "hf:<id>[:<config>[:<split>]]"]),
    ("hf:a/b/c", ["is not a hub dataset"]),
    ("hf:someorg/corpus:nya:train:extra", ["is not a hub dataset"]),
])
def test_a_malformed_source_is_one_line_naming_the_setting(spec, fragments, tmp_path):
    with pytest.raises(LangbuildError) as info:
        source_files(spec, tmp_path, "corpus.valid_paths")
    message = str(info.value)
    assert all(fragment in message for fragment in fragments), message
    assert "\n" not in message and message.endswith("fix corpus.valid_paths")


def test_two_spellings_of_one_source_are_read_once(tmp_path):
    assert source_files("hf:someorg/corpus:nya_Latn", tmp_path) == [("hub", "hf:someorg/corpus:nya_Latn:train")]
    units = plan_units([Source("hf:someorg/corpus:nya_Latn", "train"), Source("hf:someorg/corpus:nya_Latn:train", "train")],
                       tmp_path, 1 << 20)
    assert [(u.kind, u.location) for u in units] == [("hub", "hf:someorg/corpus:nya_Latn:train")]


def test_the_fingerprint_changes_with_config_split_revision_and_files(tmp_path):
    def digest(spec):
        (kind, location), = source_files(spec, tmp_path)
        return fingerprint_location(kind, location, tmp_path)

    base = digest("hf:someorg/corpus:nya_Latn:train")
    assert base == ("hf:someorg/corpus:nya_Latn:train", {"id": "someorg/corpus", "config": "nya_Latn", "split": "train",
                                                         "revision": None, "data_dir": None, "data_files": []})
    assert digest("hf:someorg/corpus:nya_Latn") == base
    others = ["hf:someorg/corpus:zul_Latn:train", "hf:someorg/corpus:nya_Latn:test", "hf:someorg/corpus:train",
              "hf:someorg/corpus:nya_Latn?revision=1a2b3c", "hf:someorg/corpus:nya_Latn?revision=4d5e6f",
              "hf:someorg/corpus:nya_Latn?data_dir=nya", "hf:someorg/corpus:nya_Latn?data_files=nya/*.parquet"]
    digests = [digest(spec) for spec in others]
    assert base not in digests and len({json.dumps(d, sort_keys=True) for d in digests}) == len(others)


# --- online: what datasets is asked for ---------------------------------------------------------------


@pytest.fixture
def online(monkeypatch):
    """No offline switch set, and datasets.load_dataset replaced by a recorder: nothing reaches the hub."""
    import datasets

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        if kwargs["path"] == "someorg/gated":
            raise ConnectionError("401 Client Error\nfor url https://huggingface.co/...")
        return iter([{"text": doc, "id": str(i)} for i, doc in enumerate(TRAIN[:3])] if kwargs["path"] != "someorg/other"
                    else [{"content": "x"}])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _read(spec, root, options=None):
    units = plan_units([Source(spec, "train")], root, 1 << 20)
    return [record for unit in units for record in read_unit(unit, options or ReadOptions(), ReadCounts())]


def test_online_every_part_reaches_load_dataset_streaming(online, tmp_path):
    records = _read("hf:HuggingFaceFW/fineweb-2:nya_Latn:train?revision=1a2b3c&data_dir=data/nya_Latn", tmp_path)
    assert [(r.text, r.doc_id) for r in records] == [(doc, str(i)) for i, doc in enumerate(TRAIN[:3])]
    assert online == [((), {"path": "HuggingFaceFW/fineweb-2", "name": "nya_Latn", "split": "train", "revision": "1a2b3c",
                            "data_dir": "data/nya_Latn", "streaming": True})]
    _read("hf:someorg/corpus:test", tmp_path)
    assert online[-1] == ((), {"path": "someorg/corpus", "name": None, "split": "test", "streaming": True})


def test_online_failures_keep_their_one_line(online, tmp_path):
    with pytest.raises(LangbuildError) as info:
        _read("hf:someorg/gated:nya_Latn", tmp_path)
    message = str(info.value)
    assert message.startswith("cannot stream hub dataset 'someorg/gated' (ConnectionError: 401 Client Error for url")
    assert "\n" not in message and message.endswith("list the files in corpus.paths")
    with pytest.raises(LangbuildError, match=r"someorg/other \(config default, split train\) has no text field 'text' "
                                             r"\(it has: content\): set corpus.text_field"):
        _read("hf:someorg/other", tmp_path)


# --- offline: the prepared copy -----------------------------------------------------------------------


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "id": f"{path.stem}-{i}"}) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A datasets cache holding someorg/tiny-corpus's nya_Latn config (train and test), as datasets reads it
    offline, made current for this module's tests (in this process and any it starts)."""
    import datasets.config

    folder = tmp_path_factory.mktemp("hf-datasets")
    files = {"train": _jsonl(folder.parent / "train.jsonl", TRAIN), "test": _jsonl(folder.parent / "test.jsonl", TEST)}
    copy = write_offline_copy(REPO_ID, "nya_Latn", files, cache_dir=folder)
    assert copy == folder / "someorg___tiny-corpus" / "nya_Latn" / "0.0.0" / "local"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(folder))  # read by datasets when imported
        patch.setenv("HF_DATASETS_CACHE", str(folder))
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield folder


@pytest.fixture
def no_load_dataset(monkeypatch):
    """Offline, langbuild reads the copy itself: datasets.load_dataset is never called."""
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called offline")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


@pytest.mark.parametrize(("spec", "expected"), [
    (f"hf:{REPO_ID}:nya_Latn:train", TRAIN),
    (f"hf:{REPO_ID}:nya_Latn", TRAIN),
    (f"hf:{REPO_ID}:nya_Latn:test", TEST),
    (f"hf:{REPO_ID}::test", TEST),  # no config: the only one cached, as datasets picks
    (f"hf:{REPO_ID}:test", TEST),
    (f"hf:{REPO_ID}:nya_Latn?revision=local", TRAIN),
])
def test_offline_the_prepared_copy_is_read(hub_cache, no_load_dataset, tmp_path, spec, expected):
    records = _read(spec, tmp_path)
    assert [r.text for r in records] == expected
    assert records[1].doc_id == ("train-1" if expected is TRAIN else "test-1")


def test_langbuild_offline_alone_reads_the_copy_without_the_hub(hub_cache, no_load_dataset, monkeypatch, tmp_path):
    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGBUILD_OFFLINE", "1")
    assert [r.text for r in _read(f"hf:{REPO_ID}:nya_Latn:test", tmp_path)] == TEST


@pytest.mark.parametrize(("spec", "fragments"), [
    (f"hf:{REPO_ID}:zul_Latn:train", ["hub dataset someorg/tiny-corpus (config zul_Latn, split train) has no local copy",
                                      "datasets.load_dataset('someorg/tiny-corpus', 'zul_Latn', split='train') once online",
                                      "list them in corpus.paths"]),
    ("hf:otherorg/absent", ["hub dataset otherorg/absent (config default, split train) has no local copy",
                            "datasets.load_dataset('otherorg/absent', None, split='train')"]),
    (f"hf:{REPO_ID}:nya_Latn?revision=4d5e6f", ["(config nya_Latn, split train, revision 4d5e6f) has no local copy",
                                                "(the one there is of revision local)",
                                                "split='train', revision='4d5e6f') once online"]),
    (f"hf:{REPO_ID}:nya_Latn?data_dir=nya", ["has no local copy", "made with data_dir or data_files cannot be found "
                                                                  "offline", "list them in corpus.paths"]),
    (f"hf:{REPO_ID}:nya_Latn:validation", ["the local copy of hub dataset someorg/tiny-corpus (config nya_Latn, split "
                                           "validation)", "has no split 'validation' (it has: train, test)"]),
])
def test_offline_without_the_copy_is_one_line(hub_cache, no_load_dataset, tmp_path, spec, fragments):
    with pytest.raises(LangbuildError) as info:
        _read(spec, tmp_path)
    message = str(info.value)
    assert all(fragment in message for fragment in fragments), message
    assert "\n" not in message


def _hub_project(root: Path, spec: str) -> Path:
    create_project(root, {"project.language": "nya", "corpus.paths": [spec], "langid.method": "off",
                          "select.candidates": [str(root / "no-model")]})  # never loaded by the corpus step
    return root


def test_the_corpus_step_reads_a_hub_config_offline(hub_cache, no_load_dataset, tmp_path):
    root = _hub_project(tmp_path / "p", f"hf:{REPO_ID}:nya_Latn:train")
    results = pipeline.run(Project(root), QUIET, until="corpus")
    assert [(r["step"], r["ran"]) for r in results] == [("corpus", True)]
    splits = {name: list(read_split(root / "corpus", name)) for name in ("train", "valid", "test")}
    assert sorted(sum(splits.values(), [])) == sorted(TRAIN) and all(splits.values())
    assert pipeline.run(Project(root), QUIET, until="corpus")[0]["ran"] is False  # up to date
    (root / "langbuild.toml").write_text((root / "langbuild.toml").read_text(encoding="utf-8").replace(
        f"hf:{REPO_ID}:nya_Latn:train", f"hf:{REPO_ID}:nya_Latn:test"), encoding="utf-8")
    assert pipeline.run(Project(root), QUIET, until="corpus")[0]["ran"] is True  # another split: run again
    assert sorted(sum((list(read_split(root / "corpus", n)) for n in ("train", "valid", "test")), [])) == sorted(TEST)


def test_replay_text_reads_a_hub_config_through_the_same_code(hub_cache, no_load_dataset, tmp_path):
    assert list(read_replay_text(f"hf:{REPO_ID}:nya_Latn:test", tmp_path, 10**6)) == TEST
    with pytest.raises(LangbuildError) as info:
        list(read_replay_text(f"hf:{REPO_ID}:zul_Latn:test", tmp_path, 100))
    message = str(info.value)
    assert "(config zul_Latn, split test) has no local copy" in message and "list them in train.replay_text" in message
    with pytest.raises(LangbuildError, match="unknown option 'split'.*fix train.replay_text"):
        list(read_replay_text(f"hf:{REPO_ID}:nya_Latn?split=test", tmp_path, 100))


def test_the_console_script_ends_in_one_line_when_no_copy_is_there(tmp_path):
    root = _hub_project(tmp_path / "p", "hf:someorg/missing-corpus:nya_Latn:train")
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LANGBUILD_DEBUG"}
    env.update({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(empty)})
    result = subprocess.run([sys.executable, "-m", "langbuild", "corpus"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in ("someorg/missing-corpus", "config nya_Latn", "split train", "has no local copy", str(empty),
                     "once online", "list them in corpus.paths"):
        assert fragment in lines[0], lines[0]


def test_the_wizard_shows_how_a_hub_source_is_read(tmp_path):
    from langbuild.corpus.preview import preview_corpus
    from langbuild.project.wizard import show_preview

    console = Console(record=True, width=200)
    show_preview(console, preview_corpus(["hf:HuggingFaceFW/fineweb-2:nya_Latn", "hf:someorg/corpus:test"], tmp_path))
    shown = console.export_text()
    assert "hf:HuggingFaceFW/fineweb-2:nya_Latn: a hub dataset (config nya_Latn, split train)" in shown
    assert "hf:someorg/corpus:test: a hub dataset (config default, split test)" in shown
    with pytest.raises(LangbuildError, match="unknown option 'rev'"):  # refused while it can still be typed again
        preview_corpus(["hf:someorg/corpus?rev=1"], tmp_path)
