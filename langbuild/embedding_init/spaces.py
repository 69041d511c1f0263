"""Auxiliary token spaces: the vectors FOCUS, TokenAdapt and WECHSEL mix base rows by, and token strings.

A space is built at most once per kind for one extension (``SpaceInputs.cache``), however many
methods the probe compares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..extension import byte_level_to_text, is_byte_level_tokenizer
from ..packaged.reference_texts import text_path
from ..tokenization.statistics import hf_batch_encoder, hf_encoder
from .token_space import TokenSpace

CORPUS_SPACE_METHODS = ("focus", "tokenadapt")  # methods that mix base rows by corpus-trained token vectors


@dataclass(frozen=True)
class WechselFiles:
    """extend.source_vectors, extend.target_vectors and extend.dictionary as set (resolved against
    ``root``), and extend.max_word_vectors. Read only when WECHSEL's space is built."""

    source_vectors: str | None
    target_vectors: str | None
    dictionary: str | None
    root: Path
    max_word_vectors: int | None


@dataclass
class SpaceInputs:
    """What building a token space needs, for both modes.

    ``token_ids`` are the ids the new tokenizer gives the new rows (in extend mode the new ids; in
    replace mode every target id); ``base_of_token`` maps new-tokenizer ids that *are* base tokens to
    their base row (in extend mode every id below ``old_rows`` is its own base row). ``seed`` seeds
    the corpus token vectors; ``wechsel`` names WECHSEL's files (None: no WECHSEL space can be built).
    """

    new_tokenizer: object
    base_tokenizer: object
    train: list[str]
    old_rows: int
    token_ids: list[int]
    base_of_token: dict[int, int] | None = None  # None: identity below old_rows (extend mode)
    seed: int = 0
    wechsel: WechselFiles | None = None
    cache: dict[str, TokenSpace] = field(default_factory=dict)


def token_space_for(method: str, inputs: SpaceInputs, console) -> TokenSpace | None:
    """The auxiliary space ``method`` mixes rows by (built once per kind and reused), or None."""
    if method in CORPUS_SPACE_METHODS:
        kind = "corpus"
    elif method == "wechsel":
        kind = "wechsel"
    else:
        return None
    if kind not in inputs.cache:
        started = time.time()
        inputs.cache[kind] = corpus_space(inputs, console) if kind == "corpus" else wechsel_space(inputs)
        known = int(inputs.cache[kind].new_known.sum())
        console.print(f"  {kind} token vectors: {known:,} of {len(inputs.token_ids):,} new tokens placed "
                      f"({time.time() - started:.0f} s)")
    return inputs.cache[kind]


def corpus_space(inputs: SpaceInputs, console=None) -> TokenSpace:
    """FOCUS's space: token vectors trained on the train split as the new tokenizer cuts it (its epochs
    shown on ``console``)."""
    import torch

    from .token_vectors import train_token_vectors

    sequences = hf_batch_encoder(inputs.new_tokenizer)(inputs.train)
    size = max([len(inputs.new_tokenizer), inputs.old_rows, *[i + 1 for i in inputs.token_ids]])
    strings = token_texts(inputs.new_tokenizer, size)
    vectors, trained, spelled = train_token_vectors(sequences, size, inputs.seed, strings=strings, console=console)
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


def wechsel_space(inputs: SpaceInputs) -> TokenSpace:
    """WECHSEL's space: the base and new tokens placed in aligned word-vector spaces of the two languages.

    The extend step checks the files are set (``check_init_inputs``) before any work."""
    from .word_vectors import read_dictionary, read_word_vectors, wechsel_token_space

    files = inputs.wechsel
    if files is None:
        raise ValueError("wechsel needs its word vectors and dictionary (SpaceInputs.wechsel)")

    def read_vectors(value, setting: str):
        return read_word_vectors(text_path(value, files.root, setting), files.max_word_vectors, setting=setting)

    source_words, source_vectors = read_vectors(files.source_vectors, "extend.source_vectors")
    target_words, target_vectors = read_vectors(files.target_vectors, "extend.target_vectors")
    dictionary = read_dictionary(text_path(files.dictionary, files.root, "extend.dictionary"), setting="extend.dictionary")
    return wechsel_token_space(source_words, source_vectors, target_words, target_vectors, dictionary,
                               hf_encoder(inputs.base_tokenizer), hf_encoder(inputs.new_tokenizer), inputs.old_rows,
                               inputs.token_ids)


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
