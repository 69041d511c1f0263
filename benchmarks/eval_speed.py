"""The eval step before vs after issue 21's "no wasted passes": first run and re-run, same project, same scores.

    python benchmarks/eval_speed.py --project DEMO_DIR [--before REF] [--max-bytes 6000] [--cloze-items 50]

DEMO_DIR is a project finished through train (``langbuild demo`` makes one: SmolLM2-135M + Chichewa).
Each side gets its own copy (model and corpus folders hard-linked, no eval output, no caches); the
"before" side runs the code of ``REF`` from a temporary ``git worktree`` in a subprocess, the "after"
side this checkout's, also in a subprocess. Upstream steps are adopted as they are (their fingerprints
refreshed to the running code), so only eval runs, forced, twice: first run (nothing cached) and
re-run (every cache warm). Scoring is fp32 on both sides, so every score must agree: bits per byte to
1e-6, accuracies exactly; the script fails otherwise. A third run, "after, auto", scores with this
checkout's default ``eval.precision = "auto"`` (bf16 where this CPU's bf16 is measured faster); its
largest change of any reported score against the fp32 "before" is stated next to its time.

The eval settings are the demo's, scaled down so the four runs take minutes (``--max-bytes`` of
held-out and half as much English text, ``--cloze-items``, 400 characters of speed text); the demo
itself scores all 252 held-out verses and 200 cloze items. The table goes to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

try:
    from results import cpu_description, record_section, scratch_dir  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

REPO = Path(__file__).resolve().parent.parent
BEFORE = "6bcba45"  # arch just before this work
UPSTREAM = ("data", "corpus", "tokenizer", "select", "extend", "train")

# Run inside each side's subprocess, with that side's code first on sys.path.
DRIVER = r"""
import json, sys, time
from pathlib import Path
import tomlkit
from rich.console import Console
from langbuild import pipeline
from langbuild.core.atomic import atomic_write_json
from langbuild.core.config import CONFIG_NAME, coerce, read_document, set_value
from langbuild.core.project import Project

root, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
doc = read_document(root / CONFIG_NAME)
for name, value in settings.items():
    set_value(doc, name, coerce(name, value))
(root / CONFIG_NAME).write_text(tomlkit.dumps(doc), encoding="utf-8")
project = Project(root)
lock_path = root / "langbuild.lock"
lock, hashed = json.loads(lock_path.read_text()), {}
for index, step in enumerate(pipeline.STEPS):
    if step.name in ("eval", "report"):
        break
    lock["steps"][step.name]["fingerprint"] = pipeline.fingerprints(project, pipeline.STEPS[: index + 1], None, hashed)[step.name]
    atomic_write_json(lock_path, lock)
import torch
slots = [0]  # token positions through a model's input embedding (padding included): the work done

def count_slots(module, args, output):
    if isinstance(module, torch.nn.Embedding) and args and torch.is_tensor(args[0]):
        slots[0] += args[0].numel()

torch.nn.modules.module.register_module_forward_hook(count_slots)
times, counted = [], []
for _ in range(2):
    started, slots[0] = time.perf_counter(), 0
    pipeline.run(Project(root), Console(quiet=True), until="eval", force={"eval"})
    times.append(time.perf_counter() - started)
    counted.append(slots[0])
print(json.dumps({"first": times[0], "rerun": times[1], "slots": counted[0]}))
"""


def copy_project(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("langbuild.toml", "langbuild.lock"):
        shutil.copy2(source / name, target / name)
    for name in UPSTREAM:
        shutil.copytree(source / name, target / name, copy_function=os.link)
    return target


def run_side(code: Path, project: Path, settings: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(project), json.dumps(settings)], env=env, cwd=project,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"eval failed with the code in {code}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"metrics": json.loads((project / "eval/metrics.json").read_text())}


def largest_change(before: dict, after: dict) -> tuple[str, float]:
    """(score, relative change) of the reported score that moved most between two runs' metrics."""
    changes = []
    for side in ("target", "source"):
        for label, value in before[side]["bits_per_byte"].items():
            changes.append((f"{side} bits per byte ({label})", after[side]["bits_per_byte"][label] / value - 1))
    for task, entry in before["tasks"].items():
        for label, score in entry["scores"].items():
            theirs = after["tasks"][task]["scores"][label]["value"]
            changes.append((f"{task} {entry['metric']} ({label})", theirs / score["value"] - 1 if score["value"] else theirs))
    return max(changes, key=lambda change: abs(change[1]))


def compare(before: dict, after: dict) -> list[str]:
    """Every score that differs beyond the allowed rounding (bits per byte 1e-6, accuracies exactly)."""
    problems = []
    for side in ("target", "source"):
        for label, value in before[side]["bits_per_byte"].items():
            if abs(after[side]["bits_per_byte"][label] - value) > 1e-6:
                problems.append(f"{side} bits per byte, {label}: {value} vs {after[side]['bits_per_byte'][label]}")
    for task, entry in before["tasks"].items():
        for label, score in entry["scores"].items():
            theirs = after["tasks"][task]["scores"][label]["value"]
            exact = entry["metric"] != "bits_per_byte"
            if (theirs != score["value"]) if exact else abs(theirs - score["value"]) > 1e-6:
                problems.append(f"{task} {entry['metric']}, {label}: {score['value']} vs {theirs}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--max-bytes", type=int, default=6000)
    parser.add_argument("--cloze-items", type=int, default=50)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    settings = {"eval.precision": "fp32", "eval.max_bytes": args.max_bytes, "eval.source_max_bytes": args.max_bytes // 2,
                "eval.cloze_items": args.cloze_items, "eval.speed_chars": 400}
    work = scratch_dir("eval-speed-")
    try:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(work / "before-code"), args.before],
                       check=True, capture_output=True)
        runs = {}
        sides = (("before", work / "before-code", settings), ("after", REPO, settings),
                 ("after, auto", REPO, settings | {"eval.precision": "auto"}))
        for side, code, side_settings in sides:
            runs[side] = run_side(code, copy_project(args.project.resolve(), work / side.replace(", ", "-")), side_settings)
            print(f"{side}: first {runs[side]['first']:.1f} s, re-run {runs[side]['rerun']:.1f} s", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "before-code")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    problems = compare(runs["before"]["metrics"], runs["after"]["metrics"])
    body = report(runs, settings, args)
    print(body)
    if problems:
        raise SystemExit("scores changed:\n" + "\n".join(problems))
    if not args.no_record:
        record_section("eval-speed", "Eval step: no wasted passes (issue 21), before vs after", body)


def report(runs: dict, settings: dict, args) -> str:
    before, after = runs["before"], runs["after"]
    metrics = after["metrics"]
    cloze = next((t for t in metrics["tasks"].values() if t["metric"] == "acc"), None)
    auto = runs["after, auto"]
    rows = ["| eval step | before, fp32 (s) | after, fp32 (s) | before ÷ after | after, auto (s) | before ÷ auto |",
            "|---|---:|---:|---:|---:|---:|"]
    for run in ("first", "rerun"):
        rows.append(f"| {'first run' if run == 'first' else 're-run'} | {before[run]:.1f} | {after[run]:.1f} | "
                    f"{before[run] / after[run]:.2f} | {auto[run]:.1f} | {before[run] / auto[run]:.2f} |")
    rows.append(f"| token positions through a model, first run | {before['slots']:,} | {after['slots']:,} | "
                f"{before['slots'] / after['slots']:.2f} | {auto['slots']:,} | |")
    moved, change = largest_change(before["metrics"], auto["metrics"])
    precision = auto["metrics"].get("precision", {})
    bpb = metrics["target"]["bits_per_byte"]
    scores = ", ".join(f"{label} {value:.6f}" for label, value in bpb.items())
    cloze_scores = ", ".join(f"{label} {score['value']:.3f}" for label, score in (cloze or {}).get("scores", {}).items())
    return "\n".join([
        f"Machine: {cpu_description()}; {os.cpu_count()} cores, shared. `python benchmarks/eval_speed.py --project DEMO "
        f"--max-bytes {args.max_bytes} --cloze-items {args.cloze_items}` on a copy of the finished demo project "
        f"(SmolLM2-135M + Chichewa, extend auto), fp32; before = {args.before}. Settings: "
        f"{', '.join(f'{k} = {v}' for k, v in settings.items())} (the demo: all held-out text, 200 cloze items, "
        "1000 speed characters).", "", *rows, "",
        f"fp32 after vs before: every score identical (bits per byte within 1e-6, accuracies exactly): held-out bits "
        f"per byte {scores}" + (f"; cloze accuracy {cloze_scores}" if cloze else "") + ".",
        "", f"auto chose {precision.get('name', '?')} here ({precision.get('reason', '')}, "
        f"measured {precision.get('speedup') or 0:.2f}x); "
        f"largest change of any reported score against fp32 before: {moved}, {change:+.2%}."])


if __name__ == "__main__":
    main()
