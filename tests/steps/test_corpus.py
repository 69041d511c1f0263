"""The corpus step: finding the files, reading .txt/.jsonl, cleaning, de-duplicating and splitting."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.scaffold import create_project
from langbuild.steps.corpus import clean, expand_sources, read_documents
from tests.tiny import read_json

QUIET = Console(quiet=True)


# --- expand_sources -------------------------------------------------------------------------------


def _touch(path, text="some text here\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_expand_sources_files_folders_and_globs(tmp_path):
    a = _touch(tmp_path / "a.txt")
    b = _touch(tmp_path / "data" / "b.jsonl", '{"text": "x"}\n')
    c = _touch(tmp_path / "data" / "deep" / "c.txt")
    _touch(tmp_path / "data" / "notes.bin")  # folders yield text files only
    d = _touch(tmp_path / "more" / "d1.txt")
    e = _touch(tmp_path / "more" / "d2.txt")
    _touch(tmp_path / "more" / "skip.md")
    found = expand_sources(["a.txt", "data", "more/*.txt"], tmp_path)
    assert found == [a, b, c, d, e]


def test_expand_sources_accepts_absolute_paths_and_drops_repeats(tmp_path):
    a = _touch(tmp_path / "a.txt")
    b = _touch(tmp_path / "b.txt")
    found = expand_sources([str(b), "a.txt", "*.txt", "b.txt"], tmp_path)
    assert found == [b, a]


def test_expand_sources_recursive_glob(tmp_path):
    x = _touch(tmp_path / "d" / "x.txt")
    y = _touch(tmp_path / "d" / "e" / "y.txt")
    assert expand_sources(["d/**/*.txt"], tmp_path) == [y, x]  # sorted by path: d/e/ before d/x


@pytest.mark.parametrize(
    "pattern, fragment",
    [
        ("missing.txt", "corpus path 'missing.txt' does not exist"),
        ("nothing/*.txt", "corpus glob 'nothing/*.txt' matches no file"),
        ("emptydir", "corpus folder 'emptydir' holds no .txt or .jsonl file"),
    ],
)
def test_expand_sources_errors(tmp_path, pattern, fragment):
    (tmp_path / "emptydir").mkdir()
    _touch(tmp_path / "emptydir" / "image.png")
    with pytest.raises(LangbuildError) as info:
        expand_sources([pattern], tmp_path)
    assert fragment in str(info.value)


# --- read_documents -------------------------------------------------------------------------------


def _read(path, field="text"):
    return [clean(text) for text in read_documents(path, field)]


def test_read_txt_one_document_per_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"first line\r\nsecond line\n\nthird, no newline")
    assert _read(path) == ["first line", "second line", "", "third, no newline"]


def test_read_txt_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfMoni\nbwanji\n")
    assert _read(path) == ["Moni", "bwanji"]


def test_read_jsonl_with_a_text_field(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"content": "Moni", "id": 1}, {"content": "two\nlines", "id": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert _read(path, "content") == ["Moni", "two\nlines"]  # blank lines are skipped, not documents


@pytest.mark.parametrize("line", ['{"text": "x"}', '{"content": 3}', '["content"]', '"content"'])
def test_read_jsonl_missing_field_names_the_line_and_field(tmp_path, line):
    path = tmp_path / "a.jsonl"
    path.write_text('{"content": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(LangbuildError) as info:
        _read(path, "content")
    message = str(info.value)
    assert f"{path} line 2" in message and "'content'" in message and "corpus.text_field" in message


def test_read_jsonl_invalid_json(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text('{"text": "ok"}\n{"text": "broken\n', encoding="utf-8")
    with pytest.raises(LangbuildError, match="line 2 is not valid JSON") as info:
        _read(path)
    assert str(path) in str(info.value)


def test_non_utf8_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Moni bwanji\nCaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(LangbuildError) as info:
        _read(path)
    message = str(info.value)
    assert f"{path} line 2 is not UTF-8" in message and "0xe9" in message and "iconv" in message
    assert "\n" not in message


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "weights.txt"
    path.write_bytes(b"PK\x03\x04\x00\x00\x00binary\x00stuff")
    with pytest.raises(LangbuildError, match="looks binary") as info:
        _read(path)
    assert str(path) in str(info.value)


def test_utf16_file_is_refused_as_binary(tmp_path):
    path = tmp_path / "utf16.txt"
    path.write_bytes("Moni bwanji\n".encode("utf-16"))
    with pytest.raises(LangbuildError, match="looks binary"):
        _read(path)


# --- clean ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("e\u0301", "\u00e9"),  # NFC
        ("Cafe\u0301 ndi\u0302", "Caf\u00e9 nd\u00ee"),
        ("a\x07b\x1bc\x7fd", "abcd"),  # control characters
        ("soft\u00adhy\u200bphen", "softhyphen"),  # invisible format characters
        ("\ufeffbom", "bom"),
        ("a  b\t\tc \u00a0 d\u3000e", "a b c d e"),  # runs of spaces
        ("  padded  ", "padded"),
        ("line one\n\n   \nline two  \n", "line one\nline two"),  # blank lines dropped, kept as lines
        ("x\r\ny", "x\ny"),
        ("word\tword", "word word"),  # a tab separates words
        ("old\rmac\x0bvt\x0cff", "old mac vt ff"),
        ("\u200d\U0001F469\u200d\U0001F4BB", "\u200d\U0001F469\u200d\U0001F4BB"),  # ZWJ stays
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),  # ZWNJ (Persian)
        ("   \t  ", ""),
        ("", ""),
    ],
)
def test_clean(raw, expected):
    assert clean(raw) == expected


def test_clean_is_idempotent():
    text = " Moni\u00a0\u00a0bwanji?\x00 e\u0301\n\n  Zikomo \t kwambiri "
    assert clean(clean(text)) == clean(text)


# --- the step through the pipeline ----------------------------------------------------------------

UNIQUE = [f"Mawu nambala {i} ali m'buku lino la Chichewa." for i in range(60)]


def _project(root, model, lines, **settings):
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    answers = {"project.language": "nya", "corpus.paths": ["data"], "select.candidates": [str(model)]}
    create_project(root, {**answers, **settings})
    return root


def _run(root):
    return pipeline.run(Project(root), QUIET, until="corpus")


def _texts(path):
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def _outputs(root):
    return {p.name: p.read_bytes() for p in sorted((root / "corpus").iterdir())}


@pytest.fixture
def model(tiny_models):
    return tiny_models["gpt2-bytelevel"]  # only fingerprinted by the corpus step, never loaded


def test_corpus_step_counts_what_it_removes(tmp_path, model):
    lines = (
        UNIQUE
        + [UNIQUE[0], UNIQUE[1], "  " + UNIQUE[2].replace(" ", "   ") + "  "]  # 3 duplicates (one after cleaning)
        + ["short", "tiny one", "\x07"]  # 2 too short, 1 empty after cleaning
        + ["", "   "]  # 2 empty
    )
    root = _project(tmp_path, model, lines)
    results = _run(root)
    assert [r["step"] for r in results] == ["corpus"] and results[0]["ran"] is True
    stats = read_json(root / "corpus/stats.json")
    assert stats["language"] == "nya"
    assert stats["read"] == len(lines)
    assert stats["removed"] == {"duplicate": 3, "too_short": 2, "empty": 3}
    train, valid = _texts(root / "corpus/train.jsonl"), _texts(root / "corpus/valid.jsonl")
    assert sorted(train + valid) == sorted(UNIQUE)
    assert not set(train) & set(valid)
    assert stats["train"] == {
        "documents": len(train),
        "characters": sum(len(t) for t in train),
        "bytes": sum(len(t.encode()) for t in train),
        "words": sum(len(t.split()) for t in train),
    }
    assert stats["valid"]["documents"] == len(valid) >= 1
    assert stats["train"]["documents"] + stats["valid"]["documents"] == 60
    assert results[0]["summary"] == {"train_documents": len(train), "valid_documents": len(valid)}
    assert set(stats["scripts"]) == {"LATIN"}
    assert pipeline.status(Project(root))[0]["state"] == "done"


def test_corpus_split_is_deterministic_and_follows_the_seed(tmp_path, model):
    lines = [f"Chiganizo cha {i}: anthu ambiri amakhala kuno." for i in range(300)]
    splits = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        root = _project(tmp_path / name, model, lines, **{"project.seed": seed, "corpus.valid_fraction": 0.1})
        _run(root)
        train, valid = _texts(root / "corpus/train.jsonl"), _texts(root / "corpus/valid.jsonl")
        assert not set(train) & set(valid)
        assert sorted(train + valid) == sorted(lines)
        assert 10 <= len(valid) <= 60  # about 10 % of 300
        splits[name] = _outputs(root)
    assert splits["a"] == splits["b"]  # byte-identical outputs for the same seed
    assert splits["a"]["valid.jsonl"] != splits["c"]["valid.jsonl"]  # another seed, another split


def test_two_documents_still_give_a_valid_split(tmp_path, model):
    root = _project(tmp_path, model, UNIQUE[:2], **{"corpus.valid_fraction": 0.001})
    _run(root)
    assert len(_texts(root / "corpus/train.jsonl")) == 1
    assert len(_texts(root / "corpus/valid.jsonl")) == 1


def test_valid_paths_give_exactly_that_files_cleaned_lines(tmp_path, model):
    held_out = ["  Ruth  anati:\tMusandiumirize. ", "Ruth anati: Musandiumirize.", "Naomi anabwerera kwawo.",
                "x", UNIQUE[5] + "\u00a0"]
    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "ruth.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")
    root = _project(tmp_path, model, UNIQUE, **{"corpus.valid_paths": ["heldout/ruth.txt"]})
    _run(root)
    valid = _texts(root / "corpus/valid.jsonl")
    assert valid == ["Ruth anati: Musandiumirize.", "Naomi anabwerera kwawo.", UNIQUE[5]]
    train = _texts(root / "corpus/train.jsonl")
    assert train == [line for line in UNIQUE if line != UNIQUE[5]]  # held-out text never trains
    stats = read_json(root / "corpus/stats.json")
    assert stats["removed"] == {"duplicate": 2, "too_short": 1}
    assert stats["read"] == len(held_out) + len(UNIQUE)


def test_jsonl_corpus_with_a_custom_field(tmp_path, model):
    (tmp_path / "data").mkdir()
    rows = [{"body": line, "n": i} for i, line in enumerate(UNIQUE[:20])]
    (tmp_path / "data" / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["data/*.jsonl"],
                              "corpus.text_field": "body", "select.candidates": [str(model)]})
    _run(tmp_path)
    texts = _texts(tmp_path / "corpus/train.jsonl") + _texts(tmp_path / "corpus/valid.jsonl")
    assert sorted(texts) == sorted(UNIQUE[:20])


def test_empty_corpus_is_an_error(tmp_path, model):
    root = _project(tmp_path, model, ["", "short", "   ", "\x01"])
    with pytest.raises(LangbuildError, match="no training documents left after cleaning") as info:
        _run(root)
    assert "4 read" in str(info.value)
    assert not (root / "corpus").exists()
    assert pipeline.status(Project(root))[0]["state"] == "failed"


def test_a_failing_corpus_run_keeps_the_previous_outputs(tmp_path, model):
    root = _project(tmp_path, model, UNIQUE)
    _run(root)
    before = _outputs(root)
    lock_entry = Project(root).lock().entry("corpus")
    (root / "data" / "zz-latin1.txt").write_bytes("Caf\u00e9 ndi malo abwino kwambiri.\n".encode("latin-1"))
    with pytest.raises(LangbuildError, match="zz-latin1.txt line 1 is not UTF-8"):
        _run(root)
    assert _outputs(root) == before
    entry = Project(root).lock().entry("corpus")
    assert entry["fingerprint"] == lock_entry["fingerprint"] and entry["outputs"] == lock_entry["outputs"]
    assert "not UTF-8" in entry["failed"]["message"]
    row = pipeline.status(Project(root))[0]
    assert row["state"] == "failed" and "zz-latin1.txt" in row["error"]
    (root / "data" / "zz-latin1.txt").unlink()  # back to the inputs of the good run: up to date again
    assert pipeline.status(Project(root))[0]["state"] == "done"
    assert _run(root) == [{"step": "corpus", "ran": False}]
    assert _outputs(root) == before


def test_a_second_run_skips_and_an_input_change_reruns(tmp_path, model):
    root = _project(tmp_path, model, UNIQUE)
    assert _run(root)[0]["ran"] is True
    assert _run(root)[0]["ran"] is False
    with open(root / "data" / "train.txt", "a", encoding="utf-8") as handle:
        handle.write("Mawu atsopano omwe sanali m'mbuyomu.\n")
    assert _run(root)[0]["ran"] is True
    stats = read_json(root / "corpus/stats.json")
    assert stats["train"]["documents"] + stats["valid"]["documents"] == 61
