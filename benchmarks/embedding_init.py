"""Embedding initialisation on the real SmolLM2-135M and the real Chichewa Bible: does a heuristic help?

    python benchmarks/embedding_init.py [--steps K] [--deepfocus-rows FILE] [--methods a,b,...]

One extension (the demo's: continued BPE, 4,000 new tokens, English protected), then for every
initialiser, from the same rows and on the same batches:

* zero-shot held-out bits per byte on Ruth (never trained on) and on FLORES+ English (second half),
  next to the unextended base model's;
* held-out Chichewa bits per byte after K steps of embeddings-only training, and after K steps of
  full training (AdamW, constant learning rate, batch 4 x 128 tokens);
* the first step (checked every 5) at which embeddings-only training reaches the base model's
  held-out bits per byte;
* and how many embeddings-only steps random rows need to reach what the best initialiser reaches
  after K (the convergence speed-up).

``--deepfocus-rows`` adds the reference FOCUS package's rows for the same extension (written by
benchmarks/deepfocus_rows.py in .fidelity-venv). WECHSEL is not in this table: it needs aligned
English and Chichewa word vectors, which cannot be downloaded here (tests cover it on local vectors).
Records the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.embedding_init.probe import probe_blocks, train_embeddings_only
from langbuild.models.loading import load_model
from langbuild.models.scoring import bits_per_byte
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.pipeline import StepContext
from langbuild.project.demo import DEMO_SETTINGS, write_demo_data
from langbuild.project.scaffold import create_project
from langbuild.steps.extend import prepare
from langbuild.text.textio import sample_by_bytes

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

METHODS = ("random", "mean", "multivariate", "script", "subword-mean", "focus", "tokenadapt")
NEW_TOKENS = 4000  # what extend.num_new_tokens = "auto" picks for SmolLM2 on this corpus (RESULTS.md)
EMBEDDING_LR, FULL_LR = 1e-3, 1e-4
CHECK_EVERY = 5
HELD_OUT_BYTES = 8000
console = Console()


def _project(root: Path) -> Project:
    if not (root / "langbuild.toml").exists():
        write_demo_data(root / "data")
        create_project(root, {**DEMO_SETTINGS, "extend.num_new_tokens": NEW_TOKENS, "extend.zero_shot_max_bytes": 0})
    project = Project(root)
    pipeline.run(project, Console(quiet=True), until="select")
    return project


def _bpb(model, tokenizer, texts) -> float:
    return bits_per_byte(model, tokenizer, texts)["bits_per_byte"]


def _with_rows(make_model, method: str, deepfocus_rows: Path | None):
    if method != "deepfocus":
        return make_model(method)[0]
    model = make_model("mean")[0]
    rows = torch.load(deepfocus_rows, weights_only=True)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[rows["ids"]] = rows["rows"].to(weight.dtype)
    return model


def measure(method, make_model, deepfocus_rows, tokenizer, blocks, texts, base, steps) -> dict:
    started = time.time()
    model = _with_rows(make_model, method, deepfocus_rows)
    row = {"method": method, "zero_shot": _bpb(model, tokenizer, texts["target"]),
           "zero_shot_source": _bpb(model, tokenizer, texts["source"]), "reached_base_at": None}
    curve = {}

    def check(step):
        curve[step] = _bpb(model, tokenizer, texts["target"])
        if row["reached_base_at"] is None and curve[step] <= base["target"]:
            row["reached_base_at"] = step

    train_embeddings_only(model, blocks, steps, 0, EMBEDDING_LR, every=CHECK_EVERY, on_step=check)
    row["embeddings_only"] = curve[steps]
    model = _with_rows(make_model, method, deepfocus_rows)
    train_embeddings_only(model, blocks, steps, 0, FULL_LR, embeddings_only=False)
    row["full"] = _bpb(model, tokenizer, texts["target"])
    row["seconds"] = time.time() - started
    console.print(row)
    return row


def random_steps_to_reach(target: float, make_model, tokenizer, blocks, texts, limit: int) -> int | None:
    """Embeddings-only steps (checked every CHECK_EVERY) random rows need to reach ``target`` bits per byte."""
    model = make_model("random")[0]
    reached = []

    def check(step):
        if not reached and _bpb(model, tokenizer, texts["target"]) <= target:
            reached.append(step)
            raise StopIteration

    try:
        train_embeddings_only(model, blocks, limit, 0, EMBEDDING_LR, every=CHECK_EVERY, on_step=check)
    except StopIteration:
        pass
    return reached[0] if reached else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "langbuild-bench-init")
    parser.add_argument("--deepfocus-rows", type=Path, default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--speedup-limit", type=int, default=8, help="random may run this many times K steps")
    parser.add_argument("--skip-speedup", action="store_true", help="reuse the recorded random-init speed-up run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    project = _project(args.dir)
    out = Path(tempfile.mkdtemp(prefix="extend-", dir=args.dir))
    prepared = prepare(StepContext(project, out, Console(quiet=True), "extend"))
    make_model, tokenizer = prepared.model.build, prepared.tokenizer
    texts = {"target": sample_by_bytes(prepared.valid, HELD_OUT_BYTES),
             "source": sample_by_bytes(read_text_lines("flores-eng-b", Path("."), "benchmark"), HELD_OUT_BYTES)}
    base_model = load_model(prepared.base.path)
    base = {side: _bpb(base_model, prepared.base.tokenizer, sample) for side, sample in texts.items()}
    del base_model
    console.print(f"base model: {base}")
    blocks = probe_blocks(tokenizer, prepared.train, args.steps * args.speedup_limit, 0)
    methods = [m for m in args.methods.split(",") if m] + (["deepfocus"] if args.deepfocus_rows else [])
    # Rows accumulate across runs (same extension, same batches), so one method can be re-measured alone.
    saved = args.dir / f"rows-k{args.steps}.json"
    cached = {r["method"]: r for r in json.loads(saved.read_text())} if saved.exists() else {}
    for method in methods:
        cached[method] = measure(method, make_model, args.deepfocus_rows, tokenizer, blocks, texts, base, args.steps)
        saved.write_text(json.dumps(list(cached.values()), indent=1))
    order = [*METHODS, "deepfocus"]
    rows = sorted(cached.values(), key=lambda r: order.index(r["method"]) if r["method"] in order else len(order))
    ours = [r for r in rows if r["method"] != "deepfocus"]
    best = min(ours, key=lambda r: r["embeddings_only"])
    random_steps = None
    if not args.skip_speedup:
        random_steps = random_steps_to_reach(best["embeddings_only"], make_model, tokenizer, blocks, texts,
                                             args.steps * args.speedup_limit)
        (args.dir / f"speedup-k{args.steps}.json").write_text(json.dumps({"best": best["method"], "steps": random_steps}))
    elif (args.dir / f"speedup-k{args.steps}.json").exists():
        recorded = json.loads((args.dir / f"speedup-k{args.steps}.json").read_text())
        random_steps = recorded["steps"] if recorded["best"] == best["method"] else None
    record(rows, base, best, random_steps, args)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))


def _targets(rows, base, best, random_steps, args) -> list[str]:
    """The issue's targets, each marked met or missed."""
    ours = [r for r in rows if r["method"] != "deepfocus"]
    zero = min(ours, key=lambda r: r["zero_shot"])
    deepfocus = next((r for r in rows if r["method"] == "deepfocus"), None)
    source = zero["zero_shot_source"] / base["source"]
    speedup = (random_steps / args.steps) if random_steps else args.speedup_limit
    checks = [
        (f"best zero-shot ({zero['method']}) ≤ 0.97 × deepfocus", deepfocus is not None
         and zero["zero_shot"] <= 0.97 * deepfocus["zero_shot"]),
        (f"best zero-shot ≤ base ({zero['zero_shot'] / base['target']:.3f} × base)", zero["zero_shot"] <= base["target"]),
        ("aim: best zero-shot ≤ 0.90 × base", zero["zero_shot"] <= 0.90 * base["target"]),
        (f"random-init steps to reach the best K-step embeddings-only result ÷ K ≥ 5 ({'>' if not random_steps else ''}"
         f"{speedup:.1f})", speedup >= 5),
        (f"English bits per byte after extension within ±0.5 % ({zero['method']}: {source - 1:+.2%})", abs(source - 1) <= 0.005),
    ]
    return ["Targets:", *[f"- {'met' if ok else '**missed**'}: {text}" for text, ok in checks]]


def record(rows, base, best, random_steps, args) -> None:
    k = args.steps
    lines = [
        f"SmolLM2-135M + {NEW_TOKENS:,} Chichewa tokens (continued BPE); held-out Ruth {HELD_OUT_BYTES:,} bytes, "
        f"FLORES+ English (second half) {HELD_OUT_BYTES:,} bytes; K = {k} steps of 4 x 128 tokens; "
        f"embeddings-only lr {EMBEDDING_LR}, full lr {FULL_LR}; seed 0. Base model: Chichewa {base['target']:.4f}, "
        f"English {base['source']:.4f} bits/byte.",
        "",
        "| init | zero-shot Chichewa bpb | ÷ base | zero-shot English bpb | ÷ base | after K embeddings-only | after K full "
        "| steps to base bpb | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['zero_shot']:.4f} | {r['zero_shot'] / base['target']:.3f} | "
                     f"{r['zero_shot_source']:.4f} | {r['zero_shot_source'] / base['source']:.4f} | "
                     f"{r['embeddings_only']:.4f} | {r['full']:.4f} | {_fmt(r['reached_base_at'])} | {r['seconds']:.0f} |")
    limit = k * args.speedup_limit
    speedup = f"{random_steps / k:.1f}" if random_steps else f"> {args.speedup_limit} (not reached in {limit} steps)"
    lines += ["", f"Best after K embeddings-only steps: **{best['method']}** ({best['embeddings_only']:.4f}). Random rows "
              f"reach that after {_fmt(random_steps)} embeddings-only steps: speed-up {speedup} × K."]
    deepfocus = next((r for r in rows if r["method"] == "deepfocus"), None)
    if deepfocus:
        best_zero = min((r for r in rows if r["method"] != "deepfocus"), key=lambda r: r["zero_shot"])
        lines.append(f"Best zero-shot ({best_zero['method']}) ÷ deepfocus zero-shot: "
                     f"{best_zero['zero_shot'] / deepfocus['zero_shot']:.3f}.")
    lines += ["", *_targets(rows, base, best, random_steps, args)]
    table = "\n".join(lines)
    print(table)
    record_section("embedding-init", "Embedding initialisation (SmolLM2-135M + Chichewa)", table)


if __name__ == "__main__":
    main()
