"""The extended tokenizer on disk, and the checks that it kept what the base tokenizer had."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import LangbuildError


def save_extended_tokenizer(base_tokenizer, spec: dict, folder: Path) -> None:
    """Save the base tokenizer's settings with the extended tokenizer.json (check_tokenizer verifies the reload)."""
    base_tokenizer.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # A stale SentencePiece file would describe the old vocabulary; tokenizer.json is the truth now.
    # (transformers 5 builds every mainstream tokenizer from tokenizer.json; "slow" ones are gone.)
    (folder / "tokenizer.model").unlink(missing_ok=True)


def _decoded(tokenizer, text: str) -> tuple[str, bool]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids), tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids


def check_tokenizer(base, extended, valid: list[str]) -> dict:
    """Every old id kept, special tokens and chat template kept, and the model's own round trip kept.

    Round trip: wherever the base tokenizer decodes a line without <unk>, the extended one must
    decode it to the same text (that is decode(encode(x)) == x up to the model's own normalisation,
    e.g. BERT's lower-casing).
    """
    base_vocab, new_vocab = base.get_vocab(), extended.get_vocab()
    moved = [tok for tok, idx in base_vocab.items() if new_vocab.get(tok) != idx]
    if moved:
        raise LangbuildError(f"internal check failed: extension moved {len(moved)} existing tokens (first: {moved[0]!r})")
    base_special = dict(zip(base.all_special_tokens, base.all_special_ids))
    if dict(zip(extended.all_special_tokens, extended.all_special_ids)) != base_special:
        raise LangbuildError("internal check failed: the extended tokenizer lost or moved a special token")
    if getattr(base, "chat_template", None) != getattr(extended, "chat_template", None):
        raise LangbuildError("internal check failed: the extended tokenizer lost the base model's chat template")
    checked, lost = 0, []
    for text in valid:
        expected, base_unknown = _decoded(base, text)
        if base_unknown:
            continue  # the base cannot say what this line should decode to
        checked += 1
        if _decoded(extended, text)[0] != expected:
            lost.append(text)
    if lost:
        raise LangbuildError(f"internal check failed: the extended tokenizer does not round-trip {lost[0][:60]!r}")
    return {"existing_ids_kept": len(base_vocab), "special_tokens_kept": len(base_special),
            "round_trip_lines": checked, "round_trip_failures": 0}
