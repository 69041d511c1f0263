"""Adding target-language tokens to a base tokenizer as real vocabulary entries.

``tokenizer.add_tokens`` is the wrong tool here: added tokens match raw text before the model's
normalisation and pre-tokenisation, so they split source-language words and break round-trips. We
edit the tokenizer's own model instead, keeping every existing id:

* BPE (byte-level like GPT-2/Llama-3/SmolLM, or SentencePiece-style like Llama-2/Gemma): continued
  BPE training ("Teaching Old Tokenizers New Words", Purason et al. 2025). The target corpus is cut
  into words by the base tokenizer's own normaliser and pre-tokeniser and segmented by its own
  merges; BPE then continues on those pieces, and each learned merge is appended with its new token.
  Every new token is therefore reachable, and source-language text barely changes. (Appending the
  merges of a separately trained tokenizer saves only ~10 % on a Latin-script language, because the
  base merges fire first and leave pieces those merges never expected.)
* Unigram (SentencePiece unigram, T5/XLM-R style): the target tokenizer's pieces that the base lacks,
  most frequent first. Each keeps its own log-probability from the target model, capped at the base's
  lowest score: a new piece never outranks an old one, yet frequent pieces stay usable. (Scores
  strictly below every old score left ~95 % of new pieces unused on held-out text; uncapped target
  scores re-tokenised most English lines.)
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .core.errors import LangbuildError

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_METASPACE = "▁"


@dataclass
class Extension:
    """The new entries, in id order, and what the base tokenizer made of each."""

    tokens: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)  # BPE: the merge that builds each token
    scores: list[float] = field(default_factory=list)  # Unigram: each token's log-probability
    method: str = ""


def next_free_id(spec: dict) -> int:
    model = spec["model"]
    vocab_ids = model["vocab"].values() if isinstance(model["vocab"], dict) else range(len(model["vocab"]))
    added = [tok["id"] for tok in spec.get("added_tokens", [])]
    return max([*vocab_ids, *added, -1]) + 1


def _split_metaspace(piece: str) -> list[str]:
    # SentencePiece-style tokenizers may not pre-split at all; count words at "▁" boundaries.
    return [part for part in re.split(f"(?={_METASPACE})", piece) if part]


def corpus_words(backend, texts: Iterable[str]) -> Counter:
    """Word frequencies in the base tokenizer's own alphabet (after its normaliser and pre-tokeniser)."""
    counts: Counter = Counter()
    normalizer, pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    for text in texts:
        for line in text.split("\n"):
            normalized = normalizer.normalize_str(line) if normalizer else line
            pieces = [p for p, _ in pre_tokenizer.pre_tokenize_str(normalized)] if pre_tokenizer else [normalized]
            for piece in pieces:
                counts.update(_split_metaspace(piece))
    return counts


class _PairCounts:
    """Pair frequencies over weighted words, with an index pair → words and a lazy max-heap."""

    def __init__(self, words: list[list[str]], freqs: list[int]):
        self.words, self.freqs = words, freqs
        self.counts: Counter = Counter()
        self.where: dict[tuple[str, str], set[int]] = defaultdict(set)
        for index, symbols in enumerate(words):
            self._add_word(index, symbols, +1)
        self.heap = [(-count, pair) for pair, count in self.counts.items()]
        heapq.heapify(self.heap)

    def _add_word(self, index: int, symbols: list[str], sign: int) -> None:
        freq = self.freqs[index]
        for pair in zip(symbols, symbols[1:]):
            self.counts[pair] += sign * freq
            if sign > 0:
                self.where[pair].add(index)

    def pop_best(self, blocked: set[tuple[str, str]]) -> tuple[tuple[str, str], int] | None:
        while self.heap:
            negative, pair = heapq.heappop(self.heap)
            if pair in blocked:
                continue
            current = self.counts.get(pair, 0)
            if current != -negative:
                # Stale entry: the count changed since the push. Re-queue the live count, so a pair
                # whose count fell (a neighbour was merged away) keeps its place in the queue.
                if current > 0:
                    heapq.heappush(self.heap, (-current, pair))
                continue
            return pair, -negative
        return None

    def merge(self, pair: tuple[str, str]) -> None:
        merged = pair[0] + pair[1]
        touched: set[tuple[str, str]] = set()
        for index in list(self.where.pop(pair, ())):
            symbols = self.words[index]
            self._add_word(index, symbols, -1)
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            self.words[index] = out
            self._add_word(index, out, +1)
            touched.update(zip(out, out[1:]))
        self.counts.pop(pair, None)
        for other in touched:
            if self.counts.get(other, 0) > 0:
                heapq.heappush(self.heap, (-self.counts[other], other))


def continue_bpe(backend, spec: dict, texts: Iterable[str], max_tokens: int, min_frequency: int) -> Extension:
    """Learn up to ``max_tokens`` merges on top of the base BPE's segmentation of ``texts``."""
    model = spec["model"]
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise LangbuildError("this BPE tokenizer uses subword prefixes/suffixes, which extension does not support yet")
    vocab: dict[str, int] = model["vocab"]
    words, freqs = [], []
    for word, freq in corpus_words(backend, texts).items():
        pieces = [token.value for token in backend.model.tokenize(word)]
        # Byte-fallback pieces are emitted after merging fails; merges can never build on them.
        if len(pieces) > 1 and not any(_BYTE_PIECE.match(p) or p not in vocab for p in pieces):
            words.append(pieces)
            freqs.append(freq)
    pairs = _PairCounts(words, freqs)
    extension = Extension(method="continued-bpe")
    blocked: set[tuple[str, str]] = set()
    seen = set(vocab)
    while len(extension.tokens) < max_tokens:
        best = pairs.pop_best(blocked)
        if best is None or best[1] < min_frequency:
            break
        pair, _ = best
        merged = pair[0] + pair[1]
        if merged in seen:
            blocked.add(pair)  # the base already has this string; a second path to it would add nothing
            continue
        pairs.merge(pair)
        seen.add(merged)
        extension.tokens.append(merged)
        extension.merges.append(pair)
    return extension


def unigram_pieces(spec: dict, target_pieces: list[tuple[str, int, float]], max_tokens: int,
                   min_frequency: int) -> Extension:
    """Target pieces (piece, corpus frequency, target score; most frequent first) that the base lacks."""
    vocab = spec["model"]["vocab"]
    have = {piece for piece, _score in vocab}
    floor = min((score for _piece, score in vocab), default=0.0)
    extension = Extension(method="unigram-pieces")
    for piece, freq, score in target_pieces:
        if len(extension.tokens) >= max_tokens or freq < min_frequency:
            break
        if piece in have or _BYTE_PIECE.match(piece) or not piece.strip(_METASPACE):
            continue
        extension.tokens.append(piece)
        extension.scores.append(min(score, floor))
        have.add(piece)
    return extension


def apply_extension(spec: dict, extension: Extension) -> tuple[dict, list[int]]:
    """A copy of the tokenizer spec with the new entries appended; returns it and the new ids."""
    spec = json.loads(json.dumps(spec))
    model = spec["model"]
    new_id = next_free_id(spec)
    ids = []
    if model["type"] == "BPE":
        string_merges = bool(model["merges"]) and isinstance(model["merges"][0], str)
        for token, (left, right) in zip(extension.tokens, extension.merges):
            model["vocab"][token] = new_id
            model["merges"].append(f"{left} {right}" if string_merges else [left, right])
            ids.append(new_id)
            new_id += 1
    elif model["type"] == "Unigram":
        if new_id != len(model["vocab"]):
            raise LangbuildError("this Unigram tokenizer has added tokens after its vocabulary; extension would shift ids")
        for token, score in zip(extension.tokens, extension.scores):
            model["vocab"].append([token, score])
            ids.append(new_id)
            new_id += 1
    else:
        raise LangbuildError(f"extending a {model['type']} tokenizer is not supported yet (BPE and Unigram are)")
    return spec, ids


def base_pieces(backend, token: str) -> list[int]:
    """The ids the base tokenizer's model splits a new token's string into (for subword-mean)."""
    return [piece.id for piece in backend.model.tokenize(token)]
