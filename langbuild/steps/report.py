"""report: one Markdown page with the settings, the before/after table and what each number means."""

from __future__ import annotations

import json

import tomlkit

from ..core.atomic import atomic_write_text


def _load(ctx, step: str, name: str) -> dict:
    return json.loads((ctx.output_of(step) / name).read_text(encoding="utf-8"))


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _change(before: float, after: float) -> str:
    return f"{(after - before) / before * 100:+.1f} %" if before else "n/a"


def _extension_summary(extend: dict) -> str:
    if extend.get("mode") == "replace":
        return (f"its tokenizer replaced by the target one ({extend['added_tokens']:,} rows without a base match, "
                f"initialised by {extend['init']})")
    return (f"extended with **{extend['added_tokens']:,}** target-language tokens ({extend['method']}, rows initialised "
            f"by {extend['init']})")


def _initialisation_lines(extend: dict) -> list[str]:
    """Zero-shot bits per byte after extension and, when several were probed, the initialiser comparison."""
    lines = []
    for side, row in (extend.get("zero_shot_bits_per_byte") or {}).items():
        lines.append(f"- Zero-shot {side} bits per byte (extended, before training): {row['extended']:.3f} against the "
                     f"base model's {row['base']:.3f} ({_change(row['base'], row['extended'])}).")
    comparison = extend.get("init_comparison") or []
    if comparison:
        lines += ["", "| init | held-out bits/byte at start | after the probe |", "|---|---:|---:|"]
        for row in comparison:
            lines.append(f"| {row['method']}{' (kept)' if row['chosen'] else ''} | {row['zero_shot_bits_per_byte']:.3f} "
                         f"| {row['probe_bits_per_byte']:.3f} |")
    return lines


def _gain_curve_lines(extend: dict) -> list[str]:
    curve = extend.get("gain_curve") or []
    if len(curve) < 2:
        return []
    points = ", ".join(f"{p['new_tokens']:,} → {p['tokens_per_word']:.3f}" for p in curve)
    return [f"- Gain curve (new tokens → held-out tokens per word): {points}."]


def _candidate_table(selection: dict) -> list[str]:
    def maybe(value, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    rows = [
        "| candidate | parameters | tokens per word | bits per byte | English bits per byte | training memory | fits"
        " | s per 1M tokens |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for c in selection["candidates"]:
        name = f"**{c['name']}**" if c["name"] == selection["chosen"] else c["name"]
        memory = c.get("memory_gb")
        rows.append(
            f"| {name} | {c['parameters'] / 1e6:.1f}M | {c['tokens_per_word']:.3f} | {c['bits_per_byte']:.4f} | "
            f"{maybe(c.get('source_bits_per_byte'), '{:.4f}')} | {maybe(memory, '{:.2f} GB')} | "
            f"{'yes' if c.get('fits', True) else 'no'} | {maybe(c.get('seconds_per_million_tokens'), '{:,.0f}')} |"
        )
    return rows


def render(ctx) -> str:
    config = ctx.config
    corpus = _load(ctx, "corpus", "stats.json")
    tokenizer = _load(ctx, "tokenizer", "metrics.json")
    selection = _load(ctx, "select", "selection.json")
    extend = _load(ctx, "extend", "metrics.json")
    train = _load(ctx, "train", "summary.json")
    evaluation = _load(ctx, "eval", "metrics.json")
    name = config.get("project.name") or ctx.project.root.name
    tgt, src = evaluation["target"], evaluation["source"]
    lines = [
        f"# {name}: {config.get('project.language')} language model report",
        "",
        f"Base model **{selection['chosen']}**, {_extension_summary(extend)}, and trained for **{train['steps']}** steps "
        f"of {train['tokens_per_step']:,} tokens.",
        "",
        "## Results (held-out text; lower is better for every row)",
        "",
        "| text | metric | base | extended | trained | trained vs base |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, side in (("target", tgt), ("source (English)", src)):
        bpb, tpw = side["bits_per_byte"], side["tokens_per_word"]
        lines.append(
            f"| {label} | bits per byte | {_fmt(bpb['base'])} | {_fmt(bpb['extended'])} | {_fmt(bpb['trained'])} | "
            f"{_change(bpb['base'], bpb['trained'])} |"
        )
        lines.append(
            f"| {label} | tokens per word | {_fmt(tpw['base'], 3)} | {_fmt(tpw['extended'], 3)} | "
            f"{_fmt(tpw['extended'], 3)} | {_change(tpw['base'], tpw['extended'])} |"
        )
    lines += [
        "",
        "What the numbers mean:",
        "",
        "- **bits per byte**: how many bits the model needs, on average, to encode each byte of held-out text. "
        "It is comparable across tokenizers; lower means the model predicts the language better.",
        "- **tokens per word**: how many tokens the tokenizer cuts an average word into. Lower means shorter "
        "sequences: faster training and generation and more text in the same context window.",
        "- **base** is the model as downloaded; **extended** has the new tokens before any training (their "
        "rows are only estimates); **trained** is after continued pretraining.",
        "- **source (English)** checks forgetting: the target gain should not cost much English ability.",
        "",
        f"Evaluated on {tgt['bytes']:,} bytes of held-out target text and {src['bytes']:,} bytes of English"
        + (f"; {src['lines_identical']:.1%} of the English lines keep exactly the base model's token ids." if "lines_identical" in src
           else "."),
        "",
        "## Vocabulary",
        "",
        f"- Held-out target tokens per word: {extend['valid_tokens_per_word']['base']:.3f} with the base tokenizer, "
        f"{extend['valid_tokens_per_word']['extended']:.3f} after {extend['mode']} "
        f"({_change(extend['valid_tokens_per_word']['base'], extend['valid_tokens_per_word']['extended'])}).",
        f"- Embedding rows: {extend['embedding_rows']['base']:,} → {extend['embedding_rows']['extended']:,} "
        f"(of which {extend['embedding_rows']['padding']:,} padding to a multiple of {config.get('extend.pad_to_multiple_of')}).",
        *_gain_curve_lines(extend),
        *_initialisation_lines(extend),
        "",
        "## Data and tokenizer",
        "",
        f"- Corpus: {corpus['train']['documents']:,} train documents ({corpus['train']['words']:,} words), "
        f"{corpus['valid']['documents']:,} held-out documents; removed {corpus['removed'] or 'nothing'}.",
        f"- Target tokenizer: {tokenizer.get('library', 'sentencepiece')} {tokenizer['model_type']}, "
        f"{tokenizer['vocab_size']['trained']:,} pieces, "
        f"{tokenizer['tokenizers']['target']['tokens_per_word']:.3f} tokens per word on the held-out text.",
        "",
        "## Base model choice",
        "",
        f"Rule: {selection['rule']}.",
        "",
        *_candidate_table(selection),
        "",
        "## Settings",
        "",
        "```toml",
        tomlkit.dumps(config.values).strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def run(ctx) -> dict:
    text = render(ctx)
    atomic_write_text(ctx.out / "report.md", text)
    ctx.console.print(f"  wrote {ctx.project.step_dir('report') / 'report.md'}")
    return {"bytes": len(text)}
