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
With ``extend.num_new_tokens = "auto"`` the size is chosen by measured effect (see extend_size) and
the curve holds each candidate's zero-shot bits per byte too.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..core.atomic import atomic_write_json, atomic_write_text
from ..core.errors import LangbuildError, out_of_memory_becomes
from ..corpus.shards import read_split
from ..embedding_init import METHODS
from ..extension import (
    Extension,
    apply_extension,
    base_pieces,
    byte_level_alphabet,
    byte_level_to_bytes,
    byte_level_to_text,
    continue_bpe,
    continue_wordpiece,
    corpus_words,
    is_byte_level,
    keep_protected_words,
    unigram_pieces,
)
from ..metrics import BYTE_PIECE, hf_encoder, tokenizer_stats
from ..models import check_vocabulary_fits, load_model, load_tokenizer, resolve_model
from ..reference_texts import read_text_lines
from ..textio import sample_by_bytes
from ..training.precision import resolve_precision
from ..training.stages import embedding_parameters
from ..words import word_count
from .extend_init import (
    PROBE_VALID_BYTES,
    SpaceInputs,
    best_method,
    check_init_inputs,
    compare_methods,
    is_byte_level_tokenizer,
    methods_to_try,
    readable,
    token_space_for,
    token_strings,
    zero_shot_diagnostics,
    zero_shot_texts,
)
from .extend_size import LADDER, PrefixRows, SizeSearch, candidate_sizes, search_init, search_sizes

MAX_WORD_SAMPLE_DOCS = 200_000  # enough to rank the frequent words of any corpus
AUTO_MAX_TOKENS = LADDER[-1]  # the largest size extend.num_new_tokens = "auto" considers
CURVE_SAMPLE_DOCS = 2_000  # valid documents used to draw the gain curve


# --- what must not change -----------------------------------------------------------------------


def protected_words(ctx, backend) -> Counter:
    """Words (in the base tokenizer's alphabet) whose tokenisation the extension must keep.

    From ``extend.protect_text`` (source-language text; every word in it) and ``extend.protected_words``
    (a list; each word both at a line start and after a space, the two forms it takes in text).
    """
    config, root = ctx.config, ctx.project.root
    words: Counter = Counter()
    if config.get("extend.protect_text"):
        words.update(corpus_words(backend, read_text_lines(config.get("extend.protect_text"), root, "extend.protect_text")))
    if config.get("extend.protected_words"):
        listed = read_text_lines(config.get("extend.protected_words"), root, "extend.protected_words")
        words.update(corpus_words(backend, [form for word in listed for form in (word, f" {word}")]))
    return words


# --- learning the new entries -------------------------------------------------------------------


def _target_tokenizer(ctx):
    """The tokenizer step's tokenizer as a `tokenizers.Tokenizer` (its Hugging Face export)."""
    from tokenizers import Tokenizer

    folder = ctx.output_of("tokenizer")
    if (folder / "hf" / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "hf" / "tokenizer.json"))
    raise LangbuildError("the tokenizer step left no hf/tokenizer.json: re-run it with 'langbuild tokenizer --force'")


def _as_metaspace(piece: str, byte_level: bool) -> str | None:
    """A target piece written the SentencePiece way (``▁`` for a space), or None if it is not text."""
    if byte_level:
        piece = byte_level_to_text(piece)
        if piece is None:
            return None
        return piece.replace(" ", "▁")
    return piece


def _target_piece_frequencies(target, texts: list[str]) -> list[tuple[str, int, float]]:
    """The target tokenizer's pieces as (piece, count in ``texts``, log-probability), most frequent first.

    Scores are the target model's own where it is a Unigram model, else the log relative frequency.
    """
    spec = json.loads(target.to_str())
    byte_level = is_byte_level(spec)
    unigram_scores = dict(map(tuple, spec["model"]["vocab"])) if spec["model"]["type"] == "Unigram" else {}
    counts: Counter = Counter()
    for encoding in target.encode_batch(texts, add_special_tokens=False):
        counts.update(encoding.tokens)
    total = sum(counts.values()) or 1
    out = []
    for token, count in counts.most_common():
        piece = _as_metaspace(token, byte_level)
        if piece:
            out.append((piece, count, unigram_scores.get(token, math.log(count / total))))
    return out


def learn_extension(ctx, backend, spec: dict, train: list[str], budget: int, protected: Counter) -> Extension:
    min_freq = ctx.config.get("extend.min_frequency")
    kind = spec["model"]["type"]
    if budget == 0:
        return Extension(method="none")
    if kind == "BPE":
        return continue_bpe(backend, spec, train, budget, min_freq, protected)
    if kind == "WordPiece":
        return continue_wordpiece(backend, spec, train, budget, min_freq, protected)
    if kind == "Unigram":
        return unigram_pieces(spec, _target_piece_frequencies(_target_tokenizer(ctx), train), budget, min_freq)
    raise LangbuildError(f"extending a {kind} tokenizer is not supported: set extend.num_new_tokens = 0 or extend.mode = replace")


def _prefix(extension: Extension, count: int) -> Extension:
    """The first ``count`` entries: for BPE a prefix of the merge list is itself a consistent extension."""
    return Extension(extension.tokens[:count], extension.merges[:count], extension.scores[:count], extension.method)


def gain_curve(spec: dict, extension: Extension, texts: list[str], sizes: tuple[int, ...] = LADDER) -> list[dict]:
    """Target tokens per word with the first N new entries, for each N in ``sizes`` (and 0)."""
    from tokenizers import Tokenizer

    words = max(sum(map(word_count, texts)), 1)
    points = []
    for size in sorted({0, *[s for s in sizes if s < len(extension.tokens)], len(extension.tokens)}):
        tokenizer = Tokenizer.from_str(json.dumps(apply_extension(spec, _prefix(extension, size))[0]))
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
        points.append({"new_tokens": size, "tokens_per_word": tokens / words})
    return points


# --- the tokenizer on disk ----------------------------------------------------------------------


def save_extended_tokenizer(base_tokenizer, spec: dict, folder: Path) -> None:
    """Save the base tokenizer's settings with the extended tokenizer.json (check_tokenizer verifies the reload)."""
    base_tokenizer.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # A stale SentencePiece file would describe the old vocabulary; tokenizer.json is the truth now.
    # (transformers 5 builds every mainstream tokenizer from tokenizer.json; "slow" ones are gone.)
    (folder / "tokenizer.model").unlink(missing_ok=True)


def _decoded(tokenizer, text: str) -> tuple[str, bool]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids), tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids


def check_tokenizer(base, extended, valid: list[str]) -> dict:
    """Every old id kept, special tokens and chat template kept, and the model's own round trip kept.

    Round trip: wherever the base tokenizer decodes a line without <unk>, the extended one must
    decode it to the same text (that is decode(encode(x)) == x up to the model's own normalisation,
    e.g. BERT's lower-casing).
    """
    base_vocab, new_vocab = base.get_vocab(), extended.get_vocab()
    moved = [tok for tok, idx in base_vocab.items() if new_vocab.get(tok) != idx]
    if moved:
        raise LangbuildError(f"internal check failed: extension moved {len(moved)} existing tokens (first: {moved[0]!r})")
    base_special = dict(zip(base.all_special_tokens, base.all_special_ids))
    if dict(zip(extended.all_special_tokens, extended.all_special_ids)) != base_special:
        raise LangbuildError("internal check failed: the extended tokenizer lost or moved a special token")
    if getattr(base, "chat_template", None) != getattr(extended, "chat_template", None):
        raise LangbuildError("internal check failed: the extended tokenizer lost the base model's chat template")
    checked, lost = 0, []
    for text in valid:
        expected, base_unknown = _decoded(base, text)
        if base_unknown:
            continue  # the base cannot say what this line should decode to
        checked += 1
        if _decoded(extended, text)[0] != expected:
            lost.append(text)
    if lost:
        raise LangbuildError(f"internal check failed: the extended tokenizer does not round-trip {lost[0][:60]!r}")
    return {"existing_ids_kept": len(base_vocab), "special_tokens_kept": len(base_special),
            "round_trip_lines": checked, "round_trip_failures": 0}


# --- the embedding matrices ---------------------------------------------------------------------


def _matrices(model) -> tuple[list, bool]:
    input_weight = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is None or output.weight is input_weight or output.weight.data_ptr() == input_weight.data_ptr()
    return ([input_weight] if tied else [input_weight, output.weight]), tied


def initialise_rows(model, method: str, new_ids: list[int], old_rows: int, pieces: list[list[int]], seed: int,
                    base_tokens: list[str] | None = None, new_tokens: list[str] | None = None,
                    token_space=None) -> bool:
    """Fill ``new_ids`` rows of the input embeddings (and of an untied output head) with ``method``.

    ``base_tokens`` (one string per base row) and ``new_tokens`` (one per new row) serve the methods
    that look at what a token spells (``script``); ``token_space`` the methods that mix base rows by
    an auxiliary space (``focus``, ``tokenadapt``, ``wechsel``). Each matrix mixes its own rows."""
    import torch

    init = METHODS[method]
    std = getattr(model.config, "initializer_range", 0.02)
    matrices, tied = _matrices(model)
    with torch.no_grad():
        for offset, weight in enumerate(matrices):
            generator = torch.Generator().manual_seed(seed + offset)
            init(weight.data, new_ids, old_rows, pieces=pieces, generator=generator, std=std,
                 base_tokens=base_tokens or [], new_tokens=new_tokens or [], token_space=token_space)
    return tied


def resize_embeddings(model, rows: int, multiple: int) -> int:
    """Resize to ``rows`` rounded up to ``multiple`` (matrix shapes that tile well run faster)."""
    model.resize_token_embeddings(rows, pad_to_multiple_of=multiple if multiple > 1 else None, mean_resizing=False)
    return model.get_input_embeddings().weight.shape[0]


def _fill_padding(model, first: int, old_rows: int) -> None:
    """Rows past the vocabulary are never input; as outputs they start at the mean, like new tokens."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows > first:
        initialise_rows(model, "mean", list(range(first, rows)), old_rows, [], 0)


# --- the two modes ------------------------------------------------------------------------------


def _extend(ctx, base_path: Path, base_tokenizer, train: list[str], valid: list[str]) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    backend = base_tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    protected = protected_words(ctx, backend)
    requested = config.get("extend.num_new_tokens")
    budget = AUTO_MAX_TOKENS if requested == "auto" else requested
    # Unigram and WordPiece entries can only be checked against protected words after learning; learn
    # some spare ones so that dropped entries are replaced. (BPE blocks protected pairs while learning.)
    spare = budget // 4 if protected and spec["model"]["type"] != "BPE" else 0
    learned = learn_extension(ctx, backend, spec, train[:MAX_WORD_SAMPLE_DOCS], budget + spare, protected)
    extension, dropped = keep_protected_words(backend, spec, learned, protected) if protected else (learned, 0)
    extension = _prefix(extension, budget)
    search = None
    if requested == "auto":
        # Every candidate is a prefix of the one learned list (see extend_size): learned once, cut here.
        search = search_size(ctx, base_path, base_tokenizer, spec, extension, valid)
        extension, curve = _prefix(extension, search.chosen), search.curve
    else:
        curve = gain_curve(spec, extension, valid[:CURVE_SAMPLE_DOCS])
    new_spec, new_ids = apply_extension(spec, extension)

    folder = ctx.out / "model"
    folder.mkdir()
    save_extended_tokenizer(base_tokenizer, new_spec, folder)
    extended_tokenizer = load_tokenizer(folder, trust)
    checks = check_tokenizer(base_tokenizer, extended_tokenizer, valid)
    checks["protected_words"] = len(protected)
    checks["tokens_dropped_to_protect_words"] = dropped

    old_rows = _embedding_rows(base_path, trust)
    vocabulary = max(len(extended_tokenizer), max(new_ids, default=-1) + 1)
    # With no new token the model is left exactly as it was: no padding either.
    multiple = config.get("extend.pad_to_multiple_of") if new_ids else 1
    pieces = [base_pieces(backend, token) for token in extension.tokens]
    # Statistics come from the real vocabulary only: some models pad their matrix with unused rows.
    trained_rows = min(old_rows, len(base_tokenizer))
    base_tokens = token_strings(base_tokenizer, trained_rows)
    new_tokens = readable(extension.tokens, is_byte_level_tokenizer(base_tokenizer))
    spaces = SpaceInputs(extended_tokenizer, base_tokenizer, train, trained_rows, list(new_ids))

    def make_model(method: str):
        model = _load_base(base_path, trust, base_tokenizer, old_rows)
        rows = resize_embeddings(model, max(old_rows, vocabulary), multiple)
        tied = initialise_rows(model, method, new_ids, trained_rows, pieces, config.get("project.seed"), base_tokens,
                               new_tokens, token_space_for(method, spaces, ctx) if new_ids else None)
        _fill_padding(model, max(old_rows, vocabulary), trained_rows)
        return model, {"tied_embeddings": tied, "embedding_rows": {"base": old_rows, "extended": rows,
                                                                   "padding": rows - vocabulary}}

    tokens = [{"id": i, "token": t, "base_pieces": p} for i, t, p in zip(new_ids, extension.tokens, pieces)]
    atomic_write_json(ctx.out / "new_tokens.json", tokens)
    return {
        "method": extension.method, "added_tokens": len(new_ids), "make_model": make_model,
        "requested_tokens": requested, "gain_curve": curve, "tokenizer": extended_tokenizer, "checks": checks,
        "shown": extension.tokens[:8], "auto": _search_summary(search), "search": search,
    }


# --- extend.num_new_tokens = "auto" -------------------------------------------------------------


def search_size(ctx, base_path: Path, base_tokenizer, spec: dict, extension: Extension, valid: list[str]) -> SizeSearch:
    """Tokens per word for every candidate size (prefixes of ``extension``), zero-shot bits per byte for
    those ``choose_size`` needs, and its choice.

    The zero-shot sample is the one the step reports afterwards (extend.zero_shot_max_bytes of the
    valid split, or the probe's sample when diagnostics are off), so the chosen size's reported
    zero-shot score is the one it was chosen by. Never the test split: it is not read here."""
    started = time.time()
    config, console = ctx.config, ctx.console
    trust = config.get("project.trust_remote_code")
    method = search_init(methods_to_try(config))
    sample = sample_by_bytes(valid, config.get("extend.zero_shot_max_bytes") or PROBE_VALID_BYTES)
    sizes = candidate_sizes(len(extension.tokens))
    sample_bytes = len("\n".join(sample).encode("utf-8"))
    console.print(f"  auto size: candidates {', '.join(f'{s:,}' for s in sizes)} new tokens, scored as needed on "
                  f"{sample_bytes:,} bytes of valid text, rows by {method} ...")
    with out_of_memory_becomes("out of memory scoring candidate extension sizes: lower extend.zero_shot_max_bytes "
                               "or set a fixed extend.num_new_tokens"):
        rows = _prefix_rows(ctx, base_path, base_tokenizer, spec, extension, method)
        with tempfile.TemporaryDirectory(prefix="candidates-", dir=ctx.out) as scratch:
            def tokenizer_for(size: int):
                if size == 0:
                    return base_tokenizer  # the honest baseline: the base model exactly as it is
                folder = Path(scratch) / str(size)
                save_extended_tokenizer(base_tokenizer, apply_extension(spec, _prefix(extension, size))[0], folder)
                return load_tokenizer(folder, trust)

            def show(size: int, tokens_per_word: float, bpb: float) -> None:
                console.print(f"    {size:>6,} new tokens: tokens/word {tokens_per_word:.3f}, zero-shot bits/byte {bpb:.4f}")

            chosen, reason, curve = search_sizes(rows, tokenizer_for, sizes, sample, valid[:CURVE_SAMPLE_DOCS], show)
        del rows
    if chosen:
        console.print(f"  auto size: {chosen:,} new tokens ({reason})")
    else:
        console.print(f"  extension skipped: {reason}; the base tokenizer and model are kept")
    return SizeSearch(chosen, reason, curve, method, sample_bytes, time.time() - started)


def _prefix_rows(ctx, base_path: Path, base_tokenizer, spec: dict, extension: Extension, method: str) -> PrefixRows:
    """The base model and ``method``'s rows for every entry of ``extension``, once (see PrefixRows)."""
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    backend = base_tokenizer.backend_tokenizer
    old_rows = _embedding_rows(base_path, trust)
    trained_rows = min(old_rows, len(base_tokenizer))
    model = _load_base(base_path, trust, base_tokenizer, old_rows)
    base_rows = [weight.detach().clone() for weight in embedding_parameters(model)]
    _, new_ids = apply_extension(spec, extension)
    if new_ids:
        resize_embeddings(model, max(old_rows, max(new_ids) + 1), 1)
        pieces = [base_pieces(backend, token) for token in extension.tokens]
        initialise_rows(model, method, new_ids, trained_rows, pieces, config.get("project.seed"),
                        token_strings(base_tokenizer, trained_rows),
                        readable(extension.tokens, is_byte_level_tokenizer(base_tokenizer)))
    new_rows = [weight.detach()[new_ids].clone() for weight in embedding_parameters(model)]
    return PrefixRows(model, base_rows, new_ids, new_rows, trained_rows, config.get("extend.pad_to_multiple_of"))


def _search_summary(search: SizeSearch | None) -> dict | None:
    if search is None:
        return None
    scored = sum(1 for point in search.curve if point["zero_shot_bits_per_byte"] is not None)
    return {"chosen": search.chosen, "reason": search.reason, "init": search.init, "sample_bytes": search.sample_bytes,
            "sizes_scored": scored, "seconds": round(search.seconds, 1)}


_BYTE_LEVEL_CHAR = {byte: char for char, byte in byte_level_alphabet().items()}


def _surface(token: str, byte_level: bool) -> bytes | None:
    """The bytes a vocabulary entry spells, a marked space (``Ġ``, ``▁``) as a space; None if not text."""
    if byte_level:
        return byte_level_to_bytes(token)
    if BYTE_PIECE.match(token):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode("utf-8")


def _surface_index(tokenizer) -> dict[bytes, int]:
    """Surface bytes → id. Bytes, not text: byte-level vocabularies hold pieces of characters too."""
    byte_level = is_byte_level_tokenizer(tokenizer)
    special = set(tokenizer.all_special_tokens)
    index = {}
    # Real tokens before byte-fallback pieces: "a" must map to the piece "a", not to <0x61>.
    ranked = sorted(tokenizer.get_vocab().items(), key=lambda item: (bool(BYTE_PIECE.match(item[0])), item[1]))
    for token, idx in ranked:
        surface = _surface(token, byte_level)
        if surface and token not in special:
            index.setdefault(surface, idx)
    return index


def _base_pieces_of(base_tokenizer, base_index: dict[bytes, int], surface: bytes | None) -> list[int]:
    """The base ids that spell ``surface``, split by the base model alone (no dummy prefix added):
    in its own alphabet when the bytes are whole text, else byte by byte."""
    if surface is None:
        return []
    try:
        text = surface.decode("utf-8")
    except UnicodeDecodeError:
        return [base_index[bytes([b])] for b in surface if bytes([b]) in base_index]
    if is_byte_level_tokenizer(base_tokenizer):
        text = "".join(_BYTE_LEVEL_CHAR[b] for b in surface)
    else:
        text = text.replace(" ", "▁")
    return base_pieces(base_tokenizer.backend_tokenizer, text)


def _replace(ctx, base_path: Path, base_tokenizer, train: list[str]) -> dict:
    """Swap in the target tokenizer; rows of tokens the base also spells are copied, the rest initialised."""
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    target = load_tokenizer(ctx.output_of("tokenizer") / "hf", trust)
    base_index = _surface_index(base_tokenizer)
    old_rows = _embedding_rows(base_path, trust)
    trained_rows = min(old_rows, len(base_tokenizer))
    size = len(target)
    target_byte_level = is_byte_level_tokenizer(target)
    special = set(target.all_special_tokens)
    surfaces = {idx: _surface(token, target_byte_level) for token, idx in target.get_vocab().items() if token not in special}
    pieces = [_base_pieces_of(base_tokenizer, base_index, surfaces.get(i)) for i in range(size)]
    shared = {idx: base_index[surface] for idx, surface in surfaces.items() if surface in base_index}
    base_tokens, target_tokens = token_strings(base_tokenizer, trained_rows), token_strings(target, size)
    spaces = SpaceInputs(target, base_tokenizer, train, trained_rows, list(range(size)), base_of_token=shared)

    def make_model(method: str):
        model = _load_base(base_path, trust, base_tokenizer, old_rows)
        tied = _initialise_replacement(model, method, old_rows, trained_rows, size, pieces, shared, base_tokens,
                                       target_tokens, token_space_for(method, spaces, ctx), config.get("project.seed"))
        rows = resize_embeddings(model, size, config.get("extend.pad_to_multiple_of"))
        _fill_padding(model, size, size)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(target, name)
            setattr(model.config, name, value)
            if getattr(model, "generation_config", None) is not None:
                setattr(model.generation_config, name, value)
        return model, {"tied_embeddings": tied, "embedding_rows": {"base": old_rows, "extended": rows, "padding": rows - size}}

    atomic_write_json(ctx.out / "new_tokens.json", [
        {"id": i, "token": target.convert_ids_to_tokens(i), "base_pieces": pieces[i]} for i in range(size) if i not in shared
    ])
    return {
        "method": "replace", "added_tokens": size - len(shared), "make_model": make_model,
        "requested_tokens": size, "gain_curve": [], "tokenizer": target,
        # Round trip of the target tokenizer is the tokenizer step's check (tokenizer/metrics.json).
        "checks": {"rows_copied_from_base": len(shared)},
        "shown": [t for t in target.convert_ids_to_tokens(list(range(min(size, 40)))) if t][:8],
    }


def _initialise_replacement(model, method, old_rows, trained_rows, size, pieces, shared, base_tokens, target_tokens,
                            token_space, seed) -> bool:
    """Rows [base | target] in one matrix (so initialisers see the base rows as usual), shared tokens
    copied from their base row, then the target rows moved to the front."""
    import torch

    resize_embeddings(model, old_rows + size, 1)
    new_ids = [old_rows + i for i in range(size)]
    tied = initialise_rows(model, method, new_ids, trained_rows, pieces, seed, base_tokens, target_tokens, token_space)
    matrices, _ = _matrices(model)
    with torch.no_grad():
        for weight in matrices:
            if shared:
                targets = torch.tensor([old_rows + idx for idx in shared], device=weight.device)
                weight[targets] = weight[torch.tensor(list(shared.values()), device=weight.device)]
            weight[:size] = weight[old_rows:].clone()
    return tied


def _load_base(base_path: Path, trust: bool, base_tokenizer, old_rows: int):
    model = load_model(base_path, trust)
    check_vocabulary_fits(model, base_tokenizer, base_path)
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != old_rows:
        raise LangbuildError(f"{base_path}: the config says {old_rows:,} vocabulary rows but the embedding matrix has "
                             f"{rows:,}: fix vocab_size in its config.json")
    return model


def _embedding_rows(base_path: Path, trust: bool) -> int:
    """Rows of the base model's input embedding matrix, from its config (no weights loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_path, trust_remote_code=trust)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.vocab_size)


def prepare(ctx) -> dict:
    """Everything up to the embedding rows: the new tokenizer (saved in ``ctx.out/model``) and a
    ``make_model(method)`` that builds the resized, initialised model. Benchmarks reuse this."""
    config = ctx.config
    check_init_inputs(config)
    trust = config.get("project.trust_remote_code")
    selection = json.loads((ctx.output_of("select") / "selection.json").read_text())
    # Resolved again rather than read from selection.json: the cache or the project may have moved.
    base_path = resolve_model(selection["chosen"], ctx.project.root, trust)
    base_tokenizer = load_tokenizer(base_path, trust)
    train = list(read_split(ctx.output_of("corpus"), "train"))
    valid = list(read_split(ctx.output_of("corpus"), "valid"))
    if config.get("extend.mode") == "replace":
        result = _replace(ctx, base_path, base_tokenizer, train)
        (ctx.out / "model").mkdir()
        result["tokenizer"].save_pretrained(ctx.out / "model")
    else:
        result = _extend(ctx, base_path, base_tokenizer, train, valid)
    return {**result, "base_path": base_path, "base_tokenizer": base_tokenizer, "train": train, "valid": valid,
            "base_model": selection["chosen"]}


def run(ctx) -> dict:
    config = ctx.config
    trust = config.get("project.trust_remote_code")
    mode = config.get("extend.mode")
    result = prepare(ctx)
    base_path, base_tokenizer, train, valid = (result.pop(k) for k in ("base_path", "base_tokenizer", "train", "valid"))
    new_tokenizer = result.pop("tokenizer")
    folder = ctx.out / "model"

    texts = zero_shot_texts(ctx, valid)
    init, comparison = _choose_init(ctx, result["make_model"], new_tokenizer, train, valid, texts,
                                    result["added_tokens"] > 0)
    model, shape = result.pop("make_model")(init)
    model.save_pretrained(folder)
    zero_shot = _scored_by_search(result.pop("search", None), init, texts)
    remaining = {side: sample for side, sample in texts.items() if side not in zero_shot}
    if remaining:
        ctx.console.print("  zero-shot bits per byte (before any training) ...")
        # The base and the extended model are on the device together here, nowhere else in extend.
        with out_of_memory_becomes("out of memory scoring the base and the extended model side by side: "
                                   "set extend.zero_shot_max_bytes = 0 to skip the zero-shot scores"):
            base_model = load_model(base_path, trust)
            zero_shot.update(zero_shot_diagnostics(base_model, base_tokenizer, model, new_tokenizer, remaining))
        del base_model
    del model

    before = tokenizer_stats(hf_encoder(base_tokenizer), valid)
    after = tokenizer_stats(hf_encoder(new_tokenizer), valid)
    shown = result.pop("shown")
    metrics = {
        "base_model": result["base_model"],
        "mode": mode,
        "method": result["method"], "init": init, "tied_embeddings": shape["tied_embeddings"],
        "added_tokens": result["added_tokens"], "requested_tokens": result["requested_tokens"],
        "vocab_size": {"base": len(base_tokenizer), "extended": len(new_tokenizer)},
        "embedding_rows": shape["embedding_rows"],
        "valid_tokens_per_word": {"base": before["tokens_per_word"], "extended": after["tokens_per_word"]},
        "gain_curve": result["gain_curve"],
        "auto_size": result.get("auto"),
        "init_comparison": comparison,
        "zero_shot_bits_per_byte": zero_shot,
        "checks": result["checks"],
    }
    atomic_write_json(ctx.out / "metrics.json", metrics)
    ctx.console.print(
        f"  {mode}: {result['added_tokens']:,} new tokens by {result['method']} "
        f"({', '.join(repr(t) for t in shown)}{', ...' if result['added_tokens'] > len(shown) else ''}); "
        f"valid tokens/word {before['tokens_per_word']:.3f} → {after['tokens_per_word']:.3f}; "
        f"embedding rows {shape['embedding_rows']['base']:,} → {shape['embedding_rows']['extended']:,}; init {init}"
    )
    _print_zero_shot(ctx.console, zero_shot)
    _warn_if_worse(ctx.console, zero_shot, result["added_tokens"], init, result.get("auto"))
    return {"added_tokens": result["added_tokens"], "tokens_per_word": after["tokens_per_word"]}


def _scored_by_search(search: SizeSearch | None, init: str, texts: dict) -> dict:
    """The target zero-shot scores the size search already computed, when they are this very model's:
    the same sample and rows that do not depend on the candidate (subword-mean, mean). Saves two
    forward passes over the sample."""
    if search is None or init != search.init or init not in ("subword-mean", "mean") or "target" not in texts:
        return {}
    if len("\n".join(texts["target"]).encode("utf-8")) != search.sample_bytes:
        return {}
    scores = {p["new_tokens"]: p["zero_shot_bits_per_byte"] for p in search.curve}
    base, extended = scores[0], scores[search.chosen]  # both scored: the rule always scores 0 and its choice
    return {"target": {"base": base, "extended": extended, "ratio": extended / base if base else None,
                       "bytes": search.sample_bytes}}


def _warn_if_worse(console, zero_shot: dict, added: int, init: str, auto: dict | None) -> None:
    """One line when the extension starts worse than the base on held-out target text.

    Not extending is the honest baseline: a fixed size that loses to it before any training should be
    a deliberate choice. Auto's own choice never does with the rows it was scored with; it can only
    when the probe then keeps another initialisation (extend.init = auto or extend.compare)."""
    target = zero_shot.get("target")
    if not added or not target or target["extended"] <= target["base"]:
        return
    hint = (f"auto chose the size with {auto['init']} rows, which did not start worse; the probe kept {init} "
            "for its lower bits/byte after the probe's training" if auto else
            'extend.num_new_tokens = "auto" adds only a size that does not')
    console.print(f"  [yellow]warning: with {added:,} new tokens (init {init}) held-out bits/byte before training is "
                  f"{target['extended']:.3f}, worse than the base model's {target['base']:.3f}; {hint}[/]")


def _choose_init(ctx, make_model, tokenizer, train: list[str], valid: list[str], texts: dict, any_new: bool):
    """extend.init, or the probe winner among several methods; and the comparison table ([] if none)."""
    methods = methods_to_try(ctx.config)
    if len(methods) == 1 or not any_new:
        return methods[0], []
    ctx.console.print(f"  comparing {', '.join(methods)} by a {ctx.config.get('extend.probe_steps')}-step probe ...")
    sample = texts.get("target") or sample_by_bytes(valid, PROBE_VALID_BYTES)
    precision = resolve_precision(ctx.config.get("train.precision")).name  # the probe trains as train will
    with out_of_memory_becomes("out of memory in the probe that compares initialisations (it trains the "
                               "embeddings): set extend.compare = [] and a fixed extend.init to skip it"):
        results = compare_methods(methods, make_model, tokenizer, train, sample, ctx.config.get("extend.probe_steps"),
                                  ctx.config.get("project.seed"), ctx.console, precision)
    best = best_method(results)
    table = [{"method": r.method, "zero_shot_bits_per_byte": r.zero_shot_bpb, "probe_bits_per_byte": r.probe_bpb,
              "seconds": r.seconds, "chosen": r.method == best} for r in results]
    _write_comparison(ctx.out / "init_comparison.md", table, ctx.config.get("extend.probe_steps"))
    ctx.console.print(f"  kept {best} (lowest held-out bits per byte after the probe)")
    return best, table


def _write_comparison(path: Path, table: list[dict], steps: int) -> None:
    lines = [f"| init | held-out bits/byte at start | after {steps} embeddings-only steps | seconds |", "|---|---|---|---|"]
    for row in table:
        mark = " (kept)" if row["chosen"] else ""
        lines.append(f"| {row['method']}{mark} | {row['zero_shot_bits_per_byte']:.4f} | {row['probe_bits_per_byte']:.4f} "
                     f"| {row['seconds']:.0f} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _print_zero_shot(console, zero_shot: dict) -> None:
    for side, row in zero_shot.items():
        console.print(f"  zero-shot {side} bits/byte: base {row['base']:.3f}, extended {row['extended']:.3f} "
                      f"(× {row['ratio']:.3f})")
