"""extend: add target-language tokens to the chosen base model and initialise their embeddings.

Writes ``extend/model/`` (a Hugging Face folder: safetensors weights + extended tokenizer),
``extend/new_tokens.json`` (each new token, its id and the base pieces it replaces) and
``extend/metrics.json`` (tokens per word before/after, round-trip and id-stability checks).
"""

from __future__ import annotations

import json
from collections import Counter

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..embedding_init import METHODS
from ..extension import Extension, apply_extension, base_pieces, continue_bpe, unigram_pieces
from ..metrics import hf_encoder, tokenizer_stats
from ..models import load_model, load_tokenizer, resolve_model
from ..textio import read_jsonl_texts

MAX_WORD_SAMPLE_DOCS = 200_000  # enough to rank the frequent words of any corpus


def _target_piece_frequencies(spm_path, texts: list[str]) -> list[tuple[str, int, float]]:
    """The target tokenizer's pieces as (piece, count in ``texts``, score), most frequent first."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_path))
    counts: Counter = Counter()
    for ids in processor.encode(texts):
        counts.update(ids)
    return [(processor.id_to_piece(i), n, processor.get_score(i)) for i, n in counts.most_common()]


def _learn_extension(ctx, backend, spec: dict, train: list[str]) -> Extension:
    config = ctx.config
    budget, min_freq = config.get("extend.num_new_tokens"), config.get("extend.min_frequency")
    kind = spec["model"]["type"]
    if budget == 0:
        return Extension(method="none")
    if kind == "BPE":
        return continue_bpe(backend, spec, train[:MAX_WORD_SAMPLE_DOCS], budget, min_freq)
    if kind == "Unigram":
        frequencies = _target_piece_frequencies(ctx.output_of("tokenizer") / "spm.model", train[:MAX_WORD_SAMPLE_DOCS])
        return unigram_pieces(spec, frequencies, budget, min_freq)
    raise LangbuildError(f"extending a {kind} tokenizer is not supported yet: set extend.num_new_tokens = 0")


def _save_tokenizer(base_tokenizer, spec: dict, folder) -> None:
    base_tokenizer.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # A stale SentencePiece file would describe the old vocabulary; tokenizer.json is the truth now.
    (folder / "tokenizer.model").unlink(missing_ok=True)


def _check_tokenizer(base, extended, valid: list[str]) -> dict:
    base_vocab, new_vocab = base.get_vocab(), extended.get_vocab()
    moved = [tok for tok, idx in base_vocab.items() if new_vocab.get(tok) != idx]
    if moved:
        raise LangbuildError(f"internal check failed: extension moved {len(moved)} existing tokens (first: {moved[0]!r})")
    lost = []
    for text in valid:
        same_in_base = base.decode(base(text, add_special_tokens=False)["input_ids"]) == text
        if same_in_base and extended.decode(extended(text, add_special_tokens=False)["input_ids"]) != text:
            lost.append(text)
    if lost:
        raise LangbuildError(f"internal check failed: the extended tokenizer does not round-trip {lost[0][:60]!r}")
    return {"existing_ids_kept": len(base_vocab), "round_trip_lines": len(valid), "round_trip_failures": 0}


def _initialise(model, method: str, new_ids: list[int], old_rows: int, pieces: list[list[int]], seed: int) -> bool:
    import torch

    init = METHODS[method]
    std = getattr(model.config, "initializer_range", 0.02)
    input_weight = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is None or output.weight is input_weight or output.weight.data_ptr() == input_weight.data_ptr()
    matrices = [input_weight] if tied else [input_weight, output.weight]
    with torch.no_grad():
        for offset, weight in enumerate(matrices):
            generator = torch.Generator().manual_seed(seed + offset)
            init(weight.data, new_ids, old_rows, pieces=pieces, generator=generator, std=std)
    return tied


def run(ctx) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    # Resolved again rather than read from selection.json: the cache or the project may have moved.
    base_path = resolve_model(selection["chosen"], ctx.project.root, trust)
    base_tokenizer = load_tokenizer(base_path, trust)
    backend = base_tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    train = list(read_jsonl_texts(ctx.output_of("corpus") / "train.jsonl"))
    valid = list(read_jsonl_texts(ctx.output_of("corpus") / "valid.jsonl"))

    extension = _learn_extension(ctx, backend, spec, train)
    new_spec, new_ids = apply_extension(spec, extension)
    folder = ctx.out / "model"
    folder.mkdir()
    _save_tokenizer(base_tokenizer, new_spec, folder)
    extended_tokenizer = load_tokenizer(folder, trust)
    checks = _check_tokenizer(base_tokenizer, extended_tokenizer, valid)

    model = load_model(base_path, trust)
    old_rows = model.get_input_embeddings().weight.shape[0]
    new_rows = max(old_rows, len(extended_tokenizer), max(new_ids, default=-1) + 1)
    model.resize_token_embeddings(new_rows, mean_resizing=False)
    pieces = [base_pieces(backend, token) for token in extension.tokens]
    method = config.get("extend.init")
    # Statistics come from the real vocabulary only: some models pad their matrix with unused rows.
    trained_rows = min(old_rows, len(base_tokenizer))
    tied = _initialise(model, method, new_ids, trained_rows, pieces, config.get("project.seed"))
    model.save_pretrained(folder)

    before = tokenizer_stats(hf_encoder(base_tokenizer), valid)
    after = tokenizer_stats(hf_encoder(extended_tokenizer), valid)
    tokens = [{"id": i, "token": t, "base_pieces": p} for i, t, p in zip(new_ids, extension.tokens, pieces)]
    atomic_write_json(ctx.out / "new_tokens.json", tokens)
    metrics = {
        "base_model": selection["chosen"],
        "method": extension.method,
        "init": method,
        "tied_embeddings": tied,
        "added_tokens": len(new_ids),
        "vocab_size": {"base": len(base_tokenizer), "extended": len(extended_tokenizer)},
        "valid_tokens_per_word": {"base": before["tokens_per_word"], "extended": after["tokens_per_word"]},
        "checks": checks,
    }
    atomic_write_json(ctx.out / "metrics.json", metrics)
    shown = ", ".join(repr(t) for t in extension.tokens[:8])
    ctx.console.print(
        f"  added {len(new_ids):,} tokens by {extension.method} ({shown}{', ...' if len(new_ids) > 8 else ''}); "
        f"valid tokens/word {before['tokens_per_word']:.3f} → {after['tokens_per_word']:.3f}; init {method}"
    )
    return {"added_tokens": len(new_ids), "tokens_per_word": after["tokens_per_word"]}
