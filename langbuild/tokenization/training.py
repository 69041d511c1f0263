"""Training a tokenizer with either library, capped to the vocabulary the corpus supports, and saving it.

SentencePiece trains on the sample written to a file; ``tokenizers`` trains from an iterator over the
same sample. A size the corpus cannot fill is capped (``Trained.note`` says so).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LangbuildError
from .sampling import read_train_sample
from .sentencepiece import (
    RESERVED_SCORE_GAP,
    forget_training_paths,
    metaspace_decoder,
    metaspace_normalizer,
    sentencepiece_settings,
    sentencepiece_to_tokenizers,
    write_sentence_file,
)

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")

HF_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0-3 of a tokenizers-trained vocabulary
BYTE_PIECES = [f"<0x{b:02X}>" for b in range(256)]
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


# --- SentencePiece ------------------------------------------------------------------------------------


def _train(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int, byte_fallback: bool = True) -> None:
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)  # sampling inside the trainer, so reruns give the same model
    spm.SentencePieceTrainer.train(**sentencepiece_settings(sample, prefix, model_type, vocab_size, byte_fallback))


def capped_note(requested: int, trained: int) -> str:
    return "" if trained >= requested else f"capped from {requested} to {trained}: the corpus supports no more"


def train_sentencepiece(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int,
                        byte_fallback: bool = True) -> tuple[int, str]:
    """Train, shrinking the vocabulary to what the corpus supports; returns (size, note)."""
    requested = vocab_size
    for _ in range(3):
        try:
            _train(sample, prefix, model_type, vocab_size, seed, byte_fallback)
            return vocab_size, capped_note(requested, vocab_size)
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
    characters (see ``sentencepiece._spm_model``).
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
    tokenizer.normalizer = metaspace_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tokenizer.decoder = metaspace_decoder()
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
    return Trained(tokenizer, size, capped_note(vocab_size, size))


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
