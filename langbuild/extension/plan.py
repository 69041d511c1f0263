"""The extend step up to the embedding rows: the new tokenizer, its checks, and a plan for the rows.

``plan_extension`` adds learned entries to the base tokenizer (``extend.mode = extend``);
``plan_replacement`` swaps in the target tokenizer (``extend.mode = replace``). Both save the
tokenizer into ``out/model`` and ``out/new_tokens.json`` and return a :class:`Prepared` whose
``model.build(method)`` makes the resized, initialised model. Settings arrive as plain values in an
:class:`ExtensionRequest`, so benchmarks can call this without a project.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.errors import out_of_memory_becomes
from ..embedding_init.model import BaseModel, ExtendedModel, ReplacedModel
from ..embedding_init.probe import zero_shot_diagnostics
from ..embedding_init.spaces import WechselFiles
from ..models.loading import load_model, load_tokenizer
from ..text.textio import sample_by_bytes
from .learning import learn_entries
from .size import (
    AUTO_MAX_TOKENS,
    CURVE_SAMPLE_DOCS,
    SizeSearch,
    gain_curve,
    search_init,
    search_size,
    zero_shot_from_search,
)
from .tokenizer_file import check_tokenizer, save_extended_tokenizer
from .vocabulary import apply_extension, prefix


@dataclass(frozen=True)
class ExtensionRequest:
    """The extend settings that shape the tokenizer and the row plan, read once by the step."""

    requested_tokens: int | str     # extend.num_new_tokens: a count, or "auto"
    min_frequency: int
    protected: Counter              # words whose tokenization must not change
    target_tokenizer: Path          # the tokenizer step's output folder
    init_methods: list[str]         # the methods the probe may compare (auto scores with one of them)
    zero_shot_sample_bytes: int     # held-out bytes auto scores each candidate size on
    seed: int
    pad_to_multiple_of: int
    wechsel: WechselFiles


@dataclass
class Prepared:
    """Everything up to the embedding rows: the new tokenizer (saved in ``out/model``) and ``model``,
    whose ``build(method)`` makes the resized, initialised model. Benchmarks reuse this."""

    base_model: str  # the chosen model's name, as select wrote it
    base: BaseModel
    train: list[str]
    valid: list[str]
    tokenizer: object
    model: ExtendedModel | ReplacedModel | None  # None once the step has built its model: frees the token spaces
    method: str  # how the new entries were made (continued BPE, Unigram pieces, ..., or "replace")
    added_tokens: int
    requested_tokens: int | str
    gain_curve: list[dict]
    checks: dict
    shown: list[str]  # a few new tokens for the step's line
    search: SizeSearch | None = None


def _row_settings(request: ExtensionRequest, console) -> dict:
    return {"multiple": request.pad_to_multiple_of, "seed": request.seed, "wechsel": request.wechsel,
            "console": console}


def plan_extension(name: str, base: BaseModel, train: list[str], valid: list[str], request: ExtensionRequest,
                   out: Path, console) -> Prepared:
    """New entries in the base tokenizer's own model; every base id kept."""
    backend = base.tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    requested = request.requested_tokens
    budget = AUTO_MAX_TOKENS if requested == "auto" else requested
    extension, dropped = learn_entries(backend, spec, train, budget, request.min_frequency, request.protected,
                                       request.target_tokenizer)
    search = None
    if requested == "auto":
        # Every candidate is a prefix of the one learned list (see extension.size): learned once, cut here.
        sample = sample_by_bytes(valid, request.zero_shot_sample_bytes)
        search = search_size(base, spec, extension, valid, sample, search_init(request.init_methods),
                             request.seed, request.pad_to_multiple_of, out, console)
        extension, curve = prefix(extension, search.chosen), search.curve
    else:
        curve = gain_curve(spec, extension, valid[:CURVE_SAMPLE_DOCS])
    new_spec, new_ids = apply_extension(spec, extension)

    folder = out / "model"
    folder.mkdir()
    save_extended_tokenizer(base.tokenizer, new_spec, folder)
    tokenizer = load_tokenizer(folder, base.trust_remote_code)
    checks = check_tokenizer(base.tokenizer, tokenizer, valid)
    checks["protected_words"] = len(request.protected)
    checks["tokens_dropped_to_protect_words"] = dropped
    model = ExtendedModel.plan(base, extension, new_ids, tokenizer, train, **_row_settings(request, console))
    atomic_write_json(out / "new_tokens.json", [{"id": i, "token": t, "base_pieces": p}
                                                for i, t, p in zip(new_ids, extension.tokens, model.pieces)])
    return Prepared(name, base, train, valid, tokenizer, model, extension.method, len(new_ids), requested, curve,
                    checks, extension.tokens[:8], search)


def plan_replacement(name: str, base: BaseModel, train: list[str], valid: list[str], request: ExtensionRequest,
                     out: Path, console) -> Prepared:
    """Swap in the target tokenizer; rows of tokens the base also spells are copied, the rest initialised."""
    target = load_tokenizer(request.target_tokenizer / "hf", base.trust_remote_code)
    model = ReplacedModel.plan(base, target, train, **_row_settings(request, console))
    size, shared = model.size, model.shared
    atomic_write_json(out / "new_tokens.json", [
        {"id": i, "token": target.convert_ids_to_tokens(i), "base_pieces": model.pieces[i]}
        for i in range(size) if i not in shared
    ])
    (out / "model").mkdir()
    target.save_pretrained(out / "model")
    # Round trip of the target tokenizer is the tokenizer step's check (tokenizer/metrics.json).
    shown = [t for t in target.convert_ids_to_tokens(list(range(min(size, 40)))) if t][:8]
    return Prepared(name, base, train, valid, target, model, "replace", size - len(shared), size, [],
                    {"rows_copied_from_base": len(shared)}, shown)


def zero_shot_scores(prepared: Prepared, model, texts: dict[str, list[str]], init: str, console) -> dict:
    """Base vs extended bits per byte before training, per side of ``texts``; the size search's scores
    are reused where it already measured them."""
    zero_shot = zero_shot_from_search(prepared.search, init, texts)
    remaining = {side: sample for side, sample in texts.items() if side not in zero_shot}
    if not remaining:
        return zero_shot
    console.print("  zero-shot bits per byte (before any training) ...")
    base = prepared.base
    # The base and the extended model are on the device together here, nowhere else in extend.
    with out_of_memory_becomes("out of memory scoring the base and the extended model side by side: "
                               "set extend.zero_shot_max_bytes = 0 to skip the zero-shot scores"):
        base_model = load_model(base.path, base.trust_remote_code)
        zero_shot.update(zero_shot_diagnostics(base_model, base.tokenizer, model, prepared.tokenizer, remaining,
                                                   console))
    return zero_shot
