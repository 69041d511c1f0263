"""The report's building blocks without a project: the document model, the training plot, the card's license lookup."""

from __future__ import annotations

import json

from langbuild.reporting.card import base_model_info
from langbuild.reporting.data import read_train_records
from langbuild.reporting.document import Bullets, Code, Heading, Paragraph, Strong, Table, rich, to_markdown
from langbuild.reporting.html import to_html
from langbuild.reporting.plots import PNG_SIGNATURE
from tests.steps.test_report import _records


def test_document_renders_the_same_content_in_both_formats(tmp_path):
    blocks = [Heading(1, "T <x>"), Paragraph(rich("a ", Strong("b*"), " ", Code("c|d"), " & e")),
              Bullets(("one", rich(Strong("two")))), Table(("k", "v"), (("a|b", "1"),), ("l", "r"))]
    markdown = to_markdown(blocks)
    assert markdown.startswith("# T \\<x>\n\na **b\\*** `c|d` & e\n\n- one\n- **two**\n\n| k | v |\n|---|---:|\n| a\\|b | 1 |")
    html = to_html(blocks, "t")
    assert "<h1>T &lt;x&gt;</h1>" in html and "<strong>b*</strong> <code>c|d</code> &amp; e" in html
    assert '<td>a|b</td><td class="r">1</td>' in html


def test_training_plot_without_held_out_curve_and_duplicate_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = _records(4, held_out=False)
    lines = [json.dumps(r) for r in records] + ["not json", json.dumps({**records[1], "loss": 9.0})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = read_train_records(path)
    assert [r["step"] for r in read] == [1, 2, 3, 4] and read[1]["loss"] == 9.0  # a resumed run's redo wins
    from langbuild.reporting.plots import stage_switches, training_plot

    assert stage_switches(read) == [(3, "full")]
    assert training_plot(read, tmp_path / "t.png").read_bytes().startswith(PNG_SIGNATURE)
    assert training_plot([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_card_reads_the_license_from_a_local_folder_readme(tmp_path):
    folder = tmp_path / "my-base"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# x\n", encoding="utf-8")
    info = base_model_info({"chosen": str(folder), "chosen_path": str(folder)})
    assert (info.hub_id, info.license, info.license_note) == ("my-base", "mit", None)
