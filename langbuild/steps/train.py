"""train: continued pretraining of the extended model on packed blocks of the train split.

Documents are joined with the EOS token and cut into fixed-length blocks (no padding). The block
order of every epoch is a permutation drawn from ``project.seed`` and the epoch number, so the data
seen at step N never depends on whether the run was interrupted. Every ``train.save_every`` steps a
checkpoint (weights in safetensors, optimizer state, step) is written to a temporary folder and
renamed into ``checkpoints/step-NNNNNN``; a rerun resumes from the newest one that loads, and its
losses continue exactly where the interrupted run left off.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

from ..core.atomic import atomic_write_json, atomic_write_text
from ..core.errors import LangbuildError
from ..metrics import context_length
from ..models import load_model, load_tokenizer
from ..textio import read_jsonl_texts

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"


def pack_blocks(tokenizer, texts: list[str], seq_len: int):
    """All documents as one EOS-separated stream, cut into ``seq_len`` blocks (the tail is dropped)."""
    import torch

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    usable = len(stream) // seq_len * seq_len
    if usable == 0:
        raise LangbuildError(
            f"the train split has {len(stream)} tokens, fewer than one block of train.seq_len={seq_len}: "
            "add text or lower train.seq_len"
        )
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, seq_len)


def batch_indices(step: int, batch_size: int, n_blocks: int, seed: int):
    """Block indices for optimizer step ``step``: a deterministic function of the step alone."""
    import torch

    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, n_blocks)
        order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        indices.append(int(order[offset]))
    return indices


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _make_optimizer(model, lr: float, weight_decay: float):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are missing on some builds
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.name.startswith("step-") and p.is_dir()), reverse=True)


def save_checkpoint(folder: Path, step: int, model, optimizer, keep: int) -> None:
    import torch

    final = folder / f"step-{step:06d}"
    tmp = folder / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    atomic_write_json(tmp / "state.json", {"step": step})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # the checkpoint exists only once it is complete
    for old in _checkpoints(folder)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def load_latest_checkpoint(folder: Path, model_factory, console):
    """(step, model, optimizer state) from the newest checkpoint that loads; None when there is none."""
    import torch

    for path in _checkpoints(folder):
        try:
            step = json.loads((path / "state.json").read_text())["step"]
            model = model_factory(path)
            optimizer_state = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
            return step, model, optimizer_state
        except Exception as err:  # a damaged checkpoint: fall back to the one before it
            console.print(f"  [yellow]checkpoint {path.name} is unreadable ({type(err).__name__}); trying an older one[/]")
    return None


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line torn by a kill or a full disk: the steps after the checkpoint are redone anyway
    atomic_write_text(path, "".join(line + "\n" for line in kept))


class _Reporter:
    """A rich progress bar on a terminal; a plain line every few steps in logs and CI."""

    def __init__(self, console, total: int, start: int):
        self.console, self.total = console, total
        self.progress = None
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("  train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e} {task.fields[tps]:,.0f} tok/s"),
                TextColumn("ETA"), TimeRemainingColumn(), console=console,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, loss=float("nan"), lr=0.0, tps=0.0)
            self.progress.start()

    def update(self, record: dict) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=record["step"], loss=record["loss"], lr=record["lr"],
                                 tps=record["tokens_per_s"])
        elif record["step"] % 10 == 0 or record["step"] == self.total:
            eta = (self.total - record["step"]) * record["seconds_per_step"]
            self.console.print(
                f"  step {record['step']}/{self.total} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                f"{record['tokens_per_s']:,.0f} tok/s ETA {eta:,.0f} s"
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def run(ctx) -> dict:
    import torch

    config = ctx.config
    threads = config.get("train.threads") or os.cpu_count() or 1
    torch.set_num_threads(threads)
    source = ctx.output_of("extend") / "model"
    trust = config.get("project.trust_remote_code")
    tokenizer = load_tokenizer(source, trust)
    seq_len, batch_size = config.get("train.seq_len"), config.get("train.batch_size")
    total, seed = config.get("train.max_steps"), config.get("project.seed")
    blocks = pack_blocks(tokenizer, list(read_jsonl_texts(ctx.output_of("corpus") / "train.jsonl")), seq_len)

    checkpoint_dir, metrics_path = ctx.out / CHECKPOINTS, ctx.out / METRICS
    resumed = load_latest_checkpoint(checkpoint_dir, lambda p: load_model(p, trust), ctx.console)
    if resumed:
        start, model, optimizer_state = resumed
        ctx.console.print(f"  resuming from checkpoint step {start}")
        _truncate_metrics(metrics_path, start)
    else:
        start, model, optimizer_state = 0, load_model(source, trust), None
        metrics_path.unlink(missing_ok=True)
    if seq_len > context_length(model):
        raise LangbuildError(
            f"train.seq_len={seq_len} is longer than the model's context of {context_length(model)} tokens: lower it"
        )
    model.train()
    optimizer = _make_optimizer(model, config.get("train.learning_rate"), config.get("train.weight_decay"))
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    last_loss = _train_loop(ctx, model, optimizer, blocks, start, total, seed, checkpoint_dir, metrics_path)
    model.eval()
    model.save_pretrained(ctx.out / "model")
    tokenizer.save_pretrained(ctx.out / "model")
    # Nothing about interruptions goes in here: a resumed run writes the same files as an uninterrupted one.
    summary = {"steps": total, "blocks": int(blocks.shape[0]), "tokens_per_step": seq_len * batch_size,
               "final_loss": last_loss}
    atomic_write_json(ctx.out / "summary.json", summary)
    return summary


def _train_loop(ctx, model, optimizer, blocks, start, total, seed, checkpoint_dir, metrics_path):
    import torch

    config = ctx.config
    batch_size, peak = config.get("train.batch_size"), config.get("train.learning_rate")
    warmup, clip = config.get("train.warmup_steps"), config.get("train.max_grad_norm")
    save_every, keep = config.get("train.save_every"), config.get("train.keep_checkpoints")
    reporter = _Reporter(ctx.console, total, start)
    loss_value = None
    began = time.time()
    try:
        with open(metrics_path, "a", encoding="utf-8") as log:
            for step in range(start, total):
                tick = time.time()
                # Dropout draws from the global RNG: seed it per step so reruns and resumes match.
                torch.manual_seed(seed * 1_000_003 + step)
                lr = learning_rate(step, peak, warmup, total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = blocks[batch_indices(step, batch_size, blocks.shape[0], seed)].to(model.device)
                loss = model(input_ids=batch, labels=batch).loss
                if not torch.isfinite(loss):
                    raise LangbuildError(f"training diverged at step {step + 1} (loss {loss.item()}): lower train.learning_rate")
                loss.backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(loss.detach())
                seconds = time.time() - tick
                record = {"step": step + 1, "loss": loss_value, "lr": lr, "tokens": (step + 1) * batch.numel(),
                          "tokens_per_s": batch.numel() / max(seconds, 1e-9), "seconds_per_step": seconds,
                          "elapsed": time.time() - began}
                log.write(json.dumps(record) + "\n")
                log.flush()
                reporter.update(record)
                if (step + 1) % save_every == 0 and step + 1 < total:
                    save_checkpoint(checkpoint_dir, step + 1, model, optimizer, keep)
    finally:
        reporter.close()
    return loss_value
