"""How extend starts the new embedding rows: auxiliary token spaces, the probe that compares
initialisations, and the zero-shot diagnostics written after every extension.

The extend step describes *what* to build as a ``make_model(method)`` function (load the base model,
resize, initialise with ``method``, plus whatever its mode needs); this module decides *which*
method: ``extend.init``, or the best of ``extend.compare`` (or of ``AUTO_COMPARE`` for
``extend.init = "auto"``) after an identical short probe of embeddings-only training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.config import AUTO_COMPARE, check_rule
from ..embedding_init.token_space import TokenSpace
from ..extension import byte_level_to_text, is_byte_level
from ..metrics import bits_per_byte, hf_batch_encoder, hf_encoder
from ..reference_texts import read_text_lines, text_path
from ..textio import sample_by_bytes
from ..training.data import batch_indices, pack_blocks
from ..training.stages import embedding_parameters

CORPUS_SPACE_METHODS = ("focus", "tokenadapt")  # methods that mix base rows by corpus-trained token vectors
PROBE_SEQ_LEN = 128
PROBE_BATCH = 4
PROBE_LEARNING_RATE = 1e-3  # embeddings only, no warm-up: the probe is short
PROBE_VALID_BYTES = 10_000  # held-out bytes the probe scores when zero-shot diagnostics are off


def methods_to_try(config) -> list[str]:
    """extend.compare when set; the auto list for init = auto; else just extend.init."""
    compare = list(dict.fromkeys(config.get("extend.compare")))
    if compare:
        return compare
    if config.get("extend.init") == "auto":
        wechsel_ready = all(config.get(f"extend.{key}") for key in ("source_vectors", "target_vectors", "dictionary"))
        return [*AUTO_COMPARE, *(["wechsel"] if wechsel_ready else [])]
    return [config.get("extend.init")]


# --- auxiliary token spaces ---------------------------------------------------------------------


@dataclass
class SpaceInputs:
    """What building a token space needs, for both modes.

    ``token_ids`` are the ids the new tokenizer gives the new rows (in extend mode the new ids; in
    replace mode every target id); ``base_of_token`` maps new-tokenizer ids that *are* base tokens to
    their base row (in extend mode every id below ``old_rows`` is its own base row).
    """

    new_tokenizer: object
    base_tokenizer: object
    train: list[str]
    old_rows: int
    token_ids: list[int]
    base_of_token: dict[int, int] | None = None  # None: identity below old_rows (extend mode)
    cache: dict[str, TokenSpace] = field(default_factory=dict)


def token_space_for(method: str, inputs: SpaceInputs, ctx) -> TokenSpace | None:
    """The auxiliary space ``method`` mixes rows by (built once per kind and reused), or None."""
    if method in CORPUS_SPACE_METHODS:
        kind = "corpus"
    elif method == "wechsel":
        kind = "wechsel"
    else:
        return None
    if kind not in inputs.cache:
        started = time.time()
        inputs.cache[kind] = _corpus_space(inputs, ctx) if kind == "corpus" else _wechsel_space(inputs, ctx)
        known = int(inputs.cache[kind].new_known.sum())
        ctx.console.print(f"  {kind} token vectors: {known:,} of {len(inputs.token_ids):,} new tokens placed "
                          f"({time.time() - started:.0f} s)")
    return inputs.cache[kind]


def _corpus_space(inputs: SpaceInputs, ctx) -> TokenSpace:
    import torch

    from ..token_vectors import train_token_vectors

    sequences = hf_batch_encoder(inputs.new_tokenizer)(inputs.train)
    size = max([len(inputs.new_tokenizer), inputs.old_rows, *[i + 1 for i in inputs.token_ids]])
    strings = token_texts(inputs.new_tokenizer, size)
    vectors, trained, spelled = train_token_vectors(sequences, size, ctx.config.get("project.seed"), strings=strings)
    index = torch.tensor(inputs.token_ids, dtype=torch.long)
    # New tokens too rare to train still have a vector from their spelling; base tokens are anchors
    # only when the target corpus uses them (FOCUS's overlapping tokens with an auxiliary vector).
    new_known = (trained | spelled)[index]
    if inputs.base_of_token is None:
        return TokenSpace(vectors[: inputs.old_rows], trained[: inputs.old_rows].clone(), vectors[index], new_known)
    base = torch.zeros((inputs.old_rows, vectors.shape[1]))
    base_known = torch.zeros(inputs.old_rows, dtype=torch.bool)
    for token, row in inputs.base_of_token.items():  # one entry per shared token: a dict walk, not a tensor loop
        if row < inputs.old_rows and trained[token]:
            base[row], base_known[row] = vectors[token], True
    return TokenSpace(base, base_known, vectors[index], new_known)


def is_byte_level_tokenizer(tokenizer) -> bool:
    return is_byte_level(json.loads(tokenizer.backend_tokenizer.to_str()))


def readable(tokens: list[str], byte_level: bool) -> list[str]:
    """Token strings as text: byte-level BPE writes "é" as "Ã©", which would read as Latin twice."""
    return [(byte_level_to_text(t) or "") for t in tokens] if byte_level else tokens


def token_strings(tokenizer, rows: int) -> list[str]:
    """The text of each id below ``rows`` ("" where an id has none or spells no whole character)."""
    strings = [""] * rows
    for token, idx in tokenizer.get_vocab().items():
        if idx < rows:
            strings[idx] = token
    return readable(strings, is_byte_level_tokenizer(tokenizer))


def token_texts(tokenizer, size: int) -> list[str]:
    """As ``token_strings``, with SentencePiece's word-start mark written as the space it stands for."""
    return [text.replace("▁", " ") for text in token_strings(tokenizer, size)]


def check_init_inputs(config) -> None:
    """Fail before any work when a method to try lacks its inputs (WECHSEL's vectors and dictionary)."""
    check_rule(config, "extend.init")


def _wechsel_space(inputs: SpaceInputs, ctx) -> TokenSpace:
    from ..word_vectors import read_dictionary, read_word_vectors, wechsel_token_space

    config, root = ctx.config, ctx.project.root
    check_init_inputs(config)
    limit = config.get("extend.max_word_vectors")

    def read_vectors(setting: str):
        return read_word_vectors(text_path(config.get(setting), root, setting), limit, setting=setting)

    source_words, source_vectors = read_vectors("extend.source_vectors")
    target_words, target_vectors = read_vectors("extend.target_vectors")
    dictionary = read_dictionary(text_path(config.get("extend.dictionary"), root, "extend.dictionary"), setting="extend.dictionary")
    return wechsel_token_space(source_words, source_vectors, target_words, target_vectors, dictionary,
                               hf_encoder(inputs.base_tokenizer), hf_encoder(inputs.new_tokenizer), inputs.old_rows,
                               inputs.token_ids)


# --- the probe ----------------------------------------------------------------------------------


def train_embeddings_only(model, blocks, steps: int, seed: int, learning_rate: float = PROBE_LEARNING_RATE,
                          every: int = 0, on_step: Callable[[int], None] | None = None,
                          embeddings_only: bool = True, precision: str = "fp32") -> list[float]:
    """``steps`` AdamW steps on the embedding matrices only (or on everything); returns the losses.

    ``on_step(n)`` is called after every ``every``-th step (benchmarks measure along the way). Weight
    decay is 0: decoupled decay would shrink every row whose gradient is zero (STACK.md). In bf16 the
    steps run as ``train`` runs them, over fp32 master weights; the model is fp32 again afterwards."""
    import torch

    from ..training.precision import MasterWeights

    trainable = embedding_parameters(model) if embeddings_only else list(model.parameters())
    for param in model.parameters():
        param.requires_grad_(False)
    for param in trainable:
        param.requires_grad_(True)
    groups = [{"params": trainable}]
    masters = MasterWeights(model, groups, []) if precision == "bf16" else None
    optimizer = torch.optim.AdamW(masters.groups if masters else groups, lr=learning_rate, weight_decay=0.0)
    losses = []
    for step in range(steps):
        model.train()
        batch = blocks[batch_indices(step, PROBE_BATCH, len(blocks), seed)].to(model.device)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masters is not None:
            masters.collect_gradients()
        optimizer.step()
        if masters is not None:
            masters.publish()
        losses.append(float(loss.detach()))
        if on_step and every and (step + 1) % every == 0:
            model.eval()
            on_step(step + 1)
    model.eval()
    if masters is not None:
        masters.release()
    for param in model.parameters():
        param.requires_grad_(True)
    return losses


def probe_blocks(tokenizer, train: list[str], steps: int, seed: int, batch: int = PROBE_BATCH, seq_len: int = PROBE_SEQ_LEN):
    """Enough train documents, in a seeded order, to fill ``steps`` batches once (each block seen once)."""
    import random

    # Text is chosen by bytes, generously (6 bytes per token is more than any tokenizer here averages):
    # fewer blocks than batches would only repeat blocks, but not one block at all is an error.
    needed_bytes = steps * batch * seq_len * 6
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    chosen, size = [], 0
    for index in order:
        chosen.append(train[index])
        size += len(train[index].encode("utf-8"))
        if size >= needed_bytes:
            break
    return pack_blocks(tokenizer, chosen, seq_len)


@dataclass
class ProbeResult:
    method: str
    zero_shot_bpb: float
    probe_bpb: float
    seconds: float


def compare_methods(methods: list[str], make_model: Callable, tokenizer, train: list[str], valid_sample: list[str],
                    steps: int, seed: int, console, precision: str = "fp32") -> list[ProbeResult]:
    """Initialise with each method, score held-out text, train the embeddings ``steps`` steps (in the
    precision ``train`` will use), score again."""
    blocks = probe_blocks(tokenizer, train, steps, seed)
    results = []
    for method in methods:
        started = time.time()
        model, _ = make_model(method)
        zero_shot = bits_per_byte(model, tokenizer, valid_sample)["bits_per_byte"]
        train_embeddings_only(model, blocks, steps, seed, precision=precision)
        probed = bits_per_byte(model, tokenizer, valid_sample)["bits_per_byte"]
        results.append(ProbeResult(method, zero_shot, probed, time.time() - started))
        console.print(f"  probe {method}: held-out bits/byte {zero_shot:.3f} at start, {probed:.3f} after {steps} steps")
        del model
    return results


def best_method(results: list[ProbeResult]) -> str:
    """Lowest held-out bits per byte after the probe; ties go to the earlier (listed first) method."""
    return min(results, key=lambda r: r.probe_bpb).method


# --- zero-shot diagnostics ----------------------------------------------------------------------


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


def zero_shot_diagnostics(base_model, base_tokenizer, model, tokenizer, texts: dict[str, list[str]]) -> dict:
    """Bits per byte of the base and the extended model, before any training, on each held-out text."""
    out = {}
    for side, sample in texts.items():
        base = bits_per_byte(base_model, base_tokenizer, sample)["bits_per_byte"]
        extended = bits_per_byte(model, tokenizer, sample)["bits_per_byte"]
        out[side] = {"base": base, "extended": extended, "ratio": extended / base if base else None,
                     "bytes": len("\n".join(sample).encode("utf-8"))}
    return out
