"""What train.replay_kl costs per training pass: forward + backward with and without the KL term.

    python benchmarks/replay_kl_speed.py --model PROJECT/extend/model [--rows 4 --replay 1 --seq-len 256]

One process, one batch of ``rows`` blocks of which ``replay`` are replay rows, the student in bf16
(as under master weights) and the teacher a frozen bf16 copy; the two kinds of pass alternate, so a
busy shared machine slows both alike, and the best of ``repeats`` is kept for each. The optimizer
step (the same with and without) is left out, so the ratio slightly overstates the cost per step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from langbuild.models.loading import load_model
from langbuild.training.loss import enable_chunked_loss, teacher_inputs
from langbuild.training.precision import cast_parameters


def _pass(student, teacher, rows, replay: list[bool], beta: float) -> float:
    started = time.perf_counter()
    extra = {"replay_teacher": teacher_inputs(teacher, rows, replay, beta)} if beta > 0 else {}
    student(input_ids=rows, labels=rows, chunked_loss=True, **extra).loss.backward()
    student.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--replay", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    student = enable_chunked_loss(cast_parameters(load_model(args.model), "bf16").train())
    teacher = cast_parameters(load_model(args.model), "bf16").eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, student.config.vocab_size, (args.rows, args.seq_len), generator=generator)
    replay = [r < args.replay for r in range(args.rows)]
    _pass(student, teacher, rows, replay, 0.0)  # warm-up: first-call allocations
    best = {0.0: float("inf"), 1.0: float("inf")}
    for _ in range(args.repeats):
        for beta in best:
            best[beta] = min(best[beta], _pass(student, teacher, rows, replay, beta))
    print(f"forward+backward, {args.rows} x {args.seq_len} tokens, {args.replay} replay rows, {args.threads} thread(s): "
          f"CE {best[0.0]:.2f} s, CE + KL {best[1.0]:.2f} s ({best[1.0] / best[0.0] - 1:+.1%})")


if __name__ == "__main__":
    main()
