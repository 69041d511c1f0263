"""The report page as structured blocks: results, benchmarks, samples, training, vocabulary, data, choice, settings.

Built once and rendered to Markdown and HTML (langbuild.reporting.document, .html), so the two never
disagree. Every number says its direction (lower/higher is better) and, where eval computed one, its
interval.
"""

from __future__ import annotations

import tomlkit

from .data import Outputs, change
from .document import Block, Bullets, CodeBlock, Heading, Image, Paragraph, Strong, Table, rich
from .samples import sample_blocks
from .sections import HIGHER, LOWER, benchmark_blocks, forgetting_line, generation_blocks, held_out_table, scored_split_line

PLOTS_DIR = "plots"


def _extension_summary(extend: dict) -> tuple:
    if extend.get("mode") == "replace":
        return (f"its tokenizer replaced by the target one ({extend['added_tokens']:,} rows without a base match, "
                f"initialised by {extend['init']})",)
    if not extend["added_tokens"]:
        return ("not extended (its own tokenizer kept",
                f": {extend['auto_size']['reason']})" if extend.get("auto_size") else ")")
    return ("extended with ", Strong(f"{extend['added_tokens']:,}"),
            f" target-language tokens ({extend['method']}, rows initialised by {extend['init']})")


def _zero_shot(extend: dict) -> list[str]:
    """Zero-shot bits per byte after extension, before any training, next to the base model's."""
    return [f"Zero-shot {side} bits per byte (extended, before training): {row['extended']:.3f} against the base model's "
            f"{row['base']:.3f} ({change(row['base'], row['extended'])}; {LOWER})."
            for side, row in (extend.get("zero_shot_bits_per_byte") or {}).items()]


def _init_comparison(extend: dict) -> list[Block]:
    """When several initialisers were probed: each one's held-out bits per byte before and after the probe."""
    comparison = extend.get("init_comparison") or []
    if not comparison:
        return []
    rows = tuple((f"{row['method']}{' (kept)' if row['chosen'] else ''}", f"{row['zero_shot_bits_per_byte']:.3f}",
                  f"{row['probe_bits_per_byte']:.3f}") for row in comparison)
    return [Table(("init", f"held-out bits/byte at start ({LOWER})", f"after the probe ({LOWER})"), rows, ("l", "r", "r"))]


def gain_curve_lines(extend: dict) -> list[str]:
    """The report's sentence on extend's gain curve, or on the sizes auto scored ([] without a curve)."""
    curve = extend.get("gain_curve") or []
    if len(curve) < 2:
        return []
    auto = extend.get("auto_size")
    if auto and all("zero_shot_bits_per_byte" in p for p in curve):
        points = ", ".join(f"{p['new_tokens']:,} → {p['tokens_per_word']:.3f} / " + (
            "not needed" if p["zero_shot_bits_per_byte"] is None else f"{p['zero_shot_bits_per_byte']:.3f}") for p in curve)
        return [f"Sizes scored by extend.num_new_tokens = auto (new tokens → held-out tokens per word / zero-shot bits per "
                f"byte, both {LOWER}): {points}. Chose {auto['chosen']:,}: {auto['reason']}."]
    points = ", ".join(f"{p['new_tokens']:,} → {p['tokens_per_word']:.3f}" for p in curve)
    return [f"Gain curve (new tokens → held-out tokens per word, {LOWER}): {points}."]


def _candidate_table(selection: dict) -> Table:
    def maybe(value, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    rows = []
    for c in selection["candidates"]:
        memory = c.get("memory_gb")
        rows.append((
            rich(Strong(c["name"])) if c["name"] == selection["chosen"] else c["name"],
            f"{c['parameters'] / 1e6:.1f}M", f"{c['tokens_per_word']:.3f}", f"{c['bits_per_byte']:.4f}",
            maybe(c.get("source_bits_per_byte"), "{:.4f}"), maybe(memory, "{:.2f} GB"), "yes" if c.get("fits", True) else "no",
            maybe(c.get("seconds_per_million_tokens"), "{:,.0f}"),
        ))
    header = ("candidate", "parameters", f"tokens per word ({LOWER})", f"bits per byte ({LOWER})",
              f"English bits per byte ({LOWER})", "training memory", "fits", f"s per 1M tokens ({LOWER})")
    return Table(header, tuple(rows), ("l", "r", "r", "r", "r", "r", "l", "r"))


def _removed(corpus: dict) -> str:
    removed = corpus.get("removed") or {}
    if not removed:
        return "nothing"
    if isinstance(removed, dict):
        return ", ".join(f"{count:,} {reason.replace('_', ' ')}" for reason, count in removed.items())
    return str(removed)


def _image(plots: dict, name: str) -> list[Block]:
    if name not in plots:
        return []
    path, caption = plots[name]
    return [Image(f"{PLOTS_DIR}/{path.name}", caption, path)]


# ---------------------------------------------------------------- sections


def _results(outputs: Outputs, plots: dict) -> list[Block]:
    evaluation = outputs.evaluation or {}
    tgt, src = evaluation.get("target") or {}, evaluation.get("source") or {}
    table = held_out_table(evaluation)
    blocks: list[Block] = [Heading(2, "Results (held-out text; lower is better for every row)")]
    blocks += [table] if table else [Paragraph("eval has not produced held-out scores.")]
    blocks += [Paragraph(line)] if (line := scored_split_line(evaluation)) else []
    blocks += [
        Paragraph("What the numbers mean:"),
        Bullets((
            rich(Strong("bits per byte"), " (lower is better): how many bits the model needs, on average, to encode each "
                 "byte of held-out text. It is comparable across tokenizers; lower means the model predicts the language "
                 "better. Brackets hold the 95 % bootstrap interval when eval computed one."),
            rich(Strong("tokens per word"), " (lower is better): how many tokens the tokenizer cuts an average word into. "
                 "Lower means shorter sequences: faster training and generation and more text in the same context window."),
            rich(Strong("base"), " is the model as downloaded; ", Strong("extended"), " has the new tokens before any "
                 "training (their rows are only estimates); ", Strong("trained"), " is after continued pretraining."),
            rich(Strong("source (English)"), " checks forgetting: the target gain should not cost much English ability."),
        )),
    ]
    if tgt.get("bytes") and src.get("bytes"):
        identical = src.get("lines_identical")
        blocks.append(Paragraph(
            f"Evaluated on {tgt['bytes']:,} bytes of held-out target text and {src['bytes']:,} bytes of English"
            + (f"; {identical:.1%} of the English lines keep exactly the base model's token ids ({HIGHER})." if identical is not None
               else ".")))
    forgetting = forgetting_line(evaluation)
    blocks += [Paragraph(forgetting)] if forgetting else []
    return blocks + _image(plots, "tokens_per_word") + generation_blocks(evaluation, 3)


def _benchmarks(outputs: Outputs, plots: dict) -> list[Block]:
    blocks = benchmark_blocks(outputs.evaluation, 2)
    if not blocks:
        return []
    image = _image(plots, "benchmarks")
    # The plot goes right after the table's notes, before the skipped list.
    split = next((i for i, b in enumerate(blocks) if isinstance(b, Heading) and i > 0), len(blocks))
    return blocks[:split] + image + blocks[split:]


def _training(outputs: Outputs, plots: dict) -> list[Block]:
    train = outputs.train or {}
    if not train:
        return []
    stages = ", ".join(f"{s['name']} ({s['steps']:,} steps)" for s in train.get("stages") or [])
    lines = [f"{train['steps']:,} optimizer steps of {train['tokens_per_step']:,} tokens ({train.get('tokens', 0):,} tokens)"
             + (f" in stages: {stages}" if stages else "") + "."]
    if train.get("stopped_early"):
        lines.append(f"Stopped early: held-out bits per byte stopped improving (planned {train.get('planned_steps'):,} steps).")
    if train.get("final_loss") is not None:
        lines.append(f"Final training loss: {train['final_loss']:.4f} ({LOWER}).")
    held = train.get("held_out") or []
    if held:
        points = ", ".join(f"step {h['step']:,}: {h['bits_per_byte']:.4f}" for h in held)
        lines.append(f"Valid-split bits per byte during training ({LOWER}): {points}.")
    return [Heading(2, "Training"), Bullets(tuple(lines)), *_image(plots, "training")]


def _vocabulary(config, extend: dict, plots: dict) -> list[Block]:
    tpw, rows = extend["valid_tokens_per_word"], extend["embedding_rows"]
    lines = [
        f"Valid-split target tokens per word ({LOWER}): {tpw['base']:.3f} with the base tokenizer, {tpw['extended']:.3f} after "
        f"{extend['mode']} ({change(tpw['base'], tpw['extended'])}).",
        f"Embedding rows: {rows['base']:,} → {rows['extended']:,} (of which {rows['padding']:,} padding to a multiple of "
        f"{config.get('extend.pad_to_multiple_of')}).",
        *gain_curve_lines(extend),
        *_zero_shot(extend),
    ]
    return [Heading(2, "Vocabulary"), Bullets(tuple(lines)), *_init_comparison(extend), *_image(plots, "init_comparison")]


def _data(corpus: dict, tokenizer: dict) -> list[Block]:
    return [Heading(2, "Data and tokenizer"), Bullets((
        f"Corpus: {corpus['train']['documents']:,} train documents ({corpus['train']['words']:,} words), "
        f"{corpus['valid']['documents']:,} valid documents (tuning), {(corpus.get('test') or {}).get('documents', 0):,} test "
        f"documents (final scores only); removed {_removed(corpus)}.",
        f"Target tokenizer: {tokenizer.get('library', 'sentencepiece')} {tokenizer['model_type']}, "
        f"{tokenizer['vocab_size']['trained']:,} pieces, {tokenizer['tokenizers']['target']['tokens_per_word']:.3f} tokens per "
        f"word on the held-out text ({LOWER}).",
    ))]


def report_blocks(config, name: str, outputs: Outputs, plots: dict) -> list[Block]:
    """The whole report page as blocks, for ``name``'s project with settings ``config``."""
    selection, extend, train = outputs.selection, outputs.extend, outputs.train
    return [
        Heading(1, f"{name}: {config.get('project.language')} language model report"),
        Paragraph(rich("Base model ", Strong(selection["chosen"]), ", ", *_extension_summary(extend), ", and trained for ",
                       Strong(f"{train['steps']}"), f" steps of {train['tokens_per_step']:,} tokens.")),
        *_results(outputs, plots),
        *_benchmarks(outputs, plots),
        *sample_blocks(outputs.evaluation, 2),
        *_training(outputs, plots),
        *_vocabulary(config, extend, plots),
        *_data(outputs.corpus, outputs.tokenizer),
        Heading(2, "Base model choice"),
        Paragraph(f"Rule: {selection['rule']} (scored on the valid split)."),
        _candidate_table(selection),
        Heading(2, "Settings"),
        CodeBlock(tomlkit.dumps(config.values).strip(), "toml"),
    ]
