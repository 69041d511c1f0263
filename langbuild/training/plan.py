"""The training plan: every setting the loop needs, checked, resolved into numbers, serialisable.

A plan is built once from the project (``from_project``) and handed to the loop, in this process or,
as JSON, to each process ``accelerate launch`` starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.config import stage_list_problem
from ..core.errors import LangbuildError

STAGES = ("embeddings", "full", "lora")


@dataclass(frozen=True)
class Stage:
    name: str  # embeddings | full | lora
    first: int  # first optimizer step (0-based) of the stage
    steps: int

    @property
    def stop(self) -> int:
        return self.first + self.steps


@dataclass
class TrainPlan:
    source: str  # the extended model folder
    train_tokens: str  # int32 token stream of the train split (written by the parent process)
    train_token_count: int
    out: str
    seq_len: int
    batch_size: int  # blocks per forward pass, per process
    accumulation: int  # forward passes per optimizer step, per process
    num_processes: int
    total_steps: int
    stages: list[Stage]
    learning_rate: float
    embedding_learning_rate: float
    warmup_steps: int
    schedule: str
    decay_fraction: float
    weight_decay: float
    max_grad_norm: float
    precision: str  # fp32 | bf16 | fp16 (auto resolved)
    gradient_checkpointing: bool
    new_rows: list[int]  # embedding rows the extension added: all the embeddings stage trains
    lora_rank: int
    lora_alpha: int
    unfreeze_layers: int
    seed: int
    threads: int
    save_every: int
    keep_checkpoints: int
    eval_every: int
    early_stopping: int
    valid_texts: list[str] = field(default_factory=list)
    replay_tokens: str = ""
    replay_token_count: int = 0
    replay_fraction: float = 0.0
    replay_kl: float = 0.0  # beta of the KL to the source model on replay rows (loss.py)
    tensorboard: bool = False
    trust_remote_code: bool = False
    launcher: str = "ddp"  # ddp | fsdp (several processes)
    precision_choice: dict = field(default_factory=dict)  # PrecisionChoice.as_dict(): what was asked, why, speed-up

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.accumulation * self.num_processes

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len

    def stage_at(self, step: int) -> Stage:
        for stage in self.stages:
            if step < stage.stop:
                return stage
        return self.stages[-1]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainPlan:
        data = json.loads(text)
        data["stages"] = [Stage(**s) for s in data["stages"]]
        return cls(**data)


def check_stage_list(names: list[str]) -> None:
    """A stage list must train something, at most one of full/lora, the embeddings stage first."""
    problem = stage_list_problem(names)
    if problem:
        raise LangbuildError(problem)


def stage_plan(names: list[str], total: int, embedding_steps: int) -> list[Stage]:
    """Steps per stage: the embeddings stage takes ``embedding_steps`` (all of them when alone), the
    next stage the rest of the budget."""
    check_stage_list(names)
    if names == ["embeddings"]:
        return [Stage("embeddings", 0, total)]
    stages, first = [], 0
    for name in names:
        steps = min(embedding_steps, total) if name == "embeddings" else total - first
        if steps <= 0 and name == "embeddings":
            continue  # a warm-up of 0 steps is simply skipped
        stages.append(Stage(name, first, steps))
        first += steps
    if sum(s.steps for s in stages if s.name != "embeddings") == 0 and len(names) > 1 and total > 0:
        raise LangbuildError(f"train.embedding_steps={embedding_steps} uses the whole budget of {total} steps, so "
                             f"{names[-1]} never runs: lower train.embedding_steps or raise the budget")
    return stages


def total_steps(max_steps: int, token_budget: int, tokens_per_step: int) -> int:
    """``train.tokens`` (when set) wins over ``train.max_steps``: whole steps, rounded up."""
    return math.ceil(token_budget / tokens_per_step) if token_budget > 0 else max_steps


def accumulation_steps(tokens_per_step: int, seq_len: int, batch_size: int, processes: int) -> int:
    """Forward passes per optimizer step so that each step sees ``tokens_per_step`` tokens."""
    if tokens_per_step <= 0:
        return 1
    per_pass = seq_len * batch_size * processes
    if tokens_per_step % per_pass:
        raise LangbuildError(
            f"train.tokens_per_step={tokens_per_step} is not a multiple of seq_len x batch_size x processes = "
            f"{seq_len} x {batch_size} x {processes} = {per_pass}: set it to {max(1, round(tokens_per_step / per_pass)) * per_pass}"
        )
    return tokens_per_step // per_pass


def new_rows_of(extend_dir: Path) -> list[int]:
    """Ids of the rows the extension added (``extend/new_tokens.json``)."""
    path = extend_dir / "new_tokens.json"
    if not path.is_file():
        return []
    return sorted(int(t["id"]) for t in json.loads(path.read_text(encoding="utf-8")))
