"""The chunked causal-LM loss equals Hugging Face's ``labels=`` loss, values and gradients, on tiny
random models of the families langbuild trains (an untied Llama, a tied GPT-2, a tied Gemma 3 with
and without logit soft-capping), through peft and through a DDP wrapper's forward."""

from __future__ import annotations

import pytest
import torch

from langbuild.training.loss import causal_lm_loss, chunk_tokens, enable_chunked_loss, model_parts, token_nll

VOCAB = 300


def tiny_model(family: str, seed: int = 0):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if family == "llama":
        config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                             tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
    elif family == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0,
                            embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2LMHeadModel(config)
    else:
        softcap = 2.0 if family == "gemma3-softcap" else None  # a small cap, so that it bends the logits
        config = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                                  sliding_window=8, final_logit_softcapping=softcap, tie_word_embeddings=True)
        model = Gemma3ForCausalLM(config)
    with torch.no_grad():  # random heads are nearly flat; larger weights make the test see real softmaxes
        model.get_output_embeddings().weight.mul_(20)
    return model.float().train()


def batch_with_ignored(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 20), generator=generator)
    labels = ids.clone()
    labels[0, 5:9] = -100
    labels[2, :3] = -100
    labels[1, -1] = -100
    return ids, labels


def gradients(model) -> dict:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


FAMILIES = ["llama", "gpt2", "gemma3", "gemma3-softcap"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("chunk", [7, None])
def test_equals_the_full_logits_loss_and_its_gradients(family, chunk):
    model = tiny_model(family)
    ids, labels = batch_with_ignored()
    reference = model(input_ids=ids, labels=labels).loss
    reference.backward()
    expected = gradients(model)

    nll = token_nll(model, ids, labels, chunk=chunk)
    counted = (labels[:, 1:] != -100).sum()
    loss = nll.sum() / counted
    loss.backward()
    got = gradients(model)

    assert abs(loss.item() - reference.item()) < 1e-5
    assert set(got) == set(expected)
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name
    assert (nll[labels.roll(-1, 1) == -100] == 0).all() and (nll[:, -1] == 0).all()


def test_softcapping_is_applied():
    capped, plain = tiny_model("gemma3-softcap"), tiny_model("gemma3")
    assert model_parts(capped)[1].softcap == 2.0 and model_parts(plain)[1].softcap is None
    ids, labels = batch_with_ignored()
    assert abs(causal_lm_loss(capped, ids, labels)[0].item() - causal_lm_loss(plain, ids, labels)[0].item()) > 1e-3


def test_the_forward_flag_gives_the_same_loss_and_the_plain_forward_stays():
    model = enable_chunked_loss(tiny_model("llama"))
    ids, labels = batch_with_ignored()
    chunked = model(input_ids=ids, labels=labels, chunked_loss=True)
    plain = model(input_ids=ids, labels=labels)
    assert chunked.logits is None and plain.logits.shape == (3, 20, VOCAB)
    assert abs(chunked.loss.item() - plain.loss.item()) < 1e-5
    assert enable_chunked_loss(model) is model  # twice is once
    assert model(input_ids=ids, labels=labels, chunked_loss=True).loss.item() == chunked.loss.item()


def test_a_lora_model_gets_the_same_loss_and_adapter_gradients():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model("gemma3"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; nonzero so that A's gradients are not all zero
            torch.nn.init.normal_(param, std=0.1)
    model.get_input_embeddings().weight.requires_grad_(True)
    enable_chunked_loss(model)
    ids, labels = batch_with_ignored()
    model(input_ids=ids, labels=labels).loss.backward()
    expected = gradients(model)
    model(input_ids=ids, labels=labels, chunked_loss=True).loss.backward()
    got = gradients(model)
    assert any("lora_A" in name for name in got) and set(got) == set(expected)
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name


def test_bf16_weights_give_a_close_loss_and_bf16_gradients():
    model = tiny_model("gemma3")
    ids, labels = batch_with_ignored()
    fp32 = causal_lm_loss(model, ids, labels)[0].item()
    model.to(torch.bfloat16)
    loss = causal_lm_loss(model, ids, labels)[0]
    loss.backward()
    assert abs(loss.item() - fp32) < 0.05 * fp32
    assert all(p.grad.dtype == torch.bfloat16 for p in model.parameters() if p.grad is not None)


def test_chunks_are_bounded_by_logit_bytes():
    assert chunk_tokens(262_144) == 64 and chunk_tokens(49_152) == 341 and chunk_tokens(10**9) == 16


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One of two gloo processes: a DDP-wrapped tied model, two micro-batches of one row, the first
    under no_sync; rank 0 saves the averaged gradients."""
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = DistributedDataParallel(enable_chunked_loss(tiny_model("gemma3")))
    ids, _ = batch_with_ignored(seed=5)
    rows = torch.cat([ids, ids.flip(1)])[: 2 * world].view(world, 2, -1)[rank]
    with model.no_sync():
        (model(input_ids=rows[:1], labels=rows[:1], chunked_loss=True).loss / 2).backward()
    (model(input_ids=rows[1:], labels=rows[1:], chunked_loss=True).loss / 2).backward()
    if rank == 0:
        torch.save(gradients(model.module), out)
    dist.destroy_process_group()


def test_through_a_ddp_wrapper_two_processes_give_the_gradients_of_one(tmp_path):
    """The loss runs inside the wrapped module's forward, so DDP all-reduces every gradient, the tied
    matrix's too (its head half added straight into .grad on the second micro-batch)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "grads.pt"
    mp.spawn(_ddp_worker, args=(2, port, str(out)), nprocs=2, join=True)
    model = tiny_model("gemma3")
    ids, _ = batch_with_ignored(seed=5)
    rows = torch.cat([ids, ids.flip(1)])[:4]
    model(input_ids=rows, labels=rows).loss.backward()  # every row has the same number of labels
    expected, got = gradients(model), torch.load(out)
    assert set(got) == set(expected)
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("family", ["gemma3", "gpt2"])
def test_a_tied_head_accumulates_over_micro_batches_like_the_full_loss(family):
    model = enable_chunked_loss(tiny_model(family))
    ids, labels = batch_with_ignored()
    for chunked in (False, True):
        for row in range(3):
            kwargs = {"chunked_loss": True} if chunked else {}
            (model(input_ids=ids[row:row + 1], labels=labels[row:row + 1], **kwargs).loss / 3).backward()
        if not chunked:
            expected = gradients(model)
    got = gradients(model)
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name
