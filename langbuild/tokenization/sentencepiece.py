"""SentencePiece's formats: the trainer settings, the sentence file it reads, the model file it writes,
and an exact conversion of that model to a Hugging Face ``tokenizers.Tokenizer`` (the ``hf/`` folder).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

RESERVED_SCORE_GAP = 1000.0  # how far below every real piece the reserved pieces of a Unigram model score


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


def forget_training_paths(model: bytes) -> bytes:
    """SentencePiece records where it read and wrote; drop that so the model file depends on content only."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model)
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.ClearField("model_prefix")
    return proto.SerializeToString()



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


def metaspace_decoder(dummy_prefix: bool = True):
    """Turn "▁" back into a space and byte pieces back into characters, and drop the dummy-prefix space."""
    from tokenizers import decoders

    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    # Strip works token by token, hence after Fuse: only the first space of the text goes.
    return decoders.Sequence([*steps, decoders.Strip(content=" ", left=1, right=0)] if dummy_prefix else steps)


def metaspace_normalizer(dummy_prefix: bool = True):
    """SentencePiece's whitespace handling: a "▁" before the text, and every space written "▁"."""
    from tokenizers import normalizers

    steps = [normalizers.Prepend("▁")] if dummy_prefix else []
    return normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])


def sentencepiece_to_tokenizers(model: bytes):
    """A ``tokenizers.Tokenizer`` that gives the same ids as SentencePiece for a model the tokenizer step trained.

    Exact for identity normalisation without whitespace collapsing (what the tokenizer step trains): the
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
    tokenizer.normalizer = metaspace_normalizer(normalizer.add_dummy_prefix)
    tokenizer.decoder = metaspace_decoder(normalizer.add_dummy_prefix)
    specials = [p.piece for p in proto.pieces if p.type in (_UNKNOWN, _CONTROL)]
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tokenizer.encode_special_tokens = True
    return tokenizer
