"""``extend.mode = replace``: which target tokens the base vocabulary also spells, and the base pieces of each.

Tokens are matched by the bytes they spell, not by their text: byte-level vocabularies hold pieces
of characters too, and the two tokenizers may mark a space differently (``Ġ``, ``▁``).
"""

from __future__ import annotations

from ..tokenization.statistics import BYTE_PIECE
from .vocabulary import base_pieces, byte_level_alphabet, byte_level_to_bytes, is_byte_level_tokenizer

_BYTE_LEVEL_CHAR = {byte: char for char, byte in byte_level_alphabet().items()}


def surface(token: str, byte_level: bool) -> bytes | None:
    """The bytes a vocabulary entry spells, a marked space (``Ġ``, ``▁``) as a space; None if not text."""
    if byte_level:
        return byte_level_to_bytes(token)
    if BYTE_PIECE.match(token):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode("utf-8")


def surface_index(tokenizer) -> dict[bytes, int]:
    """Surface bytes → id. Bytes, not text: byte-level vocabularies hold pieces of characters too."""
    byte_level = is_byte_level_tokenizer(tokenizer)
    special = set(tokenizer.all_special_tokens)
    index = {}
    # Real tokens before byte-fallback pieces: "a" must map to the piece "a", not to <0x61>.
    ranked = sorted(tokenizer.get_vocab().items(), key=lambda item: (bool(BYTE_PIECE.match(item[0])), item[1]))
    for token, idx in ranked:
        spelled = surface(token, byte_level)
        if spelled and token not in special:
            index.setdefault(spelled, idx)
    return index


def base_pieces_of(base_tokenizer, base_index: dict[bytes, int], spelled: bytes | None) -> list[int]:
    """The base ids that spell ``spelled``, split by the base model alone (no dummy prefix added):
    in its own alphabet when the bytes are whole text, else byte by byte."""
    if spelled is None:
        return []
    try:
        text = spelled.decode("utf-8")
    except UnicodeDecodeError:
        return [base_index[bytes([b])] for b in spelled if bytes([b]) in base_index]
    if is_byte_level_tokenizer(base_tokenizer):
        text = "".join(_BYTE_LEVEL_CHAR[b] for b in spelled)
    else:
        text = text.replace(" ", "▁")
    return base_pieces(base_tokenizer.backend_tokenizer, text)


def replacement_rows(base_tokenizer, target) -> tuple[list[list[int]], dict[int, int]]:
    """For each target id, the base pieces that spell it ([] for a special token); and the target ids
    whose bytes a base token spells too, mapped to that base id (their rows are copied, not initialised)."""
    base_index = surface_index(base_tokenizer)
    target_byte_level = is_byte_level_tokenizer(target)
    special = set(target.all_special_tokens)
    surfaces = {idx: surface(token, target_byte_level) for token, idx in target.get_vocab().items() if token not in special}
    pieces = [base_pieces_of(base_tokenizer, base_index, surfaces.get(i)) for i in range(len(target))]
    shared = {idx: base_index[spelled] for idx, spelled in surfaces.items() if spelled in base_index}
    return pieces, shared
