"""The memory estimate knows the plan: stage, chunked loss, gradient checkpointing, processes, FSDP,
precision. Activations are checked against what autograd really saves on tiny random models."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from langbuild.core.config import defaults
from langbuild.models.budget import Recipe, logit_bytes, memory_parts, model_shape, shape_memory, training_memory
from langbuild.training.loss import causal_lm_loss
from tests.tiny import bytes_saved_for_backward
from tests.training.test_loss import tiny_model


def staged(family: str, stage: str):
    """A tiny model with the weights ``stage`` trains requiring gradients (as training.stages sets them)."""
    model = tiny_model(family)
    if stage == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, param in model.named_parameters():
        param.requires_grad_(stage == "full" or "lora_" in name)
    model.get_input_embeddings().weight.requires_grad_(True)
    model.get_output_embeddings().weight.requires_grad_(True)
    return model


def saved_bytes(model, batch_size: int, seq_len: int) -> int:
    """Bytes of every tensor autograd saves for backward in one chunked-loss step (weights excluded)."""
    ids = torch.randint(0, 300, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    return bytes_saved_for_backward(model, lambda: causal_lm_loss(model, ids)[0])


@pytest.mark.parametrize("family", ["llama", "gemma3"])
@pytest.mark.parametrize("stage", ["full", "embeddings", "lora"])
def test_activations_match_what_autograd_keeps_in_every_stage(family, stage):
    model = staged(family, stage)
    shape = model_shape(model.get_base_model() if stage == "lora" else model)
    recipe = Recipe(stage=stage, chunked_loss=True, lora_rank=4)
    # The chunk's logits are a transient of the backward pass, not saved: compared without them.
    estimate = memory_parts(1000, 100, shape, 4, 48, "fp32", recipe)["activations"] - logit_bytes(shape, 4 * 48, 4, True)
    measured = saved_bytes(model, 4, 48)
    assert 0.85 < estimate / measured < 1.25, (estimate, measured)


def test_shape_counts_parameters_and_lora_adapters_like_the_model():
    from peft import LoraConfig, get_peft_model

    for family in ("llama", "gemma3"):
        model = tiny_model(family)
        shape = model_shape(model)
        assert shape.parameters() == sum(p.numel() for p in model.parameters())
        assert shape.tied == (family == "gemma3")
        lora = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
        adapters = sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
        assert shape.lora_parameters(4) == adapters


def shape_of(family: str):
    return model_shape(tiny_model(family))


def test_the_stage_decides_what_holds_gradients_and_optimizer_state():
    shape = replace(shape_of("llama"), vocab=50_000)
    params = shape.parameters()
    full = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(chunked_loss=True))
    embeddings = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(stage="embeddings", chunked_loss=True))
    lora = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(stage="lora", chunked_loss=True, lora_rank=8))
    assert full["optimizer"] == 8 * params and embeddings["optimizer"] == 8 * shape.embedding_parameters()
    assert lora["optimizer"] == 8 * (shape.embedding_parameters() + shape.lora_parameters(8))
    assert lora["weights"] == 4 * (params + shape.lora_parameters(8)) and embeddings["weights"] == full["weights"]
    assert embeddings["activations"] < lora["activations"] < full["activations"]


def test_chunked_logits_do_not_grow_with_the_batch_and_checkpointing_cuts_activations():
    shape = replace(shape_of("gemma3"), vocab=262_144, layers=18)
    full_logits = [memory_parts(1, 1, shape, b, 1024, "fp32", Recipe())["activations"] for b in (1, 2)]
    chunked = [memory_parts(1, 1, shape, b, 1024, "fp32", Recipe(chunked_loss=True))["activations"] for b in (1, 2)]
    assert full_logits[0] - chunked[0] > 2.9 * 2**30  # 3 V float32 numbers a token, 1,024 tokens
    logits = memory_parts(1, 1, shape, 1, 1024, "fp32", Recipe(chunked_loss=True))["activations"] - 4 * 1024 * (
        shape.body_numbers_per_token(1024))
    assert logits == 64 * 2**20  # one chunk of float32 logits
    assert chunked[1] - chunked[0] == chunked[0] - logits  # only the layers grow with the tokens
    checkpointed = memory_parts(1, 1, shape, 2, 1024, "fp32", Recipe(chunked_loss=True, gradient_checkpointing=True))
    assert checkpointed["activations"] - logits < (chunked[1] - logits) / 2


def test_processes_and_fsdp_and_bf16_on_a_gpu():
    shape = shape_of("llama")
    params = shape.parameters()
    one = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(chunked_loss=True))
    ddp = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(chunked_loss=True, processes=2))
    fsdp = memory_parts(params, 1, shape, 2, 32, "fp32", Recipe(chunked_loss=True, processes=4, fsdp=True))
    assert ddp["gradients"] == 2 * one["gradients"] and ddp["optimizer"] == one["optimizer"]
    assert fsdp["optimizer"] == one["optimizer"] // 4 and fsdp["weights"] == one["weights"] // 4
    cpu = memory_parts(params, 1, shape, 2, 32, "bf16", Recipe(stage="lora", chunked_loss=True))
    gpu = memory_parts(params, 1, shape, 2, 32, "bf16", Recipe(stage="lora", chunked_loss=True, on_gpu=True))
    frozen = params + shape.lora_parameters(16) - (shape.embedding_parameters() + shape.lora_parameters(16))
    assert cpu["weights"] - gpu["weights"] == 4 * frozen  # frozen fp32 masters stay in host memory


def test_a_replay_kl_teacher_adds_a_frozen_copy_in_the_compute_precision_and_its_logits():
    shape = shape_of("llama")
    params = shape.parameters()
    for precision, width in (("fp32", 4), ("bf16", 2)):
        student = memory_parts(params, 1, shape, 2, 32, precision, Recipe(chunked_loss=True))
        taught = memory_parts(params, 1, shape, 2, 32, precision, Recipe(chunked_loss=True, teacher=True))
        assert student["teacher"] == 0
        chunk = logit_bytes(shape, 2 * 32, width, chunked=True)
        assert taught["teacher"] == width * params + chunk
        assert taught["total"] - student["total"] == taught["teacher"]
        assert {k: v for k, v in taught.items() if k not in ("teacher", "total")} == \
            {k: v for k, v in student.items() if k not in ("teacher", "total")}


def test_the_recipe_comes_from_the_settings():
    config = defaults()
    config.values["train"].update(stages=["embeddings", "lora"], gradient_checkpointing=True, lora_rank=8,
                                  num_processes=2, launcher="fsdp", replay_kl=0.0)
    recipe = Recipe.for_train(config, "lora", on_gpu=True)
    assert recipe == Recipe(stage="lora", gradient_checkpointing=True, chunked_loss=True, lora_rank=8, processes=2,
                            fsdp=True, on_gpu=True)
    assert not recipe.teacher  # replay_kl = 0, as fsdp needs
    config.values["train"].update(replay_kl=1.0, launcher="ddp")
    assert Recipe.for_train(config, "full", on_gpu=False).teacher  # the default replay_kl
    config.values["train"].update(replay_fraction=0.0)
    assert not Recipe.for_train(config, "full", on_gpu=False).teacher  # no replay rows, no teacher


def test_a_loaded_model_and_its_published_shape_give_the_same_estimate():
    model = tiny_model("gemma3")
    recipe = Recipe(chunked_loss=True)
    assert training_memory(model, 2, 32, "bf16", recipe) == shape_memory(model_shape(model), 2, 32, "bf16", recipe)
