"""Time per optimizer step spent drawing a step's rows, as the corpus grows: the old data path (a full
``torch.randperm(n_blocks)`` per row, the whole global batch in every process) against the new one
(a keyed Feistel bijection per row, only the process's own rows, read ahead on a thread).

    python benchmarks/data_path.py [--rows 64] [--seq-len 2048] [--steps 100]

Token files of 1.7M, 100M and 1B int32 tokens are made sparse with ``truncate`` (4 GB for 1B tokens
takes no disk space, and reading its holes still faults pages in like a cold real file); they are
deleted afterwards. The old path reads through a plain ``np.memmap`` as it did; the new one through
``TokenBlocks``, which tells the kernel its reads are random (no read-ahead). Columns: the old
method's seconds per step (fewer steps: it is slow); the new method's for the whole global batch, the
part of that spent on the block order, and one process's eighth of it (8 processes); and what the
training loop actually waits for with the prefetcher when a training step takes 50 ms. Medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from langbuild.training.data import RowPrefetcher, TokenBlocks, batch_indices, process_rows

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

SIZES = [("1.7M", 1_700_000), ("100M", 100_000_000), ("1B", 1_000_000_000)]
TRAIN_STEP_S = 0.05  # the simulated training step behind which the prefetcher reads


def old_batch_indices(step: int, batch_size: int, n_blocks: int, seed: int) -> list[int]:
    """The data path before issue 18 (langbuild/training/data.py at c11e52f), kept as the baseline."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, n_blocks)
        order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        indices.append(int(order[offset]))
    return indices


def old_global_batch(step: int, rows: int, stream: np.memmap, seq_len: int) -> torch.Tensor:
    """The old row read: every process built the whole global batch from a plain memmap, then sliced it."""
    n_blocks = len(stream) // seq_len
    picked = [stream[i * seq_len:(i + 1) * seq_len] for i in old_batch_indices(step, rows, n_blocks, 0)]
    return torch.from_numpy(np.stack(picked).astype(np.int64))


def median_seconds(draw, steps: int, first: int = 0) -> float:
    """Median seconds of ``draw(step)`` over ``steps`` steps from ``first`` (each measurement starts at
    its own step, so it does not find the blocks of an earlier one in the page cache)."""
    times = []
    for step in range(first, first + steps):
        start = time.perf_counter()
        draw(step)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prefetched_wait(blocks: TokenBlocks, rows: int, steps: int, first: int) -> float:
    """The median time the loop waits for its rows when each training step takes TRAIN_STEP_S."""
    waits = []
    with RowPrefetcher(lambda step: process_rows(step, rows, blocks, None, 0.0, 0), first, first + steps) as prefetcher:
        for step in range(first, first + steps):
            start = time.perf_counter()
            prefetcher.get(step)
            waits.append(time.perf_counter() - start)
            time.sleep(TRAIN_STEP_S)
    return statistics.median(waits[1:])  # the first step has nothing read ahead


def measure(path: Path, tokens: int, args) -> dict:
    with open(path, "wb") as handle:
        handle.truncate(tokens * 4)  # sparse: no disk space, no time to write
    blocks = TokenBlocks(path, tokens, args.seq_len, "synthetic")
    stream = np.memmap(path, dtype=np.int32, mode="r", shape=(len(blocks) * args.seq_len,))
    old_steps = max(3, min(args.steps, int(2e6 // len(blocks))))  # the old path costs ~8 ns per block per row
    result = {
        "blocks": len(blocks),
        "old": median_seconds(lambda step: old_global_batch(step, args.rows, stream, args.seq_len), old_steps),
        "old_steps": old_steps,
        "order": median_seconds(lambda step: batch_indices(step, args.rows, len(blocks), 0), args.steps),
        "new": median_seconds(lambda step: process_rows(step, args.rows, blocks, None, 0.0, 0), args.steps, 10_000),
        "new_eighth": median_seconds(lambda step: process_rows(step, args.rows, blocks, None, 0.0, 0, 0, 8), args.steps,
                                     20_000),
        "wait": prefetched_wait(blocks, args.rows, 20, 30_000),
    }
    path.unlink()  # the maps close when blocks and stream go out of scope
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64, help="rows in the global batch")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=100, help="steps timed for the new method")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"{cpu_description()}; {threads} threads; {args.rows} rows x {args.seq_len} tokens per step")
    work = scratch_dir("data-path-")
    results = {}
    for name, tokens in SIZES:
        results[name] = measure(work / f"{name}.bin", tokens, args)
        r = results[name]
        print(f"{name:>5} tokens, {r['blocks']:>7} blocks: old {r['old'] * 1e3:8.1f} ms ({r['old_steps']} steps), "
              f"new {r['new'] * 1e3:5.2f} ms (order {r['order'] * 1e3:4.2f}), one process of 8 {r['new_eighth'] * 1e3:5.2f} ms, "
              f"wait with prefetch {r['wait'] * 1e3:5.2f} ms")
    work.rmdir()
    load = os.getloadavg()[0]  # the machine is shared: the old path's randperm slows most under load
    lines = [f"{cpu_description()}; {threads} torch threads; load average {load:.1f} at the end. "
             f"A global batch of {args.rows} rows x {args.seq_len} tokens, read from a sparse int32 token file. "
             "Old: a `torch.randperm(n_blocks)` per row, the whole global batch in every process, a plain np.memmap "
             "(median of the steps shown). New: a keyed Feistel bijection per row "
             f"(`block_index`), each process reading only its rows (`process_rows`) through a map advised `MADV_RANDOM` "
             f"(median of {args.steps} steps); "
             f"the last column is what the loop waits for with `RowPrefetcher` when a training step takes "
             f"{TRAIN_STEP_S * 1e3:.0f} ms. `python benchmarks/data_path.py`.", "",
             "| tokens | blocks | old ms/step | new ms/step | of which block order | new, 1 of 8 processes "
             "| wait with prefetch | old ÷ new |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['blocks']:,} | {r['old'] * 1e3:.1f} ({r['old_steps']} steps) | {r['new'] * 1e3:.2f} | "
                     f"{r['order'] * 1e3:.2f} | {r['new_eighth'] * 1e3:.2f} | {r['wait'] * 1e3:.3f} | {r['old'] / r['new']:,.0f}× |")
    body = "\n".join(lines) + "\n"
    print(body)
    record_section("data-path", "Data path: seconds per step drawing rows as the corpus grows (old vs new)", body)


if __name__ == "__main__":
    main()
