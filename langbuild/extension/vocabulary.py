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
  most frequent first. Each takes its log-probability from the target model, capped at the base's
  lowest score (in practice nearly all sit at the cap, ordered by frequency): a new piece never
  outranks an old one, yet frequent pieces stay usable. (Scores far below every old score left ~95 %
  of new pieces unused on held-out text; uncapped target scores re-tokenised most English lines.)
* WordPiece (BERT): see ``continue_wordpiece``.
"""

from __future__ import annotations

import heapq
import json
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..core.errors import LangbuildError
from ..tokenization.statistics import BYTE_PIECE

_METASPACE = "▁"


@dataclass
class Extension:
    """The new entries, in id order, and what the base tokenizer made of each."""

    tokens: list[str] = field(default_factory=list)
    # BPE: the merge that builds each token (None for a single character, which needs none)
    merges: list[tuple[str, str] | None] = field(default_factory=list)
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

    def __init__(self, words: list[list[str]], freqs: list[int], join: Callable[[str, str], str] = operator.add):
        self.words, self.freqs, self.join = words, freqs, join
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
        merged = self.join(*pair)
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


def _segment(backend, words: Counter, vocab) -> tuple[list[list[str]], list[int]]:
    """The base model's pieces for each word, keeping only words that merges can still shorten."""
    unk = _unknown_token(backend)
    segmented, freqs = [], []
    for word, freq in words.items():
        pieces = [token.value for token in backend.model.tokenize(word)]
        # Byte-fallback pieces are emitted after merging fails, and <unk> stands for text the model
        # cannot spell: merges built on either would decode to something else than the text.
        if len(pieces) > 1 and not any(BYTE_PIECE.match(p) or p not in vocab or p == unk for p in pieces):
            segmented.append(pieces)
            freqs.append(freq)
    return segmented, freqs


def protected_pairs(backend, protected: Counter, min_count: int = 1) -> set[tuple[str, str]]:
    """Adjacent base-piece pairs inside protected words: a merge of any of them would re-tokenise one.

    A merge fires only on a pair that is present, and the pieces of a protected word never change
    while no merge fires on it; so blocking these pairs keeps every protected word exactly as the
    base tokenizer splits it (words occurring fewer than ``min_count`` times are not protected).
    """
    pairs: set[tuple[str, str]] = set()
    for word, count in protected.items():
        if count >= min_count:
            pieces = [token.value for token in backend.model.tokenize(word)]
            pairs.update(zip(pieces, pieces[1:]))
    return pairs


def _learn_merges(pairs: _PairCounts, known: set[str], max_tokens: int, min_frequency: int,
                  blocked: set[tuple[str, str]], method: str) -> Extension:
    extension = Extension(method=method)
    blocked = set(blocked)
    while len(extension.tokens) < max_tokens:
        best = pairs.pop_best(blocked)
        if best is None or best[1] < min_frequency:
            break
        pair, _ = best
        merged = pairs.join(*pair)
        if merged in known:
            blocked.add(pair)  # the base already has this string; a second path to it would add nothing
            continue
        pairs.merge(pair)
        known.add(merged)
        extension.tokens.append(merged)
        extension.merges.append(pair)
    return extension


def continue_bpe(backend, spec: dict, texts: Iterable[str], max_tokens: int, min_frequency: int,
                 protected: Counter | None = None) -> Extension:
    """Learn up to ``max_tokens`` merges on top of the base BPE's segmentation of ``texts``.

    Characters the base vocabulary lacks come first, as entries without a merge: a SentencePiece-style
    BPE (Llama-2, Gemma, Mistral) spells them as byte-fallback pieces or <unk>, which no merge can
    build on, so without them a script the base never saw could gain nothing. (Byte-level BPE has all
    256 bytes and never lacks one.) No merge is learned on a pair found inside a ``protected`` word
    (see ``protected_pairs``).
    """
    from tokenizers import Tokenizer

    model = spec["model"]
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise LangbuildError("this BPE tokenizer uses subword prefixes/suffixes, which extension does not support yet")
    words = corpus_words(backend, texts)
    missing = Counter()
    for word, freq in words.items():
        for char in word:
            if char not in model["vocab"]:
                missing[char] += freq
    characters = [char for char, n in missing.most_common() if n >= min_frequency][:max_tokens]
    extension = Extension(tokens=characters, merges=[None] * len(characters), method="continued-bpe")
    segmenter, vocab = backend, model["vocab"]
    if characters:
        with_characters, _ = apply_extension(spec, extension)
        segmenter, vocab = Tokenizer.from_str(json.dumps(with_characters)), with_characters["model"]["vocab"]
    segmented, freqs = _segment(segmenter, words, vocab)
    blocked = protected_pairs(backend, protected) if protected else set()
    learned = _learn_merges(_PairCounts(segmented, freqs), set(vocab), max_tokens - len(characters), min_frequency,
                            blocked, "continued-bpe")
    extension.tokens += learned.tokens
    extension.merges += learned.merges
    return extension


def _missing_characters(words: Counter, vocab: dict[str, int], prefix: str) -> Counter:
    """WordPiece pieces for single characters the vocabulary lacks, as word starts and as continuations."""
    missing: Counter = Counter()
    for word, freq in words.items():
        for position, char in enumerate(word):
            piece = char if position == 0 else prefix + char
            if piece not in vocab:
                missing[piece] += freq
    return missing


def continue_wordpiece(backend, spec: dict, texts: Iterable[str], max_tokens: int, min_frequency: int,
                       protected: Counter | None = None) -> Extension:
    """New WordPiece entries: the characters the base lacks, then continued BPE on its segmentation.

    WordPiece (BERT) has no merges: it splits a word greedily by the longest vocabulary entry, with
    ``##`` marking pieces that continue a word. A word holding one unknown character becomes [UNK]
    entirely, so the target alphabet's missing characters come first (word-initial and ``##`` forms).
    Then BPE continues over the base's segmentation exactly as for BPE tokenizers, joining
    ``chi`` + ``##chewa`` into ``chichewa``; the learned strings become plain vocabulary entries,
    found by longest match. Protection of source-language words is checked afterwards on the real
    tokenizer (``keep_protected_words``), since longest match is not merge order.
    """
    from tokenizers import Tokenizer

    model = spec["model"]
    prefix = model.get("continuing_subword_prefix", "##")
    words = corpus_words(backend, texts)
    characters = [(piece, n) for piece, n in _missing_characters(words, model["vocab"], prefix).most_common()
                  if n >= min_frequency][:max_tokens]
    extension = Extension(tokens=[piece for piece, _ in characters], method="wordpiece-characters+continued-bpe")
    with_characters, _ = apply_extension(spec, extension)
    segmenter = Tokenizer.from_str(json.dumps(with_characters))
    unk = model.get("unk_token", "[UNK]")
    segmented, freqs = _segment(segmenter, words, with_characters["model"]["vocab"])
    keep = [i for i, pieces in enumerate(segmented) if unk not in pieces]
    pairs = _PairCounts([segmented[i] for i in keep], [freqs[i] for i in keep],
                        join=lambda left, right: left + right[len(prefix):])
    blocked = protected_pairs(backend, protected) if protected else set()
    learned = _learn_merges(pairs, set(with_characters["model"]["vocab"]), max_tokens - len(extension.tokens),
                            min_frequency, blocked, extension.method)
    extension.tokens.extend(learned.tokens)
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
        if piece in have or BYTE_PIECE.match(piece) or not piece.strip(_METASPACE):
            continue
        extension.tokens.append(piece)
        # Capped at the base's floor, and a hair lower for each rank, so that the target's frequency
        # order survives among pieces the cap makes equal.
        extension.scores.append(min(score, floor) - 1e-6 * len(extension.tokens))
        have.add(piece)
    return extension


def _anchor_added_tokens(spec: dict) -> None:
    """Give added tokens that sit past the model's vocabulary (Llama-3's specials, say) a vocabulary entry.

    The tokenizers library does not keep an added token's id from the file: one the model does not
    know is numbered after the model's vocabulary on load. New entries go exactly there, so they would
    collide; recorded in the model's vocabulary, an added token keeps its id.
    """
    model = spec["model"]
    outside = sorted((tok["id"], tok["content"]) for tok in spec.get("added_tokens", []))
    if model["type"] == "Unigram":
        pieces = {piece for piece, _ in model["vocab"]}
        floor = min((score for _, score in model["vocab"]), default=0.0)
        for token_id, content in outside:
            if content in pieces:
                continue
            if token_id != len(model["vocab"]):
                raise LangbuildError(f"added token {content!r} has id {token_id}, past a gap in the vocabulary: cannot extend safely")
            model["vocab"].append([content, floor - 10.0])  # reached as an added token, never by the model
            pieces.add(content)
    else:
        for token_id, content in outside:
            model["vocab"].setdefault(content, token_id)


def apply_extension(spec: dict, extension: Extension) -> tuple[dict, list[int]]:
    """A copy of the tokenizer spec with the new entries appended; returns it and the new ids."""
    spec = json.loads(json.dumps(spec))
    model = spec["model"]
    if extension.tokens:
        _anchor_added_tokens(spec)
    new_id = next_free_id(spec)
    ids = []
    if model["type"] == "BPE":
        string_merges = bool(model["merges"]) and isinstance(model["merges"][0], str)
        for token, merge in zip(extension.tokens, extension.merges):
            model["vocab"][token] = new_id
            if merge is not None:
                model["merges"].append(f"{merge[0]} {merge[1]}" if string_merges else list(merge))
            ids.append(new_id)
            new_id += 1
    elif model["type"] == "WordPiece":
        for token in extension.tokens:
            model["vocab"][token] = new_id
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
        raise LangbuildError(f"extending a {model['type']} tokenizer is not supported (BPE, Unigram and WordPiece are)")
    return spec, ids


def _unknown_token(backend) -> str | None:
    return getattr(backend.model, "unk_token", None)


def base_pieces(backend, token: str) -> list[int]:
    """The ids the base tokenizer's model splits a new token's string into (for subword-mean).

    The unknown token is left out: its row says "unreadable", not what the new token means; a token
    with no other piece starts from the mean of all rows instead.
    """
    unk = _unknown_token(backend)
    return [piece.id for piece in backend.model.tokenize(token) if piece.value != unk]


def without_tokens(extension: Extension, dropped: set[str]) -> Extension:
    """The extension minus ``dropped`` and, for BPE, every merge that builds on a dropped token."""
    dropped = set(dropped)
    kept = Extension(method=extension.method)
    for index, token in enumerate(extension.tokens):
        merge = extension.merges[index] if extension.merges else None
        if token in dropped or (merge and (merge[0] in dropped or merge[1] in dropped)):
            dropped.add(token)  # later merges built from it can no longer fire
            continue
        kept.tokens.append(token)
        if extension.merges:
            kept.merges.append(merge)
        if extension.scores:
            kept.scores.append(extension.scores[index])
    return kept


def prefix(extension: Extension, count: int) -> Extension:
    """The first ``count`` entries: for BPE a prefix of the merge list is itself a consistent extension."""
    return Extension(extension.tokens[:count], extension.merges[:count], extension.scores[:count], extension.method)


def keep_protected_words(backend, spec: dict, extension: Extension, protected: Counter) -> tuple[Extension, int]:
    """Drop new tokens until every protected word splits exactly as in the base tokenizer.

    Checked on the real extended tokenizer, so it holds for every model type (Unigram's global
    best path and WordPiece's longest match can change a word that contains no new string boundary
    learned for it). Returns the extension and how many tokens were dropped.
    """
    from tokenizers import Tokenizer

    words = list(protected)
    base = [[t.id for t in backend.model.tokenize(word)] for word in words]
    original = len(extension.tokens)
    while True:  # ends: every round that does not stop removes at least one token
        new_spec, new_ids = apply_extension(spec, extension)
        if not new_ids:
            break
        extended = Tokenizer.from_str(json.dumps(new_spec)).model
        token_of = dict(zip(new_ids, extension.tokens))
        offending = set()
        for word, base_ids in zip(words, base):
            ids = [t.id for t in extended.tokenize(word)]
            if ids != base_ids:
                offending.update(token_of[i] for i in ids if i in token_of)
        if not offending:
            break
        extension = without_tokens(extension, offending)
    return extension, original - len(extension.tokens)


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character → byte (bytes that print as themselves keep their character)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[chr(byte)] = byte
        else:
            mapping[chr(256 + shifted)] = byte
            shifted += 1
    return mapping


_BYTE_OF = byte_level_alphabet()


def is_byte_level(spec: dict) -> bool:
    """Whether a tokenizer.json spec writes bytes GPT-2's way (a ByteLevel pre-tokenizer or decoder)."""
    return "ByteLevel" in json.dumps(spec.get("pre_tokenizer")) or "ByteLevel" in json.dumps(spec.get("decoder"))


def is_byte_level_tokenizer(tokenizer) -> bool:
    """Whether a transformers tokenizer's own tokenizer.json writes bytes GPT-2's way."""
    return is_byte_level(json.loads(tokenizer.backend_tokenizer.to_str()))


def byte_level_to_bytes(piece: str) -> bytes | None:
    """The bytes a byte-level BPE token stands for, or None if it is not in the byte-level alphabet."""
    try:
        return bytes(_BYTE_OF[char] for char in piece)
    except KeyError:
        return None


def byte_level_to_text(piece: str) -> str | None:
    """The text a byte-level BPE token spells (``Ġndi`` → `` ndi``), or None if it is not whole UTF-8."""
    raw = byte_level_to_bytes(piece)
    try:
        return None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
