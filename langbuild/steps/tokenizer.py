"""tokenizer: train a target-language tokenizer on the train split and compare it with the base tokenizers.

Libraries and algorithms (``tokenizer.library`` × ``tokenizer.model_type``):

* SentencePiece unigram or BPE (Kudo 2018; Sennrich et al. 2016; Kudo & Richardson 2018), trained
  with settings under which decode(encode(x)) == x on real text: identity normalisation, no
  whitespace collapsing, full character coverage, and byte fallback for unseen characters
  (``tokenizer.byte_fallback``; without it they become ``<unk>``);
* Hugging Face ``tokenizers``: ``bpe`` is byte-level BPE as in GPT-2 (Radford et al. 2019): text is
  cut into words by the ByteLevel regex and spelled in the 256 byte symbols, so nothing is unknown;
  ``unigram`` is a Unigram LM with SentencePiece's whitespace convention (spaces become "▁", each
  word keeps its leading one) and, with ``tokenizer.byte_fallback``, 256 byte pieces appended.

Training streams the train split: up to ``tokenizer.max_sentences`` documents are kept with a
reservoir sample (Vitter 1985, Algorithm R; seeded by ``project.seed``), so a corpus larger than
memory works. SentencePiece trains on that sample written to a file; ``tokenizers`` trains from an
iterator over the same sample.

``tokenizer.vocab_size = "auto"`` trains a small sweep and takes the knee of held-out tokens per
word (see ``vocab_curve``). A size the corpus cannot fill is capped, with a warning and a note.

Outputs: ``spm.model`` (SentencePiece only), ``hf/`` (a transformers tokenizer folder for every
library; for SentencePiece an exact conversion, checked id for id on the valid split),
``metrics.json`` (the new and every base tokenizer on the valid split: tokens per word, characters
and bytes per token, unknown and byte-fallback shares, parity with English; see
``langbuild.metrics``), and ``vocab_curve.json`` when the size is "auto".
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..corpus.shards import read_split
from ..curves import knee
from ..metrics import hf_batch_encoder, parity, tokenizer_profile
from ..models import load_tokenizer, resolve_model
from ..reference_texts import read_text_lines
from ..textio import read_jsonl_texts
from ..words import word_count

T = TypeVar("T")

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")

HF_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0-3 of a tokenizers-trained vocabulary
BYTE_PIECES = [f"<0x{b:02X}>" for b in range(256)]
AUTO_SIZES = (4000, 8000, 16000, 32000, 64000)  # the sweep behind tokenizer.vocab_size = "auto"
MIN_CURVE_POINTS = 4  # a corpus too small for the grid gets sizes below its cap, so the curve can bend
SWEEP_SAMPLE_DOCS = 20_000  # train documents per sweep point: keeps the sweep cheap on any corpus
SWEEP_VALID_DOCS = 2_000  # valid documents the sweep measures tokens per word on
RESERVED_SCORE_GAP = 1000.0  # how far below every real piece the reserved pieces of a Unigram model score
SCORE_DECIMALS = 6  # Unigram scores are rounded so reruns give the same file (see _tidy_unigram)
FILL_STEP = 1e-4  # the tokenizers Unigram trainer's score step between filled-in characters


@dataclass(frozen=True)
class Recipe:
    """What to train, apart from the vocabulary size."""

    library: str = "sentencepiece"
    model_type: str = "unigram"
    byte_fallback: bool = True
    seed: int = 0

    @classmethod
    def from_config(cls, config) -> Recipe:
        return cls(config.get("tokenizer.library"), config.get("tokenizer.model_type"),
                   config.get("tokenizer.byte_fallback"), config.get("project.seed"))

    @property
    def byte_level(self) -> bool:
        return self.library == "huggingface" and self.model_type == "bpe"


@dataclass
class Trained:
    """A trained tokenizer: its ``tokenizers`` form (the ids of ``hf/``) and, for SentencePiece, the model file."""

    tokenizer: object  # tokenizers.Tokenizer
    vocab_size: int
    note: str  # why the size differs from the one asked for, or ""
    spm_model: bytes | None = None


# --- streaming the train split --------------------------------------------------------------------


def reservoir_sample(items: Iterable[T], limit: int, seed: int) -> tuple[list[T], int]:
    """A uniform sample of at most ``limit`` items, in stream order, and how many items were seen.

    Vitter's Algorithm R: holds only the sample, whatever the length of ``items``.
    """
    rng = random.Random(seed)
    reservoir: list[tuple[int, T]] = []
    seen = 0
    for item in items:
        if len(reservoir) < limit:
            reservoir.append((seen, item))
        else:
            slot = rng.randrange(seen + 1)
            if slot < limit:
                reservoir[slot] = (seen, item)
        seen += 1
    reservoir.sort(key=lambda pair: pair[0])  # stream order: the sample reads like the corpus
    return [item for _, item in reservoir], seen


def read_train_sample(path: Path, limit: int, seed: int) -> tuple[list[str], int]:
    """The documents the tokenizer trains on, streamed from the corpus folder ``path`` (or one JSONL file):
    (sample, documents in the split)."""
    texts = read_split(path, "train") if Path(path).is_dir() else read_jsonl_texts(path)
    sample, seen = reservoir_sample((t for t in texts if t.strip()), limit, seed)
    if not sample:
        raise LangbuildError(f"the train split {path} has no text to train a tokenizer on: add text to corpus.paths and re-run")
    return sample, seen


def write_sentence_file(docs: Iterable[str], path: Path) -> int:
    """SentencePiece reads one sentence per line: write each non-blank line of each document."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            for line in doc.split("\n"):
                if line.strip():
                    handle.write(line + "\n")
                    count += 1
    return count


# --- SentencePiece --------------------------------------------------------------------------------


def _train(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int, byte_fallback: bool = True) -> None:
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)  # sampling inside the trainer, so reruns give the same model
    spm.SentencePieceTrainer.train(**sentencepiece_settings(sample, prefix, model_type, vocab_size, byte_fallback))


def sentencepiece_settings(sample: Path, prefix: Path, model_type: str, vocab_size: int, byte_fallback: bool = True) -> dict:
    """The trainer arguments; settings chosen so that decode(encode(x)) == x (see /work/shared/STACK.md)."""
    return dict(
        input=str(sample),
        model_prefix=str(prefix),
        model_type=model_type,
        vocab_size=vocab_size,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        byte_fallback=byte_fallback,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=1.0,
        allow_whitespace_only_pieces=True,
        num_threads=2,
        minloglevel=2,
        # The default (4,192 bytes) silently skips longer lines: paragraph-per-line corpora would lose most text.
        max_sentence_length=1 << 20,
    )


def _capped_note(requested: int, trained: int) -> str:
    return "" if trained >= requested else f"capped from {requested} to {trained}: the corpus supports no more"


def train_sentencepiece(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int,
                        byte_fallback: bool = True) -> tuple[int, str]:
    """Train, shrinking the vocabulary to what the corpus supports; returns (size, note)."""
    requested = vocab_size
    for _ in range(3):
        try:
            _train(sample, prefix, model_type, vocab_size, seed, byte_fallback)
            return vocab_size, _capped_note(requested, vocab_size)
        except RuntimeError as err:
            too_high = _TOO_HIGH.search(str(err))
            if too_high:
                vocab_size = int(too_high.group(2))
                continue
            too_small = _TOO_SMALL.search(str(err))
            if too_small:
                needed = int(too_small.group(2))
                what = "every character, " + ("256 byte pieces " if byte_fallback else "") + "and 3 special tokens"
                raise LangbuildError(
                    f"tokenizer.vocab_size {vocab_size} is too small for the {needed} pieces it must hold ({what}): "
                    f"raise tokenizer.vocab_size to at least {needed}"
                ) from None
            raise LangbuildError(f"SentencePiece training failed: {err}") from None
    raise LangbuildError("SentencePiece could not settle on a vocabulary size: set tokenizer.vocab_size lower")


def forget_training_paths(model: bytes) -> bytes:
    """SentencePiece records where it read and wrote; drop that so the model file depends on content only."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model)
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.ClearField("model_prefix")
    return proto.SerializeToString()


def _sentencepiece(docs: list[str], recipe: Recipe, vocab_size: int, workdir: Path) -> Trained:
    work = Path(tempfile.mkdtemp(prefix=".spm-", dir=workdir))
    try:
        sample = work / "sample.txt"
        write_sentence_file(docs, sample)
        size, note = train_sentencepiece(sample, work / "spm", recipe.model_type, vocab_size, recipe.seed, recipe.byte_fallback)
        model = forget_training_paths((work / "spm.model").read_bytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Trained(sentencepiece_to_tokenizers(model), size, note, model)


# --- SentencePiece → tokenizers ---------------------------------------------------------------------

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4  # ModelProto.SentencePiece.Type (6 is a byte piece)


def _spm_merges(proto) -> list[tuple[str, str]]:
    """BPE merges that replay SentencePiece's BPE: it joins the adjacent pair whose union scores highest.

    Every split of a piece into two pieces is a merge, ranked by the piece's score (as in transformers'
    SpmConverter).
    """
    normal = {p.piece: (p.score, i) for i, p in enumerate(proto.pieces) if p.type == _NORMAL}
    ranked = []
    for piece, (score, index) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    return [(left, right) for _, _, left, right in sorted(ranked)]


def _spm_model(proto):
    from tokenizers import models

    spec = proto.trainer_spec
    if spec.model_type == 1:  # unigram
        # SentencePiece never matches control, unknown or byte pieces against text; a Unigram lattice would
        # (their score is 0, the best there is). Scored far below every real piece, they lose to any spelling
        # of the same characters. (Left over: a literal "<s>" or "<0x41>" with a character the vocabulary lacks
        # still matches, since the unknown token scores lower still.)
        real = [p.score for p in proto.pieces if p.type in (_NORMAL, _USER_DEFINED)]
        floor = min(real, default=0.0) - RESERVED_SCORE_GAP
        vocab = [(p.piece, p.score if p.type in (_NORMAL, _USER_DEFINED) else floor) for p in proto.pieces]
        return models.Unigram(vocab, unk_id=spec.unk_id, byte_fallback=spec.byte_fallback)
    if spec.model_type == 2:  # bpe
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
        return models.BPE(vocab, _spm_merges(proto), unk_token=spec.unk_piece, fuse_unk=True, byte_fallback=spec.byte_fallback)
    raise ValueError(f"cannot convert a SentencePiece model of type {spec.model_type}")


def _metaspace_decoder(dummy_prefix: bool = True):
    """Turn "▁" back into a space and byte pieces back into characters, and drop the dummy-prefix space."""
    from tokenizers import decoders

    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    # Strip works token by token, hence after Fuse: only the first space of the text goes.
    return decoders.Sequence([*steps, decoders.Strip(content=" ", left=1, right=0)] if dummy_prefix else steps)


def _metaspace_normalizer(dummy_prefix: bool = True):
    """SentencePiece's whitespace handling: a "▁" before the text, and every space written "▁"."""
    from tokenizers import normalizers

    steps = [normalizers.Prepend("▁")] if dummy_prefix else []
    return normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])


def sentencepiece_to_tokenizers(model: bytes):
    """A ``tokenizers.Tokenizer`` that gives the same ids as SentencePiece for a model trained by this step.

    Exact for identity normalisation without whitespace collapsing (what this step trains): the
    dummy prefix and space escaping become a normalizer (the text is not pre-split, like
    SentencePiece), unigram pieces keep their scores, BPE merges are replayed by piece score, and
    byte fallback maps to the model's byte pieces. Special tokens never match literal text here
    (``encode_special_tokens``; transformers: ``split_special_tokens``), as in SentencePiece.
    """
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Tokenizer

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model)
    normalizer = proto.normalizer_spec
    if normalizer.precompiled_charsmap or normalizer.remove_extra_whitespaces:
        raise ValueError("only SentencePiece models with identity normalisation and kept whitespace convert exactly")
    tokenizer = Tokenizer(_spm_model(proto))
    tokenizer.normalizer = _metaspace_normalizer(normalizer.add_dummy_prefix)
    tokenizer.decoder = _metaspace_decoder(normalizer.add_dummy_prefix)
    specials = [p.piece for p in proto.pieces if p.type in (_UNKNOWN, _CONTROL)]
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tokenizer.encode_special_tokens = True
    return tokenizer


# --- Hugging Face tokenizers -----------------------------------------------------------------------


def minimum_vocab_size(docs: Iterable[str], recipe: Recipe) -> int:
    """Pieces a vocabulary must hold: its alphabet (256 bytes, or every character), byte pieces, special tokens."""
    specials = len(HF_SPECIAL_TOKENS) if recipe.library == "huggingface" else 3  # SentencePiece: <unk> <s> </s>
    if recipe.byte_level:
        return 256 + specials
    chars: set[str] = set()
    for doc in docs:
        chars.update(doc)
    chars.discard(" ")
    if recipe.library == "sentencepiece":
        chars.discard("\n")  # it trains on lines
    chars.add("▁")  # spaces are written "▁"
    return len(chars) + specials + (256 if recipe.byte_fallback else 0)


def _check_fits(vocab_size: int, minimum: int, recipe: Recipe) -> None:
    if vocab_size < minimum:
        what = "256 byte symbols" if recipe.byte_level else "every character" + (", 256 byte pieces" if recipe.byte_fallback else "")
        raise LangbuildError(
            f"tokenizer.vocab_size {vocab_size} is too small for the {minimum} pieces it must hold "
            f"({what} and {len(HF_SPECIAL_TOKENS)} special tokens): raise tokenizer.vocab_size to at least {minimum}"
        )


def _byte_level_bpe(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(HF_SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(docs, trainer, length=len(docs))
    return tokenizer


def _canonical_filled_characters(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Give the characters the trainer filled in at the end the same scores on every run.

    Characters the EM dropped are put back with scores min, min + 1e-4, min + 2e-4, … assigned in
    hash-set order, so the same character gets a different score each run. They are found by that
    arithmetic pattern and given the same scores, lowest first, in code-point order.
    """
    if not pieces:
        return pieces
    lowest = min(score for _, score in pieces)
    steps = {}
    for piece, score in pieces:
        step = (score - lowest) / FILL_STEP
        if len(piece) == 1 and abs(step - round(step)) < 1e-3:
            steps.setdefault(round(step), []).append(piece)
    # The lowest score may be shared with characters the EM kept (ties are common there); above it, one
    # character per step until the pattern ends. Which of the tied ones was filled in does not matter:
    # the same scores go to the same characters either way.
    filled = list(steps.get(0, []))
    step = 1
    while len(steps.get(step, ())) == 1:
        filled.extend(steps[step])
        step += 1
    chosen = set(filled)
    fixed = dict(zip(sorted(chosen), sorted(score for piece, score in pieces if piece in chosen)))
    return [(piece, fixed.get(piece, score)) for piece, score in pieces]


def _tidy_unigram(tokenizer, byte_fallback: bool):
    """Make a trained Unigram model reproducible and give it byte fallback.

    The trainer sums floats in hash-map order, so reruns differ in the last digits of the scores, and
    it scores filled-in characters in hash-set order: scores are rounded, filled-in characters scored
    in a fixed order, and pieces sorted by (score, piece). The special tokens and the appended byte
    pieces score far below every real piece, so the lattice never prefers them to spelling the same
    characters (see ``_spm_model``).
    """
    from tokenizers import models

    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    real = _canonical_filled_characters([(p, round(s, SCORE_DECIMALS)) for p, s in vocab if p not in HF_SPECIAL_TOKENS])
    real.sort(key=lambda ps: (-ps[1], ps[0]))
    floor = min((s for _, s in real), default=0.0) - RESERVED_SCORE_GAP
    reserved = [(p, floor) for p in HF_SPECIAL_TOKENS]
    pieces = reserved + real + ([(p, floor) for p in BYTE_PIECES] if byte_fallback else [])
    tokenizer.model = models.Unigram(pieces, unk_id=0, byte_fallback=byte_fallback)
    return tokenizer


def _unigram(docs: list[str], vocab_size: int, byte_fallback: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    # The normalizer (not Metaspace's own prepend, which skips text already starting with "▁") adds the dummy
    # prefix, so leading spaces round-trip; Metaspace then cuts words before each "▁".
    tokenizer.normalizer = _metaspace_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tokenizer.decoder = _metaspace_decoder()
    trained_size = vocab_size - (256 if byte_fallback else 0)
    trainer = trainers.UnigramTrainer(vocab_size=trained_size, special_tokens=list(HF_SPECIAL_TOKENS), unk_token="<unk>",
                                      show_progress=False)
    tokenizer.train_from_iterator(docs, trainer, length=len(docs))
    return _tidy_unigram(tokenizer, byte_fallback)


def _huggingface(docs: list[str], recipe: Recipe, vocab_size: int) -> Trained:
    _check_fits(vocab_size, minimum_vocab_size(docs, recipe), recipe)
    tokenizer = _byte_level_bpe(docs, vocab_size) if recipe.byte_level else _unigram(docs, vocab_size, recipe.byte_fallback)
    tokenizer.encode_special_tokens = True  # "<s>" in the text is text, as with SentencePiece
    size = tokenizer.get_vocab_size()
    return Trained(tokenizer, size, _capped_note(vocab_size, size))


# --- training, saving -------------------------------------------------------------------------------


def train_tokenizer(docs: list[str], recipe: Recipe, vocab_size: int, workdir: Path) -> Trained:
    """Train on the sampled documents; the vocabulary is capped to what they support (see ``Trained.note``)."""
    if recipe.library == "sentencepiece":
        return _sentencepiece(docs, recipe, vocab_size, workdir)
    return _huggingface(docs, recipe, vocab_size)


def _special_tokens(tokenizer) -> dict[str, str]:
    """bos/eos/unk (and pad where the vocabulary has one) for the transformers folder."""
    names = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    return {name: token for name, token in names.items() if tokenizer.token_to_id(token) is not None}


def save_hf_folder(tokenizer, folder: Path) -> None:
    """A transformers tokenizer folder (tokenizer.json, tokenizer_config.json) that AutoTokenizer loads as is."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, clean_up_tokenization_spaces=False,
                                      split_special_tokens=True, **_special_tokens(tokenizer))
    wrapped.save_pretrained(str(folder))


def save_tokenizer(trained: Trained, out: Path) -> None:
    if trained.spm_model is not None:
        (out / "spm.model").write_bytes(trained.spm_model)
    save_hf_folder(trained.tokenizer, out / "hf")


def build_tokenizer(train_path: Path, out: Path, recipe: Recipe, vocab_size: int, max_documents: int) -> Trained:
    """Everything between the train split and the saved tokenizer: stream, sample, train, convert, save."""
    docs, _ = read_train_sample(train_path, max_documents, recipe.seed)
    trained = train_tokenizer(docs, recipe, vocab_size, out)
    save_tokenizer(trained, out)
    return trained


# --- vocabulary size "auto" ---------------------------------------------------------------------------


def tokens_per_word(tokenizer, texts: list[str]) -> float:
    words = sum(map(word_count, texts))
    return sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)) / max(words, 1)


def vocab_curve(docs: list[str], valid: list[str], recipe: Recipe, workdir: Path) -> dict:
    """Held-out tokens per word against vocabulary size, and the size chosen at its knee.

    Rule: train on a bounded sample (``SWEEP_SAMPLE_DOCS`` documents) at 4k, 8k, 16k, 32k and 64k,
    stopping at the first size the corpus cannot fill (that point is kept at the size it reached).
    A corpus too small for most of the grid gets sizes below its cap, each 1/√2 of the next, down
    to its alphabet, so there is a bend to find. The chosen size is the knee of tokens per word over
    log2(size) (``langbuild.curves.knee``, the Kneedle method): past it, each doubling of the
    vocabulary buys less and less. The final tokenizer is then trained on the full sample at that size.
    """
    sample = docs if len(docs) <= SWEEP_SAMPLE_DOCS else random.Random(recipe.seed).sample(docs, SWEEP_SAMPLE_DOCS)
    held_out = valid[:SWEEP_VALID_DOCS]
    if not held_out:
        raise LangbuildError('tokenizer.vocab_size = "auto" measures held-out text, but the valid split is empty: '
                             "give corpus.valid_paths or set tokenizer.vocab_size to a number")
    minimum = minimum_vocab_size(sample, recipe)
    grid = [size for size in AUTO_SIZES if size >= minimum] or [minimum]  # a script with thousands of characters

    def point(size: int) -> dict:
        trained = train_tokenizer(sample, recipe, size, workdir)
        return {"requested": size, "vocab_size": trained.vocab_size, "tokens_per_word": tokens_per_word(trained.tokenizer, held_out)}

    points = []
    for size in grid:
        points.append(point(size))
        if points[-1]["vocab_size"] < size:
            break  # the corpus supports no more: larger sizes would give the same tokenizer
    while len(points) < MIN_CURVE_POINTS:
        smaller = int(points[0]["vocab_size"] / math.sqrt(2))
        if smaller < minimum:
            break
        try:
            points.insert(0, point(smaller))
        except LangbuildError:  # below the alphabet (SentencePiece says so itself)
            break
    points = _distinct_sizes(points)
    chosen = knee([p["vocab_size"] for p in points], [p["tokens_per_word"] for p in points])
    return {
        "rule": "knee (Kneedle) of valid tokens per word over log2(vocabulary size)",
        "sample_documents": len(sample), "valid_documents": len(held_out), "points": points, "chosen": chosen,
    }


def _distinct_sizes(points: list[dict]) -> list[dict]:
    """One point per trained size (a capped size can coincide with a smaller one), smallest first."""
    by_size = {p["vocab_size"]: p for p in points}
    return [by_size[size] for size in sorted(by_size)]


# --- measuring --------------------------------------------------------------------------------------


def aligned_pairs(config, root: Path) -> tuple[list[str], list[str]] | None:
    """(target lines, source lines) for parity, or None when no aligned texts are set.

    Lines pair by position, so both texts are read with their empty lines; a pair with an empty side is skipped.
    """
    target_name, source_name = config.get("tokenizer.aligned_target"), config.get("tokenizer.aligned_source")
    if not target_name and not source_name:
        return None
    if not target_name or not source_name:
        missing = "tokenizer.aligned_source" if target_name else "tokenizer.aligned_target"
        raise LangbuildError(f"parity needs both aligned texts: set {missing} too (line-aligned), or set both to \"\"")
    target = read_text_lines(target_name, root, "tokenizer.aligned_target", keep_empty=True)
    source = read_text_lines(source_name, root, "tokenizer.aligned_source", keep_empty=True)
    if len(target) != len(source):
        raise LangbuildError(
            f"tokenizer.aligned_target has {len(target)} lines but tokenizer.aligned_source has {len(source)}: "
            "parity needs line i of one to translate line i of the other; fix the files or set both to \"\""
        )
    pairs = [(t, s) for t, s in zip(target, source) if t and s]
    if not pairs:
        raise LangbuildError("tokenizer.aligned_target and tokenizer.aligned_source share no non-empty line: check the files")
    return [t for t, _ in pairs], [s for _, s in pairs]


def _row(kind: str, tokenizer, valid: list[str], aligned) -> dict:
    row = {"kind": kind, "vocab_size": len(tokenizer), **tokenizer_profile(tokenizer, valid)}
    row["parity"] = parity(hf_batch_encoder(tokenizer), *aligned) if aligned else None
    return row


def _base_tokenizer_stats(ctx, valid: list[str], aligned=None) -> dict[str, dict]:
    out = {}
    trust = ctx.config.get("project.trust_remote_code")
    for name in ctx.config.get("select.candidates"):
        folder = resolve_model(name, ctx.project.root, trust)
        out[name] = _row("base", load_tokenizer(folder, trust), valid, aligned)
    return out


def spm_agreement(spm_model: Path, tokenizer, texts: list[str]) -> dict[str, int]:
    """How many texts the exported tokenizer encodes to exactly SentencePiece's ids."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    expected = processor.encode(texts) if texts else []
    got = hf_batch_encoder(tokenizer)(texts)
    return {"lines_checked": len(texts), "lines_identical": sum(a == b for a, b in zip(expected, got))}


def _target_row(ctx, valid: list[str], aligned) -> tuple[dict, object]:
    tokenizer = load_tokenizer(ctx.out / "hf")  # the folder downstream steps load: measure exactly that
    return _row("target", tokenizer, valid, aligned), tokenizer


# --- the step ---------------------------------------------------------------------------------------


def run(ctx) -> dict:
    config = ctx.config
    recipe = Recipe.from_config(config)
    corpus = ctx.output_of("corpus")
    aligned = aligned_pairs(config, ctx.project.root)  # before training: a wrong file fails in a second, not after
    valid = list(read_split(corpus, "valid"))
    docs, seen = read_train_sample(corpus, config.get("tokenizer.max_sentences"), recipe.seed)

    requested = config.get("tokenizer.vocab_size")
    curve = None
    if requested == "auto":
        curve = vocab_curve(docs, valid, recipe, ctx.out)
        atomic_write_json(ctx.out / "vocab_curve.json", curve)
        _print_curve(ctx.console, curve)
    trained = train_tokenizer(docs, recipe, curve["chosen"] if curve else requested, ctx.out)
    save_tokenizer(trained, ctx.out)
    if trained.note:
        ctx.console.print(f"  [yellow]vocabulary {trained.note}[/]")

    target_row, target = _target_row(ctx, valid, aligned)
    results = {"target": target_row, **_base_tokenizer_stats(ctx, valid, aligned)}
    metrics = {
        "split": "valid",
        "library": recipe.library,
        "model_type": recipe.model_type,
        "byte_fallback": True if recipe.byte_level else recipe.byte_fallback,  # byte-level BPE: bytes are its alphabet
        "vocab_size": {"requested": requested, "trained": trained.vocab_size, "note": trained.note,
                       **({"auto_choice": curve["chosen"]} if curve else {})},
        "sample": {"documents": len(docs), "train_documents": seen, "max_sentences": config.get("tokenizer.max_sentences")},
        "parity_texts": ({"target": config.get("tokenizer.aligned_target"), "source": config.get("tokenizer.aligned_source"),
                          "lines": len(aligned[0])} if aligned else None),
        "tokenizers": results,
    }
    if trained.spm_model is not None:
        metrics["hf_export"] = spm_agreement(ctx.out / "spm.model", target, valid)
        if metrics["hf_export"]["lines_identical"] < len(valid):
            ctx.console.print(f"  [yellow]hf/ differs from spm.model on {len(valid) - metrics['hf_export']['lines_identical']} "
                              "valid documents: prefer spm.model for those[/]")
    atomic_write_json(ctx.out / "metrics.json", metrics)
    _print_table(ctx.console, results)
    return {"vocab_size": trained.vocab_size, "tokens_per_word": results["target"]["tokens_per_word"]}


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


def _print_table(console, results: dict[str, dict]) -> None:
    table = Table(title="tokenizers on the valid split (tokens/word: lower is better)")
    columns = ("tokenizer", "vocab", "tokens/word", "chars/token", "bytes/token", "unknown", "byte fallback", "parity")
    for column in columns:
        table.add_column(column, justify="right" if column != "tokenizer" else "left")
    for name, row in results.items():
        table.add_row(
            name, f"{row['vocab_size']:,}", f"{row['tokens_per_word']:.3f}", f"{row['chars_per_token']:.3f}",
            f"{row['bytes_per_token']:.3f}", _percent(row["unknown_share"]), _percent(row["byte_fallback_share"]),
            "—" if row["parity"] is None else f"{row['parity']:.3f}",
        )
    console.print(table)


def _print_curve(console, curve: dict) -> None:
    table = Table(title=f"vocabulary sweep ({curve['sample_documents']:,} train documents; chosen: {curve['chosen']:,})")
    for column in ("vocab", "tokens/word (valid)", ""):
        table.add_column(column, justify="right")
    for p in curve["points"]:
        table.add_row(f"{p['vocab_size']:,}", f"{p['tokens_per_word']:.3f}", "← knee" if p["vocab_size"] == curve["chosen"] else "")
    console.print(table)
