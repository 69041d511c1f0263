"""corpus: gather target-language text, clean and filter it, identify its language, de-duplicate, split.

The work is done by :mod:`langbuild.corpus.pipeline`, its settings read from langbuild.toml and its
input files fingerprinted by :mod:`langbuild.corpus.settings`; this module runs it and shows the
statistics. Output: ``corpus/train-*.jsonl.zst``,
``corpus/valid-*.jsonl.zst``, ``corpus/test-*.jsonl.zst`` (only eval reads the test split; read them
with :func:`langbuild.corpus.shards.read_split`),
``corpus/stats.json`` and, with ``corpus.keep_removed``, ``corpus/removed-*.jsonl.zst``.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.config import check_rule
from ..corpus.pipeline import build_corpus
from ..corpus.settings import settings_from_config


def _check_split_settings(config) -> None:
    check_rule(config, "corpus.valid_field")
    check_rule(config, "corpus.test_values")


# --- run --------------------------------------------------------------------------------------------


def _summary_table(stats: dict[str, Any]) -> Table:
    table = Table(title="corpus", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("documents", justify="right")
    table.add_column("words", justify="right")
    table.add_column("MB", justify="right")
    table.add_row("read", f"{stats['read']:,}", "", f"{stats['characters_read'] / 1e6:,.1f}")
    for reason, count in stats["removed"].items():
        table.add_row(f"  removed: {reason}", f"{count:,}", "", "")
    for split in ("train", "valid", "test"):
        part = stats[split]
        table.add_row(f"kept: {split}", f"{part['documents']:,}", f"{part['words']:,}", f"{part['bytes'] / 1e6:,.1f}")
    return table


def _warn_read_problems(ctx, stats: dict[str, Any]) -> None:
    problems = stats["read_problems"]
    if problems.get("bad_encoding_replaced"):
        ctx.console.print(f"  [yellow]warning:[/] {problems['bad_encoding_replaced']:,} line(s) were not UTF-8; "
                          f"bad bytes became U+FFFD")
    if problems.get("bad_encoding_skipped"):
        ctx.console.print(f"  [yellow]warning:[/] {problems['bad_encoding_skipped']:,} line(s) were not UTF-8 and were skipped")
    if problems.get("bad_record"):
        ctx.console.print(f"  [yellow]warning:[/] {problems['bad_record']:,} record(s) were not JSON or lacked the text field: "
                          f"skipped")
    for path in stats["empty_files"][:5]:
        ctx.console.print(f"  [yellow]warning:[/] {path} holds no documents")


def run(ctx) -> dict:
    config = ctx.config
    _check_split_settings(config)
    settings = settings_from_config(config, ctx.project.root)
    stats, timing = build_corpus(settings, ctx.project.root, ctx.out, log=ctx.console.print, console=ctx.console)
    atomic_write_json(ctx.out / "stats.json", stats)
    _warn_read_problems(ctx, stats)
    ctx.console.print(_summary_table(stats))
    ctx.console.print(f"  {timing['characters_per_second'] / 1e6:,.2f} M characters/s over {timing['processes']} "
                      f"process(es); scripts {', '.join(list(stats['scripts'])[:3]) or '-'}; "
                      f"top words {', '.join(w for w, _ in stats['top_words'][:8])}")
    if not stats["test"]["documents"]:
        ctx.console.print("  [yellow]note:[/] no test split (corpus.test_fraction = 0 and no corpus.test_paths): eval will "
                          "score the valid split, which also tuned the model")
    return {f"{split}_documents": stats[split]["documents"] for split in ("train", "valid", "test")} | timing
