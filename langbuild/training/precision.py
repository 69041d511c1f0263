"""Numeric precision of every model pass: which one this machine should use, and bf16 training that
keeps fp32 quality.

**Choosing.** ``auto`` picks bf16 where it is faster: a CUDA GPU that supports it, or a CPU on which
a short measurement (a transformer-shaped matmul, forward and backward, in both types) shows bf16
ahead by a margin. CPUs of the same kind differ: with AMX a bf16 matmul runs ~6x faster than fp32,
with only AVX512-bf16 ~2x, without either it can be many times slower. So it is measured, never read
from a flag list. ``LANGBUILD_BF16_SPEEDUP`` replaces the measurement (tests, or a user who knows).

**Training in bf16** (``MasterWeights``): the model computes in bf16, while an fp32 master copy of
every weight and the AdamW state stay in fp32. Each micro-batch's bf16 gradients are added into fp32
master gradients, clipping and the optimizer step run on the masters, and the masters are rounded
back into the model. bf16 has an 8-bit mantissa, so an update below ~0.4 % of a weight would round
away if the weights themselves were bf16; the masters keep it. This is the mixed-precision recipe of
Micikevicius et al. 2018 ("Mixed Precision Training") with bf16 instead of fp16 (so no loss scaling),
as in Megatron-LM's and DeepSpeed's "bf16 optimizer". Frozen weights keep their fp32 values too (on
the CPU when the model is on a GPU), so a saved model is exact: rows no stage trained stay
bit-identical.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass

from ..core.errors import LangbuildError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SPEEDUP_ENV = "LANGBUILD_BF16_SPEEDUP"
# bf16 must beat fp32 by a clear margin before auto rounds every activation for it: a measured 1.1x
# can be noise, and a whole training step gains less than its matmuls do.
MIN_SPEEDUP = 1.3
# Shapes of a small transformer's MLP projection (SmolLM2-135M: 576 -> 1536), 512 tokens.
_PROBE_TOKENS, _PROBE_IN, _PROBE_OUT = 512, 576, 1536
# A CPU without bf16 units emulates it: one timed round showing bf16 this much slower settles it (an
# AVX2 EPYC measured 0.04x, ~0.9 s per bf16 pass), where six more rounds would add ~5 s to every run.
# A CPU with bf16 units would need a round slowed 5x by other work, bf16's alone, to land here.
EMULATED_SPEEDUP = 0.25
_measured: dict[int, float] = {}


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # fp32 | bf16 | fp16: what runs
    requested: str  # what the setting asked for
    reason: str  # why this one; free of measured numbers, so that files holding it are reproducible
    speedup: float | None = None  # the measured bf16 speed-up behind a CPU's auto choice

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The reason with the measurement behind it, for people."""
        return self.reason + (f" (measured {self.speedup:.2f}x, auto needs {MIN_SPEEDUP}x)" if self.speedup else "")


def _linear_pass(dtype):
    """One forward and backward pass of a transformer-shaped linear layer in ``dtype``, as a callable."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(_PROBE_TOKENS, _PROBE_IN, generator=generator).to(dtype).requires_grad_(True)
    w = torch.randn(_PROBE_OUT, _PROBE_IN, generator=generator).to(dtype).requires_grad_(True)

    def once() -> None:
        torch.nn.functional.linear(x, w).sum().backward()
        x.grad = w.grad = None

    return once


def _best_times(passes: dict, repeats: int, settled=lambda best: False) -> dict:
    """Best-of seconds of each callable in ``passes``, timed in turns after one untimed warm-up call
    each (it picks kernels and allocates): other work on the machine slows every one alike, and a busy
    machine only ever adds time. Stops early once ``settled(best)`` says more rounds cannot change the
    answer."""
    for once in passes.values():
        once()
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(repeats):
        for key, once in passes.items():
            tick = time.perf_counter()
            once()
            best[key] = min(best[key], time.perf_counter() - tick)
        if settled(best):
            break
    return best


def _measure_speedup(repeats: int = 7) -> float:
    """fp32 seconds / bf16 seconds of the same linear pass."""
    import torch

    fp32, bf16 = torch.float32, torch.bfloat16

    def emulated(best: dict) -> bool:
        return best[fp32] / best[bf16] < EMULATED_SPEEDUP

    best = _best_times({dtype: _linear_pass(dtype) for dtype in (fp32, bf16)}, repeats, settled=emulated)
    return best[fp32] / best[bf16]


def bf16_speedup() -> float:
    """fp32 seconds / bf16 seconds of a transformer-shaped matmul on this CPU, with torch's current
    thread count; measured once per process (~0.4 s on 2 cores; ~3 s where bf16 is emulated)."""
    import torch

    forced = os.environ.get(SPEEDUP_ENV)
    if forced:
        try:
            return float(forced)
        except ValueError:
            raise LangbuildError(f"{SPEEDUP_ENV}={forced!r} must be a number (fp32 time / bf16 time), e.g. 2.0") from None
    threads = torch.get_num_threads()
    if threads not in _measured:
        _measured[threads] = _measure_speedup()
    return _measured[threads]


def resolve_precision(requested: str, setting: str = "train.precision") -> PrecisionChoice:
    """What ``requested`` (auto, fp32, bf16, fp16) means on this machine; fp16 needs a GPU."""
    import torch

    gpu = torch.cuda.is_available()
    if requested not in PRECISIONS:
        raise LangbuildError(f"{setting} = {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested == "fp16" and not gpu:
        raise LangbuildError(f"{setting} = fp16 needs a GPU: use fp32 or bf16 on the CPU")
    if requested == "bf16" and gpu and not torch.cuda.is_bf16_supported():
        raise LangbuildError(f"{setting} = bf16: this GPU has no bf16 support: use fp16 or fp32")
    if requested != "auto":
        return PrecisionChoice(requested, requested, "set by " + setting)
    if gpu:
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "auto", "auto: the GPU supports bf16")
        return PrecisionChoice("fp32", "auto", "auto: the GPU has no bf16")
    speedup = bf16_speedup()
    if speedup >= MIN_SPEEDUP:
        return PrecisionChoice("bf16", "auto", "auto: bf16 measured faster than fp32 on this CPU", speedup)
    return PrecisionChoice("fp32", "auto", "auto: bf16 measured not fast enough on this CPU", speedup)


# On resuming, auto keeps the precision the checkpoint was trained in while this CPU's measurement sits
# in a band around MIN_SPEEDUP: a loaded machine moves the measurement by tens of percent between
# runs, and a run that flips precision halfway no longer repeats its own losses. Outside the band the
# machine is a different kind (bf16 slower than fp32; or AMX-fast), and the fresh choice wins.
KEEP_BAND = (1.0, 2.0)


def resumed_choice(choice: PrecisionChoice, previous: str | None) -> PrecisionChoice:
    """``choice`` for a run resuming from a checkpoint trained in ``previous`` (None: a fresh run).

    A forced precision always wins; auto keeps ``previous`` unless this machine plainly calls for the
    other one (a GPU's choice is not a measurement, so a GPU's auto choice always stands)."""
    if choice.requested != "auto" or previous in (None, choice.name) or choice.speedup is None:
        return choice
    low, high = KEEP_BAND
    if previous == "bf16" and choice.speedup >= low or previous == "fp32" and choice.speedup < high:
        return PrecisionChoice(previous, "auto", "auto: kept from the checkpoint this run resumes", choice.speedup)
    return choice


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class MasterWeights:
    """bf16 compute over fp32 master weights (see the module docstring).

    Built on a model whose parameters are fp32, with the optimizer groups and gradient row masks a
    stage set up for it: ``groups`` and ``row_masks`` are the same, but over the masters, which is what
    the optimizer must see. The model's parameters become bf16 (buffers such as rotary frequencies stay
    fp32). Per step: ``collect_gradients()`` after every backward pass, then masks, clipping and the
    optimizer on the masters, then ``publish()``.
    """

    def __init__(self, model, groups: list[dict], row_masks: list[tuple]):
        import torch

        self.model = model
        trainable_ids = {id(p) for group in groups for p in group["params"]}
        self.trainable: list[tuple[object, object]] = []  # (model parameter, fp32 master)
        self.frozen: list[tuple[object, object]] = []
        master_of = {}
        for param in model.parameters():  # each once: a tied embedding and head are one parameter
            master = param.detach()
            if master.dtype != torch.float32:
                master = master.float()
            if id(param) in trainable_ids:
                self.trainable.append((param, master))
                master_of[id(param)] = master
            else:
                # Only read again when the model is saved: off the GPU, where memory is scarce.
                self.frozen.append((param, master if master.device.type == "cpu" else master.cpu()))
            param.data = master.to(device=param.device, dtype=torch.bfloat16)
        self.groups = [{**group, "params": [master_of[id(p)] for p in group["params"]]} for group in groups]
        self.row_masks = [(master_of[id(param)], keep.float()) for param, keep in row_masks]

    @property
    def masters(self) -> list:
        return [master for _, master in self.trainable]

    def collect_gradients(self) -> None:
        """Add the model's bf16 gradients into the fp32 master gradients (accumulation in fp32)."""
        for param, master in self.trainable:
            if param.grad is None:
                continue
            if master.grad is None:
                master.grad = param.grad.float()
            else:
                master.grad.add_(param.grad)
            param.grad = None

    def reduce_gradients(self) -> None:
        """Average the master gradients over processes, in fp32 (several processes only)."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        grads = [m.grad if m.grad is not None else torch.zeros_like(m) for m in self.masters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for master, grad in zip(self.masters, grads):
            master.grad = flat[offset:offset + grad.numel()].view_as(grad).clone()
            offset += grad.numel()

    def publish(self) -> None:
        """Round the updated masters into the model's bf16 weights."""
        import torch

        with torch.no_grad():
            for param, master in self.trainable:
                param.data.copy_(master)

    def _swap_in_masters(self) -> list:
        held = []
        for param, master in self.trainable + self.frozen:
            held.append(param.data)
            param.data = master.to(param.device)
        return held

    @contextlib.contextmanager
    def fp32_weights(self):
        """The model with its exact fp32 weights for the duration (to save a checkpoint)."""
        held = self._swap_in_masters()
        try:
            yield self.model
        finally:
            for (param, _), data in zip(self.trainable + self.frozen, held):
                param.data = data

    def release(self):
        """The model back in fp32 with the masters' values, for good (end of a stage); returns it."""
        self._swap_in_masters()
        for _, master in self.trainable:
            master.grad = None
        self.trainable, self.frozen = [], []
        return self.model



def cast_parameters(model, precision: str):
    """``model`` with its parameters in ``precision`` for inference; buffers (rotary frequencies, scales)
    stay fp32, as in training. Returns the model."""

    dtype = torch_dtype(precision)
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
    return model
