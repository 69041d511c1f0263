"""eval: base vs extended vs trained on held-out text, benchmarks (lm-eval) and generation speed.

* **bits per byte** of held-out target text and of English (forgetting), with bootstrap 95 % intervals
  over scoring windows; lower is better. It is the one measure comparable across tokenizers.
* **tokens per word** of each tokenizer; lower is better.
* **benchmarks** run by lm-evaluation-harness (``eval.tasks``): a cloze task and a bits-per-byte task
  built from the held-out split, local JSONL tasks, and lm-eval's built-in tasks. Each score has its
  direction and a bootstrap 95 % interval; multiple-choice tasks also get the paired interval of
  trained minus base, which says whether the gain is beyond noise.
* **generation speed**: characters per second when decoding the same held-out text, base vs extended.

A task that cannot run (unknown name, bad file, data offline) is reported in ``skipped`` with one
line; the other tasks still run. So is an extra model of ``eval.models`` that cannot be loaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError, one_line, out_of_memory_becomes
from ..core.hashing import hash_file, hash_json
from ..corpus.shards import read_split
from ..evaluation import bootstrap
from ..evaluation.local_tasks import LocalTask, local_task, write_jsonl, write_task_yaml
from ..evaluation.speed import split_points
from ..metrics import bits_per_byte, hf_encoder, tokenizer_stats
from ..models import load_model, load_tokenizer, resolve_model
from ..reference_texts import read_text_lines
from ..reporting.data import PIPELINE_MODELS, with_interval
from ..textio import sample_by_bytes
from ..training.precision import cast_parameters, resolve_precision

BUILT_FROM_HELD_OUT = ("cloze", "heldout-bpb")


def source_lines(project) -> list[str]:
    return read_text_lines(project.config.get("eval.source_text"), project.root, "eval.source_text")


def _language_slug(ctx) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in ctx.config.get("project.language").lower())


# ---------------------------------------------------------------- benchmarks built from held-out text


def _cloze_task(ctx, held_out: list[str], folder: Path) -> tuple[LocalTask | None, str | None]:
    from ..evaluation import cloze

    config = ctx.config
    items = cloze.build_items(held_out, seed=config.get("project.seed"), choices=config.get("eval.cloze_choices"),
                              max_items=config.get("eval.cloze_items"))
    dirty = cloze.contaminated([cloze.item_ngrams(i) for i in items], read_split(ctx.output_of("corpus"), "train"))
    clean = [item for index, item in enumerate(items) if index not in dirty]
    if len(clean) < 10:
        return None, (f"cloze: only {len(clean)} clean items could be built from the held-out split (passages of at least "
                      f"{cloze.NGRAM} words, not overlapping the train split): hold out more text (corpus.valid_paths)")
    path = folder / "cloze.jsonl"
    write_jsonl(path, (item.as_json() for item in clean))
    task = local_task(path, name=f"{_language_slug(ctx)}_cloze", origin="built from held-out data",
                      description=f"pick a held-out passage's true continuation among {config.get('eval.cloze_choices')}")
    task.extra.update({"built": len(items), "contaminated": len(dirty), "length_baseline": cloze.length_baseline(clean)})
    return task, None


def _heldout_bpb_task(ctx, held_out: list[str], folder: Path) -> tuple[LocalTask | None, str | None]:
    from ..evaluation import cloze

    documents = sample_by_bytes(held_out, ctx.config.get("eval.max_bytes"))
    grams = [cloze.text_ngrams(doc) for doc in documents]
    dirty = cloze.contaminated(grams, read_split(ctx.output_of("corpus"), "train"))
    clean = [doc for index, doc in enumerate(documents) if index not in dirty]
    if not clean:
        return None, "heldout-bpb: every held-out document overlaps the train split: hold out different text"
    path = folder / "heldout_bpb.jsonl"
    write_jsonl(path, ({"text": doc} for doc in clean))
    task = local_task(path, name=f"{_language_slug(ctx)}_heldout_bpb", origin="built from held-out data",
                      description="bits per byte of whole held-out documents, each scored on its own (without the "
                                  "previous document as context, so above the windowed held-out figure)")
    task.extra.update({"contaminated": len(dirty)})
    return task, None


# ---------------------------------------------------------------- which tasks to run


class _TagTolerantLoader:
    """A safe YAML loader that reads lm-eval's custom tags (``!function utils.x``) as plain strings."""

    @staticmethod
    def load(text: str):
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                                     if isinstance(node, yaml.ScalarNode) else None)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _yaml_task_names(path: Path) -> list[str]:
    import yaml

    try:
        spec = _TagTolerantLoader.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise LangbuildError(f"cannot read the lm-eval task file {path}: {one_line(err)}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
        raise LangbuildError(f"{path} names no task: an lm-eval task YAML needs a 'task: NAME' line")
    return [spec["task"]]


class TaskPlan:
    """What eval.tasks asks for: local tasks (YAML written into one folder), built-in names, and what was skipped."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.local: list[LocalTask] = []
        self.yaml_tasks: dict[str, Path] = {}  # task name → the folder lm-eval reads it from
        self.builtin: list[str] = []
        self.skipped: list[dict] = []

    def skip(self, task: str, reason: str) -> None:
        self.skipped.append({"task": task, "reason": one_line(reason)})


def plan_tasks(ctx, held_out: list[str]) -> TaskPlan:
    plan = TaskPlan(ctx.out / "tasks")
    requested = list(dict.fromkeys(ctx.config.get("eval.tasks")))
    for entry in requested:
        try:
            _plan_entry(ctx, plan, entry, held_out)
        except LangbuildError as err:
            plan.skip(entry, str(err))
    _check_builtin(ctx, plan)
    for task in plan.local:
        write_task_yaml(task, plan.folder, max_new_tokens=ctx.config.get("eval.max_new_tokens"))
    return plan


def _plan_entry(ctx, plan: TaskPlan, entry: str, held_out: list[str]) -> None:
    if entry in BUILT_FROM_HELD_OUT:
        task, reason = (_cloze_task if entry == "cloze" else _heldout_bpb_task)(ctx, held_out, plan.folder)
        if reason:
            plan.skip(entry, reason)
        else:
            plan.local.append(task)
    elif entry == "builtin":
        from ..evaluation.builtin_tasks import tasks_for_language

        found = [task.name for task in tasks_for_language(ctx.config.get("project.language"))]
        if not found:
            plan.skip(entry, f"lm-eval has no built-in task for '{ctx.config.get('project.language')}': the tasks built "
                             "from held-out text still run")
        plan.builtin.extend(found)
    elif entry.endswith((".jsonl", ".yaml", ".yml")):
        path = ctx.project.resolve_path(entry)
        if not path.is_file():
            raise LangbuildError(f"task file '{entry}' not found at {path}: fix eval.tasks")
        if path.suffix == ".jsonl":
            plan.local.append(local_task(path, generation_metric=ctx.config.get("eval.generation_metric")))
        else:
            _add_yaml_task(plan, path)
    else:
        plan.builtin.append(entry)


def _add_yaml_task(plan: TaskPlan, path: Path) -> None:
    for name in _yaml_task_names(path):
        plan.yaml_tasks[name] = path.parent


def _check_builtin(ctx, plan: TaskPlan) -> None:
    if not plan.builtin:
        return
    from ..evaluation.builtin_tasks import check_task_names

    known, unknown = check_task_names(list(dict.fromkeys(plan.builtin)))
    plan.builtin = known
    for name, reason in unknown:
        plan.skip(name, reason)


# ---------------------------------------------------------------- models


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


def model_identity(folder: Path) -> str:
    """A hash of a model folder's weights and tokenizer: the key of its lm-eval request cache."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")
    return hash_json({p.name: hash_file(p) for p in files})[:20]


# ---------------------------------------------------------------- scoring one model


def _held_out_bits(model, tokenizer, texts: dict[str, list[str]], config, seed: int) -> dict:
    out = {}
    for side, sample in texts.items():
        scored = bits_per_byte(model, tokenizer, sample, batch_size=config.get("eval.batch_size"))
        out[side] = {
            "bits_per_byte": scored["bits_per_byte"],
            "interval": bootstrap.bits_per_byte_interval(scored, samples=config.get("eval.bootstrap_samples"), seed=seed),
            "bytes": scored["bytes"],
            "tokens_per_word": tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"],
        }
    return out


def _speed_texts(held_out: list[str], chars: int) -> list[str]:
    chosen, total = [], 0
    for text in held_out:
        if total >= chars:
            break
        chosen.append(text)
        total += len(text)
    return chosen


def _generation_speed(model, tokenizer, texts: list[str], splits: list[int]) -> dict | None:
    """Characters/s decoding ``texts`` after prompts cut at the same characters for every model."""
    from ..evaluation.speed import forced_generation_speed

    return forced_generation_speed(model, tokenizer, texts, splits=splits) if texts else None


def _benchmarks(ctx, model, tokenizer, label: str, folder: Path, plan: TaskPlan, task_manager) -> dict:
    from ..evaluation import harness

    config = ctx.config
    # The same weights answer differently in another precision: the precision is part of the cache's key.
    identity = f"{model_identity(folder)}-{str(model.dtype).removeprefix('torch.')}"
    cache_file = ctx.project.state_dir / "cache" / "lm-eval" / f"{_safe_name(label)[:40]}-{identity}"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cached = any(cache_file.parent.glob(cache_file.name + "_rank*.db"))
    lm = harness.make_lm(model, tokenizer, config.get("eval.batch_size"))
    options = {"limit": config.get("eval.max_items"), "bootstrap_samples": config.get("eval.bootstrap_samples"),
               "seed": config.get("project.seed")}
    started = time.perf_counter()
    scores = harness.run_local(lm, plan.local, plan.folder, cache_file, **options)
    for name in [*plan.yaml_tasks, *plan.builtin]:
        manager = task_manager(plan.yaml_tasks.get(name))
        score, reason = harness.run_builtin(lm, name, manager, cache_file, **options)
        if score:
            scores[name] = score
        elif reason and not any(s.get("task") == name for s in plan.skipped):
            plan.skip(name, reason)
    return {"scores": scores, "seconds": time.perf_counter() - started, "cached": cached}


def _task_managers():
    """Task managers built on first use, one per folder of user YAML and one for lm-eval's built-in
    tasks (indexing its ~15,000 tasks takes ~12 s, so only when one is asked for)."""
    made: dict[Path | None, object] = {}

    def get(folder: Path | None):
        if folder not in made:
            from lm_eval.tasks import TaskManager

            made[folder] = TaskManager(include_path=str(folder), include_defaults=False) if folder else TaskManager()
        return made[folder]

    return get


# ---------------------------------------------------------------- the step


def run(ctx) -> dict:
    config = ctx.config
    seed = config.get("project.seed")
    trust = config.get("project.trust_remote_code")
    held_out = list(read_split(ctx.output_of("corpus"), "valid"))
    texts = {
        "target": sample_by_bytes(held_out, config.get("eval.max_bytes")),
        "source": sample_by_bytes(source_lines(ctx.project), config.get("eval.source_max_bytes")),
    }
    if not texts["source"]:
        raise LangbuildError(f"the source text '{config.get('eval.source_text')}' is empty: set eval.source_text to English text")
    plan = plan_tasks(ctx, held_out)
    models = {**_pipeline_models(ctx), **_extra_models(ctx, plan.skipped)}
    base_tokenizer = load_tokenizer(models["base"], trust)
    extended_tokenizer = load_tokenizer(models["extended"], trust)
    speed = _speed_texts(held_out, config.get("eval.speed_chars"))
    speed = (speed, split_points(base_tokenizer, speed))  # every model decodes the same characters
    managers = _task_managers()
    precision = resolve_precision(config.get("eval.precision"), "eval.precision")
    ctx.console.print(f"  scoring in {precision.name} ({precision.describe()})")
    per_model: dict[str, dict] = {}
    for label, folder in models.items():
        ctx.console.print(f"  scoring the {label} model ...")
        try:
            per_model[label] = _score_model(ctx, label, folder, texts, speed, plan, managers, seed, trust, precision.name)
        except LangbuildError as err:
            if label in PIPELINE_MODELS:
                raise
            plan.skipped.append({"model": label, "reason": one_line(err)})
    metrics = _assemble(ctx, per_model, plan, _share_identical(base_tokenizer, extended_tokenizer, texts["source"]))
    metrics["precision"] = precision.as_dict()
    _point_tasks_at_final_folder(ctx, plan)
    atomic_write_json(ctx.out / "metrics.json", metrics)
    _write_items(ctx.out / "items", per_model)
    _print_tables(ctx.console, metrics)
    return {side: metrics[side]["bits_per_byte"] for side in texts} | {
        "tasks": {name: {label: s["value"] for label, s in task["scores"].items()} for name, task in metrics["tasks"].items()}
    }


def _point_tasks_at_final_folder(ctx, plan: TaskPlan) -> None:
    """Rewrite the generated tasks' YAML to read their data from eval/tasks/, where the step's folder
    ends up, so anyone can re-run them with lm-eval (``--include_path eval/tasks``)."""
    import dataclasses

    final = ctx.output_of("eval") / "tasks"
    for task in plan.local:
        if task.data_file.parent == plan.folder.resolve():
            write_task_yaml(dataclasses.replace(task, data_file=final / task.data_file.name), plan.folder,
                            max_new_tokens=ctx.config.get("eval.max_new_tokens"))


def _score_model(ctx, label, folder, texts, speed, plan, managers, seed, trust, precision: str) -> dict:
    tokenizer = load_tokenizer(folder, trust)
    # eval.batch_size sets both the held-out windows and the lm-eval requests scored at once.
    with out_of_memory_becomes(f"out of memory scoring the {label} model: lower eval.batch_size "
                               f"(now {ctx.config.get('eval.batch_size')})"):
        model = cast_parameters(load_model(folder, trust), precision)
        result = {"held_out": _held_out_bits(model, tokenizer, texts, ctx.config, seed)}
        if label in PIPELINE_MODELS:
            result["speed"] = _generation_speed(model, tokenizer, *speed)
        result["benchmarks"] = _benchmarks(ctx, model, tokenizer, label, folder, plan, managers)
    del model
    return result


def _task_entry(task_name: str, per_model: dict, plan: TaskPlan, samples: int, seed: int) -> dict | None:
    from ..evaluation.harness import direction

    scores = {label: result["benchmarks"]["scores"][task_name] for label, result in per_model.items()
              if task_name in result["benchmarks"]["scores"]}
    if not scores:
        return None
    local = next((t for t in plan.local if t.name == task_name), None)
    metric = next(iter(scores.values())).metric
    entry = {
        "kind": local.kind if local else "lm-eval",
        "metric": metric,
        "direction": local.direction if local else direction(metric),
        "items": max(s.items for s in scores.values()),
        "chance": local.chance if local else None,
        "description": local.description if local else "lm-eval built-in task",
        "origin": local.origin if local else "lm-eval built-in",
        "scores": {label: score.as_json() for label, score in scores.items()},
    }
    if local and local.extra:
        entry["construction"] = {k: v for k, v in local.extra.items() if k != "metric"}
    entry["trained_minus_base"] = _paired(scores, samples, seed)
    return entry


def _paired(scores: dict, samples: int, seed: int) -> dict | None:
    """Trained minus base on the same items, with a paired bootstrap interval (per-item means only)."""
    base, trained = scores.get("base"), scores.get("trained")
    if not base or not trained or len(base.per_item) != len(trained.per_item) or not base.per_item:
        return None
    if isinstance(base.per_item[0], (tuple, list)):
        return {"value": trained.value - base.value, "interval": None}
    interval = bootstrap.paired_difference_interval([float(v) for v in trained.per_item], [float(v) for v in base.per_item],
                                                    samples=samples, seed=seed)
    return {"value": trained.value - base.value, "interval": list(interval) if interval else None}


def _assemble(ctx, per_model: dict, plan: TaskPlan, identical: float) -> dict:
    config = ctx.config
    samples, seed = config.get("eval.bootstrap_samples"), config.get("project.seed")
    metrics: dict = {"base_model": json.loads((ctx.output_of("select") / "selection.json").read_text())["chosen"]}
    for side in ("target", "source"):
        rows = {label: r["held_out"][side] for label, r in per_model.items()}
        metrics[side] = {
            "bits_per_byte": {label: row["bits_per_byte"] for label, row in rows.items()},
            "bits_per_byte_interval": {label: row["interval"] and list(row["interval"]) for label, row in rows.items()},
            "tokens_per_word": {label: row["tokens_per_word"] for label, row in rows.items() if label != "trained"},
            "bytes": rows["base"]["bytes"],
        }
    metrics["source"]["lines_identical"] = identical
    metrics["generation"] = _speed_summary(per_model)
    names = [t.name for t in plan.local] + list(plan.yaml_tasks) + plan.builtin
    entries = {name: _task_entry(name, per_model, plan, samples, seed) for name in names}
    metrics["tasks"] = {name: entry for name, entry in entries.items() if entry}
    metrics["skipped"] = plan.skipped
    metrics["lm_eval"] = _lm_eval_summary(per_model)
    metrics["directions"] = {"bits_per_byte": "lower is better", "tokens_per_word": "lower is better",
                             "chars_per_second": "higher is better"}
    return metrics


def _speed_summary(per_model: dict) -> dict | None:
    speeds = {label: r["speed"] for label, r in per_model.items() if r.get("speed")}
    if "base" not in speeds or "extended" not in speeds:
        return None
    from ..evaluation.speed import speedup

    if not speeds["base"]["chars"]:  # every held-out document is shorter than the prompt: nothing was decoded
        return None
    return {"text_chars": speeds["base"]["chars"], "models": speeds, "speedup": speedup(speeds["base"], speeds["extended"])}


def _lm_eval_summary(per_model: dict) -> dict:
    import lm_eval

    runs = {label: r["benchmarks"] for label, r in per_model.items()}
    return {"version": getattr(lm_eval, "__version__", "unknown"),
            "seconds": sum(run["seconds"] for run in runs.values()),
            "seconds_by_model": {label: run["seconds"] for label, run in runs.items()},
            "cached": all(run["cached"] for run in runs.values())}


def _safe_name(text: str) -> str:
    """A file name from a label or task name (which may be a path or come from a user's YAML)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text) or "_"


def _write_items(folder: Path, per_model: dict) -> None:
    """Per-item scores of every task and model, for anyone who wants to recheck an interval."""
    for label, result in per_model.items():
        for task, score in result["benchmarks"]["scores"].items():
            rows = ({"item": i, score.metric: v} for i, v in enumerate(score.per_item))
            write_jsonl(folder / _safe_name(label) / f"{_safe_name(task)}.jsonl", rows)


def _share_identical(base, extended, lines: list[str]) -> float:
    """Share of source-language lines the extended tokenizer encodes to exactly the base's ids."""
    encode_base, encode_extended = hf_encoder(base), hf_encoder(extended)
    return sum(encode_base(line) == encode_extended(line) for line in lines) / max(len(lines), 1)


# ---------------------------------------------------------------- terminal tables


def _print_tables(console, metrics: dict) -> None:
    labels = list(metrics["target"]["bits_per_byte"])
    table = Table(title="held-out text (lower is better; 95 % intervals)")
    for column in ("text", "metric", *labels):
        table.add_column(column, justify="left" if column in ("text", "metric") else "right")
    for side in ("target", "source"):
        bpb, ci, tpw = (metrics[side][k] for k in ("bits_per_byte", "bits_per_byte_interval", "tokens_per_word"))
        table.add_row(side, "bits/byte", *(with_interval(bpb[k], ci.get(k), 4) for k in labels))
        table.add_row(side, "tokens/word", *(f"{tpw.get(k, tpw['extended']):.3f}" for k in labels))
    console.print(table)
    console.print(f"  source lines the extended tokenizer encodes exactly as the base: {metrics['source']['lines_identical']:.1%}")
    if metrics.get("generation"):
        speeds = {label: row["chars_per_second"] for label, row in metrics["generation"]["models"].items()}
        console.print(f"  generation: {speeds['base']:.0f} → {speeds['extended']:.0f} characters/s "
                      f"(× {metrics['generation']['speedup']:.2f}, higher is better)")
    if metrics["tasks"]:
        tasks = Table(title="benchmarks (95 % intervals)")
        for column in ("task", "metric", "direction", *labels):
            tasks.add_column(column, justify="left" if column in ("task", "metric", "direction") else "right")
        for name, task in metrics["tasks"].items():
            cells = [with_interval(task["scores"][k]["value"], task["scores"][k]["interval"]) if k in task["scores"] else "—"
                     for k in labels]
            tasks.add_row(name, task["metric"], task["direction"], *cells)
        console.print(tasks)
    for skipped in metrics["skipped"]:
        console.print(f"  [yellow]skipped {skipped.get('task') or skipped.get('model')}[/]: {skipped['reason']}")
