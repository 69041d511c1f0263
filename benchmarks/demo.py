"""Time the demo end to end and record its numbers in benchmarks/RESULTS.md.

    python benchmarks/demo.py [--dir DIR]

Runs `langbuild demo` in a fresh folder (the packaged model conversion is timed too unless its cache
already exists), then prints and records: wall time per step, the held-out numbers, every benchmark
with its 95 % interval, generation speed, and the cost of re-running eval and report (lm-eval answers
from its request cache the second time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from rich.console import Console

from langbuild.project.demo import run_demo

try:
    from results import commit_description, cpu_description, record_section, scratch_dir  # run as a script
except ImportError:
    from benchmarks.results import commit_description, cpu_description, record_section, scratch_dir

COMMIT = commit_description()  # at start: the code that runs, even if the tree changes while it does



def table(root: Path, total: float | None) -> str:
    lock = json.loads((root / "langbuild.lock").read_text())["steps"]
    metrics = json.loads((root / "eval/metrics.json").read_text())
    rows = ["| step | seconds |", "|---|---:|"]
    rows += [f"| {name} | {entry['seconds']:.1f} |" for name, entry in lock.items()]
    rows.append(f"| sum of the steps | {sum(entry['seconds'] for entry in lock.values()):.0f} |")
    if total is not None:
        rows.append(f"| **total (wall)** | **{total:.0f}** |")
    result = ["| held-out text | metric (lower is better) | base | extended | trained |", "|---|---|---:|---:|---:|"]
    for side, label in (("target", "Chichewa (Ruth, Esther)"), ("source", "English (FLORES+)")):
        bpb, tpw = metrics[side]["bits_per_byte"], metrics[side]["tokens_per_word"]
        result.append(f"| {label} | bits per byte | {bpb['base']:.3f} | {bpb['extended']:.3f} | {bpb['trained']:.3f} |")
        result.append(f"| {label} | tokens per word | {tpw['base']:.2f} | {tpw['extended']:.2f} | {tpw['extended']:.2f} |")
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores ({cpu_description()}), no GPU"
    measured = f"Measured {time.strftime('%Y-%m-%d')} at commit {COMMIT} on {machine}."
    return "\n".join([measured, "", *result, "", extension_line(root, metrics),
                      "", *rows, "", "Benchmarks (lm-eval 0.4.13 on local tasks built from the held-out books; 95 % bootstrap "
                      "intervals):", "", *benchmark_table(metrics), "", speed_line(metrics), "", *rerun_lines(root)])


def _cell(score: dict | None, digits: int = 3) -> str:
    if not score:
        return "—"
    interval = score.get("interval")
    return f"{score['value']:.{digits}f}" + (f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else "")


def benchmark_table(metrics: dict) -> list[str]:
    """Every task the demo ran, base / extended / trained with 95 % intervals, plus held-out bits per byte."""
    rows = ["| task | metric | direction | base | extended | trained | trained − base (paired 95 %) | items |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    for side, label in (("target", "held-out Chichewa, langbuild"), ("source", "English FLORES+, langbuild")):
        bpb, ci = metrics[side]["bits_per_byte"], metrics[side].get("bits_per_byte_interval", {})
        cells = [_cell({"value": bpb[k], "interval": ci.get(k)}) for k in ("base", "extended", "trained")]
        rows.append(f"| {label} | bits per byte | lower is better | {' | '.join(cells)} | | {metrics[side]['bytes']:,} bytes |")
    for name, task in metrics.get("tasks", {}).items():
        cells = [_cell(task["scores"].get(k)) for k in ("base", "extended", "trained")]
        paired = task.get("trained_minus_base") or {}
        diff = _cell(paired, 3) if paired else ""
        chance = f" (chance {task['chance']:.2f})" if task.get("chance") else ""
        rows.append(f"| {name} | {task['metric']}{chance} | {task['direction']} | {' | '.join(cells)} | {diff} | {task['items']} |")
    return rows


def speed_line(metrics: dict) -> str:
    speed = metrics.get("generation")
    if not speed:
        return ""
    models = speed["models"]
    return (f"Generation speed on the same {speed['text_chars']:,} held-out characters (teacher-forced decoding, batch 1, "
            f"KV cache; higher is better): base {models['base']['chars_per_second']:.0f} chars/s "
            f"({models['base']['chars_per_token']:.2f} chars/token), extended {models['extended']['chars_per_second']:.0f} "
            f"({models['extended']['chars_per_token']:.2f}), trained {models['trained']['chars_per_second']:.0f}: "
            f"extended ÷ base = **×{speed['speedup']:.2f}**.")


def rerun_lines(root: Path) -> list[str]:
    """Re-run eval (lm-eval answers from its request cache) and report, timing each against the first run."""
    from langbuild import pipeline
    from langbuild.core.project import Project

    first = json.loads((root / "eval/metrics.json").read_text())["lm_eval"]
    lock = json.loads((root / "langbuild.lock").read_text())["steps"]
    seconds = {}
    for step in ("eval", "report"):
        started = time.perf_counter()
        pipeline.run(Project(root), Console(quiet=True), until=step, from_=step, force={step})
        seconds[step] = time.perf_counter() - started
    second = json.loads((root / "eval/metrics.json").read_text())["lm_eval"]
    return [
        "| re-run | first run (s) | re-run (s) | ratio |", "|---|---:|---:|---:|",
        f"| lm-eval requests (3 models, all tasks) | {first['seconds']:.1f} | {second['seconds']:.1f} "
        f"(cached: {second['cached']}) | {second['seconds'] / first['seconds']:.3f} |",
        f"| eval step (held-out scoring, speed, lm-eval) | {lock['eval']['seconds']:.1f} | {seconds['eval']:.1f} | "
        f"{seconds['eval'] / lock['eval']['seconds']:.2f} |",
        f"| report step | {lock['report']['seconds']:.1f} | {seconds['report']:.1f} | — |",
    ]


def extension_line(root: Path, metrics: dict) -> str:
    """The vocabulary targets: target tokens/word ratio, English tokens/word ratio, English lines kept."""
    extend = json.loads((root / "extend/metrics.json").read_text())
    target, source = metrics["target"]["tokens_per_word"], metrics["source"]["tokens_per_word"]
    return (f"Extension: {extend['added_tokens']:,} new tokens (extend.num_new_tokens = {extend['requested_tokens']!r}); "
            f"Chichewa tokens/word extended ÷ base = **{target['extended'] / target['base']:.3f}**; "
            f"English tokens/word extended ÷ base = **{source['extended'] / source['base']:.4f}**; "
            f"English lines with identical ids: **{metrics['source']['lines_identical']:.1%}** "
            f"(a sample of FLORES+ devtest lines 507-1,012; protection used lines 1-506); embedding rows "
            f"{extend['embedding_rows']['base']:,} → {extend['embedding_rows']['extended']:,}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="demo folder (default: a fresh temporary one)")
    parser.add_argument("--finished", action="store_true",
                        help="--dir holds a demo that already ran: record its step times from the lock, no wall time")
    args = parser.parse_args()
    root = args.dir or scratch_dir("langbuild-demo-") / "demo"
    started = time.time()
    run_demo(root, {}, Console())
    text = table(root, None if args.finished else time.time() - started)
    print(text)
    record_section("demo", "Demo: Chichewa + SmolLM2-135M on CPU", text)
    if args.dir is None:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
