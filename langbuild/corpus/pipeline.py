"""The corpus pipeline: read → clean → filter → identify language → de-duplicate → decontaminate → split.

It runs in three passes so that memory stays flat however large the corpus is:

1. **Filter** (parallel, one work unit per task): each worker streams its unit's records through
   cleaning, the quality filters and language identification, writes the survivors to a compressed
   staging file and saves their fingerprints (exact key, MinHash signature, split key, n-gram
   contamination flag) as numpy arrays.
2. **Find duplicates** (main process): exact keys, then MinHash LSH one band column at a time, over
   the saved arrays; then the train/valid/test split is decided for every surviving document.
3. **Write** (parallel): each worker re-reads its staging file and writes the final shards, applying
   the duplicate masks, the split, decontamination and source weights.

Output shards are numbered by work unit, so the result is identical for any number of processes.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import LangbuildError
from ..core.processes import die_with_parent
from ..core.progress import progress
from ..text.textio import script_counts
from ..text.words import word_count, words
from . import dedup
from .clean import QualityConfig, clean_lines, dominant_scripts, failed_filter, normalise
from .langid import MIN_PROFILE_DOCUMENTS, LangIdPlan, plan_language_id
from .shards import SUFFIX, ShardWriter, read_records
from .sources import ReadCounts, ReadOptions, Record, Source, Unit, plan_units, read_unit, unit_size

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 160
TOP_WORDS = 50
WORD_SAMPLE_CHARS = 2_000_000  # words counted per unit: a top-words list does not need every word
HISTOGRAM_EDGES = (0, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000)


HELD_OUT_SPLITS = ("valid", "test")
SPLIT_CODES = ("train", "valid", "test")  # the split of each document, as a small integer in pass 2


@dataclass(frozen=True)
class Split:
    """How documents are held out. Valid and test are decided separately, each by the first that applies:
    its own files (valid_paths / test_paths), groups of ``valid_field`` (valid_values / test_values),
    or a document hash. The hash ranges sit at opposite ends ([0, valid_fraction) and
    [1 - test_fraction, 1)), so changing one fraction never moves a document of the other split."""

    valid_field: str = ""
    valid_values: tuple[str, ...] = ()
    valid_fraction: float = 0.05
    seed: int = 0
    explicit_valid: bool = False  # corpus.valid_paths given: only those documents are held out
    test_values: tuple[str, ...] = ()
    test_fraction: float = 0.0
    explicit_test: bool = False  # corpus.test_paths given: only those documents are the test split

    @property
    def test_by_hash(self) -> bool:
        return not self.explicit_test and not self.test_values and self.test_fraction > 0

    @property
    def test_requested(self) -> bool:
        return self.explicit_test or bool(self.test_values)


@dataclass(frozen=True)
class CorpusPlan:
    """Everything a worker needs, picklable for spawned processes."""

    read: ReadOptions
    quality: QualityConfig
    langid: LangIdPlan | None
    fix_mojibake: bool
    dedup: str
    near_threshold: float
    paragraph_dedup: bool
    contamination: np.ndarray | None  # sorted 13-gram hashes of the evaluation sets
    keep_removed: bool
    work: Path
    out: Path
    split: Split
    weights: dict[str, float] = field(default_factory=dict)
    # lm-eval benchmarks cached locally: (task, sorted 13-gram hashes of its documents), in eval.tasks order
    benchmarks: tuple[tuple[str, np.ndarray], ...] = ()


@dataclass
class UnitSummary:
    index: int
    kept: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    languages: Counter = field(default_factory=Counter)
    read_problems: Counter = field(default_factory=Counter)
    empty_files: list[str] = field(default_factory=list)
    characters: int = 0


# --- pass 1: filter and fingerprint ----------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(plan: CorpusPlan, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)  # a killed run must not leave workers writing into its staging folder
    _worker["plan"] = plan
    _worker["identifier"] = plan.langid.build() if plan.langid else None
    _worker["hasher"] = dedup.WordHasher()


def _remember(summary: UnitSummary | WriteSummary, reason: str, text: str) -> None:
    summary.counts[reason] += 1
    examples = summary.examples.setdefault(reason, [])
    if len(examples) < EXAMPLES_PER_REASON:
        examples.append(text[:EXAMPLE_CHARS])


def _judge(record: Record, plan: CorpusPlan, summary: UnitSummary, curated: bool) -> tuple[str, str]:
    """(cleaned text, reason it is removed or "").

    ``curated`` text (corpus.valid_paths) was chosen by the user as the held-out set: it is cleaned
    and must be long enough, but the quality filters and language ID do not second-guess it.
    """
    text = normalise(record.text, plan.fix_mojibake)
    if not text:
        return text, "empty"
    text, dropped = clean_lines(text, plan.quality)
    summary.counts["lines_dropped"] += dropped
    if not text:
        return text, "empty"
    if curated:
        return text, "too_short" if len(text) < plan.quality.min_chars else ""
    reason = failed_filter(text, plan.quality)
    if reason:
        return text, reason
    identifier = _worker["identifier"]
    if identifier is not None:
        keep, label, _ = identifier.judge(text)
        summary.languages[label] += 1
        if not keep:
            return text, "langid"
    return text, ""


class _Fingerprints:
    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = bands, rows
        self.exact: list[int] = []
        self.split: list[int] = []
        self.contaminated: list[bool] = []
        self.benchmark: list[int] = []  # index into plan.benchmarks of the first one overlapped, or -1
        self.signatures: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []
        self.line_counts: list[int] = []

    def add(self, text: str, plan: CorpusPlan, hasher: dedup.WordHasher) -> None:
        words = hasher.words(text)
        self.exact.append(dedup.exact_key(words))
        # The split key hashes the text exactly as the first langbuild versions did, so splits stay put.
        self.split.append(int.from_bytes(hashlib.sha256(f"{plan.split.seed}:{text}".encode()).digest()[:8], "big"))
        checks = plan.contamination is not None or bool(plan.benchmarks)
        word_hashes = hasher.hashes(words) if (plan.dedup == "near" or checks) else None
        grams = dedup.ngram_hashes(word_hashes, dedup.CONTAMINATION_N) if checks else None
        self.contaminated.append(plan.contamination is not None and _any_in(grams, plan.contamination))
        self.benchmark.append(next((i for i, (_, hashes) in enumerate(plan.benchmarks) if _any_in(grams, hashes)), -1))
        if plan.dedup == "near":
            self.signatures.append(dedup.minhash(word_hashes))
        if plan.paragraph_dedup:
            lines = text.split("\n")
            self.lines.append(np.array([dedup.exact_key(hasher.words(line)) for line in lines], dtype=np.uint64))
            self.line_counts.append(len(lines))

    def save(self, work: Path, index: int, paragraphs: bool) -> None:
        dedup.save_array(work / f"exact-{index:05d}.npy", np.array(self.exact, dtype=np.uint64))
        dedup.save_array(work / f"split-{index:05d}.npy", np.array(self.split, dtype=np.uint64))
        dedup.save_array(work / f"contaminated-{index:05d}.npy", np.array(self.contaminated, dtype=bool))
        dedup.save_array(work / f"benchmark-{index:05d}.npy", np.array(self.benchmark, dtype=np.int32))
        if self.signatures or self.bands:
            signatures = np.stack(self.signatures) if self.signatures else np.zeros((0, dedup.NUM_PERM), dtype=np.uint32)
            dedup.save_array(work / f"signatures-{index:05d}.npy", signatures)
            # Band-major, so one band of a unit is one contiguous read.
            band_major = np.ascontiguousarray(dedup.band_hashes(signatures, self.bands, self.rows).T)
            dedup.save_array(work / f"bands-{index:05d}.npy", band_major)
        if paragraphs:
            dedup.save_array(work / f"lines-{index:05d}.npy", np.concatenate(self.lines) if self.lines else np.zeros(0, np.uint64))
            dedup.save_array(work / f"line-counts-{index:05d}.npy", np.array(self.line_counts, dtype=np.int64))


def _any_in(values: np.ndarray, sorted_set: np.ndarray) -> bool:
    if len(values) == 0 or len(sorted_set) == 0:
        return False
    positions = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return bool(np.any(sorted_set[positions] == values))


def filter_unit(unit: Unit) -> UnitSummary:
    """Pass 1 for one unit: survivors to ``docs-N.jsonl.zst``, fingerprints to ``*-N.npy``."""
    plan: CorpusPlan = _worker["plan"]
    hasher: dedup.WordHasher = _worker["hasher"]
    summary = UnitSummary(unit.index)
    read_counts = ReadCounts()
    bands, rows = dedup.bands_for(plan.near_threshold) if plan.dedup == "near" else (0, 0)
    prints = _Fingerprints(bands, rows)
    removed = ShardWriter(plan.out / f"removed-{unit.index:05d}-filters{SUFFIX}") if plan.keep_removed else None
    with ShardWriter(plan.work / f"docs-{unit.index:05d}{SUFFIX}") as kept:
        for record in read_unit(unit, plan.read, read_counts):
            summary.counts["read"] += 1
            summary.characters += len(record.text)
            text, reason = _judge(record, plan, summary, curated=unit.source.role in HELD_OUT_SPLITS)
            if reason:
                _remember(summary, reason, text or record.text)
                if removed is not None:
                    removed.write(_removed_record(record.doc_id, reason, record.text))
                continue
            kept.write({"t": text, "i": record.doc_id, "g": record.group})
            prints.add(text, plan, hasher)
        summary.kept = kept.count
    if removed is not None:
        removed.close()
    prints.save(plan.work, unit.index, plan.paragraph_dedup)
    summary.read_problems = read_counts.counts
    summary.empty_files = read_counts.empty_files
    return summary


def _removed_record(doc_id: str | None, reason: str, text: str) -> dict:
    return {"id": doc_id, "reason": reason, "text": text} if doc_id is None else {"id": doc_id, "reason": reason}


# --- pass 2: duplicates and split (main process) -----------------------------------------------------


@dataclass
class Decisions:
    """Per unit: why each staged document goes (0 keep, 1 exact, 2 near), its split (an index of SPLIT_CODES;
    groups of corpus.valid_field are decided while writing), which lines to drop."""

    reason: list[np.ndarray]
    held_out: list[np.ndarray]
    drop_lines: list[np.ndarray | None]
    candidate_pairs: int = 0


DUPLICATE_REASONS = {1: "exact_duplicate", 2: "near_duplicate"}


class _SignatureReader:
    """Row ``i`` of all units' signatures, through memory maps of a few units at a time.

    Candidate pairs come sorted by their first document, so the maps are opened roughly in unit order;
    closing the oldest keeps resident memory to a few units' signatures, however many units there are.
    """

    OPEN_UNITS = 4

    def __init__(self, work: Path, units: list[Unit], sizes: list[int]):
        self.paths = [work / f"signatures-{u.index:05d}.npy" for u in units]
        self.offsets = np.cumsum([0] + sizes)
        self.open: dict[int, np.ndarray] = {}

    def __getitem__(self, row: int) -> np.ndarray:
        unit = int(np.searchsorted(self.offsets, row, side="right")) - 1
        if unit not in self.open:
            if len(self.open) >= self.OPEN_UNITS:
                del self.open[next(iter(self.open))]  # the map closes with its last reference
            self.open[unit] = dedup.load_array(self.paths[unit], mmap=True)
        return np.array(self.open[unit][row - self.offsets[unit]])


def _band_columns(work: Path, units: list[Unit], bands: int):
    """One band of every document at a time (8 bytes per document), read unit by unit."""
    for band in range(bands):
        yield np.concatenate([dedup.load_array(work / f"bands-{u.index:05d}.npy", mmap=True)[band].copy() for u in units])


def find_duplicates(plan: CorpusPlan, units: list[Unit], sizes: list[int]) -> Decisions:
    work = plan.work
    offsets = np.cumsum([0] + sizes)
    total = int(offsets[-1])
    reason = np.zeros(total, dtype=np.int8)
    alive = np.ones(total, dtype=bool)
    checked = 0
    if plan.dedup != "off" and total:
        exact = np.concatenate([dedup.load_array(work / f"exact-{u.index:05d}.npy") for u in units])
        duplicate = dedup.first_occurrence_mask(exact, alive)
        del exact
        reason[duplicate], alive[duplicate] = 1, False
    if plan.dedup == "near" and total:
        bands, _ = dedup.bands_for(plan.near_threshold)
        signatures = _SignatureReader(work, units, sizes)
        near, checked = dedup.near_duplicate_mask(_band_columns(work, units, bands), signatures, alive, plan.near_threshold)
        reason[near], alive[near] = 2, False
    held_out = _held_out(plan, units, offsets, alive)
    drop_lines = _paragraph_duplicates(plan, units, sizes, alive) if plan.paragraph_dedup else [None] * len(units)
    per_unit = [(int(offsets[i]), int(offsets[i + 1])) for i in range(len(units))]
    return Decisions([reason[a:b] for a, b in per_unit], [held_out[a:b] for a, b in per_unit], drop_lines, checked)


def _held_out(plan: CorpusPlan, units: list[Unit], offsets: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """The split of every staged document (SPLIT_CODES), except groups of corpus.valid_field."""
    split = plan.split
    role = np.repeat([SPLIT_CODES.index(u.source.role) for u in units], np.diff(offsets)).astype(np.int8)
    codes = np.where(alive, role, 0).astype(np.int8)
    if split.explicit_valid and split.explicit_test:
        return codes
    keys = np.concatenate([dedup.load_array(plan.work / f"split-{u.index:05d}.npy") for u in units])
    share = keys.astype(np.float64) / 2.0**64
    pool = alive & (role == 0)  # documents of corpus.paths
    if not split.explicit_valid and not split.valid_values:
        valid = pool & (share < split.valid_fraction)
        if not valid.any() and pool.sum() >= 2:
            # Too few documents for the fraction to pick any: hold out the one with the smallest key.
            live = np.flatnonzero(pool)
            valid[live[np.argmin(keys[live])]] = True
        codes[valid] = 1
    if split.test_by_hash:
        pool &= codes == 0
        test = pool & (share >= 1.0 - split.test_fraction)
        if not test.any() and pool.sum() >= 2:
            live = np.flatnonzero(pool)  # likewise: the one with the largest key
            test[live[np.argmax(keys[live])]] = True
        codes[test] = 2
    return codes


def _paragraph_duplicates(plan: CorpusPlan, units: list[Unit], sizes: list[int], alive: np.ndarray) -> list[np.ndarray]:
    """Per unit, True for each line of a live document that already appeared in an earlier live document."""
    hashes, counts = [], []
    for unit in units:
        hashes.append(dedup.load_array(plan.work / f"lines-{unit.index:05d}.npy"))
        counts.append(dedup.load_array(plan.work / f"line-counts-{unit.index:05d}.npy"))
    all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    line_alive = np.repeat(alive, np.concatenate(counts) if counts else np.zeros(0, np.int64))
    repeated = dedup.first_occurrence_mask(all_hashes, line_alive)
    bounds = np.cumsum([0] + [len(h) for h in hashes])
    return [repeated[bounds[i]:bounds[i + 1]] for i in range(len(units))]


# --- pass 3: write the shards ------------------------------------------------------------------------


@dataclass
class SplitStats:
    documents: int = 0
    words: int = 0
    characters: int = 0
    bytes: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_EDGES))

    def add(self, text: str) -> None:
        self.documents += 1
        self.words += word_count(text)
        self.characters += len(text)
        self.bytes += len(text.encode("utf-8"))
        self.histogram[_bin(len(text))] += 1

    def merge(self, other: SplitStats) -> None:
        self.documents += other.documents
        self.words += other.words
        self.characters += other.characters
        self.bytes += other.bytes
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram)]


def _bin(length: int) -> int:
    for position in range(len(HISTOGRAM_EDGES) - 1, -1, -1):
        if length >= HISTOGRAM_EDGES[position]:
            return position
    return 0


@dataclass
class WriteSummary:
    index: int
    splits: dict[str, SplitStats] = field(default_factory=lambda: {name: SplitStats() for name in SPLIT_CODES})
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    words: Counter = field(default_factory=Counter)
    scripts: Counter = field(default_factory=Counter)
    benchmarks: Counter = field(default_factory=Counter)  # train documents removed per benchmark they overlap


def _split_of(code: int, group: str | None, split: Split) -> str:
    """The split a document is written to: its group of corpus.valid_field first, then pass 2's decision."""
    if split.valid_field and _in_groups(group, split.valid_values):
        return "valid"
    if split.valid_field and _in_groups(group, split.test_values):
        return "test"
    return SPLIT_CODES[code]


def _in_groups(group: str | None, values: tuple[str, ...]) -> bool:
    if group is None:
        return False
    for value in values:
        low, sep, high = value.partition("..")
        if (sep and low <= group <= high) or (not sep and group == value):
            return True
    return False


def _copies(text: str, weight: float, seed: int) -> int:
    """How many times a train document is written: its source weight, the fraction decided by a hash."""
    whole = math.floor(weight)
    fraction = weight - whole
    if fraction <= 0:
        return whole
    draw = int.from_bytes(hashlib.blake2b(f"weight:{seed}:{text}".encode(), digest_size=8).digest(), "big") / 2**64
    return whole + (1 if draw < fraction else 0)


def write_unit(job: tuple[Unit, np.ndarray, np.ndarray, np.ndarray | None]) -> WriteSummary:
    unit, reasons, codes, drop_lines = job
    plan: CorpusPlan = _worker["plan"]
    summary = WriteSummary(unit.index)
    contaminated = dedup.load_array(plan.work / f"contaminated-{unit.index:05d}.npy")
    benchmark = dedup.load_array(plan.work / f"benchmark-{unit.index:05d}.npy")
    weight = plan.weights.get(unit.source.spec, 1.0)
    writers = {split: ShardWriter(plan.out / f"{split}-{unit.index:05d}{SUFFIX}") for split in SPLIT_CODES}
    removed = ShardWriter(plan.out / f"removed-{unit.index:05d}-duplicates{SUFFIX}") if plan.keep_removed else None
    line_position = 0
    sampled_chars = 0
    staged = plan.work / f"docs-{unit.index:05d}{SUFFIX}"
    for position, row in enumerate(read_records(staged) if staged.exists() else ()):
        text, doc_id = row["t"], row["i"]
        line_count = text.count("\n") + 1
        lines_to_drop = drop_lines[line_position:line_position + line_count] if drop_lines is not None else None
        line_position += line_count
        reason = DUPLICATE_REASONS.get(int(reasons[position]), "")
        split = _split_of(int(codes[position]), row["g"], plan.split)
        held_out = split != "train"
        # A test document drawn from corpus.paths must not overlap the evaluation sets either: it is scored.
        if not reason and contaminated[position] and split != "valid" and unit.source.role == "train":
            reason = "contaminated"
        if not reason and not held_out and benchmark[position] >= 0:
            reason = "benchmark"
            summary.benchmarks[plan.benchmarks[benchmark[position]][0]] += 1
        if not reason and lines_to_drop is not None and lines_to_drop.any():
            text = "\n".join(line for line, drop in zip(text.split("\n"), lines_to_drop) if not drop)
            summary.counts["paragraph_lines_dropped"] += int(lines_to_drop.sum())
            if len(text) < plan.quality.min_chars:
                reason = "paragraph_duplicate"
        if reason:
            _remember(summary, reason, text)
            if removed is not None:
                removed.write(_removed_record(doc_id, reason, text))
            continue
        copies = 1 if held_out else _copies(text, weight, plan.split.seed)
        if copies == 0:
            summary.counts["down_sampled"] += 1
        record = {"text": text} if doc_id is None else {"text": text, "id": doc_id}
        for _ in range(copies):
            writers[split].write(record)
            summary.splits[split].add(text)
        if split == "train" and copies and sampled_chars < WORD_SAMPLE_CHARS:
            sampled_chars += len(text)
            summary.words.update(words(text.lower()))
            summary.scripts.update(script_counts([text]))
    for writer in writers.values():
        writer.close()
    if removed is not None:
        removed.close()
    summary.words = Counter(dict(summary.words.most_common(TOP_WORDS * 20)))  # enough to merge a fair top list
    return summary


# --- orchestration -----------------------------------------------------------------------------------


def _run_tasks(function, jobs: list, plan: CorpusPlan, workers: int, console, label: str):
    """Results of ``function`` over ``jobs`` in order: in this process, or in spawned workers. The
    parent advances the bar as each result comes back (workers never touch the console)."""
    with progress(console, label, len(jobs), "units") as bar:
        if workers <= 1 or len(jobs) <= 1:
            _init_worker(plan)
            return [_counted(function(job), bar) for job in jobs]
        # spawn, not fork: the CLI may have loaded torch, and forking a process with its threads can hang.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(plan, os.getpid())) as pool:
            return [_counted(result, bar) for result in pool.imap(function, jobs, chunksize=1)]


def _counted(result, bar):
    bar.advance()
    return result


SAMPLE_SCAN_CHARS = 16_000_000  # read at most this much text, over all units, to draw the sample from


def sample_documents(units: list[Unit], read: ReadOptions, fix_mojibake: bool, quality: QualityConfig, limit: int) -> list[str]:
    """About ``limit`` cleaned documents drawn evenly from the start of every unit.

    Evenly, not just the first ones: the first chapters of a book or the first pages of a crawl are
    narrower than the corpus, and the character profile learned from the sample decides what is kept.
    """
    per_unit_docs = max(limit // max(len(units), 1), 50)
    per_unit_chars = max(SAMPLE_SCAN_CHARS // max(len(units), 1), 1_000_000)
    sample: list[str] = []
    for unit in units:
        scanned: list[str] = []
        chars = 0
        for record in read_unit(unit, read, ReadCounts()):
            scanned.append(record.text)
            chars += len(record.text)
            if chars >= per_unit_chars:
                break
        step = max(len(scanned) // per_unit_docs, 1)
        for raw in scanned[::step][:per_unit_docs]:
            text, _ = clean_lines(normalise(raw, fix_mojibake), quality)
            if len(text) >= quality.min_chars:
                sample.append(text)
    return sample


@dataclass
class CorpusSettings:
    """The corpus step's settings, read from langbuild.toml by the step."""

    language: str
    sources: list[Source]
    read: ReadOptions
    quality: QualityConfig
    langid_method: str = "auto"
    langid_model: str = ""
    langid_threshold: float = 0.5
    langid_confusables: tuple[str, ...] = ()
    sample_documents: int = 5000
    fix_mojibake: bool = True
    dedup: str = "near"
    near_threshold: float = 0.8
    paragraph_dedup: bool = False
    contamination_texts: list[str] = field(default_factory=list)
    benchmark_texts: dict[str, list[str]] = field(default_factory=dict)  # task → its documents' text, locally cached
    keep_removed: bool = False
    split: Split = field(default_factory=Split)
    workers: int = 0
    unit_bytes: int = 64 << 20


def contamination_set(texts: list[str]) -> np.ndarray | None:
    if not texts:
        return None
    hasher = dedup.WordHasher()
    grams = [dedup.ngram_hashes(hasher.hashes(hasher.words(t)), dedup.CONTAMINATION_N) for t in texts]
    grams = [g for g in grams if len(g)]
    return np.unique(np.concatenate(grams)) if grams else None


def _language_id(settings: CorpusSettings, sample: list[str], log) -> LangIdPlan | None:
    if settings.langid_method == "auto" and not settings.langid_model and len(sample) < MIN_PROFILE_DOCUMENTS:
        try:
            return plan_language_id(settings.language, "py3langid", "", settings.langid_threshold, settings.langid_confusables)
        except LangbuildError:
            # Too little text to learn what the language looks like: filtering on a guess would do harm.
            log(f"  language ID off: py3langid does not know {settings.language} and {len(sample)} documents are too few "
                f"for a character profile")
            return None
    return plan_language_id(settings.language, settings.langid_method, settings.langid_model, settings.langid_threshold,
                            settings.langid_confusables, sample)


# A spawned worker costs about a second of CPU before its first document (it imports the filters and loads
# the language ID model), and a pass cleans ~0.4 MB/s per core: below this much input per process, the
# extra processes cost more than they save (the 3.9 MB Chichewa Bible: 10.3 s in one process, 10.7 s in two).
MIN_BYTES_PER_PROCESS = 16 << 20


def auto_processes(units: list[Unit]) -> int:
    """corpus.workers = 0: a process per core, but no more than one per MIN_BYTES_PER_PROCESS of input."""
    cores = os.cpu_count() or 1
    total = sum(unit_size(unit) for unit in units)
    return cores if math.isinf(total) else max(1, min(cores, int(total // MIN_BYTES_PER_PROCESS)))


def build_corpus(settings: CorpusSettings, root: Path, out: Path, log=print, console=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the three passes into ``out``; return the statistics for stats.json, and the processes and timings.
    Passes 1 and 3 show their units done on ``console`` (a rich console; None: no progress)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    units = plan_units(settings.sources, root, settings.unit_bytes, settings.read.txt_unit)
    sample = sample_documents(units, settings.read, settings.fix_mojibake, settings.quality, settings.sample_documents)
    if not sample:
        raise LangbuildError("the corpus holds no document of at least corpus.min_chars characters: check corpus.paths")
    scripts = dominant_scripts(sample)
    quality = QualityConfig(**{**settings.quality.__dict__, "target_scripts": scripts})
    langid = _language_id(settings, sample, log)
    work = out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    plan = CorpusPlan(
        read=settings.read, quality=quality, langid=langid, fix_mojibake=settings.fix_mojibake, dedup=settings.dedup,
        near_threshold=settings.near_threshold, paragraph_dedup=settings.paragraph_dedup,
        contamination=contamination_set(settings.contamination_texts) if settings.contamination_texts else None,
        keep_removed=settings.keep_removed, work=work, out=out, split=settings.split,
        weights={s.spec: s.weight for s in settings.sources},
        benchmarks=tuple((task, grams) for task, texts in settings.benchmark_texts.items()
                         if (grams := contamination_set(texts)) is not None),
    )
    workers = min(settings.workers or auto_processes(units), len(units))
    timings["plan"] = time.perf_counter() - started
    log(f"  {len(units)} work unit(s) from {len(settings.sources)} source(s), {workers} process(es); "
        f"scripts {', '.join(scripts) or '-'}; language ID: {langid.describe() if langid else 'off'}")

    began = time.perf_counter()
    filtered: list[UnitSummary] = _run_tasks(filter_unit, units, plan, workers, console, "corpus filter")
    timings["filter"] = time.perf_counter() - began
    _fail_if_nothing_left(filtered)

    began = time.perf_counter()
    decisions = find_duplicates(plan, units, [s.kept for s in filtered])
    timings["deduplicate"] = time.perf_counter() - began

    began = time.perf_counter()
    jobs = [(u, decisions.reason[i], decisions.held_out[i], decisions.drop_lines[i]) for i, u in enumerate(units)]
    written: list[WriteSummary] = _run_tasks(write_unit, jobs, plan, workers, console, "corpus write")
    timings["write"] = time.perf_counter() - began
    shutil.rmtree(work, ignore_errors=True)
    timings["total"] = time.perf_counter() - started
    stats = _stats(settings, plan, units, filtered, written, decisions)
    _fail_if_split_empty(stats, settings.split)
    # Timings and the process count vary from run to run, so they stay out of stats.json: outputs are reproducible.
    run = {"processes": workers, "seconds": {k: round(v, 2) for k, v in timings.items()},
           "characters_per_second": round(stats["characters_read"] / max(timings["total"], 1e-9))}
    return stats, run


# Counters that share the removal Counter but count something else than removed documents.
NOT_REMOVALS = frozenset({"read", "lines_dropped", "paragraph_lines_dropped", "down_sampled"})

_HINTS = {
    "langid": "check project.language, lower langid.threshold, or set langid.method = \"off\"",
    "script_share": "lower quality.min_script_share or add script_share to quality.disabled",
    "too_short": "lower corpus.min_chars",
    "word_count": "lower quality.min_words (or raise quality.max_words)",
    "empty": "the documents are empty after cleaning: check corpus.text_field and the files",
    "contaminated": "the train text overlaps the evaluation sets: set corpus.decontaminate = false to keep it",
    "benchmark": "the train text overlaps lm-eval benchmarks in eval.tasks: set corpus.decontaminate = false to keep it",
}


def _removal_table(counts: Counter) -> tuple[str, str]:
    removed = [(reason, n) for reason, n in counts.most_common() if reason not in NOT_REMOVALS and n]
    described = ", ".join(f"{n:,} by {reason}" for reason, n in removed) or "none"
    top = removed[0][0] if removed else ""
    hint = _HINTS.get(top, f"add {top} to quality.disabled or loosen its threshold in [quality]" if top else "add text")
    return described, hint


def _fail_if_nothing_left(filtered: list[UnitSummary]) -> None:
    if sum(s.kept for s in filtered) > 0:
        return
    counts = sum((s.counts for s in filtered), Counter())
    problems = sum((s.read_problems for s in filtered), Counter())
    if counts["read"] == 0:
        detail = f" ({', '.join(f'{n:,} {k}' for k, n in problems.items())})" if problems else ""
        raise LangbuildError(f"no documents were read from corpus.paths{detail}: check the files and corpus.text_field")
    described, hint = _removal_table(counts)
    raise LangbuildError(f"all {counts['read']:,} documents were removed ({described}): {hint}")


def _fail_if_split_empty(stats: dict[str, Any], split: Split) -> None:
    if stats["train"]["documents"] == 0:
        described, hint = _removal_table(Counter(stats["removed"]))
        raise LangbuildError(f"no training documents left ({described}; {stats['valid']['documents']:,} held out): {hint}")
    if stats["valid"]["documents"] == 0:
        raise LangbuildError("no held-out documents: give corpus.valid_paths, check corpus.valid_field/valid_values, or add text")
    if stats["test"]["documents"] == 0 and split.test_requested:
        raise LangbuildError("no test documents: check corpus.test_paths or corpus.test_values (every one was removed or "
                             "none matched)")


def _merge_examples(parts: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for reason, texts in part.items():
            slot = merged.setdefault(reason, [])
            slot.extend(texts[: EXAMPLES_PER_REASON - len(slot)])
    return merged


def _stats(settings, plan, units, filtered, written, decisions) -> dict[str, Any]:
    counts = sum((s.counts for s in filtered), Counter()) + sum((w.counts for w in written), Counter())
    splits = {name: SplitStats() for name in SPLIT_CODES}
    for part in written:
        for name, stats in part.splits.items():
            splits[name].merge(stats)
    words = sum((w.words for w in written), Counter())
    scripts = sum((w.scripts for w in written), Counter())
    languages = sum((s.languages for s in filtered), Counter())
    problems = sum((s.read_problems for s in filtered), Counter())
    characters = sum(s.characters for s in filtered)
    removed = {k: v for k, v in counts.items() if k not in NOT_REMOVALS}
    bands, rows = dedup.bands_for(settings.near_threshold) if settings.dedup == "near" else (0, 0)

    def describe(name: str) -> dict[str, Any]:
        s = splits[name]
        return {"documents": s.documents, "words": s.words, "characters": s.characters, "bytes": s.bytes,
                "length_histogram": {f">={edge}": n for edge, n in zip(HISTOGRAM_EDGES, s.histogram)}}

    return {
        "language": settings.language,
        "read": counts["read"],
        "characters_read": characters,
        "sources": [{"spec": s.spec, "role": s.role, "weight": s.weight} for s in settings.sources],
        "read_problems": dict(problems),
        "empty_files": [f for s in filtered for f in s.empty_files],
        "removed": dict(sorted(removed.items(), key=lambda kv: -kv[1])),
        "examples": _merge_examples([s.examples for s in filtered] + [w.examples for w in written]),
        "lines_dropped": counts["lines_dropped"],
        "paragraph_lines_dropped": counts["paragraph_lines_dropped"],
        "down_sampled": counts["down_sampled"],
        "language_id": {"method": plan.langid.describe() if plan.langid else "off",
                        "labels": dict(languages.most_common(20))},
        "dedup": {"mode": settings.dedup, "near_threshold": settings.near_threshold, "bands": bands, "rows": rows,
                  "candidate_pairs_checked": decisions.candidate_pairs},
        "quality_scripts": list(plan.quality.target_scripts),
        "train": describe("train"),
        "valid": describe("valid"),
        "test": describe("test"),
        "scripts": dict(scripts.most_common()),
        "top_words": words.most_common(TOP_WORDS),
        "work_units": len(units),
        **_benchmark_overlap(plan, written),
    }


def _benchmark_overlap(plan, written) -> dict[str, Any]:
    """Train documents removed per benchmark of eval.tasks whose data is cached locally (0 when none
    overlapped); absent when no such benchmark was checked, so stats.json is as before."""
    if not plan.benchmarks:
        return {}
    removed = sum((w.benchmarks for w in written), Counter())
    return {"benchmark_overlap": {task: removed[task] for task, _ in plan.benchmarks}}
