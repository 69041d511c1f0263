"""The embedding rows the reference FOCUS package gives its user, in langbuild's extend setting.

    .fidelity-venv/bin/python benchmarks/deepfocus_rows.py --base DIR --extended DIR --train JSONL --out FILE [--max-docs N]

FOCUS (Dobler & de Melo 2023, "FOCUS: Effective Embedding Initialization for Monolingual Specialization of
Multilingual Models") through deepfocus 1.0.1 with its default settings, as a user of the package would run it:
deepfocus tokenises the train text with the extended tokenizer and trains its own fastText model (CBOW,
dim 100, 3 epochs, min_count 10), then mixes new rows by sparsemax over the overlapping tokens. Only
``processes=1`` departs from the defaults: with more processes fastText trains on several unsynchronised
threads and reruns differ. target_tokenizer = extend_tokenizer = the extended tokenizer (the extension is its
own language-specific tokenizer); source = the base model's tokenizer and input embeddings.

Saves ``{"ids": LongTensor 0 .. n-1, "rows": FloatTensor [n, dim]}``: the whole matrix deepfocus returns, old
rows included - deepfocus rewrites some of them, and a package user gets them so. benchmarks/embedding_init.py
``--deepfocus-rows`` reads it. Needs .fidelity-venv (benchmarks/fidelity_env.sh).
"""

from __future__ import annotations

import single_thread_offline  # noqa: F401 - before the heavy imports: it sets their environment

# isort: split

import argparse
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import deepfocus.fasttext_embs as deepfocus_fasttext
import deepfocus.focus as deepfocus_focus
import torch
from datasets.fingerprint import Hasher
from safetensors import safe_open
from transformers import AutoTokenizer


@contextmanager
def focus_sets() -> Iterator[dict]:
    """While active, deepfocus.focus.FOCUS records the token sets it decides on into the yielded dict:

    ``overlap`` (target token -> OverlappingToken, with the source rows it copies), ``new_before`` (ids of the
    tokens it did not match, before it sets the rare ones aside for random rows), ``anchors`` and
    ``focus_new`` (the overlapping tokens it mixes from and the new tokens it mixes, as it passes them on)."""
    captured: dict = {}
    overlap_fn, mix_fn = deepfocus_focus.get_overlapping_tokens, deepfocus_focus.focus_additional_token_initialization

    def overlapping(*args, **kwargs):
        overlap, new = overlap_fn(*args, **kwargs)
        captured["overlap"], captured["new_before"] = overlap, [info.target.id for info in new.values()]
        return overlap, new

    def mix(anchors, new_tokens, *args, **kwargs):
        captured["anchors"], captured["focus_new"] = dict(anchors), dict(new_tokens)
        return mix_fn(anchors, new_tokens, *args, **kwargs)

    deepfocus_focus.get_overlapping_tokens, deepfocus_focus.focus_additional_token_initialization = overlapping, mix
    try:
        yield captured
    finally:
        deepfocus_focus.get_overlapping_tokens, deepfocus_focus.focus_additional_token_initialization = overlap_fn, mix_fn


def random_ids(captured: dict) -> list[int]:
    """New tokens deepfocus drew from N(mean, std): unmatched, and without a fastText vector (below min_count)."""
    mixed = {info.target.id for info in captured["focus_new"].values()}
    return sorted(set(captured["new_before"]) - mixed)


def changed_rows(rows: torch.Tensor, embeddings: torch.Tensor) -> list[int]:
    """Base rows that come back different from the base model's (deepfocus copies rows by decoded-text match)."""
    old = embeddings.shape[0]
    return torch.nonzero((rows[:old] != embeddings).any(dim=1)).flatten().tolist()


def input_embeddings(base: Path) -> torch.Tensor:
    """The base model's input embedding matrix (float32), from its safetensors file(s)."""
    for path in sorted(base.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            key = next((k for k in handle.keys() if k.endswith("embed_tokens.weight")), None)
            if key:
                return handle.get_tensor(key).float()
    raise SystemExit(f"no embed_tokens.weight in {base}/*.safetensors")


def train_file(train: Path, max_docs: int | None, folder: Path) -> Path:
    """The train documents deepfocus reads, as a content-addressed JSONL of {"text": ...} lines.

    deepfocus caches its tokenised text and fastText model under the text file's *path* (and the tokenizer's
    hash), not its content: a rewritten train.jsonl would silently reuse a stale model. A name made from
    the content makes the cache right, and lets a rerun on the same text reuse the model."""
    lines = []
    with train.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and (max_docs is None or len(lines) < max_docs):
                lines.append(json.dumps({"text": json.loads(line)["text"]}, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path = folder / f"deepfocus-train-{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
    if not path.exists():
        path.write_bytes(data)
    return path


def cached_model(text: Path, tokenizer) -> Path:
    """Where deepfocus keeps the fastText model it trains with its defaults (epochs 3, dim 100, min_count 10)."""
    name = f"data_{deepfocus_fasttext.sanitize_path(str(text))}_tokenizer_{Hasher().hash(tokenizer)}_epochs_3_dim_100_mincount_10.bin"
    return deepfocus_fasttext.CACHE_DIR / "fasttext" / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="base model folder (tokenizer + safetensors)")
    parser.add_argument("--extended", type=Path, required=True, help="extended tokenizer folder (langbuild extend's model/)")
    parser.add_argument("--train", type=Path, required=True, help="train JSONL with a 'text' field per document")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-docs", type=int, default=None, help="only the first N documents (default: all)")
    args = parser.parse_args()
    for name in ("base", "extended", "train", "out"):
        setattr(args, name, getattr(args, name).expanduser())
    torch.set_num_threads(1)
    started = time.perf_counter()
    base_tokenizer = AutoTokenizer.from_pretrained(args.base)
    extended = AutoTokenizer.from_pretrained(args.extended)
    embeddings = input_embeddings(args.base)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = train_file(args.train, args.max_docs, args.out.parent)
    documents = sum(1 for _ in text.open(encoding="utf-8"))
    model = cached_model(text, extended)
    print(f"{documents:,} documents -> {text}; deepfocus fastText model {'reused from' if model.exists() else 'trained into'} {model}")
    with focus_sets() as captured:
        rows = deepfocus_focus.FOCUS(target_tokenizer=extended, source_tokenizer=base_tokenizer, source_embeddings=embeddings,
                                     target_training_data_path=str(text), extend_tokenizer=extended, processes=1, verbosity="silent")
    torch.save({"ids": torch.arange(rows.shape[0], dtype=torch.long), "rows": rows.float().contiguous()}, args.out)
    changed, drawn = changed_rows(rows, embeddings), random_ids(captured)
    examples = ", ".join(f"{extended.convert_ids_to_tokens(i)!r}" for i in changed[:6])
    old, new = embeddings.shape[0], rows.shape[0] - embeddings.shape[0]
    print(f"rows {tuple(rows.shape)} -> {args.out}")
    print(f"new rows: {len(captured['focus_new']):,} mixed by FOCUS, {len(drawn):,} random N(mean, std) (below min_count), "
          f"of {new:,}; {len(captured['anchors']):,} anchors")
    print(f"old rows deepfocus changed: {len(changed):,} of {old:,} (e.g. {examples})")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
