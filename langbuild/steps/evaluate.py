"""eval: base vs extended vs trained on held-out text, benchmarks (lm-eval) and generation speed.

* **bits per byte** of held-out target text and of English (forgetting), with bootstrap 95 % intervals
  over scoring windows; lower is better. It is the one measure comparable across tokenizers.
* **tokens per word** of each tokenizer; lower is better.
* **benchmarks** run by lm-evaluation-harness (``eval.tasks``): a cloze task and a bits-per-byte task
  built from the held-out split, local JSONL tasks, and lm-eval's built-in tasks. Each score has its
  direction and a bootstrap 95 % interval; multiple-choice tasks also get the paired interval of
  trained minus base, which says whether the gain is beyond noise.
* **generation speed**: characters per second when decoding the same held-out text, base vs extended.
* **samples**: a few held-out prompts continued by each pipeline model, greedy and sampled.

Held-out text is the test split, which no earlier step read (valid where the corpus has none).

A task that cannot run (unknown name, bad file, data offline) is reported in ``skipped`` with one
line; the other tasks still run. So is an extra model of ``eval.models`` that cannot be loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError, one_line
from ..corpus.shards import read_split, scored_split, split_record
from ..evaluation.results import assemble, share_identical, write_items
from ..evaluation.samples import SampleSettings, collect_samples
from ..evaluation.scoring import ScoringSettings, score_model, speed_texts, task_managers
from ..evaluation.speed import split_points
from ..evaluation.task_plan import TaskSettings, plan_tasks, point_tasks_at
from ..models.loading import load_tokenizer, resolve_model
from ..packaged.reference_texts import read_text_lines
from ..reporting.data import PIPELINE_MODELS
from ..reporting.terminal import print_eval_tables
from ..text.textio import sample_by_bytes
from ..training.precision import resolve_precision


def source_lines(project) -> list[str]:
    return read_text_lines(project.config.get("eval.source_text"), project.root, "eval.source_text")


def _task_settings(ctx) -> TaskSettings:
    config = ctx.config
    return TaskSettings(
        tasks=config.get("eval.tasks"), language=config.get("project.language"), seed=config.get("project.seed"),
        cloze_choices=config.get("eval.cloze_choices"), cloze_items=config.get("eval.cloze_items"),
        max_bytes=config.get("eval.max_bytes"), generation_metric=config.get("eval.generation_metric"),
        max_new_tokens=config.get("eval.max_new_tokens"), corpus=ctx.output_of("corpus"), resolve_path=ctx.project.resolve_path,
        num_fewshot=config.get("eval.num_fewshot"),
    )


def _scoring_settings(ctx, precision: str) -> ScoringSettings:
    config = ctx.config
    return ScoringSettings(
        batch_size=config.get("eval.batch_size"), bootstrap_samples=config.get("eval.bootstrap_samples"),
        max_items=config.get("eval.max_items"), seed=config.get("project.seed"),
        trust_remote_code=config.get("project.trust_remote_code"), precision=precision,
        cache_dir=ctx.project.state_dir / "cache" / "lm-eval",
    )


def _pipeline_models(ctx) -> dict[str, Path]:
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    trust = ctx.config.get("project.trust_remote_code")
    return {
        "base": resolve_model(selection["chosen"], ctx.project.root, trust),
        "extended": ctx.output_of("extend") / "model",
        "trained": ctx.output_of("train") / "model",
    }


def _extra_models(ctx, skipped: list[dict]) -> dict[str, Path]:
    extras = {}
    for name in ctx.config.get("eval.models"):
        try:
            extras[name] = resolve_model(name, ctx.project.root, ctx.config.get("project.trust_remote_code"))
        except LangbuildError as err:
            skipped.append({"model": name, "reason": one_line(err)})
    return extras


def run(ctx) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    split = scored_split(ctx.output_of("corpus"))
    held_out = list(read_split(ctx.output_of("corpus"), split))
    ctx.console.print(f"  held-out text: {split_record(split, len(held_out))['note']}")
    texts = {
        "target": sample_by_bytes(held_out, config.get("eval.max_bytes")),
        "source": sample_by_bytes(source_lines(ctx.project), config.get("eval.source_max_bytes")),
    }
    if not texts["source"]:
        raise LangbuildError(f"the source text '{config.get('eval.source_text')}' is empty: set eval.source_text to English text")
    plan = plan_tasks(_task_settings(ctx), held_out, ctx.out / "tasks")
    models = {**_pipeline_models(ctx), **_extra_models(ctx, plan.skipped)}
    base_tokenizer = load_tokenizer(models["base"], trust)
    extended_tokenizer = load_tokenizer(models["extended"], trust)
    speed = speed_texts(held_out, config.get("eval.speed_chars"))
    speed = (speed, split_points(base_tokenizer, speed))  # every model decodes the same characters
    managers = task_managers()
    precision = resolve_precision(config.get("eval.precision"), "eval.precision")
    ctx.console.print(f"  scoring in {precision.name} ({precision.describe()})")
    scoring = _scoring_settings(ctx, precision.name)
    per_model: dict[str, dict] = {}
    for label, folder in models.items():
        ctx.console.print(f"  scoring the {label} model ...")
        try:
            per_model[label] = score_model(label, folder, texts, speed, plan, managers, scoring, ctx.console)
        except LangbuildError as err:
            if label in PIPELINE_MODELS:
                raise
            plan.skipped.append({"model": label, "reason": one_line(err)})
    base_model = json.loads((ctx.output_of("select") / "selection.json").read_text())["chosen"]
    metrics = assemble(per_model, plan, share_identical(base_tokenizer, extended_tokenizer, texts["source"]), base_model,
                       config.get("eval.bootstrap_samples"), config.get("project.seed"))
    metrics["precision"] = precision.as_dict()
    metrics["held_out"] = split_record(split, len(held_out))
    metrics["samples"] = collect_samples({k: models[k] for k in PIPELINE_MODELS}, held_out, split, SampleSettings(
        config.get("eval.sample_prompts"), config.get("eval.sample_tokens"), config.get("project.seed"), trust,
        scoring.scores_cache))
    # The tasks' YAML read their data from eval/tasks/, where this step's folder ends up.
    point_tasks_at(plan, ctx.output_of("eval") / "tasks", config.get("eval.max_new_tokens"))
    atomic_write_json(ctx.out / "metrics.json", metrics)
    write_items(ctx.out / "items", per_model)
    print_eval_tables(ctx.console, metrics)
    return {side: metrics[side]["bits_per_byte"] for side in texts} | {
        "tasks": {name: {label: s["value"] for label, s in task["scores"].items()} for name, task in metrics["tasks"].items()}
    }
