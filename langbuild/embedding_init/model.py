"""The extended model, built per initialisation method: the base model loaded, its embedding matrices
resized to the new vocabulary and the new rows initialised.

``ExtendedModel`` (extend mode) and ``ReplacedModel`` (replace mode) hold what building needs and
build a fresh model on each ``build(method)`` call, so that the probe can compare methods on equal
footing; ``build`` returns the model and the shape of its embeddings for metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..core.errors import LangbuildError
from ..extension import Extension, base_pieces, is_byte_level_tokenizer
from ..extension.replacement import replacement_rows
from ..models.loading import check_vocabulary_fits, load_model
from .rows import fill_padding, initialise_replacement, initialise_rows, resize_embeddings
from .spaces import SpaceInputs, WechselFiles, readable, token_space_for, token_strings


@dataclass
class BaseModel:
    """The chosen base model's folder and tokenizer."""

    path: Path
    tokenizer: object
    trust_remote_code: bool = False

    @cached_property
    def rows(self) -> int:
        """Rows of the input embedding matrix, from the model's config (no weights loaded)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(text_config.vocab_size)

    @property
    def trained_rows(self) -> int:
        # Statistics come from the real vocabulary only: some models pad their matrix with unused rows.
        return min(self.rows, len(self.tokenizer))

    def load(self):
        """The model, refused when its embedding matrix disagrees with its config or its tokenizer."""
        model = load_model(self.path, self.trust_remote_code)
        check_vocabulary_fits(model, self.tokenizer, self.path)
        rows = model.get_input_embeddings().weight.shape[0]
        if rows != self.rows:
            raise LangbuildError(f"{self.path}: the config says {self.rows:,} vocabulary rows but the embedding matrix "
                                 f"has {rows:,}: fix vocab_size in its config.json")
        return model


@dataclass
class ExtendedModel:
    """Extend mode: every base row kept, the rows of ``new_ids`` initialised, padding rows at the mean."""

    base: BaseModel
    new_ids: list[int]
    vocabulary: int  # rows the extended tokenizer needs
    multiple: int  # extend.pad_to_multiple_of, or 1: no padding
    pieces: list[list[int]]  # the base ids each new token replaces
    base_tokens: list[str]
    new_tokens: list[str]
    spaces: SpaceInputs
    seed: int
    console: object

    @classmethod
    def plan(cls, base: BaseModel, extension: Extension, new_ids: list[int], tokenizer, train: list[str], multiple: int,
             seed: int, wechsel: WechselFiles, console) -> ExtendedModel:
        vocabulary = max(len(tokenizer), max(new_ids, default=-1) + 1)
        backend = base.tokenizer.backend_tokenizer
        pieces = [base_pieces(backend, token) for token in extension.tokens]
        trained_rows = base.trained_rows
        base_tokens = token_strings(base.tokenizer, trained_rows)
        new_tokens = readable(extension.tokens, is_byte_level_tokenizer(base.tokenizer))
        spaces = SpaceInputs(tokenizer, base.tokenizer, train, trained_rows, list(new_ids), seed=seed, wechsel=wechsel)
        # With no new token the model is left exactly as it was: no padding either.
        return cls(base, list(new_ids), vocabulary, multiple if new_ids else 1, pieces, base_tokens, new_tokens, spaces,
                   seed, console)

    def build(self, method: str):
        base = self.base
        model = base.load()
        rows = resize_embeddings(model, max(base.rows, self.vocabulary), self.multiple)
        tied = initialise_rows(model, method, self.new_ids, base.trained_rows, self.pieces, self.seed, self.base_tokens,
                               self.new_tokens, token_space_for(method, self.spaces, self.console) if self.new_ids else None)
        fill_padding(model, max(base.rows, self.vocabulary), base.trained_rows)
        return model, {"tied_embeddings": tied, "embedding_rows": {"base": base.rows, "extended": rows,
                                                                   "padding": rows - self.vocabulary}}


@dataclass
class ReplacedModel:
    """Replace mode: the target tokenizer's rows only; those of tokens the base also spells copied from
    their base row (``shared``), the rest initialised from the base rows of their ``pieces``."""

    base: BaseModel
    target: object  # the target tokenizer: its special token ids go into the model's config
    pieces: list[list[int]]
    shared: dict[int, int]  # target id -> the base id that spells the same bytes
    base_tokens: list[str]
    target_tokens: list[str]
    spaces: SpaceInputs
    multiple: int
    seed: int
    console: object

    @classmethod
    def plan(cls, base: BaseModel, target, train: list[str], multiple: int, seed: int, wechsel: WechselFiles,
             console) -> ReplacedModel:
        pieces, shared = replacement_rows(base.tokenizer, target)
        size, trained_rows = len(target), base.trained_rows
        spaces = SpaceInputs(target, base.tokenizer, train, trained_rows, list(range(size)), base_of_token=shared,
                             seed=seed, wechsel=wechsel)
        return cls(base, target, pieces, shared, token_strings(base.tokenizer, trained_rows), token_strings(target, size),
                   spaces, multiple, seed, console)

    @property
    def size(self) -> int:
        return len(self.target)

    def build(self, method: str):
        base, size = self.base, self.size
        model = base.load()
        tied = initialise_replacement(model, method, base.rows, base.trained_rows, size, self.pieces, self.shared,
                                      self.base_tokens, self.target_tokens,
                                      token_space_for(method, self.spaces, self.console), self.seed)
        rows = resize_embeddings(model, size, self.multiple)
        fill_padding(model, size, size)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self.target, name)
            setattr(model.config, name, value)
            if getattr(model, "generation_config", None) is not None:
                setattr(model.generation_config, name, value)
        return model, {"tied_embeddings": tied, "embedding_rows": {"base": base.rows, "extended": rows,
                                                                   "padding": rows - size}}
