"""report: the settings, the before/after numbers with their directions and intervals, and what each means.

Writes ``report.md`` (plots linked from ``plots/``), ``report.html`` (the same content in one
self-contained file) and ``model_card.md`` (the Hugging Face README that ``langbuild export`` ships).
The page is built once as structured blocks and rendered to both formats, so they never disagree.
"""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import atomic_write_text
from ..reporting.card import render_card
from ..reporting.data import load_outputs
from ..reporting.document import to_markdown
from ..reporting.html import to_html
from ..reporting.page import PLOTS_DIR, report_blocks
from ..reporting.plots import write_plots


def render(ctx, plots_dir: Path | None = None) -> tuple[str, str]:
    """(Markdown, HTML) of the report; plots are drawn into ``plots_dir`` (default: the step's output)."""
    outputs = load_outputs(ctx.project)
    plots = write_plots(outputs, plots_dir or ctx.out / PLOTS_DIR)
    name = ctx.config.get("project.name") or ctx.project.root.name
    blocks = report_blocks(ctx.config, name, outputs, plots)
    title = f"{name} - langbuild report"
    return to_markdown(blocks), to_html(blocks, title)


def run(ctx) -> dict:
    markdown, html = render(ctx)
    card = render_card(ctx.project)
    atomic_write_text(ctx.out / "report.md", markdown)
    atomic_write_text(ctx.out / "report.html", html)
    atomic_write_text(ctx.out / "model_card.md", card)
    final = ctx.project.step_dir("report")
    ctx.console.print(f"  wrote {final / 'report.md'}, {final / 'report.html'} and {final / 'model_card.md'}")
    return {"bytes": len(markdown), "plots": sorted(p.name for p in (ctx.out / PLOTS_DIR).glob("*.png"))}
