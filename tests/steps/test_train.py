"""Training pieces: packing, the token file, the data order, replay, schedules, stages, checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from rich.console import Console
from transformers import AutoTokenizer

from langbuild.core.errors import LangbuildError
from langbuild.models.loading import load_model
from langbuild.training.checkpoints import load_latest_checkpoint, load_weights, save_checkpoint
from langbuild.training.data import TokenBlocks, batch_indices, global_batch, pack_blocks, replay_rows, tokenise_to_file
from langbuild.training.loop import is_out_of_memory
from langbuild.training.plan import accumulation_steps, check_stage_list, stage_plan, total_steps
from langbuild.training.schedule import learning_rate
from langbuild.training.stages import embedding_parameters, mask_gradients, setup_stage, transformer_blocks

QUIET = Console(quiet=True)
TEXTS = ["Ndipo anati kwa iye", "Mulungu ndiye wabwino", "Iwo anapita kumudzi", "Yesu anayankha nati"]


class _Plan:
    """The few plan fields setup_stage reads."""

    def __init__(self, **kw):
        self.unfreeze_layers, self.new_rows, self.weight_decay = 0, [], 0.0
        self.learning_rate, self.embedding_learning_rate, self.gradient_checkpointing = 1e-3, 1e-2, False
        self.lora_rank, self.lora_alpha = 4, 8
        self.__dict__.update(kw)


def test_blocks_are_packed_with_eos_between_documents(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2-bytelevel"])
    blocks = pack_blocks(tokenizer, TEXTS[:3], seq_len=8)
    stream = []
    for text in TEXTS[:3]:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert blocks.shape == (len(stream) // 8, 8)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    with pytest.raises(LangbuildError, match="train.seq_len"):
        pack_blocks(tokenizer, ["mawu"], seq_len=512)


def test_the_token_file_streams_the_same_blocks_and_is_redone_after_a_torn_write(tiny_models, tmp_path, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama-spm"])
    monkeypatch.setattr("langbuild.training.data.CHUNK_DOCUMENTS", 3)  # several chunks from four documents
    path = tmp_path / "train.bin"
    count = tokenise_to_file(tokenizer, iter(TEXTS * 5), path)
    blocks = TokenBlocks(path, count, 8, "the train split")
    assert torch.equal(blocks[list(range(len(blocks)))], pack_blocks(tokenizer, TEXTS * 5, 8))
    path.write_bytes(path.read_bytes()[:12])  # a kill mid-write leaves a file its record does not match
    assert tokenise_to_file(tokenizer, iter(TEXTS * 5), path) == count
    assert path.stat().st_size == count * 4
    with pytest.raises(LangbuildError, match="fewer than one block"):
        TokenBlocks(path, count, 10_000, "the train split")


def test_data_order_depends_only_on_step_and_covers_each_epoch():
    n_blocks, batch = 10, 3
    first_epoch = [i for step in range(3) for i in batch_indices(step, batch, n_blocks, seed=0)]
    first_epoch += batch_indices(3, batch, n_blocks, seed=0)[:1]
    assert sorted(first_epoch) == list(range(10))
    assert batch_indices(7, batch, n_blocks, seed=0) == batch_indices(7, batch, n_blocks, seed=0)
    assert [batch_indices(s, batch, n_blocks, seed=1) for s in range(3)] != [
        batch_indices(s, batch, n_blocks, seed=0) for s in range(3)
    ]


def test_replay_takes_about_its_share_of_rows_from_the_replay_text(tiny_models, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama-spm"])
    target_count = tokenise_to_file(tokenizer, TEXTS * 10, tmp_path / "t.bin")
    replay_count = tokenise_to_file(tokenizer, ["And he said unto them"] * 20, tmp_path / "r.bin")
    target, replay = TokenBlocks(tmp_path / "t.bin", target_count, 8, "t"), TokenBlocks(tmp_path / "r.bin", replay_count, 8, "r")
    share = sum(sum(replay_rows(step, 8, 0.25, seed=0)) for step in range(200)) / 1600
    assert 0.2 < share < 0.3
    assert replay_rows(5, 8, 0.25, 0) == replay_rows(5, 8, 0.25, 0) and not any(replay_rows(5, 8, 0.0, 0))
    replay_ids = set(replay[list(range(len(replay)))].flatten().tolist())
    for step in range(10):
        batch, rows = global_batch(step, 8, target, replay, 0.25, 0), replay_rows(step, 8, 0.25, 0)
        for row, is_replay in zip(batch, rows):
            assert set(row.tolist()) <= replay_ids or not is_replay
        assert torch.equal(global_batch(step, 8, target, None, 0.25, 0), target[batch_indices(step, 8, len(target), 0)])


def test_schedules_warm_up_then_decay_to_a_tenth():
    peak, warmup, total = 1e-3, 4, 20
    rates = [learning_rate(s, peak, warmup, total) for s in range(total)]
    assert rates[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert learning_rate(total, peak, warmup, total) == pytest.approx(1e-4)
    wsd = [learning_rate(s, peak, 2, 22, "wsd", decay_fraction=0.25) for s in range(22)]
    assert wsd[2:17] == [peak] * 15  # stable until the last quarter of the post-warm-up steps
    assert all(a > b for a, b in zip(wsd[16:], wsd[17:])) and wsd[-1] == pytest.approx(1e-4)
    assert {learning_rate(s, peak, 0, 10, "constant") for s in range(10)} == {peak}


def test_stage_lists_that_train_nothing_or_make_no_sense_are_refused():
    for names, fragment in (([], "empty"), (["full", "full"], "twice"), (["full", "lora"], "choose one"),
                            (["full", "embeddings"], "first")):
        with pytest.raises(LangbuildError, match=fragment):
            check_stage_list(names)
    with pytest.raises(LangbuildError, match="embedding_steps"):
        stage_plan(["embeddings", "full"], 10, 10)
    plan = stage_plan(["embeddings", "lora"], 50, 20)
    assert [(s.name, s.first, s.steps) for s in plan] == [("embeddings", 0, 20), ("lora", 20, 30)]
    assert [(s.name, s.steps) for s in stage_plan(["embeddings"], 50, 20)] == [("embeddings", 50)]
    assert [s.name for s in stage_plan(["embeddings", "full"], 50, 0)] == ["full"]


def test_token_budget_and_accumulation():
    assert total_steps(100, 0, 1024) == 100 and total_steps(100, 10_000, 1024) == 10
    assert accumulation_steps(0, 128, 4, 1) == 1
    assert accumulation_steps(2048, 128, 4, 2) == 2
    with pytest.raises(LangbuildError, match="set it to 1024"):
        accumulation_steps(1000, 128, 4, 2)


def _loss_step(model, tokenizer, setup, lr=1e-2):
    batch = pack_blocks(tokenizer, TEXTS * 4, 16)[:2]
    optimizer = torch.optim.AdamW(setup.groups, lr=lr)
    setup.model(input_ids=batch, labels=batch).loss.backward()
    mask_gradients(setup.row_masks)
    optimizer.step()


@pytest.mark.parametrize("family", ["llama-spm", "gpt2-bytelevel"])
def test_the_embeddings_stage_changes_only_the_new_rows(tiny_models, family):
    model = load_model(tiny_models[family])
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    new_rows = sorted(set(pack_blocks(tokenizer, TEXTS * 4, 16)[:2].flatten().tolist()))[:8]  # rows the batch uses
    old = torch.ones(model.get_input_embeddings().weight.shape[0], dtype=torch.bool)
    old[new_rows] = False
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    setup = setup_stage(model, "embeddings", _Plan(new_rows=new_rows, unfreeze_layers=1), seed=0)
    assert [g["peak"] for g in setup.groups] == [1e-2, 1e-3] and setup.groups[0]["weight_decay"] == 0.0
    _loss_step(model, tokenizer, setup)
    blocks = transformer_blocks(model)
    edge = {id(p) for block in (blocks[0], blocks[-1]) for p in block.parameters()}
    matrices = {id(p) for p in embedding_parameters(model)}
    for name, param in model.named_parameters():
        if id(param) in matrices:
            assert torch.equal(param[old], before[name][old]), name
            assert not torch.equal(param[new_rows], before[name][new_rows]), name
        elif id(param) not in edge:
            assert torch.equal(param, before[name]), name
    with pytest.raises(LangbuildError, match="added none"):
        setup_stage(model, "embeddings", _Plan(new_rows=[]), seed=0)


def test_the_lora_stage_trains_adapters_and_embeddings_then_merges(tiny_models):
    from langbuild.training.stages import merged

    model = load_model(tiny_models["llama-spm"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama-spm"])
    setup = setup_stage(model, "lora", _Plan(), seed=0)
    trainable = {n for n, p in setup.model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("embed_tokens" in n for n in trainable)
    assert not any("self_attn.q_proj.base_layer" in n for n in trainable)
    _loss_step(model, tokenizer, setup)
    plain = merged(setup.model)
    assert not any("lora" in n for n, _ in plain.named_parameters())


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tiny_models, tmp_path):
    model = load_model(tiny_models["llama-spm"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, 2, model, optimizer, keep=3)
    save_checkpoint(folder, 4, model, optimizer, keep=3, state={"early_stopping": {"best": 1.5}})
    save_checkpoint(folder, 6, model, optimizer, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000004", "step-000006"]
    (folder / "step-000006" / "model.safetensors").write_bytes(b"half-written")

    def restore(path, state):
        fresh = load_model(tiny_models["llama-spm"])
        load_weights(fresh, path)
        return fresh

    state, loaded, optimizer_state = load_latest_checkpoint(folder, restore, QUIET)
    assert state == {"step": 4, "early_stopping": {"best": 1.5}} and "state" in optimizer_state
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    shutil.rmtree(folder / "step-000004")
    (folder / "step-000006" / "state.json").write_text(json.dumps({"step": 6}))
    assert load_latest_checkpoint(folder, restore, QUIET) is None


def test_a_real_failed_allocation_is_recognised_as_out_of_memory():
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**62, dtype=torch.uint8)
    assert is_out_of_memory(caught.value)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
