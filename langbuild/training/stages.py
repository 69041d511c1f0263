"""What each training stage trains, and with which learning rate.

* ``embeddings``: only the rows the extension added, in the input embeddings and the output head.
  The whole matrices take gradients (so it works with tied weights) and a mask zeroes the old rows'
  gradients before every optimizer step; their weight decay is 0, because decoupled decay would
  shrink rows whose gradient is zero. The embedding warm-up of de Vries & Nissim 2021 ("As Good as
  New. How to Successfully Recycle English GPT-2 to Make Models for Other Languages") and of
  WECHSEL/FOCUS-style continued pretraining.
* ``full``: every parameter; the embeddings and head may take their own learning rate.
* ``lora``: low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
  through peft) on every linear layer, with the embedding matrices fully trainable, since new tokens
  have no other way to learn. Merged into the weights at the end.

``train.unfreeze_layers`` = N also trains the first and last N transformer blocks in the
embeddings and lora stages, where the new rows meet the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import LangbuildError


def embedding_parameters(model) -> list:
    """The input embedding matrix and, when untied, the output head."""
    params = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not params[0]:
        params.append(output.weight)
    return params


def transformer_blocks(model) -> list:
    """The model's stack of transformer blocks: the longest ModuleList in it."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


@dataclass
class StageSetup:
    model: object  # the model to train (a peft wrapper in the lora stage)
    groups: list[dict]  # optimizer parameter groups, each with its own "peak" rate
    row_masks: list[tuple[object, object]]  # (parameter, keep-mask) pairs applied to gradients


def setup_stage(model, stage: str, plan, seed: int) -> StageSetup:
    """Freeze and wrap ``model`` for ``stage``; returns what to optimise."""
    import torch

    if stage == "lora" and not hasattr(model, "peft_config"):  # a model restored from a lora checkpoint is wrapped
        model = _wrap_lora(model, plan, seed)
    for param in model.parameters():
        param.requires_grad_(stage == "full")
    embeddings = embedding_parameters(model)
    for param in embeddings:
        param.requires_grad_(True)
    extra = []
    if stage in ("embeddings", "lora"):
        extra = _unfrozen_block_parameters(model, plan.unfreeze_layers)
        if stage == "lora":
            extra += [p for n, p in model.named_parameters() if "lora_" in n]
        for param in extra:
            param.requires_grad_(True)
    row_masks = []
    if stage == "embeddings":
        if not plan.new_rows:
            raise LangbuildError("the embeddings stage trains only the rows extend added, and it added none: "
                                 "remove embeddings from train.stages")
        for param in embeddings:
            keep = torch.zeros(param.shape[0], 1, dtype=param.dtype, device=param.device)
            keep[torch.tensor(plan.new_rows, device=param.device)] = 1
            row_masks.append((param, keep))
    embedding_ids = {id(p) for p in embeddings}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in embedding_ids]
    embedding_decay = 0.0 if stage == "embeddings" else plan.weight_decay
    groups = [{"params": embeddings, "peak": plan.embedding_learning_rate, "weight_decay": embedding_decay}]
    if others:
        groups.append({"params": others, "peak": plan.learning_rate, "weight_decay": plan.weight_decay})
    if plan.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return StageSetup(model, groups, row_masks)


def _unfrozen_block_parameters(model, count: int) -> list:
    if count <= 0:
        return []
    blocks = transformer_blocks(model)
    chosen = blocks[:count] + blocks[max(count, len(blocks) - count):]
    return [p for block in chosen for p in block.parameters()]


def _wrap_lora(model, plan, seed: int):
    import torch

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise LangbuildError("the lora stage needs peft: pip install peft") from None
    torch.manual_seed(seed)  # the adapters' random half starts the same on every run and every process
    config = LoraConfig(r=plan.lora_rank, lora_alpha=plan.lora_alpha, lora_dropout=0.0, target_modules="all-linear")
    return get_peft_model(model, config)


def mask_gradients(row_masks) -> None:
    """Zero the gradients of rows a stage must not change (the embeddings stage's old rows)."""
    for param, keep in row_masks:
        if param.grad is not None:
            param.grad.mul_(keep)


def merged(model):
    """A plain transformers model: LoRA adapters folded into the weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
