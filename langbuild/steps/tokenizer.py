"""tokenizer: train a SentencePiece model on the train split and compare it with the base tokenizers.

Settings chosen so that decode(encode(x)) == x on real text: identity normalisation, no whitespace
collapsing, byte fallback for unseen characters, full character coverage.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from rich.table import Table

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..metrics import hf_encoder, tokenizer_stats
from ..models import load_tokenizer, resolve_model
from ..textio import read_jsonl_texts

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def _write_sample(texts: list[str], limit: int, seed: int, path: Path) -> int:
    if len(texts) > limit:
        texts = random.Random(seed).sample(texts, limit)
    lines = [line for text in texts for line in text.split("\n") if line.strip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _train(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int) -> None:
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)  # sampling inside the trainer, so reruns give the same model
    spm.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(prefix),
        model_type=model_type,
        vocab_size=vocab_size,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        byte_fallback=True,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=1.0,
        allow_whitespace_only_pieces=True,
        num_threads=2,
        minloglevel=2,
    )


def train_sentencepiece(sample: Path, prefix: Path, model_type: str, vocab_size: int, seed: int) -> tuple[int, str]:
    """Train, shrinking the vocabulary to what the corpus supports; returns (size, note)."""
    requested = vocab_size
    for _ in range(3):
        try:
            _train(sample, prefix, model_type, vocab_size, seed)
            note = "" if vocab_size == requested else f"capped from {requested} to {vocab_size}: the corpus supports no more"
            return vocab_size, note
        except RuntimeError as err:
            too_high = _TOO_HIGH.search(str(err))
            if too_high:
                vocab_size = int(too_high.group(2))
                continue
            too_small = _TOO_SMALL.search(str(err))
            if too_small:
                raise LangbuildError(
                    f"tokenizer.vocab_size {vocab_size} is too small for the {too_small.group(2)} "
                    f"characters and 256 byte pieces it must hold: raise tokenizer.vocab_size"
                ) from None
            raise LangbuildError(f"SentencePiece training failed: {err}") from None
    raise LangbuildError("SentencePiece could not settle on a vocabulary size: set tokenizer.vocab_size lower")


def _forget_training_paths(model_path: Path) -> None:
    """SentencePiece records where it read and wrote; drop that so the model file depends on content only."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_path.read_bytes())
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.ClearField("model_prefix")
    model_path.write_bytes(proto.SerializeToString())


def _base_tokenizer_stats(ctx, valid: list[str]) -> dict[str, dict]:
    out = {}
    trust = ctx.config.get("project.trust_remote_code")
    for name in ctx.config.get("select.candidates"):
        folder = resolve_model(name, ctx.project.root, trust)
        tokenizer = load_tokenizer(folder, trust)
        out[name] = {"kind": "base", "vocab_size": len(tokenizer), **tokenizer_stats(hf_encoder(tokenizer), valid)}
    return out


def run(ctx) -> dict:
    import sentencepiece as spm

    config = ctx.config
    corpus = ctx.output_of("corpus")
    train = list(read_jsonl_texts(corpus / "train.jsonl"))
    valid = list(read_jsonl_texts(corpus / "valid.jsonl"))
    sample = ctx.out / ".sample.txt"
    _write_sample(train, config.get("tokenizer.max_sentences"), config.get("project.seed"), sample)
    size, note = train_sentencepiece(
        sample, ctx.out / "spm", config.get("tokenizer.model_type"), config.get("tokenizer.vocab_size"),
        config.get("project.seed"),
    )
    sample.unlink()
    _forget_training_paths(ctx.out / "spm.model")
    if note:
        ctx.console.print(f"  [yellow]vocabulary {note}[/]")
    processor = spm.SentencePieceProcessor(model_file=str(ctx.out / "spm.model"))
    results = {"target": {"kind": "target", "vocab_size": processor.get_piece_size(), **tokenizer_stats(processor.encode, valid)}}
    results.update(_base_tokenizer_stats(ctx, valid))
    metrics = {
        "split": "valid",
        "vocab_size": {"requested": config.get("tokenizer.vocab_size"), "trained": size, "note": note},
        "model_type": config.get("tokenizer.model_type"),
        "tokenizers": results,
    }
    atomic_write_json(ctx.out / "metrics.json", metrics)
    _print_table(ctx.console, results)
    return {"vocab_size": size, "tokens_per_word": results["target"]["tokens_per_word"]}


def _print_table(console, results: dict[str, dict]) -> None:
    table = Table(title="tokenizers on the valid split (tokens/word: lower is better)")
    for column in ("tokenizer", "vocab", "tokens/word", "chars/token"):
        table.add_column(column, justify="right" if column != "tokenizer" else "left")
    for name, row in results.items():
        table.add_row(name, f"{row['vocab_size']:,}", f"{row['tokens_per_word']:.3f}", f"{row['chars_per_token']:.3f}")
    console.print(table)
