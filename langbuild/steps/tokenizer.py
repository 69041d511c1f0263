"""tokenizer: train a target-language tokenizer on the train split and compare it with the base tokenizers.

The libraries and algorithms (``tokenizer.library`` × ``tokenizer.model_type``) are described in
:mod:`langbuild.tokenization`. Training streams the train split: up to ``tokenizer.max_sentences``
documents are kept with a seeded reservoir sample, so a corpus larger than memory works.

``tokenizer.vocab_size = "auto"`` trains a small sweep and takes the knee of held-out tokens per
word (see ``langbuild.tokenization.sweep.vocab_curve``). A size the corpus cannot fill is capped,
with a warning and a note.

Outputs: ``spm.model`` (SentencePiece only), ``hf/`` (a transformers tokenizer folder for every
library; for SentencePiece an exact conversion, checked id for id on the valid split),
``metrics.json`` (the new and every base tokenizer on the valid split: tokens per word, characters
and bytes per token, unknown and byte-fallback shares, parity with English; see
``langbuild.tokenization.statistics``), and ``vocab_curve.json`` when the size is "auto".
"""

from __future__ import annotations

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..corpus.shards import read_split
from ..models.loading import load_tokenizer, resolve_model
from ..tokenization.comparison import aligned_pairs, spm_agreement, tokenizer_row
from ..tokenization.sampling import read_train_sample
from ..tokenization.sweep import vocab_curve
from ..tokenization.training import Recipe, save_tokenizer, train_tokenizer


def _base_rows(ctx, valid: list[str], aligned) -> dict[str, dict]:
    out = {}
    trust = ctx.config.get("project.trust_remote_code")
    for name in ctx.config.get("select.candidates"):
        folder = resolve_model(name, ctx.project.root, trust)
        out[name] = tokenizer_row("base", load_tokenizer(folder, trust), valid, aligned)
    return out


def run(ctx) -> dict:
    config = ctx.config
    recipe = Recipe.from_config(config)
    corpus = ctx.output_of("corpus")
    # Before training: a wrong file fails in a second, not after.
    aligned = aligned_pairs(config.get("tokenizer.aligned_target"), config.get("tokenizer.aligned_source"), ctx.project.root)
    valid = list(read_split(corpus, "valid"))
    docs, seen = read_train_sample(corpus, config.get("tokenizer.max_sentences"), recipe.seed)

    requested = config.get("tokenizer.vocab_size")
    curve = None
    if requested == "auto":
        curve = vocab_curve(docs, valid, recipe, ctx.out, ctx.console)
        atomic_write_json(ctx.out / "vocab_curve.json", curve)
        _print_curve(ctx.console, curve)
    trained = train_tokenizer(docs, recipe, curve["chosen"] if curve else requested, ctx.out)
    save_tokenizer(trained, ctx.out)
    if trained.note:
        ctx.console.print(f"  [yellow]vocabulary {trained.note}[/]")

    target = load_tokenizer(ctx.out / "hf")  # the folder downstream steps load: measure exactly that
    results = {"target": tokenizer_row("target", target, valid, aligned), **_base_rows(ctx, valid, aligned)}
    metrics = {
        "split": "valid",
        "library": recipe.library,
        "model_type": recipe.model_type,
        "byte_fallback": True if recipe.byte_level else recipe.byte_fallback,  # byte-level BPE: bytes are its alphabet
        "vocab_size": {"requested": requested, "trained": trained.vocab_size, "note": trained.note,
                       **({"auto_choice": curve["chosen"]} if curve else {})},
        "sample": {"documents": len(docs), "train_documents": seen, "max_sentences": config.get("tokenizer.max_sentences")},
        "parity_texts": ({"target": config.get("tokenizer.aligned_target"), "source": config.get("tokenizer.aligned_source"),
                          "lines": len(aligned[0])} if aligned else None),
        "tokenizers": results,
    }
    if trained.spm_model is not None:
        metrics["hf_export"] = spm_agreement(ctx.out / "spm.model", target, valid)
        if metrics["hf_export"]["lines_identical"] < len(valid):
            ctx.console.print(f"  [yellow]hf/ differs from spm.model on {len(valid) - metrics['hf_export']['lines_identical']} "
                              "valid documents: prefer spm.model for those[/]")
    atomic_write_json(ctx.out / "metrics.json", metrics)
    _print_table(ctx.console, results)
    return {"vocab_size": trained.vocab_size, "tokens_per_word": results["target"]["tokens_per_word"]}


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


def _print_table(console, results: dict[str, dict]) -> None:
    table = Table(title="tokenizers on the valid split (tokens/word: lower is better)")
    columns = ("tokenizer", "vocab", "tokens/word", "chars/token", "bytes/token", "unknown", "byte fallback", "parity")
    for column in columns:
        table.add_column(column, justify="right" if column != "tokenizer" else "left")
    for name, row in results.items():
        table.add_row(
            name, f"{row['vocab_size']:,}", f"{row['tokens_per_word']:.3f}", f"{row['chars_per_token']:.3f}",
            f"{row['bytes_per_token']:.3f}", _percent(row["unknown_share"]), _percent(row["byte_fallback_share"]),
            "—" if row["parity"] is None else f"{row['parity']:.3f}",
        )
    console.print(table)


def _print_curve(console, curve: dict) -> None:
    table = Table(title=f"vocabulary sweep ({curve['sample_documents']:,} train documents; chosen: {curve['chosen']:,})")
    for column in ("vocab", "tokens/word (valid)", ""):
        table.add_column(column, justify="right")
    for p in curve["points"]:
        table.add_row(f"{p['vocab_size']:,}", f"{p['tokens_per_word']:.3f}", "← knee" if p["vocab_size"] == curve["chosen"] else "")
    console.print(table)
