"""Time to quality: which continued-pretraining recipe makes SmolLM2-135M good at Chichewa fastest?

    python benchmarks/training_recipes.py [--steps 48] [--recipes a,b,...] [--reuse]

Same data (the demo's Chichewa Bible train split), same hardware, same tokens per optimizer step
(4 x 256), same number of steps, same loop (langbuild's, which matches a plain HF Trainer in speed:
benchmarks/train_throughput.py), same held-out text (Ruth, never trained on). Recipes:

* ``a-add-tokens``: what users do today with LLaMA-Factory/axolotl: ``tokenizer.add_tokens`` of the
  same 4,000 new strings, ``resize_token_embeddings(mean_resizing=True)``, full training from step 0;
* ``b-plain``: continued pretraining of the unextended base model (a user can always skip extension);
* ``c-*``: langbuild's extension (continued BPE, subword-mean rows) with a training recipe.

Held-out bits per byte is measured every ``--check-every`` steps and plotted against training
wall-clock (evaluation time excluded). Reported: the time each recipe needs to reach Q = 0.85 x the
base model's held-out bits per byte, the bits per byte each has at a common wall-clock budget,
English (FLORES+ devtest, second half) bits per byte before and after (forgetting), and peak RSS.
Each recipe runs in its own process, so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.corpus.shards import read_split
from langbuild.models.loading import load_model, load_tokenizer, resolve_model
from langbuild.models.scoring import bits_per_byte
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.project.demo import DEMO_SETTINGS, write_demo_data
from langbuild.project.scaffold import create_project
from langbuild.text.textio import sample_by_bytes
from langbuild.training.data import tokenise_to_file
from langbuild.training.loop import Trainer
from langbuild.training.plan import TrainPlan, stage_plan

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

NEW_TOKENS = 4000
HELD_OUT_BYTES = 8000
QUALITY = 0.85  # Q = QUALITY x the base model's held-out bits per byte
BASE = {"stages": ["full"], "learning_rate": 2e-4, "embedding_learning_rate": 2e-4, "embedding_steps": 0,
        "replay_fraction": 0.0, "schedule": "cosine", "warmup_steps": 4}
RECIPES = {
    "a-add-tokens": {"model": "add-tokens"},
    "b-plain": {"model": "base"},
    "b-plain-replay": {"model": "base", "replay_fraction": 0.25},
    "c-full": {"model": "extended"},
    "c-full-emb": {"model": "extended", "embedding_learning_rate": 1e-3},
    "c-warmup": {"model": "extended", "stages": ["embeddings", "full"], "embedding_steps": 8, "embedding_learning_rate": 1e-3},
    "c-replay": {"model": "extended", "embedding_learning_rate": 1e-3, "replay_fraction": 0.25},
}


def _langbuild_defaults() -> dict:
    """langbuild's default recipe, read from the settings schema, so this benchmark measures what
    a project gets when it sets nothing."""
    from langbuild.core.config import SCHEMA

    train = {key: setting.default for key, setting in SCHEMA["train"].items()}
    return {"model": "extended", "stages": train["stages"], "learning_rate": train["learning_rate"],
            "embedding_learning_rate": train["embedding_learning_rate"] or train["learning_rate"],
            "embedding_steps": train["embedding_steps"], "replay_fraction": train["replay_fraction"],
            "schedule": train["schedule"], "warmup_steps": train["warmup_steps"]}


RECIPES["c-default"] = _langbuild_defaults()
# c-replay is what the defaults were set to after the first measurement; c-default re-reads them.
DEFAULT_RECIPES = ("a-add-tokens", "b-plain", "c-full", "c-full-emb", "c-warmup", "c-replay", "c-default")
console = Console()


def prepare_project(root: Path) -> Project:
    if not (root / "langbuild.toml").exists():
        write_demo_data(root / "data")
        create_project(root, {**DEMO_SETTINGS, "extend.num_new_tokens": NEW_TOKENS, "extend.init": "subword-mean",
                              "extend.zero_shot_max_bytes": 0})
    project = Project(root)
    pipeline.run(project, console, until="extend")
    return project


def add_tokens_model(project: Project, folder: Path) -> Path:
    """Recipe (a): the base model with the same new strings added the common way."""
    if (folder / "model.safetensors").exists():
        return folder
    from langbuild.embedding_init.spaces import readable

    base = resolve_model("smollm2-135m")
    tokenizer, model = load_tokenizer(base), load_model(base)
    raw = [t["token"] for t in json.loads((project.step_dir("extend") / "new_tokens.json").read_text())]
    strings = sorted({s.strip() for s in readable(raw, True) if s.strip()} - set(tokenizer.get_vocab()))
    tokenizer.add_tokens(strings)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def model_folder(kind: str, project: Project, work: Path) -> Path:
    if kind == "base":
        return resolve_model("smollm2-135m")
    if kind == "add-tokens":
        return add_tokens_model(project, work / "add-tokens-model")
    return project.step_dir("extend") / "model"


def held_out(project: Project) -> dict[str, list[str]]:
    return {"target": sample_by_bytes(read_split(project.step_dir("corpus"), "valid"), HELD_OUT_BYTES),
            "source": sample_by_bytes(read_text_lines("flores-eng-b", Path("."), "benchmark"), HELD_OUT_BYTES)}


def run_recipe(name: str, work: Path, steps: int, check_every: int) -> dict:
    """One recipe in this process; writes and returns its record."""
    recipe = {**BASE, **RECIPES[name]}
    project = Project(work / "project")
    source = model_folder(recipe["model"], project, work)
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tokenizer = load_tokenizer(source)
    texts = held_out(project)
    model = load_model(source)
    before = {side: bits_per_byte(model, tokenizer, sample)["bits_per_byte"] for side, sample in texts.items()}
    del model
    train_count = tokenise_to_file(tokenizer, read_split(project.step_dir("corpus"), "train"), out / "train.bin")
    replay_count = tokenise_to_file(tokenizer, read_text_lines("flores-eng-a", Path("."), "benchmark"), out / "replay.bin")
    new_rows = []
    if recipe["model"] == "extended":
        new_rows = [t["id"] for t in json.loads((project.step_dir("extend") / "new_tokens.json").read_text())]
    plan = TrainPlan(
        source=str(source), train_tokens=str(out / "train.bin"), train_token_count=train_count, out=str(out), seq_len=256,
        batch_size=4, accumulation=1, num_processes=1, total_steps=steps,
        stages=stage_plan(recipe["stages"], steps, recipe["embedding_steps"]), learning_rate=recipe["learning_rate"],
        embedding_learning_rate=recipe["embedding_learning_rate"], warmup_steps=recipe["warmup_steps"], schedule=recipe["schedule"],
        decay_fraction=0.2, weight_decay=0.0, max_grad_norm=1.0, precision="fp32", gradient_checkpointing=False,
        new_rows=new_rows, lora_rank=16, lora_alpha=32, unfreeze_layers=0, seed=0, threads=2, save_every=10**6,
        keep_checkpoints=1, eval_every=check_every, early_stopping=0, valid_texts=texts["target"],
        replay_tokens=str(out / "replay.bin"), replay_token_count=replay_count, replay_fraction=recipe["replay_fraction"],
    )
    Trainer(plan, console).run()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    clock, curve = 0.0, [{"step": 0, "seconds": 0.0, "bits_per_byte": before["target"]}]
    for record in records:
        clock += record["seconds_per_step"]
        if "valid_bits_per_byte" in record:
            curve.append({"step": record["step"], "seconds": clock, "bits_per_byte": record["valid_bits_per_byte"]})
    trained = load_model(out / "model")
    after_source = bits_per_byte(trained, tokenizer, texts["source"])["bits_per_byte"]
    result = {"recipe": name, "settings": recipe, "curve": curve, "source_before": before["source"],
              "source_after": after_source, "train_seconds": clock, "tokens_per_s": steps * 1024 / clock,
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    (work / "runs" / f"{name}.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(out / "model", ignore_errors=True)  # 0.5 GB each; the record is what matters
    return result


def time_to(curve: list[dict], quality: float) -> float | None:
    """Training seconds at which the curve first reaches ``quality`` (linear between checks)."""
    for before, after in zip(curve, curve[1:]):
        if before["bits_per_byte"] <= quality:
            return before["seconds"]
        if after["bits_per_byte"] <= quality:
            share = (before["bits_per_byte"] - quality) / (before["bits_per_byte"] - after["bits_per_byte"])
            return before["seconds"] + share * (after["seconds"] - before["seconds"])
    return None


def value_at(curve: list[dict], seconds: float) -> float:
    for before, after in zip(curve, curve[1:]):
        if after["seconds"] >= seconds:
            share = (seconds - before["seconds"]) / max(after["seconds"] - before["seconds"], 1e-9)
            return before["bits_per_byte"] + share * (after["bits_per_byte"] - before["bits_per_byte"])
    return curve[-1]["bits_per_byte"]


def plot(results: list[dict], quality: float, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for result in results:
        curve = result["curve"]
        axes.plot([p["seconds"] for p in curve], [p["bits_per_byte"] for p in curve], marker="o", ms=3, label=result["recipe"])
    axes.axhline(quality, color="grey", ls="--", lw=1, label=f"Q = {QUALITY} x base")
    axes.set(xlabel="training wall-clock (s, 2 CPU cores)", ylabel="held-out Chichewa bits per byte (lower is better)",
             title="SmolLM2-135M on Chichewa: time to quality")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def report(results: list[dict], steps: int) -> str:
    base_bpb = next(r for r in results if r["recipe"].startswith("b-plain"))["curve"][0]["bits_per_byte"]
    quality = QUALITY * base_bpb
    budget = min(r["train_seconds"] for r in results)
    by_name = {r["recipe"]: r for r in results}
    lines = [f"{steps} steps x 1,024 tokens for every recipe; held-out Chichewa (Ruth, 8 kB) checked along the way. "
             f"Base model: {base_bpb:.3f} bits per byte, so Q = {QUALITY} x base = **{quality:.3f}**. "
             f"Common budget: {budget:.0f} s of training (the shortest run). Lower bits per byte is better.", "",
             "| recipe | time to Q (s) | bpb at budget | bpb at end | English bpb before → after | tokens/s | peak RSS (GB) |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in results:
        reach = time_to(r["curve"], quality)
        lines.append(f"| {r['recipe']} | {reach:.0f} |" if reach is not None else f"| {r['recipe']} | not reached |")
        change = (r["source_after"] / r["source_before"] - 1) * 100
        lines[-1] += (f" {value_at(r['curve'], budget):.3f} | {r['curve'][-1]['bits_per_byte']:.3f} | "
                      f"{r['source_before']:.3f} → {r['source_after']:.3f} ({change:+.1f} %) | "
                      f"{r['tokens_per_s']:.0f} | {r['peak_rss_gb']:.1f} |")
    lines += ["", "Curves (training seconds: held-out bits per byte):", ""]
    for r in results:
        lines.append(f"- {r['recipe']}: " + ", ".join(f"{p['seconds']:.0f}: {p['bits_per_byte']:.3f}" for p in r["curve"]))
    lines += ["", *targets(by_name, quality, budget)]
    return "\n".join(lines)


def targets(by_name: dict, quality: float, budget: float) -> list[str]:
    """The issue's targets for (c) = langbuild's default recipe against (a) and (b)."""
    if not {"c-default", "a-add-tokens", "b-plain"} <= set(by_name):
        return []
    best = by_name["c-default"]
    c, a, b = (time_to(r["curve"], quality) for r in (best, by_name["a-add-tokens"], by_name["b-plain"]))
    lines = [f"(c) is langbuild's default recipe: {describe(best['settings'])}."]

    def ratio(x, name, target):
        if c is None:
            return f"- ({name}) ÷ (c): c never reached Q: missed."
        if x is None:
            return f"- ({name}) ÷ (c): > {by_name[name]['train_seconds'] / c:.1f} ({name} never reached Q) (target ≥ {target}): met."
        value = x / c
        return f"- ({name}) ÷ (c) time to Q: **{value:.1f}** (target ≥ {target}): {'met' if value >= target else 'missed'}."

    lines += [ratio(a, "a-add-tokens", 5), ratio(b, "b-plain", 1.5)]
    end_c, end_b = value_at(best["curve"], budget), value_at(by_name["b-plain"]["curve"], budget)
    lines.append(f"- At the budget, (c) {end_c:.3f} vs (b) {end_b:.3f} bits per byte: "
                 f"{'met' if end_c < end_b else 'missed'} (c must be lower).")
    return lines


def describe(settings: dict) -> str:
    stages = " then ".join(settings["stages"])
    return (f"{stages}, learning rate {settings['learning_rate']:g}, embeddings {settings['embedding_learning_rate']:g}, "
            f"replay {settings['replay_fraction']:g}, {settings['schedule']}, warm-up {settings['warmup_steps']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "langbuild-bench-train")
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--check-every", type=int, default=4)
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES))
    parser.add_argument("--reuse", action="store_true", help="keep recipes already measured in --dir")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_recipe(args.worker, args.dir, args.steps, args.check_every)
        return
    project = prepare_project(args.dir / "project")
    add_tokens_model(project, args.dir / "add-tokens-model")
    results = []
    for name in [r for r in args.recipes.split(",") if r]:
        saved = args.dir / "runs" / f"{name}.json"
        if not (args.reuse and saved.exists()):
            console.print(f"[bold]recipe {name}[/]")
            subprocess.run([sys.executable, __file__, "--worker", name, "--dir", str(args.dir), "--steps", str(args.steps),
                            "--check-every", str(args.check_every)], check=True)
        results.append(json.loads(saved.read_text()))
    body = report(results, args.steps)
    base_bpb = next(r for r in results if r["recipe"].startswith("b-plain"))["curve"][0]["bits_per_byte"]
    if plot(results, QUALITY * base_bpb, Path(__file__).with_name("training_recipes.png")):
        body += "\n\n![held-out bits per byte against training wall-clock](training_recipes.png)"
    console.print(body)
    record_section("training-recipes", "Continued pretraining: time to quality (SmolLM2-135M, Chichewa, 2 CPU cores)", body)


if __name__ == "__main__":
    main()
