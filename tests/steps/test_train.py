"""Training pieces: packing, the deterministic data order, the schedule, checkpoint fallback."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from rich.console import Console
from transformers import AutoTokenizer

from langbuild.core.errors import LangbuildError
from langbuild.models import load_model
from langbuild.steps.train import (
    batch_indices,
    learning_rate,
    load_latest_checkpoint,
    pack_blocks,
    save_checkpoint,
)

QUIET = Console(quiet=True)


def test_blocks_are_packed_with_eos_between_documents(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2-bytelevel"])
    texts = ["Ndipo anati kwa iye", "Mulungu ndiye wabwino", "Iwo anapita kumudzi"]
    blocks = pack_blocks(tokenizer, texts, seq_len=8)
    stream = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert blocks.shape == (len(stream) // 8, 8)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    with pytest.raises(LangbuildError, match="train.seq_len"):
        pack_blocks(tokenizer, ["mawu"], seq_len=512)


def test_data_order_depends_only_on_step_and_covers_each_epoch():
    n_blocks, batch = 10, 3
    first_epoch = [i for step in range(3) for i in batch_indices(step, batch, n_blocks, seed=0)]
    first_epoch += batch_indices(3, batch, n_blocks, seed=0)[:1]
    assert sorted(first_epoch) == list(range(10))
    assert batch_indices(7, batch, n_blocks, seed=0) == batch_indices(7, batch, n_blocks, seed=0)
    assert [batch_indices(s, batch, n_blocks, seed=1) for s in range(3)] != [
        batch_indices(s, batch, n_blocks, seed=0) for s in range(3)
    ]


def test_schedule_warms_up_then_decays_to_a_tenth():
    peak, warmup, total = 1e-3, 4, 20
    rates = [learning_rate(s, peak, warmup, total) for s in range(total)]
    assert rates[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert learning_rate(total, peak, warmup, total) == pytest.approx(1e-4)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tiny_models, tmp_path):
    model = load_model(tiny_models["llama-spm"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, 2, model, optimizer, keep=3)
    save_checkpoint(folder, 4, model, optimizer, keep=3)
    save_checkpoint(folder, 6, model, optimizer, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000004", "step-000006"]
    (folder / "step-000006" / "model.safetensors").write_bytes(b"half-written")
    step, loaded, optimizer_state = load_latest_checkpoint(folder, load_model, QUIET)
    assert step == 4 and "state" in optimizer_state
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    shutil.rmtree(folder / "step-000004")
    (folder / "step-000006" / "state.json").write_text(json.dumps({"step": 6}))
    assert load_latest_checkpoint(folder, load_model, QUIET) is None
