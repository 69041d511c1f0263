"""Time the demo end to end and record its numbers in benchmarks/RESULTS.md.

    python benchmarks/demo.py [--dir DIR] [--keep-cache]

Runs `langbuild demo` in a fresh folder (the packaged model conversion is timed too unless its cache
already exists), then prints and records: wall time per step, and the held-out numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console

from langbuild.demo import run_demo

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section



def table(root: Path, total: float) -> str:
    lock = json.loads((root / "langbuild.lock").read_text())["steps"]
    metrics = json.loads((root / "eval/metrics.json").read_text())
    rows = ["| step | seconds |", "|---|---:|"]
    rows += [f"| {name} | {entry['seconds']:.1f} |" for name, entry in lock.items()]
    rows.append(f"| **total (wall)** | **{total:.0f}** |")
    result = ["| held-out text | metric (lower is better) | base | extended | trained |", "|---|---|---:|---:|---:|"]
    for side, label in (("target", "Chichewa (Ruth)"), ("source", "English (FLORES+)")):
        bpb, tpw = metrics[side]["bits_per_byte"], metrics[side]["tokens_per_word"]
        result.append(f"| {label} | bits per byte | {bpb['base']:.3f} | {bpb['extended']:.3f} | {bpb['trained']:.3f} |")
        result.append(f"| {label} | tokens per word | {tpw['base']:.2f} | {tpw['extended']:.2f} | {tpw['extended']:.2f} |")
    machine = f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores, no GPU"
    return "\n".join([f"Measured {time.strftime('%Y-%m-%d')} on {machine}.", "", *result, "", extension_line(root, metrics),
                      "", *rows])


def extension_line(root: Path, metrics: dict) -> str:
    """The vocabulary targets: target tokens/word ratio, English tokens/word ratio, English lines kept."""
    extend = json.loads((root / "extend/metrics.json").read_text())
    target, source = metrics["target"]["tokens_per_word"], metrics["source"]["tokens_per_word"]
    return (f"Extension: {extend['added_tokens']:,} new tokens (extend.num_new_tokens = {extend['requested_tokens']!r}); "
            f"Chichewa tokens/word extended ÷ base = **{target['extended'] / target['base']:.3f}**; "
            f"English tokens/word extended ÷ base = **{source['extended'] / source['base']:.4f}**; "
            f"English lines with identical ids: **{metrics['source']['lines_identical']:.1%}** "
            f"(a sample of FLORES+ devtest lines 507-1,012; protection used lines 1-506); embedding rows "
            f"{extend['embedding_rows']['base']:,} → {extend['embedding_rows']['extended']:,}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="demo folder (default: a fresh temporary one)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="langbuild-demo-")) / "demo"
    started = time.time()
    run_demo(root, {}, Console())
    text = table(root, time.time() - started)
    print(text)
    record_section("demo", "Demo: Chichewa + SmolLM2-135M on CPU", text)
    if args.dir is None:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
