"""select: score every candidate base model on held-out target text and choose one.

Rule: the lowest bits per byte on the valid sample wins (bits per byte is comparable across
tokenizers); ties go to the smaller model. The rule is written into selection.json.
"""

from __future__ import annotations

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..metrics import bits_per_byte, hf_encoder, tokenizer_stats
from ..models import check_vocabulary_fits, load_model, load_tokenizer, parameter_count, resolve_model
from ..textio import read_jsonl_texts, sample_by_bytes

RULE = "lowest bits per byte on the valid sample; ties: fewer parameters"


def score_candidate(name: str, ctx, sample: list[str]) -> dict:
    trust = ctx.config.get("project.trust_remote_code")
    folder = resolve_model(name, ctx.project.root, trust)
    tokenizer = load_tokenizer(folder, trust)
    model = load_model(folder, trust)
    check_vocabulary_fits(model, tokenizer, folder)
    scores = {
        "name": name,
        "path": str(folder),
        "parameters": parameter_count(model),
        "tokens_per_word": tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"],
        **bits_per_byte(model, tokenizer, sample),
    }
    del model
    return scores


def run(ctx) -> dict:
    valid = list(read_jsonl_texts(ctx.output_of("corpus") / "valid.jsonl"))
    sample = sample_by_bytes(valid, ctx.config.get("select.max_eval_bytes"))
    candidates = []
    for name in ctx.config.get("select.candidates"):
        ctx.console.print(f"  scoring {name} ...")
        candidates.append(score_candidate(name, ctx, sample))
    chosen = min(candidates, key=lambda c: (round(c["bits_per_byte"], 4), c["parameters"]))
    selection = {
        "rule": RULE,
        "sample_bytes": sum(len(t.encode("utf-8")) + 1 for t in sample) - 1,
        "candidates": candidates,
        "chosen": chosen["name"],
        "chosen_path": chosen["path"],
    }
    atomic_write_json(ctx.out / "selection.json", selection)
    table = Table(title=f"candidate base models (chosen: {chosen['name']}; rule: {RULE})")
    for column in ("model", "parameters", "tokens/word ↓", "bits/byte ↓"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for c in candidates:
        table.add_row(c["name"], f"{c['parameters'] / 1e6:.1f}M", f"{c['tokens_per_word']:.3f}", f"{c['bits_per_byte']:.4f}")
    ctx.console.print(table)
    return {"chosen": chosen["name"], "bits_per_byte": chosen["bits_per_byte"]}
