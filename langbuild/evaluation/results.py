"""The eval step's metrics.json from every model's scores: held-out text, generation speed, and per task
its direction, scores with intervals and the paired interval of trained minus base; plus per-item files."""

from __future__ import annotations

from pathlib import Path

from ..tokenization.statistics import hf_encoder
from . import bootstrap
from .local_tasks import write_jsonl
from .scoring import safe_name
from .task_plan import TaskPlan


def task_entry(task_name: str, per_model: dict, plan: TaskPlan, samples: int, seed: int) -> dict | None:
    from .harness import direction

    scores = {label: result["benchmarks"]["scores"][task_name] for label, result in per_model.items()
              if task_name in result["benchmarks"]["scores"]}
    if not scores:
        return None
    local = next((t for t in plan.local if t.name == task_name), None)
    metric = next(iter(scores.values())).metric
    entry = {
        "kind": local.kind if local else "lm-eval",
        "metric": metric,
        "num_fewshot": max(s.num_fewshot for s in scores.values()),  # as lm-eval ran it
        "direction": local.direction if local else direction(metric),
        "items": max(s.items for s in scores.values()),
        "chance": local.chance if local else None,
        "description": local.description if local else "lm-eval built-in task",
        "origin": local.origin if local else "lm-eval built-in",
        "scores": {label: score.as_json() for label, score in scores.items()},
    }
    if local and local.extra:
        entry["construction"] = {k: v for k, v in local.extra.items() if k != "metric"}
    entry["trained_minus_base"] = paired(scores, samples, seed)
    return entry


def paired(scores: dict, samples: int, seed: int) -> dict | None:
    """Trained minus base on the same items, with a paired bootstrap interval (per-item means only)."""
    base, trained = scores.get("base"), scores.get("trained")
    if not base or not trained or len(base.per_item) != len(trained.per_item) or not base.per_item:
        return None
    if isinstance(base.per_item[0], (tuple, list)):
        return {"value": trained.value - base.value, "interval": None}
    interval = bootstrap.paired_difference_interval([float(v) for v in trained.per_item], [float(v) for v in base.per_item],
                                                    samples=samples, seed=seed)
    return {"value": trained.value - base.value, "interval": list(interval) if interval else None}


def assemble(per_model: dict, plan: TaskPlan, identical: float, base_model: str, samples: int, seed: int) -> dict:
    """metrics.json: ``identical`` is the share of source lines both tokenizers encode alike (``share_identical``)."""
    metrics: dict = {"base_model": base_model}
    for side in ("target", "source"):
        rows = {label: r["held_out"][side] for label, r in per_model.items()}
        metrics[side] = {
            "bits_per_byte": {label: row["bits_per_byte"] for label, row in rows.items()},
            "bits_per_byte_interval": {label: row["interval"] and list(row["interval"]) for label, row in rows.items()},
            "tokens_per_word": {label: row["tokens_per_word"] for label, row in rows.items() if label != "trained"},
            "bytes": rows["base"]["bytes"],
        }
    metrics["source"]["lines_identical"] = identical
    metrics["generation"] = speed_summary(per_model)
    names = [t.name for t in plan.local] + list(plan.yaml_tasks) + plan.builtin
    entries = {name: task_entry(name, per_model, plan, samples, seed) for name in names}
    metrics["tasks"] = {name: entry for name, entry in entries.items() if entry}
    metrics["skipped"] = plan.skipped
    metrics["lm_eval"] = lm_eval_summary(per_model)
    metrics["directions"] = {"bits_per_byte": "lower is better", "tokens_per_word": "lower is better",
                             "chars_per_second": "higher is better"}
    return metrics


def speed_summary(per_model: dict) -> dict | None:
    speeds = {label: r["speed"] for label, r in per_model.items() if r.get("speed")}
    if "base" not in speeds or "extended" not in speeds:
        return None
    from .speed import speedup

    if not speeds["base"]["chars"]:  # every held-out document is shorter than the prompt: nothing was decoded
        return None
    return {"text_chars": speeds["base"]["chars"], "models": speeds, "speedup": speedup(speeds["base"], speeds["extended"])}


def lm_eval_summary(per_model: dict) -> dict:
    import lm_eval

    runs = {label: r["benchmarks"] for label, r in per_model.items()}
    return {"version": getattr(lm_eval, "__version__", "unknown"),
            "seconds": sum(run["seconds"] for run in runs.values()),
            "seconds_by_model": {label: run["seconds"] for label, run in runs.items()},
            "cached": all(run["cached"] for run in runs.values())}



def write_items(folder: Path, per_model: dict) -> None:
    """Per-item scores of every task and model, for anyone who wants to recheck an interval."""
    for label, result in per_model.items():
        for task, score in result["benchmarks"]["scores"].items():
            rows = ({"item": i, score.metric: v} for i, v in enumerate(score.per_item))
            write_jsonl(folder / safe_name(label) / f"{safe_name(task)}.jsonl", rows)


def share_identical(base, extended, lines: list[str]) -> float:
    """Share of source-language lines the extended tokenizer encodes to exactly the base's ids."""
    encode_base, encode_extended = hf_encoder(base), hf_encoder(extended)
    return sum(encode_base(line) == encode_extended(line) for line in lines) / max(len(lines), 1)
