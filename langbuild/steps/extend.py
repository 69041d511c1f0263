"""extend: give the chosen base model target-language tokens and initialise their embeddings.

Two modes:
* ``extend`` (default): new entries are added to the base tokenizer's own model (see
  langbuild.extension), every existing id is kept and source-language text keeps its tokens;
* ``replace``: the target tokenizer from the tokenizer step replaces the base one (the FOCUS and
  WECHSEL setting). Tokens whose text the base vocabulary also has keep their trained rows; the rest
  are initialised by ``extend.init``.

Writes ``extend/model/`` (a Hugging Face folder: safetensors weights + tokenizer),
``extend/new_tokens.json`` (each new token, its id and the base pieces it replaces) and
``extend/metrics.json`` (tokens per word before/after, the gain curve, round-trip and id checks).
With ``extend.num_new_tokens = "auto"`` the size is chosen by measured effect (see
langbuild.extension.size) and the curve holds each candidate's zero-shot bits per byte too. Rows are
built by langbuild.embedding_init.model; the method is chosen by langbuild.embedding_init.probe.
"""

from __future__ import annotations

import json
from collections import Counter

from ..core.atomic import atomic_write_json, atomic_write_text
from ..corpus.shards import read_split
from ..embedding_init.model import BaseModel
from ..embedding_init.probe import (
    PROBE_VALID_BYTES,
    check_init_inputs,
    choose_method,
    comparison_markdown,
    methods_to_try,
)
from ..embedding_init.spaces import WechselFiles
from ..extension.learning import protected_words
from ..extension.plan import ExtensionRequest, Prepared, plan_extension, plan_replacement, zero_shot_scores
from ..extension.size import worse_than_base
from ..models.loading import load_tokenizer, resolve_model
from ..packaged.reference_texts import read_text_lines
from ..text.textio import sample_by_bytes
from ..tokenization.statistics import hf_encoder, tokenizer_stats
from ..training.precision import resolve_precision


def _protected(ctx, backend) -> Counter:
    """extend.protect_text (every word) and extend.protected_words (a list), read as set."""
    config, root = ctx.config, ctx.project.root
    text, listed = config.get("extend.protect_text"), config.get("extend.protected_words")
    return protected_words(backend, read_text_lines(text, root, "extend.protect_text") if text else [],
                           read_text_lines(listed, root, "extend.protected_words") if listed else [])


def _request(ctx, base: BaseModel) -> ExtensionRequest:
    config, root = ctx.config, ctx.project.root
    # Replacing the tokenizer keeps no base tokenization, so there is nothing to protect.
    replace = config.get("extend.mode") == "replace"
    protected = Counter() if replace else _protected(ctx, base.tokenizer.backend_tokenizer)
    wechsel = WechselFiles(config.get("extend.source_vectors"), config.get("extend.target_vectors"),
                           config.get("extend.dictionary"), root, config.get("extend.max_word_vectors"))
    return ExtensionRequest(config.get("extend.num_new_tokens"), config.get("extend.min_frequency"), protected,
                            ctx.output_of("tokenizer"), methods_to_try(config),
                            config.get("extend.zero_shot_max_bytes") or PROBE_VALID_BYTES,
                            config.get("project.seed"), config.get("extend.pad_to_multiple_of"), wechsel)


def prepare(ctx) -> Prepared:
    """The new tokenizer and the plan for its rows (benchmarks/embedding_init.py calls this too)."""
    config = ctx.config
    check_init_inputs(config)
    trust = config.get("project.trust_remote_code")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    # Resolved again rather than read from selection.json: the cache or the project may have moved.
    base_path = resolve_model(selection["chosen"], ctx.project.root, trust)
    base = BaseModel(base_path, load_tokenizer(base_path, trust), trust)
    train = list(read_split(ctx.output_of("corpus"), "train"))
    valid = list(read_split(ctx.output_of("corpus"), "valid"))
    plan = plan_replacement if config.get("extend.mode") == "replace" else plan_extension
    return plan(selection["chosen"], base, train, valid, _request(ctx, base), ctx.out, ctx.console)


def zero_shot_texts(ctx, valid: list[str]) -> dict[str, list[str]]:
    """Held-out target text and source text for the diagnostics ({} when extend.zero_shot_max_bytes = 0)."""
    config = ctx.config
    budget = config.get("extend.zero_shot_max_bytes")
    if budget == 0:
        return {}
    texts = {"target": sample_by_bytes(valid, budget)}
    if config.get("extend.zero_shot_text"):
        source = read_text_lines(config.get("extend.zero_shot_text"), ctx.project.root, "extend.zero_shot_text")
        texts["source"] = sample_by_bytes(source, budget)
    return {side: sample for side, sample in texts.items() if sample}


def run(ctx) -> dict:
    mode = ctx.config.get("extend.mode")
    prepared = prepare(ctx)
    base, valid, new_tokenizer = prepared.base, prepared.valid, prepared.tokenizer

    texts = zero_shot_texts(ctx, valid)
    init, comparison = _choose_init(ctx, prepared, texts)
    model, shape = prepared.model.build(init)
    prepared.model = None
    model.save_pretrained(ctx.out / "model")
    zero_shot = zero_shot_scores(prepared, model, texts, init, ctx.console)
    del model

    before = tokenizer_stats(hf_encoder(base.tokenizer), valid)
    after = tokenizer_stats(hf_encoder(new_tokenizer), valid)
    auto = prepared.search.summary() if prepared.search else None
    added = prepared.added_tokens
    atomic_write_json(ctx.out / "metrics.json", {
        "base_model": prepared.base_model,
        "mode": mode,
        "method": prepared.method, "init": init, "tied_embeddings": shape["tied_embeddings"],
        "added_tokens": added, "requested_tokens": prepared.requested_tokens,
        "vocab_size": {"base": len(base.tokenizer), "extended": len(new_tokenizer)},
        "embedding_rows": shape["embedding_rows"],
        "valid_tokens_per_word": {"base": before["tokens_per_word"], "extended": after["tokens_per_word"]},
        "gain_curve": prepared.gain_curve,
        "auto_size": auto,
        "init_comparison": comparison,
        "zero_shot_bits_per_byte": zero_shot,
        "checks": prepared.checks,
    })
    shown = prepared.shown
    ctx.console.print(
        f"  {mode}: {added:,} new tokens by {prepared.method} "
        f"({', '.join(repr(t) for t in shown)}{', ...' if added > len(shown) else ''}); "
        f"valid tokens/word {before['tokens_per_word']:.3f} → {after['tokens_per_word']:.3f}; "
        f"embedding rows {shape['embedding_rows']['base']:,} → {shape['embedding_rows']['extended']:,}; init {init}"
    )
    for side, row in zero_shot.items():
        ctx.console.print(f"  zero-shot {side} bits/byte: base {row['base']:.3f}, extended {row['extended']:.3f} "
                          f"(× {row['ratio']:.3f})")
    warning = worse_than_base(zero_shot, added, init, auto)
    if warning:
        ctx.console.print(f"  [yellow]warning: {warning}[/]")
    return {"added_tokens": added, "tokens_per_word": after["tokens_per_word"]}


def _choose_init(ctx, prepared: Prepared, texts: dict) -> tuple[str, list[dict]]:
    """extend.init, or the probe winner among several methods; and the comparison table ([] if none)."""
    config = ctx.config
    methods = methods_to_try(config)
    if len(methods) == 1 or not prepared.added_tokens > 0:
        return methods[0], []
    steps = config.get("extend.probe_steps")
    ctx.console.print(f"  comparing {', '.join(methods)} by a {steps}-step probe ...")
    sample = texts.get("target") or sample_by_bytes(prepared.valid, PROBE_VALID_BYTES)
    precision = resolve_precision(config.get("train.precision")).name  # the probe trains as train will
    best, table = choose_method(methods, prepared.model.build, prepared.tokenizer, prepared.train, sample, steps,
                                config.get("project.seed"), ctx.console, precision)
    atomic_write_text(ctx.out / "init_comparison.md", comparison_markdown(table, steps))
    ctx.console.print(f"  kept {best} (lowest held-out bits per byte after the probe)")
    return best, table
