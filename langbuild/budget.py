"""What training a candidate would cost: memory estimated from its shape, time measured on real steps.

Memory. ``train`` keeps everything in float32 (4 bytes a number) and trains every weight with AdamW,
so the peak of a step is estimated as the sum of

* weights:      4 P bytes (P = parameters, a tied embedding counted once);
* gradients:    4 P bytes;
* AdamW states: 8 P bytes (two float32 moments per weight);
* activations:  4 T (L a + 4 h + 3 V) bytes, with T = train.batch_size x train.seq_len tokens;
* workspace:    4 E bytes, E the largest weight tensor: a tied embedding's two gradient halves are
                summed into a new tensor, and AdamW's temporaries are as large as the tensor it updates.

L is the number of decoder layers and ``a`` what autograd keeps per token and layer for the backward
pass, in numbers:

    a = 3 h n + 2 q + 2 k + 4 i + H   (+ 2 q + 2 k with query/key norms, + 5 H S without fused attention)

h hidden size, n norms on the residual stream (input, normalised input and output of each), q = H d
query width and k = K d key/value width (H heads, K key/value heads, d head size), 4 i for a gated MLP
of intermediate size i (gate, its activation, up, their product), H for the attention's log-sum-exp.
Attention itself is fused (SDPA) and stores no S x S matrix; only eager attention or attention
dropout keeps about five of those per head (scores, probabilities, dropout mask and output), S =
train.seq_len. ``4 h`` covers the embeddings and the final norm. ``3 V`` is the output layer: the
log-softmax kept by the loss, plus its gradient and the logits' gradient, which exist together when
the backward pass starts, all float32 over a vocabulary of V (for a 262k vocabulary that alone is 3 GB
per thousand tokens); soft-capped logits keep two more.

Checked on the CPU against what autograd saves (``saved_tensors_hooks``; tests/steps/test_select.py
does this for the tiny models): within 0.5 % for SmolLM2-135M and the tiny Llama, 2 % high for
Gemma 3 270M (its post-norms keep less than the pre-norms), within 15 % for GPT-2 shapes with
attention dropout. Against the peak resident memory of real steps: SmolLM2-135M at 4 x 256 tokens
3.81 GB measured, 3.96 GB estimated; Gemma 3 270M at 2 x 128 tokens 5.55 GB measured, 5.73 GB
estimated. Not counted: the framework itself (a CUDA context is about 0.5 GB) and allocator slack,
so leave some room in select.memory_budget_gb.

In bf16 (``train.precision``, see ``langbuild.training.precision``) the weights are held twice, fp32
masters and a bf16 copy (6 P), the gradients too (bf16 from the backward pass, fp32 accumulated on the
masters: 6 P), AdamW's states stay fp32 (8 P); activations take 2 bytes a number, except the output
layer's, which the loss upcasts to float32.

Time: ``time_training_steps`` runs real steps (forward, backward, clipping, fused AdamW, as ``train``
does) at the configured batch, the first one as an untimed warm-up when there are two or more; the
median of the others is taken.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

FLOAT32 = 4
BFLOAT16 = 2
GB = 2**30  # what nvidia-smi and free -g call a gigabyte
ATTENTION_MATRICES = 5  # unfused attention: scores, probabilities, dropout mask and output, per head and key


@dataclass(frozen=True)
class ModelShape:
    """The sizes that set a decoder's activation memory, read from its config and first layer."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    residual_norms: int = 2
    qk_norm: bool = False
    fused_attention: bool = True
    softcapped_logits: bool = False

    def activation_numbers_per_token(self, seq_len: int) -> int:
        """Numbers autograd holds per token at the start of the backward pass (see the module doc)."""
        return self.body_numbers_per_token(seq_len) + self.logit_numbers_per_token()

    def body_numbers_per_token(self, seq_len: int) -> int:
        """The part held in the compute precision: every layer, the embeddings and the final norm."""
        q, k = self.heads * self.head_dim, self.kv_heads * self.head_dim
        layer = 3 * self.hidden * self.residual_norms + 2 * q + 2 * k + 4 * self.intermediate + self.heads
        if self.qk_norm:
            layer += 2 * q + 2 * k
        if not self.fused_attention:
            layer += ATTENTION_MATRICES * self.heads * seq_len
        return self.layers * layer + 4 * self.hidden

    def logit_numbers_per_token(self) -> int:
        """The output layer's part, float32 in every precision (the loss upcasts the logits)."""
        return (5 if self.softcapped_logits else 3) * self.vocab  # soft-capping keeps tanh's input and output too


def _first(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _first_layer(model):
    """The first decoder block: the first module list as long as the model has layers."""
    import torch

    layers = _first(model.config.get_text_config(), "num_hidden_layers", "n_layer")
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            return module[0]
    return None


def _norms(block, hidden: int, head_dim: int) -> tuple[int, bool]:
    """(norms on the residual stream, whether queries and keys are normalised) in one decoder block."""
    residual, per_head = 0, False
    for module in block.modules() if block is not None else ():
        weight = getattr(module, "weight", None)
        if "norm" not in type(module).__name__.lower() or weight is None:
            continue
        if weight.numel() == hidden:
            residual += 1
        elif weight.numel() == head_dim:
            per_head = True
    return residual or 2, per_head


def model_shape(model) -> ModelShape:
    """Sizes from the config (Llama-style names, or GPT-2's), norms counted in the first layer's modules."""
    config = model.config.get_text_config()
    hidden = _first(config, "hidden_size", "n_embd")
    heads = _first(config, "num_attention_heads", "n_head")
    head_dim = _first(config, "head_dim", default=hidden // heads)
    residual_norms, qk_norm = _norms(_first_layer(model), hidden, head_dim)
    dropout = _first(config, "attention_dropout", "attn_pdrop", default=0.0)
    return ModelShape(
        layers=_first(config, "num_hidden_layers", "n_layer"),
        hidden=hidden,
        heads=heads,
        kv_heads=_first(config, "num_key_value_heads", default=heads),
        head_dim=head_dim,
        intermediate=_first(config, "intermediate_size", "n_inner", default=4 * hidden),
        vocab=model.get_output_embeddings().weight.shape[0],
        residual_norms=residual_norms,
        qk_norm=qk_norm,
        # Dropout inside attention sends SDPA down its unfused path, which stores the S x S matrices.
        fused_attention=getattr(config, "_attn_implementation", "sdpa") != "eager" and not dropout,
        softcapped_logits=bool(getattr(config, "final_logit_softcapping", None)),
    )


def memory_parts(parameters: int, largest_tensor: int, shape: ModelShape, batch_size: int, seq_len: int,
                 precision: str = "fp32") -> dict[str, int]:
    """Bytes one AdamW training step needs, by part (see the module doc for the formula)."""
    weights = FLOAT32 * parameters
    compute = BFLOAT16 if precision == "bf16" else FLOAT32
    extra_copy = BFLOAT16 * parameters if precision == "bf16" else 0  # the bf16 weights (and gradients) beside fp32 ones
    tokens = batch_size * seq_len
    parts = {
        "weights": weights + extra_copy,
        "gradients": weights + extra_copy,
        "optimizer": 2 * weights,
        "activations": tokens * (compute * shape.body_numbers_per_token(seq_len) + FLOAT32 * shape.logit_numbers_per_token()),
        "workspace": FLOAT32 * largest_tensor,
    }
    return {**parts, "total": sum(parts.values())}


def training_memory(model, batch_size: int, seq_len: int, precision: str = "fp32") -> dict[str, int]:
    """``memory_parts`` for a loaded model trained at ``batch_size`` blocks of ``seq_len`` tokens."""
    from .models import parameter_count

    largest = max(p.numel() for p in model.parameters())
    return memory_parts(parameter_count(model), largest, model_shape(model), batch_size, seq_len, precision)


def machine_memory() -> tuple[int, str]:
    """(bytes, what they are): the GPU's memory when training would run on one, else the RAM."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return props.total_memory, f"GPU memory ({props.name})"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"


def memory_budget(budget_gb: float) -> tuple[int, str]:
    """(bytes, where the number came from): select.memory_budget_gb, or this machine's memory when 0."""
    if budget_gb > 0:
        return int(budget_gb * GB), "select.memory_budget_gb"
    return machine_memory()


def time_training_steps(model, vocab_size: int, batch_size: int, seq_len: int, steps: int, seed: int,
                        precision: str = "fp32") -> dict:
    """Seconds per step and per million tokens of real training steps on random token ids, in the
    precision ``train`` will use (bf16: over fp32 master weights, as the training loop does).

    The optimizer runs with learning rate 0: the same arithmetic as training, but the weights stay as
    they were (and the model is fp32 again afterwards). On a GPU the peak memory of the steps is
    measured too (``None`` on the CPU).
    """
    import torch

    from .training.loop import make_optimizer
    from .training.precision import MasterWeights

    device = model.device
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator).to(device)
    groups = [{"params": list(model.parameters()), "peak": 0.0, "weight_decay": 0.0}]
    masters = MasterWeights(model, groups, []) if precision == "bf16" else None
    optimizer = make_optimizer(masters.groups if masters else groups)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    seconds = []
    try:
        for _ in range(steps):
            seconds.append(_one_step(model, optimizer, batch, on_gpu, masters))
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
        if masters is not None:
            masters.release()
        del optimizer
    timed = seconds[1:] if len(seconds) >= 2 else seconds  # the first step pays for allocation and kernel set-up
    per_step = statistics.median(timed)  # one step slowed by another process must not decide select.rule = fastest
    return {
        "seconds_per_step": per_step,
        "seconds_per_million_tokens": per_step / (batch_size * seq_len) * 1e6,
        "measured_peak_bytes": torch.cuda.max_memory_allocated(device) if on_gpu else None,
    }


def _one_step(model, optimizer, batch, on_gpu: bool, masters=None) -> float:
    import torch

    if on_gpu:
        torch.cuda.synchronize()
    tick = time.perf_counter()
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    if masters is not None:
        masters.collect_gradients()
    clipped = masters.masters if masters is not None else model.parameters()
    torch.nn.utils.clip_grad_norm_(clipped, 1.0)  # train clips by default; its cost belongs in the time
    optimizer.step()
    if masters is not None:
        masters.publish()
    optimizer.zero_grad(set_to_none=True)
    if on_gpu:
        torch.cuda.synchronize()  # kernels run asynchronously: wait for them before reading the clock
    return time.perf_counter() - tick
