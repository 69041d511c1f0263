"""A training budget in a person's terms ("2h", "30m", "5M tokens", "300 steps") as optimizer steps.

The speed that turns time into steps is a stated default per device kind, scaled by the model's size
(a training step costs about 6 floating-point operations per parameter per token), not a measurement:
measuring would mean loading the model and running real steps. The select step does run real steps
(``select.timing_steps``) and prints the measured time per million tokens, so the default can be
checked on the first run. The defaults come from our demo run (SmolLM2-135M, fp32, 2 CPU cores:
~205 tokens/s, i.e. ~83 GFLOP/s a core) and, on a GPU, a conservative share of a modern GPU's bf16
rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..core.errors import LangbuildError

FLOPS_PER_PARAMETER_TOKEN = 6  # forward (2) and backward (4) passes of a dense transformer
CPU_FLOPS_PER_CORE = 83e9  # measured by the demo: SmolLM2-135M, fp32, 2 cores, ~205 tokens/s
GPU_FLOPS = 100e12  # per GPU, bf16, about a third of an A100's dense peak: a stated default
# Every step but train, on the demo (corpus, tokenizer, select, extend, eval, report: ~6 min on 2
# CPU cores); on a GPU, a stated guess. Added to the training time for the whole run.
OTHER_STEPS_SECONDS = {"cpu": 400.0, "gpu": 300.0}
# Self-synthesised replay (train.replay_text = "self") decodes its text from the base model before
# training, once per model (cached). Decoding runs far below the matmul rate (one token a forward pass,
# 2 FLOPs a parameter, in batches of 16 prompts): ~19 GFLOP/s a core where training reaches 83.
SAMPLING_FLOPS_PER_PARAMETER_TOKEN = 2
CPU_SAMPLING_FLOPS_PER_CORE = 18.6e9  # the demo, 2026-12-06: SmolLM2-135M, bf16, 2 cores, 30,720 tokens in 222 s
# On a GPU, decoding 16 prompts is bound by per-step latency, not FLOPs: a stated guess.
GPU_SAMPLING_TOKENS_PER_SECOND = 400.0
# The KL term to the base model (train.replay_kl > 0) runs the frozen model on the replay rows and a
# softmax over the whole vocabulary for both models. By FLOPs a third of training a row; measured, more:
# the demo's 200 steps trained in 1,202 s with it (12.5 % replay) against 979 s without (2026-12-06 and
# -05, README), +23 %, i.e. each replay row costs ~1.8 rows' training more. The estimate uses that.
KL_COST_PER_REPLAY_ROW = 1.8

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600,
            "d": 86400, "day": 86400}
_TIME_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
BUDGET_HELP = "a time (2h, 30m, 1h30m), a number of tokens (5M tokens, 200k tokens) or of steps (300 steps)"


@dataclass(frozen=True)
class Budget:
    kind: str  # time | tokens | steps
    amount: float  # seconds, tokens or steps

    def describe(self) -> str:
        if self.kind == "time":
            return format_duration(self.amount)
        return f"{self.amount:,.0f} {self.kind}"


def _number(text: str, setting: str) -> float:
    """'5M' -> 5e6, '1,000' -> 1000, '2.5k' -> 2500."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmbg]?)", text.replace(",", "").replace("_", "").strip().lower())
    if not match:
        raise LangbuildError(f"'{setting}' is not a budget: give {BUDGET_HELP}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _seconds(text: str) -> float | None:
    """'1h30m' / '90 min' / '2 hours' -> seconds; None when the text is not a duration."""
    compact = text.replace(" ", "")
    parts = _TIME_PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        return None
    total = 0.0
    for number, unit in parts:
        unit = unit if unit in _SECONDS else unit.removesuffix("s")  # hours, mins
        if unit not in _SECONDS:
            return None
        total += float(number) * _SECONDS[unit]
    return total


def parse_budget(text: str) -> Budget:
    """A budget as typed: a duration, '<n> tokens' or '<n> steps'; a bare number counts steps."""
    cleaned = text.strip().lower()
    for kind in ("tokens", "token", "tok", "steps", "step"):
        if cleaned.endswith(kind):
            amount = _number(cleaned[: -len(kind)], text)
            return _positive(Budget("tokens" if kind.startswith("tok") else "steps", amount), text)
    seconds = _seconds(cleaned)
    if seconds is not None:
        return _positive(Budget("time", seconds), text)
    return _positive(Budget("steps", _number(cleaned, text)), text)


def _positive(budget: Budget, text: str) -> Budget:
    if budget.amount <= 0:
        raise LangbuildError(f"'{text}' is no budget: it must be more than zero")
    return budget


@dataclass(frozen=True)
class Speed:
    tokens_per_second: float
    source: str  # how the number was come by, said to the person


def default_speed(parameters: int, gpus: int, cores: int) -> Speed:
    """Tokens per second of training a model of ``parameters``, from the stated per-device defaults."""
    per_token = FLOPS_PER_PARAMETER_TOKEN * parameters
    if gpus:
        return Speed(GPU_FLOPS * gpus / per_token, f"default for {gpus} GPU(s): {GPU_FLOPS / 1e12:.0f} TFLOP/s each, not measured")
    return Speed(CPU_FLOPS_PER_CORE * cores / per_token,
                 f"default for {cores} CPU core(s): {CPU_FLOPS_PER_CORE / 1e9:.0f} GFLOP/s each (our demo's fp32 rate), not measured")


def sampling_speed(parameters: int, gpus: int, cores: int) -> Speed:
    """Tokens per second of self-replay sampling from a model of ``parameters``, from the stated defaults."""
    if gpus:
        return Speed(GPU_SAMPLING_TOKENS_PER_SECOND, "a stated default for a GPU, not measured")
    per_token = SAMPLING_FLOPS_PER_PARAMETER_TOKEN * parameters
    return Speed(CPU_SAMPLING_FLOPS_PER_CORE * cores / per_token, f"our demo's sampling rate on {cores} CPU core(s), not measured")


@dataclass(frozen=True)
class ReplaySettings:
    """The train.replay_* settings that cost a run time (its rows cost no more than corpus rows)."""
    fraction: float
    self_sampled: bool  # train.replay_text = "self"
    kl: bool  # train.replay_kl > 0
    token_cap: int  # train.replay_tokens
    seq_len: int


@dataclass(frozen=True)
class Estimate:
    steps: int
    training_seconds: float  # with the KL pass, when there is one
    sampled_tokens: int  # 0 without self replay
    sampling_seconds: float


def kl_slowdown(replay: ReplaySettings) -> float:
    """Training time with the KL pass over training time without it."""
    if not replay.kl or replay.fraction <= 0:
        return 1.0
    return 1 + replay.fraction * KL_COST_PER_REPLAY_ROW


def estimate_run(budget: Budget, tokens_per_step: int, speed: Speed, replay: ReplaySettings, sampling: Speed) -> Estimate:
    """Steps, training time and self-replay sampling time for ``budget``. A time budget pays for all
    of it: sampling comes out of the time first, and the KL pass slows every step."""
    from .replay import self_sample_budget

    training_speed = Speed(speed.tokens_per_second / kl_slowdown(replay), speed.source)

    def sampled(steps: int) -> int:
        if not (replay.self_sampled and replay.fraction > 0):
            return 0
        return self_sample_budget(replay.token_cap, steps, tokens_per_step // replay.seq_len, replay.fraction, replay.seq_len)

    steps = steps_for_budget(budget, tokens_per_step, training_speed)
    if budget.kind == "time":  # sampling the most this run could read, so the estimate does not overrun
        spare = max(0.0, budget.amount - sampled(steps) / sampling.tokens_per_second)
        steps = steps_for_budget(Budget("time", spare), tokens_per_step, training_speed)
    tokens = sampled(steps)
    return Estimate(steps, training_seconds(steps, tokens_per_step, training_speed), tokens,
                    tokens / sampling.tokens_per_second)


def steps_for_budget(budget: Budget, tokens_per_step: int, speed: Speed) -> int:
    """Optimizer steps that spend ``budget``: at least one."""
    if budget.kind == "steps":
        return max(1, round(budget.amount))
    tokens = budget.amount if budget.kind == "tokens" else budget.amount * speed.tokens_per_second
    return max(1, math.floor(tokens / tokens_per_step))


def training_seconds(steps: int, tokens_per_step: int, speed: Speed) -> float:
    return steps * tokens_per_step / speed.tokens_per_second


def format_duration(seconds: float) -> str:
    """3725 -> '1 h 02 min'; 95 -> '1 min 35 s'."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
