"""The new tokenizer against the base ones on the valid split, and the exported ``hf/`` against ``spm.model``.

Each row: tokens per word, characters and bytes per token, unknown and byte-fallback shares (see
``langbuild.tokenization.statistics``), and parity with English on line-aligned texts (``tokenizer.aligned_target``
and ``tokenizer.aligned_source``).
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import LangbuildError
from ..packaged.reference_texts import read_text_lines
from ..tokenization.statistics import hf_batch_encoder, parity, tokenizer_profile


def aligned_pairs(target_name: str, source_name: str, root: Path) -> tuple[list[str], list[str]] | None:
    """(target lines, source lines) for parity, or None when no aligned texts are set.

    Lines pair by position, so both texts are read with their empty lines; a pair with an empty side is skipped.
    """
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


def tokenizer_row(kind: str, tokenizer, valid: list[str], aligned) -> dict:
    """One row of metrics.json's ``tokenizers``: ``kind`` is "target" or "base"."""
    row = {"kind": kind, "vocab_size": len(tokenizer), **tokenizer_profile(tokenizer, valid)}
    row["parity"] = parity(hf_batch_encoder(tokenizer), *aligned) if aligned else None
    return row


def spm_agreement(spm_model: Path, tokenizer, texts: list[str]) -> dict[str, int]:
    """How many texts the exported tokenizer encodes to exactly SentencePiece's ids."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    expected = processor.encode(texts) if texts else []
    got = hf_batch_encoder(tokenizer)(texts)
    return {"lines_checked": len(texts), "lines_identical": sum(a == b for a, b in zip(expected, got))}
