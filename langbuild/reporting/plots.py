"""The report's plots: small, deterministic PNGs drawn with matplotlib's Agg canvas.

Figures are made with the object API (``Figure`` + ``FigureCanvasAgg``), never ``pyplot``: no global
state, no GUI backend chosen behind the caller's back, nothing left open. PNG metadata (matplotlib's
version string) is dropped so the same numbers give byte-identical files, and so an unchanged report
step re-run produces unchanged outputs. A plot whose data is absent is not drawn at all.
"""

from __future__ import annotations

from pathlib import Path

from .data import Outputs, model_labels, tasks

DPI = 100
COLORS = {"base": "#8c8c8c", "extended": "#4c9be8", "trained": "#e8744c"}
EXTRA_COLORS = ("#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _color(label: str, index: int) -> str:
    return COLORS.get(label) or EXTRA_COLORS[index % len(EXTRA_COLORS)]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    """Write the PNG without metadata (no matplotlib version or date), so identical data gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _text(value) -> str:
    """Text shown verbatim: a ``$`` in a task name would otherwise start matplotlib's math mode (or fail to parse)."""
    return str(value).replace("$", r"\$")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and value == value and value not in (float("inf"), float("-inf"))


# ---------------------------------------------------------------- training curves


def stage_switches(records: list[dict]) -> list[tuple[int, str]]:
    """(first step, stage name) for every stage after the first: where the recipe changed."""
    switches = []
    for previous, record in zip(records, records[1:]):
        if record.get("stage") != previous.get("stage"):
            switches.append((record["step"], str(record.get("stage"))))
    return switches


def _mark_stages(ax, records: list[dict], label: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    for step, stage in stage_switches(records):
        ax.axvline(step - 0.5, color="#555555", linestyle=":", linewidth=1)
        if label:
            ax.annotate(_text(stage), xy=(step - 0.5, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="#555555")


def training_plot(records: list[dict], path: Path) -> Path | None:
    """Training loss per step and, when train.eval_every was on, held-out bits per byte (lower is better)."""
    losses = [(r["step"], r["loss"]) for r in records if _finite(r.get("loss"))]
    held_out = [(r["step"], r["valid_bits_per_byte"]) for r in records if _finite(r.get("valid_bits_per_byte"))]
    if not losses:
        return None
    panels = 2 if held_out else 1
    figure = _figure(6.4 if panels == 1 else 9.6, 3.4)
    first = records[0].get("stage")
    ax = figure.add_subplot(1, panels, 1)
    ax.plot(*zip(*losses), color=COLORS["trained"], linewidth=1.2, marker="." if len(losses) < 50 else None)
    ax.set(title="training loss (lower is better)", xlabel="optimizer step", ylabel="cross-entropy (nats/token)")
    _mark_stages(ax, records, label=True)
    if first is not None and stage_switches(records):
        ax.annotate(_text(first), xy=(0, 1), xycoords="axes fraction", xytext=(3, -12), textcoords="offset points",
                    fontsize=8, color="#555555")
    ax.grid(alpha=0.3)
    if held_out:
        bx = figure.add_subplot(1, panels, 2)
        bx.plot(*zip(*held_out), color=COLORS["extended"], linewidth=1.2, marker="o", markersize=3)
        bx.set(title="held-out bits per byte (lower is better)", xlabel="optimizer step", ylabel="bits per byte")
        _mark_stages(bx, records, label=False)
        bx.grid(alpha=0.3)
    return _save(figure, path)


# ---------------------------------------------------------------- tokens per word


def tokens_per_word_plot(evaluation: dict | None, path: Path) -> Path | None:
    """Tokens per word of the base and extended tokenizers on target and source text (lower is better)."""
    sides = [(name, (evaluation or {}).get(key) or {}) for name, key in (("target", "target"), ("source (English)", "source"))]
    sides = [(name, side.get("tokens_per_word") or {}) for name, side in sides]
    sides = [(name, values) for name, values in sides if any(_finite(values.get(k)) for k in ("base", "extended"))]
    if not sides:
        return None
    figure = _figure(5.6, 3.4)
    ax = figure.add_subplot(1, 1, 1)
    width = 0.38
    for index, label in enumerate(("base", "extended")):
        xs = [i + (index - 0.5) * width for i in range(len(sides))]
        ys = [values.get(label) if _finite(values.get(label)) else 0.0 for _, values in sides]
        bars = ax.bar(xs, ys, width, label=label, color=COLORS[label])
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.set_xticks(range(len(sides)), [name for name, _ in sides])
    ax.set(title="tokens per word (lower is better)", ylabel="tokens per word")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


# ---------------------------------------------------------------- benchmarks


def _interval(interval) -> tuple[float, float] | None:
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(_finite(v) for v in interval):
        return float(interval[0]), float(interval[1])
    return None


def _benchmark_panel(ax, name: str, task: dict, labels: list[str]) -> None:
    present = [label for label in labels if _finite((task["scores"].get(label) or {}).get("value"))]
    values = [task["scores"][label]["value"] for label in present]
    ax.bar(range(len(present)), values, color=[_color(label, labels.index(label)) for label in present])
    for x, (label, value) in enumerate(zip(present, values)):
        interval = _interval(task["scores"][label].get("interval"))
        if interval:  # a score without an interval gets no error bar rather than a misleading zero-width one
            low, high = max(value - interval[0], 0.0), max(interval[1] - value, 0.0)
            ax.errorbar([x], [value], yerr=[[low], [high]], color="black", capsize=4, linewidth=1)
    if _finite(task.get("chance")):
        ax.axhline(task["chance"], color="#333333", linestyle="--", linewidth=1, label="chance")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xticks(range(len(present)), [_text(label) for label in present], fontsize=8)
    ax.set_title(_text(f"{name}\n{task.get('metric', '')} ({task.get('direction', 'direction unknown')})"), fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def benchmark_plot(evaluation: dict | None, path: Path) -> Path | None:
    """One panel per task: each model's score with its 95 % interval, and chance when the task has one."""
    found = tasks(evaluation)
    if not found:
        return None
    labels = model_labels(*(task["scores"] for task in found.values()))
    columns = min(len(found), 3)
    rows = (len(found) + columns - 1) // columns
    figure = _figure(3.3 * columns, 3.0 * rows)
    for index, (name, task) in enumerate(found.items()):
        _benchmark_panel(figure.add_subplot(rows, columns, index + 1), name, task, labels)
    return _save(figure, path)


# ---------------------------------------------------------------- initialisation comparison


def init_comparison_plot(extend: dict | None, path: Path) -> Path | None:
    """Held-out bits per byte of each probed initialisation, at the start and after the probe (lower is better)."""
    rows = [r for r in (extend or {}).get("init_comparison") or [] if isinstance(r, dict) and r.get("method")]
    if not rows:
        return None
    figure = _figure(max(4.8, 1.1 * len(rows) + 2.4), 3.4)
    ax = figure.add_subplot(1, 1, 1)
    width = 0.38
    for index, (key, label, color) in enumerate((("zero_shot_bits_per_byte", "at start", COLORS["extended"]),
                                                  ("probe_bits_per_byte", "after the probe", COLORS["trained"]))):
        xs = [i + (index - 0.5) * width for i in range(len(rows))]
        bars = ax.bar(xs, [r.get(key) if _finite(r.get(key)) else 0.0 for r in rows], width, label=label, color=color)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    names = [_text(f"{r['method']}\n(kept)" if r.get("chosen") else r["method"]) for r in rows]
    ax.set_xticks(range(len(rows)), names, fontsize=8)
    values = [r[k] for r in rows for k in ("zero_shot_bits_per_byte", "probe_bits_per_byte") if _finite(r.get(k))]
    if values:
        low, high = min(values), max(values)
        pad = max((high - low) * 0.6, 0.02 * high, 1e-3)
        ax.set_ylim(max(low - pad, 0.0), high + pad)
    ax.set(title="embedding initialisation: held-out bits per byte (lower is better)", ylabel="bits per byte")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


# ---------------------------------------------------------------- all of them

PLOTS = {
    "training": ("training loss and held-out bits per byte per step", lambda o: o.train_records, training_plot),
    "tokens_per_word": ("tokens per word, base vs extended tokenizer", lambda o: o.evaluation, tokens_per_word_plot),
    "benchmarks": ("benchmark scores with 95 % intervals", lambda o: o.evaluation, benchmark_plot),
    "init_comparison": ("embedding initialisations compared", lambda o: o.extend, init_comparison_plot),
}


def write_plots(outputs: Outputs, folder: Path) -> dict[str, tuple[Path, str]]:
    """Draw every plot that has data into ``folder``; returns name -> (PNG path, caption)."""
    written = {}
    for name, (caption, pick, draw) in PLOTS.items():
        path = draw(pick(outputs), Path(folder) / f"{name}.png")
        if path is not None:
            written[name] = (path, caption)
    return written

