"""Forgetting against replay source: English and Chichewa bits per byte after the same training.

    python benchmarks/replay.py --project langbuild-demo [--variants none,flores,self]

For each variant the demo project (its extend step done; its own train step, when finished, is the
``flores`` variant and is reused) is copied and trained with the same steps, data order and seed,
changing only the replay settings:

* ``none``: no replay (``train.replay_fraction = 0``): the Chichewa bits per byte replay must keep;
* ``flores``: the default, 25 % of rows from FLORES+ English devtest lines 1-506 (~15k tokens);
* ``self``: 25 % of rows from text sampled once from the base model (self-synthesised rehearsal);
* ``self50``: the same at 50 %;
* ``selfkl``: ``self`` plus beta = 1 times KL(base || trained) on the replay rows (``train.replay_kl``,
  distillation from the model training starts from); ``selfkl-lite``: 12.5 % of rows, beta = 4;
  ``selfkl-eighth``: 12.5 % of rows, beta = 1.

``--set KEY=VALUE`` (repeatable) changes a setting in every copy, and ``--refresh-upstream`` records
the running code's fingerprints for the steps before train in each copy's lock, so that a project
made by older code trains only (its corpus, tokenizer, selection and extended model are kept as
they are; the pipeline must print "up to date, skipped" for each). The table also gives each run's
median seconds per optimizer step (train/metrics.jsonl).

Each trained model is scored in fp32 on the held-out Chichewa books (the valid split) and on FLORES+
English devtest lines 507-1,012 (never replayed), as the eval step scores them; the base model's
English bits per byte is the reference for forgetting. Targets (issue 17): English ≤ +6 % over the
base model, Chichewa within 2 % of training without replay.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from rich.console import Console

from langbuild import pipeline
from langbuild.core.atomic import atomic_write_json
from langbuild.core.config import CONFIG_NAME, coerce, read_document, set_value
from langbuild.core.project import Project
from langbuild.corpus.shards import read_split
from langbuild.models.loading import load_model, load_tokenizer
from langbuild.models.scoring import bits_per_byte
from langbuild.packaged.reference_texts import read_text_lines
from langbuild.text.textio import sample_by_bytes

try:  # run as a script: benchmarks/ is on sys.path
    from results import cpu_description, record_section, scratch_dir
except ImportError:
    from benchmarks.results import cpu_description, record_section, scratch_dir

VARIANTS = {
    "none": {"train.replay_fraction": 0.0},
    "flores": {"train.replay_fraction": 0.25, "train.replay_text": "flores-eng-a"},
    "self": {"train.replay_fraction": 0.25, "train.replay_text": "self"},
    "self50": {"train.replay_fraction": 0.5, "train.replay_text": "self"},
    "selfkl": {"train.replay_fraction": 0.25, "train.replay_text": "self", "train.replay_kl": 1.0},
    "selfkl-lite": {"train.replay_fraction": 0.125, "train.replay_text": "self", "train.replay_kl": 4.0},
    "selfkl-eighth": {"train.replay_fraction": 0.125, "train.replay_text": "self", "train.replay_kl": 1.0},
}
console = Console()


def _trained_copy(project: Path, name: str, settings: dict, refresh: bool) -> Path:
    """A copy of ``project`` trained with the variant's settings (and ``settings``); its train folder."""
    root = scratch_dir(f"replay-{name}-") / "p"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("checkpoints", "train", "eval", "report"))
    doc = read_document(root / CONFIG_NAME)
    for key, value in (settings | VARIANTS[name]).items():
        set_value(doc, key, coerce(key, value))
    (root / CONFIG_NAME).write_text(doc.as_string(), encoding="utf-8")
    if refresh:
        _refresh_upstream(Project(root))
    console.print(f"{name}: training {root}")
    pipeline.run(Project(root), console, until="train")
    return root / "train"


def _refresh_upstream(project: Project) -> None:
    """Record the running code's fingerprints of the steps before train in the lock (as
    benchmarks/eval_speed.py does), so that only train runs in a project made by older code."""
    lock_path, hashed = project.root / "langbuild.lock", {}
    lock = json.loads(lock_path.read_text())
    upstream = [step.name for step in pipeline.STEPS][:[step.name for step in pipeline.STEPS].index("train")]
    for index, name in enumerate(upstream):
        lock["steps"][name]["fingerprint"] = pipeline.fingerprints(project, pipeline.STEPS[: index + 1], None, hashed)[name]
        atomic_write_json(lock_path, lock)


def _parsed(value: str):
    """A --set value: JSON (0, 0.5, true, [..]) or else the plain string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _seconds_per_step(train: Path) -> float | None:
    """Median seconds per optimizer step of a finished run (held-out checks are not in it)."""
    path = train / "metrics.jsonl"
    if not path.is_file():
        return None
    return statistics.median(json.loads(line)["seconds_per_step"] for line in path.read_text().splitlines() if line)


def _scores(folder: Path, texts: dict[str, list[str]]) -> dict[str, float]:
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    return {side: bits_per_byte(model, tokenizer, lines)["bits_per_byte"] for side, lines in texts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--variants", default="none,flores,self")
    parser.add_argument("--no-replay-bpb", type=float, default=None,
                        help="Chichewa bits per byte of the none variant from an earlier run, when it is not in --variants")
    parser.add_argument("--section", default="replay", help="the RESULTS.md section to write (one per set of variants)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every trained copy, e.g. corpus.test_fraction=0")
    parser.add_argument("--refresh-upstream", action="store_true",
                        help="train only, in a project made by older code: record today's fingerprints up to extend")
    args = parser.parse_args()
    settings = {key: _parsed(value) for key, value in (item.split("=", 1) for item in args.set)}
    project = Project(args.project)
    texts = {"chichewa": list(read_split(project.step_dir("corpus"), "valid")),
             "english": sample_by_bytes(read_text_lines("flores-eng-b", args.project, "eval.source_text"), 15_000)}
    selection = json.loads((project.step_dir("select") / "selection.json").read_text())
    base = _scores(Path(selection["chosen_path"]), {"english": texts["english"]})["english"]
    steps = project.config.get("train.max_steps")
    rows = {}
    for name in args.variants.split(","):
        reuse = name == "flores" and (args.project / "train" / "model").is_dir()
        train = args.project / "train" if reuse else _trained_copy(args.project, name, settings, args.refresh_upstream)
        rows[name] = _scores(train / "model", texts) | {"seconds_per_step": _seconds_per_step(train)}
        console.print(f"{name}: {rows[name]}")
    record(rows, base, steps, args)


def record(rows: dict, base_english: float, steps: int, args) -> None:
    none = rows.get("none", {}).get("chichewa") or args.no_replay_bpb
    lines = [f"{cpu_description()}. Project {args.project}: {steps} steps x 1,024 tokens, same data order and seed; only "
             f"the replay settings differ. Bits per byte in fp32: Chichewa on the held-out books, English on FLORES+ "
             f"devtest lines 507-1,012 (never replayed); base model English {base_english:.4f}.", "",
             "| replay | Chichewa bpb | vs no replay | English bpb | vs base | s/step |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        versus_none = f"{row['chichewa'] / none - 1:+.1%}" if none else "—"
        seconds = f"{row['seconds_per_step']:.2f}" if row.get("seconds_per_step") else "—"
        lines.append(f"| {name}: {VARIANTS[name]} | {row['chichewa']:.4f} | {versus_none} | {row['english']:.4f} | "
                     f"{row['english'] / base_english - 1:+.1%} | {seconds} |")
    lines += ["", "Targets: English ≤ +6 % over base; Chichewa within 2 % of no replay."]
    body = "\n".join(lines)
    console.print(body)
    title = "Forgetting by replay source at the demo's 5x training" + ("" if args.section == "replay" else f" ({args.section})")
    record_section(args.section, title, body)


if __name__ == "__main__":
    main()
