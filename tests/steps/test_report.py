"""The report step (Markdown, HTML, plots), the model card and ``langbuild export``.

Rendering is tested on step outputs written by hand into a project folder, so every optional part
(benchmarks, skipped tasks, init comparison, held-out curve) can be switched on and off; the
finished tiny projects check the same code on real pipeline outputs and the export on real models.
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.pipeline import StepContext
from langbuild.project.export import export_model
from langbuild.project.scaffold import create_project
from langbuild.reporting.card import base_model_info, render_card
from langbuild.reporting.data import load_outputs
from langbuild.reporting.plots import PNG_SIGNATURE, write_plots
from langbuild.steps import report

EVIL_TASK = "<b>evil</b> | task* $x$"

CORPUS = {"language": "nya", "read": 110, "removed": {"duplicate": 8, "too_short": 2},
          "train": {"documents": 90, "characters": 9000, "bytes": 9100, "words": 1500},
          "valid": {"documents": 10, "characters": 1000, "bytes": 1010, "words": 160}, "scripts": {"LATIN": 9000}}
TOKENIZER = {"library": "sentencepiece", "model_type": "unigram", "vocab_size": {"requested": 400, "trained": 400},
             "tokenizers": {"target": {"tokens_per_word": 1.9}}}
SELECTION = {"rule": "bpb: lowest bits per byte", "chosen": "smollm2-135m", "chosen_path": "/nowhere/smollm2",
             "candidates": [{"name": "smollm2-135m", "parameters": 134_515_008, "tokens_per_word": 3.1, "bits_per_byte": 2.5,
                             "source_bits_per_byte": 0.9, "memory_gb": 2.1, "fits": True, "seconds_per_million_tokens": 900}]}
EXTEND = {"mode": "extend", "method": "continued-bpe", "init": "focus", "added_tokens": 2000,
          "vocab_size": {"base": 49152, "extended": 51152}, "embedding_rows": {"base": 49152, "extended": 51200, "padding": 48},
          "valid_tokens_per_word": {"base": 3.1, "extended": 2.0},
          "gain_curve": [{"new_tokens": 0, "tokens_per_word": 3.1}, {"new_tokens": 2000, "tokens_per_word": 2.0}],
          "init_comparison": [
              {"method": "subword-mean", "zero_shot_bits_per_byte": 2.31, "probe_bits_per_byte": 2.10, "chosen": False},
              {"method": "focus", "zero_shot_bits_per_byte": 2.25, "probe_bits_per_byte": 2.02, "chosen": True}],
          "zero_shot_bits_per_byte": {"target": {"base": 2.5, "extended": 2.25}, "source": {"base": 0.9, "extended": 0.92}},
          "checks": {"existing_ids_kept": 49152}}
TRAIN = {"steps": 6, "planned_steps": 6, "stopped_early": False, "stages": [{"name": "embeddings", "steps": 2},
                                                                           {"name": "full", "steps": 4}],
         "tokens_per_step": 4096, "tokens": 24576, "final_loss": 3.2, "held_out": [{"step": 3, "bits_per_byte": 2.2}]}


def _score(value, interval):
    return {"value": value, "interval": interval, "items": 200}


EVAL = {
    "base_model": "smollm2-135m",
    "target": {"bits_per_byte": {"base": 2.5, "extended": 2.25, "trained": 1.8},
               "bits_per_byte_interval": {"base": [2.4, 2.6], "extended": None, "trained": [1.75, 1.85]},
               "tokens_per_word": {"base": 3.1, "extended": 2.0}, "bytes": 50_000},
    "source": {"bits_per_byte": {"base": 0.9, "extended": 0.92, "trained": 0.95}, "tokens_per_word": {"base": 1.3, "extended": 1.3},
               "bytes": 20_000, "lines_identical": 0.99},
    "generation": {"text_chars": 1000, "models": {
        "base": {"chars_per_second": 400.0, "tokens_per_second": 120.0, "chars_per_token": 3.3},
        "extended": {"chars_per_second": 560.0, "tokens_per_second": 118.0, "chars_per_token": 4.7}}, "speedup": 1.4},
    "tasks": {
        "nya_cloze": {"kind": "multiple_choice", "metric": "acc", "direction": "higher is better", "items": 200, "chance": 0.25,
                      "description": "pick the true continuation among 4", "origin": "built from held-out data",
                      "scores": {"base": _score(0.412, [0.371, 0.455]), "extended": _score(0.40, [0.36, 0.44]),
                                 "trained": _score(0.55, [0.5, 0.6])},
                      "trained_minus_base": {"value": 0.138, "interval": [0.09, 0.19]}},
        EVIL_TASK: {"kind": "rolling", "metric": "bits_per_byte", "direction": "lower is better", "items": 30, "chance": None,
                    "description": "a task whose name is markup", "origin": "local JSONL tasks/evil.jsonl",
                    "scores": {"base": _score(2.5, [2.4, 2.6]), "trained": _score(1.9, None)}},
    },
    "skipped": [{"task": "belebele_nya_Latn", "reason": "needs the hub: run online once"},
                {"model": "other-model", "reason": "cannot load it"}],
    "lm_eval": {"version": "0.4.13", "seconds": 12.0, "cached": False},
    "directions": {"bits_per_byte": "lower is better", "tokens_per_word": "lower is better"},
}


def _records(steps: int = 6, held_out: bool = True) -> list[dict]:
    records = []
    for step in range(1, steps + 1):
        record = {"step": step, "stage": "embeddings" if step <= 2 else "full", "loss": 4.0 - step * 0.1, "lr": 1e-3,
                  "tokens_per_s": 1000.0, "seconds_per_step": 0.5}
        if held_out and step % 3 == 0:
            record["valid_bits_per_byte"] = 2.3 - step * 0.01
        records.append(record)
    return records


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def write_outputs(root: Path, evaluation: dict | None = EVAL, extend: dict = EXTEND, records: list[dict] | None = None) -> None:
    _write_json(root / "corpus/stats.json", CORPUS)
    _write_json(root / "tokenizer/metrics.json", TOKENIZER)
    _write_json(root / "select/selection.json", SELECTION)
    _write_json(root / "extend/metrics.json", extend)
    _write_json(root / "train/summary.json", TRAIN)
    records = _records() if records is None else records
    (root / "train/metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if evaluation is not None:
        _write_json(root / "eval/metrics.json", evaluation)


@pytest.fixture
def hand_made(tmp_path) -> Project:
    """A project whose step folders hold hand-written outputs (no model, no lock)."""
    root = tmp_path / "proj"
    create_project(root, {"project.language": "nya", "corpus.paths": ["data/train.txt"], "select.candidates": ["smollm2-135m"]})
    write_outputs(root)
    return Project(root)


def run_report(project: Project, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    report.run(StepContext(project=project, out=out, console=Console(quiet=True), name="report"))
    return out


# ---------------------------------------------------------------- Markdown


def test_markdown_has_benchmark_table_with_intervals_and_directions(hand_made, tmp_path):
    text = (run_report(hand_made, tmp_path / "out") / "report.md").read_text(encoding="utf-8")
    assert "| task | shots | metric | direction | base | extended | trained | chance | items |" in text
    row = next(line for line in text.splitlines() if line.startswith("| nya_cloze |"))
    assert row == ("| nya_cloze | 0 | acc | higher is better | 0.412 [0.371, 0.455] | 0.400 [0.360, 0.440] | 0.550 [0.500, 0.600] "
                   "| 0.250 | 200 |")
    # The escaped name keeps the table's columns: a literal | would split the cell.
    evil = next(line for line in text.splitlines() if "evil" in line and line.startswith("|"))
    assert evil.startswith(r"| \<b>evil\</b> \| task\* \$x\$ | 0 | bits_per_byte | lower is better "
                           r"| 2.500 [2.400, 2.600] | — | 1.900 |")
    assert len(re.split(r"(?<!\\)\|", evil)) == len(re.split(r"(?<!\\)\|", row))


def test_markdown_has_intrinsic_metrics_skips_and_plot_links(hand_made, tmp_path):
    out = run_report(hand_made, tmp_path / "out")
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| target | bits per byte | lower is better | 2.5000 [2.4000, 2.6000] | 2.2500 | 1.8000 [1.7500, 1.8500] |" in text
    assert "| source (English) | bits per byte (forgetting) | lower is better |" in text
    assert "| target | tokens per word | lower is better | 3.100 | 2.000 | 2.000 | -35.5 % |" in text
    assert "× 1.40 (higher is better; 400 → 560 characters per second" in text
    assert "Forgetting: English bits per byte went from 0.9000 (base) to 0.9500 (trained), +5.6 %" in text
    assert "### Skipped tasks" in text
    assert "- **belebele_nya_Latn**: needs the hub: run online once" in text
    assert "- **model other-model**: cannot load it" in text
    assert "trained − base +0.138 [+0.090, +0.190] (paired 95 % interval; excludes 0)" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == ["plots/benchmarks.png", "plots/init_comparison.png", "plots/tokens_per_word.png", "plots/training.png"]
    assert all((out / link).is_file() for link in links)
    # What was there before stays: the settings, the candidate table, the zero-shot lines.
    assert "```toml" in text and "## Base model choice" in text
    assert "Zero-shot target bits per byte (extended, before training): 2.250" in text


# ---------------------------------------------------------------- HTML


class _Checker(HTMLParser):
    """Records tags and fails on a close tag that does not match the open one."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.images, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_parses_and_escapes(hand_made, tmp_path):
    html = (run_report(hand_made, tmp_path / "out") / "report.html").read_text(encoding="utf-8")
    assert 'src="http' not in html and "<script" not in html.lower() and "<link" not in html
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == []
    assert len(checker.images) == 4 and all(src.startswith("data:image/png;base64,") for src in checker.images)
    assert "<b>evil" not in html and "&lt;b&gt;evil&lt;/b&gt; | task* $x$" in html
    assert "<b>" not in checker.tags
    text = "".join(checker.text)
    assert "0.412 [0.371, 0.455]" in text and "higher is better" in text and "needs the hub" in text


# ---------------------------------------------------------------- plots


def test_plots_are_deterministic_pngs(hand_made, tmp_path):
    outputs = load_outputs(hand_made)
    first = write_plots(outputs, tmp_path / "a")
    second = write_plots(outputs, tmp_path / "b")
    assert sorted(first) == ["benchmarks", "init_comparison", "tokens_per_word", "training"]
    for name, (path, _caption) in first.items():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        assert data == second[name][0].read_bytes(), f"{name} is not deterministic"


def test_absent_plots_are_skipped(tmp_path):
    root = tmp_path / "proj"
    create_project(root, {"project.language": "nya", "corpus.paths": ["data/train.txt"], "select.candidates": ["smollm2-135m"]})
    evaluation = copy.deepcopy(EVAL)
    evaluation["tasks"], evaluation["skipped"] = {}, []
    del evaluation["generation"]
    write_outputs(root, evaluation=evaluation, extend={**EXTEND, "init_comparison": []}, records=[])
    out = run_report(Project(root), tmp_path / "out")
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["tokens_per_word.png"]
    text = (out / "report.md").read_text(encoding="utf-8")
    assert re.findall(r"\]\((plots/[^)]+)\)", text) == ["plots/tokens_per_word.png"]
    assert "## Benchmarks" not in text and "Skipped tasks" not in text and "Generation speed" not in text
    assert (out / "report.html").read_text(encoding="utf-8").count("<img") == 1


# ---------------------------------------------------------------- model card


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:card.index("\n---\n", 4)])


def test_card_front_matter_and_sections(hand_made, tmp_path):
    card = render_card(hand_made)
    meta = _front_matter(card)
    assert meta["language"] == ["nya"] and meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-generation"
    assert set(meta["tags"]) >= {"langbuild", "continued-pretraining", "vocabulary-extension"}
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["name"] for r in results} == {"held-out nya text", "nya_cloze", EVIL_TASK}
    for section in ("## Model summary", "## Data", "## Method", "## Evaluation", "## How to use", "## Limitations", "## Citation"):
        assert section in card
    assert "0.412 [0.371, 0.455]" in card and "higher is better" in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    assert "FOCUS: Effective Embedding Initialization" in card and "Teaching Old Tokenizers New Words" in card
    assert "English bits per byte went from 0.9000 (base) to 0.9500 (trained)" in card
    assert "religious text" in card and "Not instruction-tuned" in card
    # The report step writes the same card next to the report.
    assert (run_report(hand_made, tmp_path / "out") / "model_card.md").read_text(encoding="utf-8") == card


def test_card_of_an_unknown_local_base_model_says_so(hand_made):
    info = base_model_info({"chosen": "/home/me/models/tiny-llama", "chosen_path": "/home/me/models/tiny-llama"})
    assert (info.hub_id, info.license) == ("tiny-llama", "other") and "does not know the license" in info.license_note
    assert base_model_info({"chosen": "org/model", "chosen_path": "/c/hub/models--org--model/snapshots/x"}).hub_id == "org/model"
    card = render_card(hand_made, include_eval=False)
    meta = _front_matter(card)
    assert "model-index" not in meta and "Not evaluated yet" in card


# ---------------------------------------------------------------- real pipeline outputs and export


def test_finished_project_report(finished_projects):
    for root in finished_projects.values():
        folder = root / "report"
        text = (folder / "report.md").read_text(encoding="utf-8")
        assert "## Benchmarks" in text and "lower is better" in text
        for link in re.findall(r"\]\((plots/[^)]+)\)", text):
            assert (folder / link).read_bytes().startswith(PNG_SIGNATURE)
        assert _front_matter((folder / "model_card.md").read_text(encoding="utf-8"))["language"] == ["nya"]
        assert "data:image/png;base64," in (folder / "report.html").read_text(encoding="utf-8")


def test_export_needs_a_finished_train_step(hand_made, tmp_path):
    with pytest.raises(LangbuildError, match="run 'langbuild run' first") as err:
        export_model(hand_made, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


