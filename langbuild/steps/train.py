"""train: continued pretraining of the extended model, in stages, resumable, on one or a few devices.

The train split is tokenised once into ``checkpoints/data`` (a memory-mapped token stream, so a corpus
larger than memory trains too) and cut into EOS-separated blocks. The stages of ``train.stages`` run
in order (``langbuild.training.stages``); the block order is a function of the step, checkpoints are
written atomically every ``train.save_every`` steps, and a rerun resumes from the newest one that
loads, repeating the losses an uninterrupted run would have had. With ``train.num_processes`` > 1 the
same loop runs under ``accelerate launch``, with DDP or (``train.launcher = "fsdp"``) sharded.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from ..core.config import check_rule
from ..core.errors import LangbuildError
from ..corpus.shards import read_split
from ..models.loading import load_tokenizer
from ..models.scoring import context_length
from ..text.textio import sample_by_bytes
from ..training.checkpoints import checkpoint_precision
from ..training.data import tokenise_to_file
from ..training.launch import check_launcher, check_processes, launch
from ..training.loop import CHECKPOINTS, Trainer, torch_threads
from ..training.plan import TrainPlan, accumulation_steps, new_rows_of, stage_plan, total_steps
from ..training.precision import PrecisionChoice, resolve_precision, resumed_choice
from ..training.replay import self_sample_budget


def _check_context(source: Path, seq_len: int, trust: bool) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, trust_remote_code=trust)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    context = context_length(SimpleNamespace(config=text_config))
    if seq_len > context:
        raise LangbuildError(f"train.seq_len={seq_len} is longer than the model's context of {context} tokens: lower it")


def _checked_rates(config) -> tuple[float, float]:
    rate = config.get("train.learning_rate")
    embedding_rate = config.get("train.embedding_learning_rate") or rate
    if rate <= 0:
        raise LangbuildError(f"train.learning_rate={rate} must be greater than 0 (e.g. 3e-4)")
    return rate, embedding_rate


def build_plan(ctx) -> TrainPlan:
    """Check every training setting and resolve it into a plan; tokenise the data it needs."""
    config = ctx.config
    processes, launcher = config.get("train.num_processes"), config.get("train.launcher")
    check_processes(processes)
    seq_len, batch_size = config.get("train.seq_len"), config.get("train.batch_size")
    accumulation = accumulation_steps(config.get("train.tokens_per_step"), seq_len, batch_size, processes)
    per_step = seq_len * batch_size * accumulation * processes
    steps = total_steps(config.get("train.max_steps"), config.get("train.tokens"), per_step)
    new_rows = new_rows_of(ctx.output_of("extend"))
    stages = stage_plan(_stage_names(ctx, new_rows), steps, config.get("train.embedding_steps"))
    rate, embedding_rate = _checked_rates(config)
    check_rule(config, "train.early_stopping")
    check_rule(config, "train.replay_kl")
    source = ctx.output_of("extend") / "model"
    trust = config.get("project.trust_remote_code")
    _check_context(source, seq_len, trust)
    data = ctx.out / CHECKPOINTS / "data"
    tokenizer = load_tokenizer(source, trust)
    train_count = tokenise_to_file(tokenizer, read_split(ctx.output_of("corpus"), "train"), data / "train.bin")
    replay_fraction = config.get("train.replay_fraction")
    replay_count = 0
    if replay_fraction > 0:
        drawn = self_sample_budget(config.get("train.replay_tokens"), steps, per_step // seq_len, replay_fraction, seq_len)
        replay_count = tokenise_replay(ctx, tokenizer, data / "replay.bin", drawn)
    valid = []
    if config.get("train.eval_every"):
        valid = sample_by_bytes(read_split(ctx.output_of("corpus"), "valid"), config.get("train.eval_max_bytes"))
    threads = config.get("train.threads") or max(1, (os.cpu_count() or 1) // processes)
    precision = resumed_choice(_precision(config.get("train.precision"), threads), checkpoint_precision(ctx.out / CHECKPOINTS))
    check_launcher(launcher, precision.name)
    return TrainPlan(
        source=str(source), train_tokens=str(data / "train.bin"), train_token_count=train_count, out=str(ctx.out),
        seq_len=seq_len, batch_size=batch_size, accumulation=accumulation, num_processes=processes, total_steps=steps,
        stages=stages, learning_rate=rate, embedding_learning_rate=embedding_rate,
        warmup_steps=config.get("train.warmup_steps"), schedule=config.get("train.schedule"),
        decay_fraction=config.get("train.decay_fraction"), weight_decay=config.get("train.weight_decay"),
        max_grad_norm=config.get("train.max_grad_norm"), precision=precision.name,
        gradient_checkpointing=config.get("train.gradient_checkpointing"), new_rows=new_rows,
        lora_rank=config.get("train.lora_rank"), lora_alpha=config.get("train.lora_alpha"),
        unfreeze_layers=config.get("train.unfreeze_layers"), seed=config.get("project.seed"), threads=threads,
        save_every=config.get("train.save_every"), keep_checkpoints=config.get("train.keep_checkpoints"),
        eval_every=config.get("train.eval_every"), early_stopping=config.get("train.early_stopping"), valid_texts=valid,
        replay_tokens=str(data / "replay.bin"), replay_token_count=replay_count, replay_fraction=replay_fraction,
        replay_kl=config.get("train.replay_kl") if replay_fraction > 0 else 0.0,
        tensorboard=config.get("train.tensorboard"), trust_remote_code=trust, launcher=launcher,
        precision_choice=precision.as_dict(),
    )


def _stage_names(ctx, new_rows: list[int]) -> list[str]:
    """train.stages, less the embeddings stage when extend added no rows (e.g. auto found no size that
    helps): that stage trains only new rows, so it would have nothing to do."""
    names = list(ctx.config.get("train.stages"))
    if new_rows or "embeddings" not in names:
        return names
    rest = [name for name in names if name != "embeddings"]
    if not rest:
        raise LangbuildError('train.stages = ["embeddings"] trains only the rows extend added, and it added none: '
                             'use ["full"] or ["lora"], or set extend.num_new_tokens to a number')
    ctx.console.print("  embeddings stage skipped: extend added no tokens, so there are no new rows to warm up")
    return rest


def _precision(requested: str, threads: int):
    """The precision the run will use, measured with the thread count each training process gets."""
    with torch_threads(threads):
        return resolve_precision(requested)


def tokenise_replay(ctx, tokenizer, path: Path, self_budget: int) -> int:
    """Tokenise the replay text of ``train.replay_text`` (a text, a dataset, or ``self``: ``self_budget``
    tokens sampled from the base model) into ``path``.

    The documents are produced lazily: a resumed run whose replay file is complete reads and samples nothing."""
    from ..models.loading import chosen_model
    from ..packaged.reference_texts import read_text_lines
    from ..training.replay import SELF, read_replay_text, synthesise_replay

    config, root = ctx.config, ctx.project.root
    spec, budget = config.get("train.replay_text"), config.get("train.replay_tokens")

    def self_synthesised():
        trust = config.get("project.trust_remote_code")
        _, base_path = chosen_model(ctx.output_of("select"), root, trust)
        prompts = config.get("train.replay_prompts")
        lines = read_text_lines(prompts, root, "train.replay_prompts") if prompts else []
        yield from synthesise_replay(base_path, lines, self_budget, config.get("project.seed"), trust, ctx.console).documents

    documents = self_synthesised() if spec == SELF else read_replay_text(spec, root, budget)
    return tokenise_to_file(tokenizer, documents, path)


def run(ctx) -> dict:
    plan = build_plan(ctx)
    stages = " then ".join(f"{s.name} ({s.steps} steps)" for s in plan.stages)
    ctx.console.print(f"  {stages}; {plan.tokens_per_step:,} tokens per step"
                      + (f" over {plan.num_processes} processes" if plan.num_processes > 1 else "")
                      + f"; {plan.precision} ({PrecisionChoice(**plan.precision_choice).describe()})")
    if plan.num_processes > 1:
        return launch(plan, ctx.out / CHECKPOINTS)
    with torch_threads(plan.threads):  # the run's thread count, and this process's own back afterwards
        return Trainer(plan, ctx.console).run()
