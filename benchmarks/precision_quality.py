"""What bf16 costs in quality: training curves at equal tokens, and the eval step's numbers.

    python benchmarks/precision_quality.py train --project langbuild-demo [--steps 200]
    python benchmarks/precision_quality.py eval --project langbuild-demo [--fp32-from-project]

``train`` copies a project whose extend step is done twice, trains one copy with
``train.precision = fp32`` and the other with ``bf16`` (fp32 master weights) for the same steps and
tokens, with held-out checks every 10 steps, and reports both held-out bits-per-byte curves and the
ratio of the final values (target: bf16 ÷ fp32 ≤ 1.01).

``eval`` copies a finished project twice and runs the eval step with ``eval.precision = fp32`` and
``bf16``: seconds of each, and every reported number side by side with the largest change (bits per
byte, tokens per word, benchmark scores; decoding speeds are timings, reported apart). With
``--fp32-from-project`` the project's own eval step (which must have run from scratch in fp32) is the
fp32 side, and only the bf16 copy is run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from langbuild import pipeline
from langbuild.core.config import CONFIG_NAME, read_document, set_value
from langbuild.core.project import Project

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

console = Console()


def _copy(project: Path, name: str) -> Path:
    target = scratch_dir(f"precision-{name}-") / "p"
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("checkpoints"))
    return target


def _configure(root: Path, settings: dict) -> None:
    path = root / CONFIG_NAME
    doc = read_document(path)
    for key, value in settings.items():
        set_value(doc, key, value)
    path.write_text(doc.as_string(), encoding="utf-8")


def train_curves(args) -> None:
    curves, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        root = _copy(Path(args.project), precision)
        _configure(root, {"train.precision": precision, "train.max_steps": args.steps, "train.eval_every": 10})
        started = time.time()
        pipeline.run(Project(root), console, until="train", force={"train"})
        seconds[precision] = time.time() - started
        records = [json.loads(line) for line in (root / "train/metrics.jsonl").read_text().splitlines()]
        curves[precision] = {r["step"]: r["valid_bits_per_byte"] for r in records if "valid_bits_per_byte" in r}
    steps = sorted(curves["fp32"])
    final = steps[-1]
    ratio = curves["bf16"][final] / curves["fp32"][final]
    lines = [f"{cpu_description()}. Project {args.project}: {args.steps} steps, held-out bits per byte every 10 steps "
             f"(train.eval_max_bytes of the valid split), same data order, same seed.", "",
             "| step | fp32 | bf16 |", "|---:|---:|---:|"]
    lines += [f"| {s} | {curves['fp32'][s]:.4f} | {curves['bf16'][s]:.4f} |" for s in steps]
    lines += ["", f"Final held-out bits per byte, bf16 ÷ fp32: **{ratio:.4f}** (target ≤ 1.01: "
              f"{'met' if ratio <= 1.01 else 'missed'}). Train step wall time: fp32 {seconds['fp32']:.0f} s, "
              f"bf16 {seconds['bf16']:.0f} s (× {seconds['fp32'] / seconds['bf16']:.2f})."]
    body = "\n".join(lines)
    console.print(body)
    record_section("precision-quality", "bf16 training quality at equal tokens: held-out curves", body)


def _numbers(metrics: dict) -> dict[str, float]:
    """Every reported score in eval/metrics.json, flattened (timings left out)."""
    flat = {}
    for side in ("target", "source"):
        for metric in ("bits_per_byte", "tokens_per_word"):
            for label, value in (metrics.get(side, {}).get(metric) or {}).items():
                flat[f"{side} {metric} ({label})"] = value
    for task, entry in (metrics.get("tasks") or {}).items():
        for label, score in entry["scores"].items():
            flat[f"{task} {entry['metric']} ({label})"] = score["value"]
    return flat


def eval_precision(args) -> None:
    results, seconds = {}, {}
    if args.fp32_from_project:
        # The project's own eval, run from scratch in fp32 by this code on this machine, is the baseline.
        project = Path(args.project)
        lock = json.loads((project / "langbuild.lock").read_text())["steps"]
        results["fp32"] = json.loads((project / "eval/metrics.json").read_text())
        assert results["fp32"]["precision"]["name"] == "fp32" and not results["fp32"]["lm_eval"]["cached"]
        seconds["fp32"] = lock["eval"]["seconds"]
    for precision in ("bf16",) if args.fp32_from_project else ("fp32", "bf16"):
        root = _copy(Path(args.project), precision)
        shutil.rmtree(root / ".langbuild" / "cache", ignore_errors=True)  # no answers from an earlier run
        _configure(root, {"eval.precision": precision})
        started = time.time()
        pipeline.run(Project(root), console, until="eval", force={"eval"})
        seconds[precision] = time.time() - started
        results[precision] = json.loads((root / "eval/metrics.json").read_text())
    fp32, bf16 = _numbers(results["fp32"]), _numbers(results["bf16"])
    baseline = " (fp32: the project's own eval step)" if args.fp32_from_project else ""
    lines = [f"{cpu_description()}. Project {args.project}, eval step from scratch (no lm-eval cache){baseline}.", "",
             "| number | fp32 | bf16 | change |", "|---|---:|---:|---:|"]
    changes = {}
    for key in fp32:
        change = bf16[key] - fp32[key]
        changes[key] = abs(change) / max(abs(fp32[key]), 1e-12)
        lines.append(f"| {key} | {fp32[key]:.4f} | {bf16[key]:.4f} | {change:+.4f} ({changes[key]:.2%}) |")
    worst = max(changes, key=changes.get)
    lines += ["", f"Eval step: fp32 {seconds['fp32']:.0f} s, bf16 {seconds['bf16']:.0f} s "
              f"(× {seconds['fp32'] / seconds['bf16']:.2f}). Largest relative change: {worst}, {changes[worst]:.2%}."]
    body = "\n".join(lines)
    console.print(body)
    record_section("eval-precision", "The eval step in bf16 vs fp32: time and every reported number", body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("train", "eval"))
    parser.add_argument("--project", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--fp32-from-project", action="store_true",
                        help="eval: take the fp32 side from the project's own eval step (run from scratch, in fp32)")
    args = parser.parse_args()
    train_curves(args) if args.what == "train" else eval_precision(args)


if __name__ == "__main__":
    main()
