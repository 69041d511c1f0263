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
from dataclasses import dataclass

from ..core.atomic import atomic_write_json, atomic_write_text
from ..core.errors import out_of_memory_becomes
from ..corpus.shards import read_split
from ..embedding_init.model import BaseModel, ExtendedModel, ReplacedModel
from ..embedding_init.probe import (
    PROBE_VALID_BYTES,
    check_init_inputs,
    choose_method,
    comparison_markdown,
    methods_to_try,
    zero_shot_diagnostics,
)
from ..embedding_init.spaces import WechselFiles
from ..extension import apply_extension, prefix
from ..extension.learning import learn_entries, protected_words
from ..extension.size import (
    AUTO_MAX_TOKENS,
    CURVE_SAMPLE_DOCS,
    SizeSearch,
    gain_curve,
    search_init,
    search_size,
    worse_than_base,
    zero_shot_from_search,
)
from ..extension.tokenizer_file import check_tokenizer, save_extended_tokenizer
from ..metrics import hf_encoder, tokenizer_stats
from ..models import load_model, load_tokenizer, resolve_model
from ..reference_texts import read_text_lines
from ..textio import sample_by_bytes
from ..training.precision import resolve_precision


@dataclass
class Prepared:
    """Everything up to the embedding rows: the new tokenizer (saved in ``extend/model``) and ``model``,
    whose ``build(method)`` makes the resized, initialised model. Benchmarks reuse this."""

    base_model: str  # the chosen model's name, as select wrote it
    base: BaseModel
    train: list[str]
    valid: list[str]
    tokenizer: object
    model: ExtendedModel | ReplacedModel | None  # None once run has built its model: frees the token spaces
    method: str  # how the new entries were made (continued BPE, Unigram pieces, ..., or "replace")
    added_tokens: int
    requested_tokens: int | str
    gain_curve: list[dict]
    checks: dict
    shown: list[str]  # a few new tokens for the step's line
    search: SizeSearch | None = None


def _protected(ctx, backend) -> Counter:
    """extend.protect_text (every word) and extend.protected_words (a list), read as set."""
    config, root = ctx.config, ctx.project.root
    text, listed = config.get("extend.protect_text"), config.get("extend.protected_words")
    return protected_words(backend, read_text_lines(text, root, "extend.protect_text") if text else [],
                           read_text_lines(listed, root, "extend.protected_words") if listed else [])


def _settings(ctx) -> dict:
    """What building the rows reads from the project, for both modes."""
    config = ctx.config
    wechsel = WechselFiles(config.get("extend.source_vectors"), config.get("extend.target_vectors"),
                           config.get("extend.dictionary"), ctx.project.root, config.get("extend.max_word_vectors"))
    return {"multiple": config.get("extend.pad_to_multiple_of"), "seed": config.get("project.seed"),
            "wechsel": wechsel, "console": ctx.console}


def _extend(ctx, base: BaseModel, train: list[str], valid: list[str]) -> dict:
    config = ctx.config
    backend = base.tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    protected = _protected(ctx, backend)
    requested = config.get("extend.num_new_tokens")
    budget = AUTO_MAX_TOKENS if requested == "auto" else requested
    extension, dropped = learn_entries(backend, spec, train, budget, config.get("extend.min_frequency"), protected,
                                       ctx.output_of("tokenizer"))
    search = None
    if requested == "auto":
        # Every candidate is a prefix of the one learned list (see extension.size): learned once, cut here.
        sample = sample_by_bytes(valid, config.get("extend.zero_shot_max_bytes") or PROBE_VALID_BYTES)
        search = search_size(base, spec, extension, valid, sample, search_init(methods_to_try(config)),
                             config.get("project.seed"), config.get("extend.pad_to_multiple_of"), ctx.out, ctx.console)
        extension, curve = prefix(extension, search.chosen), search.curve
    else:
        curve = gain_curve(spec, extension, valid[:CURVE_SAMPLE_DOCS])
    new_spec, new_ids = apply_extension(spec, extension)

    folder = ctx.out / "model"
    folder.mkdir()
    save_extended_tokenizer(base.tokenizer, new_spec, folder)
    tokenizer = load_tokenizer(folder, base.trust_remote_code)
    checks = check_tokenizer(base.tokenizer, tokenizer, valid)
    checks["protected_words"] = len(protected)
    checks["tokens_dropped_to_protect_words"] = dropped
    model = ExtendedModel.plan(base, extension, new_ids, tokenizer, train, **_settings(ctx))
    atomic_write_json(ctx.out / "new_tokens.json", [{"id": i, "token": t, "base_pieces": p}
                                                    for i, t, p in zip(new_ids, extension.tokens, model.pieces)])
    return {"method": extension.method, "added_tokens": len(new_ids), "model": model, "requested_tokens": requested,
            "gain_curve": curve, "tokenizer": tokenizer, "checks": checks, "shown": extension.tokens[:8],
            "search": search}


def _replace(ctx, base: BaseModel, train: list[str]) -> dict:
    """Swap in the target tokenizer; rows of tokens the base also spells are copied, the rest initialised."""
    target = load_tokenizer(ctx.output_of("tokenizer") / "hf", base.trust_remote_code)
    model = ReplacedModel.plan(base, target, train, **_settings(ctx))
    size, shared = model.size, model.shared
    atomic_write_json(ctx.out / "new_tokens.json", [
        {"id": i, "token": target.convert_ids_to_tokens(i), "base_pieces": model.pieces[i]} for i in range(size) if i not in shared
    ])
    (ctx.out / "model").mkdir()
    target.save_pretrained(ctx.out / "model")
    # Round trip of the target tokenizer is the tokenizer step's check (tokenizer/metrics.json).
    return {"method": "replace", "added_tokens": size - len(shared), "model": model, "requested_tokens": size,
            "gain_curve": [], "tokenizer": target, "checks": {"rows_copied_from_base": len(shared)},
            "shown": [t for t in target.convert_ids_to_tokens(list(range(min(size, 40)))) if t][:8]}


def prepare(ctx) -> Prepared:
    config = ctx.config
    check_init_inputs(config)
    trust = config.get("project.trust_remote_code")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    # Resolved again rather than read from selection.json: the cache or the project may have moved.
    base_path = resolve_model(selection["chosen"], ctx.project.root, trust)
    base = BaseModel(base_path, load_tokenizer(base_path, trust), trust)
    train = list(read_split(ctx.output_of("corpus"), "train"))
    valid = list(read_split(ctx.output_of("corpus"), "valid"))
    built = _replace(ctx, base, train) if config.get("extend.mode") == "replace" else _extend(ctx, base, train, valid)
    return Prepared(selection["chosen"], base, train, valid, **built)


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
    zero_shot = zero_shot_from_search(prepared.search, init, texts)
    remaining = {side: sample for side, sample in texts.items() if side not in zero_shot}
    if remaining:
        ctx.console.print("  zero-shot bits per byte (before any training) ...")
        # The base and the extended model are on the device together here, nowhere else in extend.
        with out_of_memory_becomes("out of memory scoring the base and the extended model side by side: "
                                   "set extend.zero_shot_max_bytes = 0 to skip the zero-shot scores"):
            base_model = load_model(base.path, base.trust_remote_code)
            zero_shot.update(zero_shot_diagnostics(base_model, base.tokenizer, model, new_tokenizer, remaining))
        del base_model
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
