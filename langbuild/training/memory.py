"""What to lower when training runs out of memory, said for the place where it ran out.

Each place needs a different fix: the passes' activations shrink with the batch, AdamW's state
(allocated at the first optimizer step) only with fewer trained weights, and a checkpoint is written
through this machine's RAM, not the GPU's. ``with out_of_memory_as(plan, "where", step):`` around
each place turns the out-of-memory error into one LangbuildError line naming the settings.
"""

from __future__ import annotations

from ..core.errors import LangbuildError, is_out_of_memory, out_of_memory_becomes  # noqa: F401 (is_out_of_memory: re-exported)
from .plan import TrainPlan

HELD_OUT_BATCH = 8  # windows the held-out check scores at once, at most (never more than train.batch_size)

_FEWER_WEIGHTS = 'train fewer weights (train.stages = ["embeddings", "lora"])'
_SHARD = 'or shard them over GPUs (train.launcher = "fsdp", train.num_processes > 1)'


def out_of_memory_error(plan: TrainPlan) -> LangbuildError:
    return LangbuildError(
        f"out of memory training {plan.batch_size} x {plan.seq_len} tokens per pass: lower train.batch_size "
        "(train.tokens_per_step keeps the tokens per step by accumulating), or set train.gradient_checkpointing = true"
    )


def held_out_batch(plan: TrainPlan) -> int:
    """Windows scored at once by the held-out check: lowering train.batch_size lowers its memory too."""
    return max(1, min(HELD_OUT_BATCH, plan.batch_size))


def out_of_memory_message(plan: TrainPlan, where: str, step: int | None = None) -> str:
    at = f" at step {step}" if step is not None else ""
    if where == "load":
        return (f"out of memory loading the model onto the device: it does not fit; choose a smaller model "
                f"(select.candidates) {_SHARD}")
    if where == "optimizer":
        return (f"out of memory in the optimizer step{at} (AdamW keeps 2 fp32 numbers per trained weight, "
                f"allocated at the first step): {_FEWER_WEIGHTS} {_SHARD}")
    if where == "held-out":
        return (f"out of memory in the held-out check{at} ({held_out_batch(plan)} windows of {plan.seq_len} tokens "
                "at a time): lower train.batch_size or train.seq_len, or set train.eval_every = 0 to skip the checks")
    if where == "save":
        return (f"out of memory writing the checkpoint{at} (it is copied into this machine's RAM): free RAM or "
                f"{_FEWER_WEIGHTS}; the earlier checkpoints are intact and a rerun resumes from the newest")
    if where == "finish":
        return ("out of memory writing the trained model (it is copied into this machine's RAM): free RAM; "
                "the last checkpoint is intact and a rerun resumes from it")
    return str(out_of_memory_error(plan))  # "passes", and anything not named: the batch is the usual cause


def out_of_memory_as(plan: TrainPlan, where: str, step: int | None = None):
    """A context manager: an out-of-memory error inside becomes the one-line message for ``where``."""
    return out_of_memory_becomes(out_of_memory_message(plan, where, step))
