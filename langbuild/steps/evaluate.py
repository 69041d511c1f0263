"""eval: bits per byte and tokens per word, base vs extended vs trained, target and source text.

Bits per byte compares models whose tokenizers differ; lower is better. Source-language (English)
bits per byte shows forgetting: it should not rise much while the target number falls.
"""

from __future__ import annotations

import json

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..metrics import bits_per_byte, hf_encoder, tokenizer_stats
from ..models import load_model, load_tokenizer, resolve_model
from ..reference_texts import read_text_lines
from ..textio import read_jsonl_texts, sample_by_bytes


def source_lines(project) -> list[str]:
    return read_text_lines(project.config.get("eval.source_text"), project.root, "eval.source_text")


def run(ctx) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    valid = list(read_jsonl_texts(ctx.output_of("corpus") / "valid.jsonl"))
    texts = {
        "target": sample_by_bytes(valid, config.get("eval.max_bytes")),
        "source": sample_by_bytes(source_lines(ctx.project), config.get("eval.source_max_bytes")),
    }
    if not texts["source"]:
        raise LangbuildError(f"the source text '{config.get('eval.source_text')}' is empty: set eval.source_text to English text")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    models = {
        "base": resolve_model(selection["chosen"], ctx.project.root, trust),
        "extended": ctx.output_of("extend") / "model",
        "trained": ctx.output_of("train") / "model",
    }
    tokenizers = {label: load_tokenizer(folder, trust) for label, folder in models.items()}
    metrics: dict = {side: {"bits_per_byte": {}, "tokens_per_word": {}, "bytes": 0} for side in texts}
    metrics["source"]["lines_identical"] = _share_identical(tokenizers["base"], tokenizers["extended"], texts["source"])
    for label, folder in models.items():
        ctx.console.print(f"  scoring the {label} model ...")
        tokenizer = tokenizers[label]
        model = load_model(folder, trust)
        for side, sample in texts.items():
            scored = bits_per_byte(model, tokenizer, sample, batch_size=config.get("eval.batch_size"))
            metrics[side]["bits_per_byte"][label] = scored["bits_per_byte"]
            metrics[side]["bytes"] = scored["bytes"]
            if label != "trained":  # the trained model shares the extended tokenizer
                metrics[side]["tokens_per_word"][label] = tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"]
        del model
    metrics["base_model"] = selection["chosen"]
    metrics["directions"] = {"bits_per_byte": "lower is better", "tokens_per_word": "lower is better"}
    atomic_write_json(ctx.out / "metrics.json", metrics)
    _print_table(ctx.console, metrics)
    return {side: metrics[side]["bits_per_byte"] for side in texts}


def _share_identical(base, extended, lines: list[str]) -> float:
    """Share of source-language lines the extended tokenizer encodes to exactly the base's ids."""
    encode_base, encode_extended = hf_encoder(base), hf_encoder(extended)
    return sum(encode_base(line) == encode_extended(line) for line in lines) / max(len(lines), 1)


def _print_table(console, metrics: dict) -> None:
    table = Table(title="held-out evaluation (lower is better)")
    for column in ("text", "metric", "base", "extended", "trained"):
        table.add_column(column, justify="left" if column in ("text", "metric") else "right")
    for side in ("target", "source"):
        bpb, tpw = metrics[side]["bits_per_byte"], metrics[side]["tokens_per_word"]
        table.add_row(side, "bits/byte", *(f"{bpb[k]:.4f}" for k in ("base", "extended", "trained")))
        table.add_row(side, "tokens/word", f"{tpw['base']:.3f}", f"{tpw['extended']:.3f}", f"{tpw['extended']:.3f}")
    console.print(table)
    console.print(f"  source lines the extended tokenizer encodes exactly as the base: {metrics['source']['lines_identical']:.1%}")
