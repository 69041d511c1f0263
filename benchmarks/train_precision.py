"""Training speed by precision: langbuild fp32 vs bf16 (fp32 master weights) vs auto, against the HF
Trainer in fp32 and with ``bf16=True``, for the full, embeddings-only and LoRA stages; one process.

    python benchmarks/train_precision.py --project langbuild-demo [--steps 6]

The model is the demo project's extended SmolLM2-135M (``extend/model``; ``--model`` takes another
folder or packaged name), trained on Chichewa Bible blocks of 256 tokens, 4 per step. Each variant
runs ``--steps`` optimizer steps; the first (allocation, kernel choice) is dropped and the median of
the rest is reported as tokens/s. All variants run in this one process, one after the other, so the
ratios compare like with like; the CPU model and its bf16 flags are printed with the table, since
bf16's speed depends on them (AMX: ~5x; AVX512-bf16 alone: ~2x; neither: slower than fp32).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from langbuild.models.loading import load_tokenizer, resolve_model
from langbuild.training.data import TokenBlocks, tokenise_to_file
from langbuild.training.precision import resolve_precision

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
    from train_throughput import BATCH, SEQ_LEN, chichewa_text, console, hf_trainer, langbuild_loop, tokens_per_second
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir
    from benchmarks.train_throughput import BATCH, SEQ_LEN, chichewa_text, console, hf_trainer, langbuild_loop, tokens_per_second


def model_and_rows(args) -> tuple[Path, list[int]]:
    if args.project:
        folder = Path(args.project) / "extend"
        rows = [int(t["id"]) for t in json.loads((folder / "new_tokens.json").read_text())]
        return folder / "model", rows
    return resolve_model(args.model), list(range(49_000, 49_152))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", help="a finished demo project: its extended model is trained")
    parser.add_argument("--model", default="smollm2-135m", help="without --project: a model folder or packaged name")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    model_path, new_rows = model_and_rows(args)
    threads = torch.get_num_threads()
    auto = resolve_precision("auto")
    console.print(f"{cpu_description()}; {threads} threads; auto -> {auto.name} ({auto.describe()})")
    work = scratch_dir("precision-data-")
    count = tokenise_to_file(load_tokenizer(model_path), chichewa_text(), work / "train.bin")
    blocks = TokenBlocks(work / "train.bin", count, SEQ_LEN, "text")

    def ours(precision: str, stage: str = "full"):
        return lambda: langbuild_loop(model_path, work / "train.bin", count, args.steps, threads, stage=stage,
                                      precision=precision, new_rows=new_rows)

    variants = [
        ("HF Trainer fp32", lambda: hf_trainer(model_path, blocks, args.steps, threads)),
        ("HF Trainer bf16=True (autocast, fp32 weights)", lambda: hf_trainer(model_path, blocks, args.steps, threads, bf16=True)),
        ("langbuild fp32, full", ours("fp32")),
        ("langbuild bf16, full", ours("bf16")),
        (f"langbuild auto ({auto.name}), full", ours(auto.name)),
        ("langbuild fp32, embeddings stage", ours("fp32", "embeddings")),
        ("langbuild bf16, embeddings stage", ours("bf16", "embeddings")),
        ("langbuild fp32, lora stage", ours("fp32", "lora")),
        ("langbuild bf16, lora stage", ours("bf16", "lora")),
    ]
    speed = {}
    for name, measure in variants:
        times = measure()
        speed[name] = tokens_per_second(times)
        console.print(f"{name}: {speed[name]:.0f} tokens/s  (steps: {', '.join(f'{t:.2f}' for t in times)} s)")
    record(speed, args, threads, auto, model_path)


def record(speed: dict, args, threads: int, auto, model_path: Path) -> None:
    hf32, hf16 = speed["HF Trainer fp32"], speed["HF Trainer bf16=True (autocast, fp32 weights)"]
    lines = [f"{cpu_description()}; {threads} threads. Model: {model_path.name} ({args.project or args.model}), "
             f"{SEQ_LEN} x {BATCH} tokens per step, {args.steps} steps per variant (first dropped, median of the rest), "
             f"one process. auto chose **{auto.name}** ({auto.describe()}).", "",
             "| variant | tokens/s | ÷ HF Trainer fp32 |", "|---|---:|---:|"]
    lines += [f"| {name} | {value:.0f} | {value / hf32:.2f} |" for name, value in speed.items()]
    full = speed["langbuild bf16, full"] / speed["langbuild fp32, full"]
    auto_speed = speed[f"langbuild auto ({auto.name}), full"]
    lines += ["", "| ratio | value | target |", "|---|---:|---|",
              f"| langbuild bf16 ÷ fp32, full | {full:.2f} | ≥ 3.0 with AMX; auto must not lose where bf16 is slow |",
              f"| langbuild bf16 ÷ fp32, embeddings stage | "
              f"{speed['langbuild bf16, embeddings stage'] / speed['langbuild fp32, embeddings stage']:.2f} | |",
              f"| langbuild bf16 ÷ fp32, lora stage | "
              f"{speed['langbuild bf16, lora stage'] / speed['langbuild fp32, lora stage']:.2f} | |",
              f"| langbuild auto ÷ HF Trainer bf16=True | {auto_speed / hf16:.2f} | ≥ 2.0 |",
              f"| langbuild auto ÷ langbuild fp32 | {auto_speed / speed['langbuild fp32, full']:.2f} | ≥ 0.98 |"]
    body = "\n".join(lines)
    console.print(body)
    record_section("train-precision", "Training speed by precision: bf16 over fp32 masters vs fp32 vs the HF Trainer", body)


if __name__ == "__main__":
    main()
