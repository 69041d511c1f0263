"""Giving a base tokenizer target-language tokens, and how many: the extend step's tokenizer side.

Modules: :mod:`.vocabulary` (new entries written into the base tokenizer's own model: continued
BPE, WordPiece and Unigram, protected words, byte-level helpers), :mod:`.learning` (which entries,
learned from the train split), :mod:`.tokenizer_file` (saving the extended tokenizer and checking
it), :mod:`.replacement` (``extend.mode = replace``: which target tokens the base vocabulary also
spells) and :mod:`.size` (``extend.num_new_tokens = "auto"`` and the gain curve).

The names of :mod:`.vocabulary` are importable from here, as they were from the former module
``langbuild.extension``. The other modules are imported by name: :mod:`.size` loads models through
``langbuild.embedding_init``, which itself reads the byte-level helpers here.
"""

from .vocabulary import (
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
    is_byte_level_tokenizer,
    keep_protected_words,
    next_free_id,
    prefix,
    protected_pairs,
    unigram_pieces,
    without_tokens,
)

__all__ = ["Extension", "apply_extension", "base_pieces", "byte_level_alphabet", "byte_level_to_bytes",
           "byte_level_to_text", "continue_bpe", "continue_wordpiece", "corpus_words", "is_byte_level",
           "is_byte_level_tokenizer", "keep_protected_words", "next_free_id", "prefix", "protected_pairs",
           "unigram_pieces", "without_tokens"]
