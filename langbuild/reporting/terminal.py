"""The eval step's results as rich tables on the terminal (the report renders the same numbers to files)."""

from __future__ import annotations

from rich.table import Table

from .data import with_interval


def print_eval_tables(console, metrics: dict) -> None:
    """Held-out scores, generation speed, benchmarks and skipped parts of ``metrics`` (eval/metrics.json)."""
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
