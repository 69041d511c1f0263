"""The training loop, the same code for one process and for several under ``accelerate launch``.

Per optimizer step: the step's global batch is drawn (a function of the step and the seed), each
process takes its slice, runs ``accumulation`` forward/backward passes on it (gradients synchronised
only on the last), then the stage's gradient masks, clipping and one AdamW step. Dropout is seeded
per step, so an interrupted run resumed from a checkpoint repeats the losses of an uninterrupted one.

In bf16 (``plan.precision``) the model computes in bf16 over fp32 master weights and optimizer state
(``precision.MasterWeights``): gradients are accumulated and averaged over processes in fp32, and
checkpoints hold the fp32 masters, so a resumed bf16 run repeats the uninterrupted one exactly.

With ``train.launcher = "fsdp"`` the model, gradients and optimizer state are sharded over the
processes (``sharding``, torch's FSDP2; its own fp32 masters in bf16); checkpoints are consolidated,
so they look like a one-process run's.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..models.loading import load_model, load_tokenizer
from .allocator import return_freed_memory
from .checkpoints import load_latest_checkpoint, load_weights, save_checkpoint, truncate_metrics
from .data import RowPrefetcher, TokenBlocks, process_rows, replay_rows
from .loss import enable_chunked_loss, teacher_inputs
from .memory import held_out_batch, is_out_of_memory, out_of_memory_as, out_of_memory_error  # noqa: F401 (re-exported)
from .plan import Stage, TrainPlan
from .precision import MasterWeights, cast_parameters
from .schedule import learning_rate
from .sharding import (
    close_private_group,
    ensure_process_group,
    full_optimizer_state,
    full_weights,
    load_full_optimizer_state,
    shard,
    unsharded_copy,
)
from .stages import mask_gradients, merged, setup_stage, transformer_blocks

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"


def make_optimizer(groups: list[dict], fused: bool = True):
    import torch

    if not fused:  # sharded (DTensor) parameters: the fused CPU kernel does not take them
        return torch.optim.AdamW(groups, lr=groups[0]["peak"])
    try:
        return torch.optim.AdamW(groups, lr=groups[0]["peak"], fused=True)
    except (RuntimeError, TypeError):  # fused kernels are missing on some builds
        return torch.optim.AdamW(groups, lr=groups[0]["peak"])


@dataclass
class EarlyStopping:
    patience: int
    best: float = math.inf
    since_best: int = 0
    history: list[dict] = field(default_factory=list)

    def update(self, step: int, bpb: float) -> bool:
        """Record a held-out score; True when training should stop."""
        self.history.append({"step": step, "bits_per_byte": bpb})
        if bpb < self.best:
            self.best, self.since_best = bpb, 0
        else:
            self.since_best += 1
        return self.patience > 0 and self.since_best >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "since_best": self.since_best, "history": self.history}


class Reporter:
    """A rich progress bar on a terminal; a plain line every few steps in logs and CI."""

    def __init__(self, console, total: int, start: int):
        self.console, self.total = console, total
        self.progress = None
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("  train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[stage]} loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e} "
                           "{task.fields[tps]:,.0f} tok/s"),
                TextColumn("ETA"), TimeRemainingColumn(), console=console,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, loss=float("nan"), lr=0.0,
                                               tps=0.0, stage="")
            self.progress.start()

    def update(self, record: dict) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=record["step"], loss=record["loss"], lr=record["lr"],
                                 tps=record["tokens_per_s"], stage=record["stage"])
        elif record["step"] % 10 == 0 or record["step"] == self.total or "valid_bits_per_byte" in record:
            eta = (self.total - record["step"]) * record["seconds_per_step"]
            valid = f" valid {record['valid_bits_per_byte']:.4f} bpb" if "valid_bits_per_byte" in record else ""
            self.console.print(
                f"  step {record['step']}/{self.total} {record['stage']} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                f"{record['tokens_per_s']:,.0f} tok/s ETA {eta:,.0f} s{valid}"
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class _TensorBoard:
    def __init__(self, folder: Path | None):
        self.writer = None
        if folder is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LangbuildError("train.tensorboard = true needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(folder))

    def log(self, record: dict) -> None:
        if self.writer is None:
            return
        for key in ("loss", "lr", "tokens_per_s", "valid_bits_per_byte"):
            if key in record:
                self.writer.add_scalar(f"train/{key}", record[key], record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_accelerator(plan: TrainPlan):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # bf16 runs through MasterWeights, not autocast (which keeps fp32 weights and gets a third of the
    # speed on a CPU), or under FSDP through its mixed-precision policy, itself an fp32-master scheme
    # over sharded parameters; fp16 (GPUs) keeps accelerate's autocast and loss scaling.
    mixed = "fp16" if plan.precision == "fp16" else "no"
    if plan.num_processes == 1:
        # accelerate keeps one global state per process; a second run here (tests, benchmarks) may
        # ask for another precision, which it refuses unless the old state is dropped.
        AcceleratorState._reset_state(True)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed)


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's thread count set to ``count`` for a block, then put back. Why: a step that trains in the
    calling process must not leave the steps after it (eval, in the same process) on its count; where
    that process was meant to use fewer threads (a test worker, a machine shared on purpose), the extra
    threads contend for its cores and eval ran up to 4x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def uses_master_weights(plan: TrainPlan) -> bool:
    return plan.precision == "bf16" and not uses_fsdp(plan)


def uses_fsdp(plan: TrainPlan) -> bool:
    return plan.launcher == "fsdp"


class Trainer:
    """One training run of a plan; ``run()`` returns the summary written to ``summary.json``."""

    def __init__(self, plan: TrainPlan, console, accelerator=None):
        import torch

        self.plan, self.console = plan, console
        torch.set_num_threads(max(1, plan.threads))
        return_freed_memory()  # on the CPU, ~1 GB less resident memory for a 270M model (allocator.py)
        self.accelerator = accelerator or make_accelerator(plan)
        self.main = self.accelerator.is_main_process
        self.fsdp = uses_fsdp(plan)
        self.private_group = self.fsdp and ensure_process_group(self.accelerator.device)
        self.out = Path(plan.out)
        self.checkpoint_dir, self.metrics_path = self.out / CHECKPOINTS, self.out / METRICS
        self.out.mkdir(parents=True, exist_ok=True)  # metrics.jsonl is opened in it before any checkpoint exists
        self.tokenizer = load_tokenizer(Path(plan.source), plan.trust_remote_code)
        self.target = TokenBlocks(Path(plan.train_tokens), plan.train_token_count, plan.seq_len, "the train split")
        self.replay = None
        if plan.replay_fraction > 0:
            self.replay = TokenBlocks(Path(plan.replay_tokens), plan.replay_token_count, plan.seq_len, "train.replay_text")
        self.early = EarlyStopping(plan.early_stopping)
        self.masters: MasterWeights | None = None  # the running stage's fp32 masters, in bf16 runs
        self.rows: RowPrefetcher | None = None  # this process's rows of the coming steps, read ahead in run()
        self.teacher = None  # the frozen source model of train.replay_kl's KL term, loaded in run()

    # -- model construction -------------------------------------------------------------------
    def _base_model(self):
        model = load_model(Path(self.plan.source), self.plan.trust_remote_code)
        if self.fsdp:  # fully_shard moves one unit at a time to the device: the whole model never lands there
            return model
        with out_of_memory_as(self.plan, "load"):
            return model.to(self.accelerator.device)

    def _teacher_model(self):
        """The model training starts from, frozen and in eval mode, with the weights the student computes
        with (bf16 under master weights; fp16 comes from autocast, as for the student). The source model
        never changes, so a resumed run has the same teacher as an uninterrupted one."""
        model = self._base_model().eval().requires_grad_(False)
        return cast_parameters(model, "bf16") if uses_master_weights(self.plan) else model

    def _stage_model(self, stage: Stage):
        """The source model with the structure ``stage`` trains: LoRA-wrapped in the lora stage."""
        model = self._base_model()
        if stage.name == "lora":
            model = setup_stage(model, "lora", self.plan, self._stage_seed(stage)).model
        return model

    def _restore(self, path: Path, state: dict):
        """The model as it was at a checkpoint: the source model, wrapped like the stage that saved it."""
        model = self._stage_model(self.plan.stage_at(state["step"] - 1))
        load_weights(model, path)
        return model

    def _stage_seed(self, stage: Stage) -> int:
        return self.plan.seed * 1_000_003 + stage.first

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> dict:
        plan = self.plan
        with out_of_memory_as(plan, "load"):
            start, model, optimizer_state = self._start()
            if plan.replay_kl > 0 and self.replay is not None:
                self.teacher = self._teacher_model()
        tensorboard = _TensorBoard(self.out / "tensorboard" if plan.tensorboard and self.main else None)
        reporter = Reporter(self.console if self.main else _quiet_console(), plan.total_steps, start)
        step, stopped_early, last_loss = start, False, None
        self.rows = RowPrefetcher(self._my_rows, start, plan.total_steps)
        try:
            while step < plan.total_steps and not stopped_early:
                stage = plan.stage_at(step)
                resume_state = optimizer_state if step == start and start > 0 and plan.stage_at(start - 1) == stage else None
                # The places inside name their own fixes; what they miss (stage setup, a stage's end) still ends in one line.
                with out_of_memory_as(plan, "passes"):
                    model, step, stopped_early, last_loss = self._run_stage(model, stage, step, resume_state, reporter,
                                                                            tensorboard, last_loss)
            return self._finish(model, step, stopped_early, last_loss)
        finally:
            self.rows.close()
            reporter.close()
            tensorboard.close()
            if self.private_group:  # a one-process FSDP run made its own group: later runs here start clean
                close_private_group()

    def _start(self):
        resumed = load_latest_checkpoint(self.checkpoint_dir, self._restore, self.console if self.main else _quiet_console())
        if resumed:
            state, model, optimizer_state = resumed
            start = int(state["step"])
            early = state.get("early_stopping") or {}
            self.early = EarlyStopping(self.plan.early_stopping, early.get("best", math.inf), early.get("since_best", 0),
                                       early.get("history", []))
            if self.main:
                self.console.print(f"  resuming from checkpoint step {start}")
                truncate_metrics(self.metrics_path, start)
            return start, model, optimizer_state
        if self.main:
            self.metrics_path.unlink(missing_ok=True)
        return 0, self._base_model(), None

    def _run_stage(self, model, stage: Stage, step: int, optimizer_state, reporter, tensorboard, last_loss):
        plan, accelerator = self.plan, self.accelerator
        setup = setup_stage(accelerator.unwrap_model(model), stage.name, plan, self._stage_seed(stage))
        # The loss runs inside the model's own forward (chunked_loss=True below), so inside DDP's and FSDP's.
        enable_chunked_loss(setup.model)
        if self.fsdp:
            setup = shard(setup, plan.precision, accelerator.device, transformer_blocks(setup.model))
        self.masters = MasterWeights(setup.model, setup.groups, setup.row_masks) if uses_master_weights(plan) else None
        groups = self.masters.groups if self.masters else setup.groups
        optimizer = make_optimizer(groups, fused=not self.fsdp)
        if optimizer_state is not None and self.fsdp:
            load_full_optimizer_state(optimizer, optimizer_state)  # consolidated, cut into this process's shards
        elif optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        accelerator.free_memory()
        trained = setup.model  # FSDP sharded it above; accelerate wraps the DDP and one-process runs
        if not self.fsdp:
            trained, optimizer = accelerator.prepare(setup.model, optimizer)
        trained.train()
        params = [p for group in groups for p in group["params"]]
        warmup = min(plan.warmup_steps, stage.steps // 2)
        began = time.time()
        stopped = False
        with open(self.metrics_path, "a", encoding="utf-8") if self.main else contextlib.nullcontext() as log:
            while step < stage.stop and not stopped:
                tick = time.time()
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step - stage.first, group["peak"], warmup, stage.steps, plan.schedule,
                                                plan.decay_fraction)
                # The passes inside name their own fix; memory that runs out after them is the optimizer's
                # (AdamW's state appears at the first step).
                with out_of_memory_as(plan, "optimizer", step + 1):
                    loss = self._optimizer_step(trained, optimizer, setup, params, step)
                last_loss = loss
                seconds = time.time() - tick
                step += 1
                record = {"step": step, "stage": stage.name, "loss": loss, "lr": optimizer.param_groups[-1]["lr"],
                          "tokens": step * plan.tokens_per_step, "tokens_per_s": plan.tokens_per_step / max(seconds, 1e-9),
                          "seconds_per_step": seconds, "elapsed": time.time() - began}
                if plan.eval_every and (step % plan.eval_every == 0 or step == plan.total_steps):
                    with out_of_memory_as(plan, "held-out", step):
                        bpb = self._held_out_bits_per_byte(trained)
                    record["valid_bits_per_byte"] = bpb
                    stopped = self.early.update(step, bpb)
                    trained.train()
                if self.main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    tensorboard.log(record)
                reporter.update(record)
                if (step % plan.save_every == 0 or stage.stop == step) and step < plan.total_steps and not stopped:
                    self._save(trained, optimizer, step)
        if stopped and self.main:
            self.console.print(f"  early stopping at step {step}: held-out bits per byte did not improve in "
                               f"{plan.early_stopping} evaluations")
        if self.masters is not None:
            self.masters.release()  # the next stage (or the saved model) starts from the exact fp32 weights
            self.masters = None
        if self.fsdp:  # the next stage freezes, wraps and shards differently: it starts from a plain model
            trained = unsharded_copy(trained, lambda: self._stage_model(stage))
        return trained, step, stopped, last_loss

    def _optimizer_step(self, model, optimizer, setup, params, step: int) -> float:
        import torch

        plan, accelerator = self.plan, self.accelerator
        # Dropout draws from the global RNG: seed it per step so reruns and resumes match.
        torch.manual_seed(plan.seed * 1_000_003 + step)
        mine = self.rows.get(step) if self.rows else self._my_rows(step)
        replay = self._my_replay_rows(step)
        masters = self.masters
        total = torch.zeros((), device=accelerator.device)
        with out_of_memory_as(plan, "passes"):
            for micro in range(plan.accumulation):
                part = slice(micro * plan.batch_size, (micro + 1) * plan.batch_size)
                rows = mine[part].to(accelerator.device)
                # With master weights the fp32 gradients are averaged after the last pass, never by DDP.
                sync = micro == plan.accumulation - 1 and masters is None
                with self._gradient_sync(model, sync), accelerator.autocast():
                    loss = model(input_ids=rows, labels=rows, chunked_loss=True,
                                 **self._teacher_kwargs(rows, replay[part])).loss / plan.accumulation
                    accelerator.backward(loss)
                if masters is not None:
                    masters.collect_gradients()
                total += loss.detach().float()
        if accelerator.num_processes > 1:
            total = accelerator.reduce(total, "mean")
        value = float(total)
        if not math.isfinite(value):
            raise LangbuildError(f"training diverged at step {step + 1} (loss {value}): lower train.learning_rate")
        if masters is None:
            mask_gradients(setup.row_masks)
            if plan.max_grad_norm > 0 and self.fsdp:  # the norm of sharded gradients is global (DTensor)
                torch.nn.utils.clip_grad_norm_(params, plan.max_grad_norm)
            elif plan.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, plan.max_grad_norm)
            optimizer.step()
        else:
            masters.reduce_gradients()
            mask_gradients(masters.row_masks)
            if plan.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(masters.masters, plan.max_grad_norm)
            optimizer.step()
            masters.publish()
        optimizer.zero_grad(set_to_none=True)
        return value

    def _my_replay_rows(self, step: int) -> list[bool]:
        """Which of this process's rows of step ``step`` are replay (``process_rows``' draw, sliced alike)."""
        plan = self.plan
        if self.teacher is None:
            return [False] * (plan.global_batch // plan.num_processes)
        drawn = replay_rows(step, plan.global_batch, plan.replay_fraction, plan.seed)
        per_process = plan.global_batch // plan.num_processes
        first = self.accelerator.process_index * per_process
        return drawn[first:first + per_process]

    def _teacher_kwargs(self, rows, replay: list[bool]) -> dict:
        """The forward's ``replay_teacher`` argument for a pass with replay rows and a KL term, else none: with
        ``train.replay_kl = 0`` the forward is called exactly as before."""
        if self.teacher is None or not any(replay):
            return {}
        return {"replay_teacher": teacher_inputs(self.teacher, rows, replay, self.plan.replay_kl)}

    def _gradient_sync(self, model, sync: bool):
        """Skip averaging gradients on all but the last pass of an accumulated step."""
        if self.fsdp:
            model.set_requires_gradient_sync(sync)  # unsharded gradients add up until the last pass
            return contextlib.nullcontext()
        return contextlib.nullcontext() if sync else self.accelerator.no_sync(model)

    def _my_rows(self, step: int):
        """This process's (batch_size * accumulation, seq_len) slice of step ``step``'s global batch."""
        plan = self.plan
        return process_rows(step, plan.global_batch, self.target, self.replay, plan.replay_fraction, plan.seed,
                            self.accelerator.process_index, self.accelerator.num_processes)

    def _held_out_bits_per_byte(self, model) -> float:
        from ..models.scoring import bits_per_byte

        unwrapped = self.accelerator.unwrap_model(model)
        return bits_per_byte(unwrapped, self.tokenizer, self.plan.valid_texts, window=self.plan.seq_len,
                             batch_size=held_out_batch(self.plan))["bits_per_byte"]

    def _checkpoint_state(self) -> dict:
        """What a checkpoint records beside weights and optimizer: early stopping's progress, and the
        precision it was trained in (an auto run resuming keeps it, ``precision.resumed_choice``)."""
        return {"early_stopping": self.early.state(), "precision": self.plan.precision}

    def _save(self, model, optimizer, step: int) -> None:
        if self.fsdp:
            # Every process takes part in gathering each tensor; the main process alone keeps and writes them.
            with out_of_memory_as(self.plan, "save", step):
                weights, state = full_weights(model, self.main), full_optimizer_state(optimizer, self.main)
                if self.main:
                    save_checkpoint(self.checkpoint_dir, step, weights, state, self.plan.keep_checkpoints,
                                    self._checkpoint_state())
        elif self.main:
            # A checkpoint holds the exact fp32 weights whatever the compute precision: resuming
            # rounds them to bf16 again, which is what the uninterrupted run computes with.
            with out_of_memory_as(self.plan, "save", step), \
                    self.masters.fp32_weights() if self.masters else contextlib.nullcontext():
                save_checkpoint(self.checkpoint_dir, step, self.accelerator.unwrap_model(model), optimizer,
                                self.plan.keep_checkpoints, self._checkpoint_state())
        self.accelerator.wait_for_everyone()

    def _finish(self, model, step: int, stopped_early: bool, last_loss) -> dict:
        plan = self.plan
        with out_of_memory_as(plan, "finish"):
            model = merged(self.accelerator.unwrap_model(model))
        model.eval()
        summary = {"steps": step, "planned_steps": plan.total_steps, "stopped_early": stopped_early,
                   "stages": [{"name": s.name, "steps": s.steps} for s in plan.stages],
                   "blocks": len(self.target), "tokens_per_step": plan.tokens_per_step, "tokens": step * plan.tokens_per_step,
                   "processes": plan.num_processes, "final_loss": last_loss,
                   "precision": plan.precision_choice or {"name": plan.precision}}
        if self.early.history:
            summary["held_out"] = self.early.history
        if self.main:
            if plan.gradient_checkpointing:
                model.gradient_checkpointing_disable()
            with out_of_memory_as(plan, "finish"):
                model.save_pretrained(self.out / "model")
            self.tokenizer.save_pretrained(self.out / "model")
            # Nothing about interruptions goes in here: a resumed run writes the same files as an uninterrupted one.
            atomic_write_json(self.out / "summary.json", summary)
        self.accelerator.wait_for_everyone()
        return summary


def _quiet_console():
    from rich.console import Console

    return Console(quiet=True)
