"""What training a candidate would cost: memory estimated from its shape, time measured on real steps.

Memory. The peak of one AdamW training step in one process is estimated as the sum of

* weights:      4 P bytes (P = parameters, a tied embedding counted once);
* gradients:    4 T bytes (T = the parameters the stage trains);
* AdamW states: 8 T bytes (two float32 moments per trained weight);
* activations:  4 N (L a + 4 h) bytes for the layers, N = train.batch_size x train.seq_len tokens,
                plus the output layer's logits (below);
* workspace:    4 E bytes with full logits, E the largest weight tensor: a tied embedding's two
                gradient halves are summed into a new tensor, and AdamW's temporaries are as large as
                the tensor it updates;
* runtime:      Python, torch and transformers (0.4 GB resident on the CPU), or a CUDA context.

L is the number of decoder layers and ``a`` what autograd keeps per token and layer for the backward
pass, in numbers:

    a = 3 h n + 2 q + 2 k + 4 i + H   (+ 2 q + 2 k with query/key norms, + 5 H S without fused attention)

h hidden size, n norms on the residual stream (input, normalised input and output of each), q = H d
query width and k = K d key/value width (H heads, K key/value heads, d head size), 4 i for a gated MLP
of intermediate size i (gate, its activation, up, their product), H for the attention's log-sum-exp.
Attention itself is fused (SDPA) and stores no S x S matrix; only eager attention or attention
dropout keeps about five of those per head (scores, probabilities, dropout mask and output), S =
train.seq_len. ``4 h`` covers the embeddings and the final norm.

Logits. Hugging Face's ``labels=`` loss keeps 3 V float32 numbers per token (the log-softmax, its
gradient and the logits' gradient, together when the backward pass starts; 5 V soft-capped): 3 GB per
thousand tokens for a 262k vocabulary. ``train`` computes the loss by chunks instead
(``langbuild.training.loss``): one chunk's float32 logits (64 MiB) and their compute-precision copy,
whatever the batch; a tied output matrix's gradient is added into the existing one, so no workspace.

What the plan changes (``Recipe``):

* Stages. The embeddings stage trains T = the embedding matrices (and the unfrozen blocks); LoRA
  trains those plus rank-r adapters on the seven linear layers of every block, which it adds to P.
  A frozen weight needs no saved input, so a layer keeps less: norms keep 1 h instead of 3 h (2 h in
  LoRA, whose adapters read the norms' outputs), query/key norms q + k instead of 2 q + 2 k, the MLP
  3 i in the embeddings stage (the down projection's input is not kept).
* Gradient checkpointing keeps each layer's input (h a token) and one layer's activations at a time.
* Processes. DDP: each process holds everything, plus its gradient buckets (one more copy of the
  gradients) for the all-reduce. FSDP: weights, gradients and AdamW states divided by the number of
  processes, plus the embeddings and two blocks gathered whole while they compute. On the CPU the
  processes share the machine's memory, so select multiplies by their number.
* Distillation on replay rows (``train.replay_kl``): a frozen copy of the source model in the compute
  precision (2 P in bf16, 4 P in fp32) and its logits beside the student's (one chunk, or all of them
  with the full-logits loss).
* Precision. bf16 over fp32 masters (``langbuild.training.precision``): the bf16 weights beside the
  float32 masters (6 P; on a GPU the frozen weights' masters stay in host memory, 2 P + 4 T), bf16
  gradients beside float32 master gradients (6 T), AdamW in float32 (8 T), activations 2 bytes a
  number, logits upcast to float32.

Checked on the CPU against what autograd saves (``saved_tensors_hooks``; tests/steps/test_select.py
and tests/models/test_budget.py do this for tiny models, in every stage). Against the peak resident memory
of real training steps (benchmarks/logits_memory.py; table in benchmarks/RESULTS.md): SmolLM2-135M
and Gemma-3-270M, fp32 and bf16, full and chunked loss, every stage, with and without gradient
checkpointing, the estimate is 0.87-1.04 x the measured peak (e.g. Gemma-3-270M, fp32, 1,024 tokens
a pass, chunked: 5.91 GB estimated, 6.22 GB measured). Not counted: allocator slack, so leave some
room in select.memory_budget_gb. Unmeasured here (no GPU): the GPU terms, DDP's buckets and FSDP.

Time: ``time_training_steps`` runs real steps (forward, backward, clipping, fused AdamW, as ``train``
does) at the configured batch, the first one as an untimed warm-up when there are two or more; the
median of the others is taken.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

from ..core.progress import progress

FLOAT32 = 4
BFLOAT16 = 2
GB = 2**30  # what nvidia-smi and free -g call a gigabyte
ATTENTION_MATRICES = 5  # unfused attention: scores, probabilities, dropout mask and output, per head and key
# Per stage, what a layer keeps per residual norm (x h), per query/key norm (x (q + k)) and in the MLP (x i);
# see the module doc. Frozen weights need no saved inputs: an embeddings-stage layer keeps less.
SAVED_BY_STAGE = {"full": (3, 2, 4), "lora": (2, 1, 4), "embeddings": (1, 1, 3)}
# The Python, torch and transformers runtime: resident before the first weight is touched (CPU,
# measured 0.39 GB), or a CUDA context and its libraries' workspaces on a GPU.
RUNTIME_BYTES = {"cpu": int(0.4 * GB), "gpu": int(0.5 * GB)}


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
    tied: bool = True  # the output layer is the input embedding matrix

    def activation_numbers_per_token(self, seq_len: int) -> int:
        """Numbers autograd holds per token at the start of the backward pass (see the module doc)."""
        return self.body_numbers_per_token(seq_len) + self.logit_numbers_per_token()

    def layer_numbers_per_token(self, seq_len: int, stage: str = "full") -> int:
        """What one decoder layer keeps for the backward pass (see the module doc, "Stages")."""
        q, k = self.heads * self.head_dim, self.kv_heads * self.head_dim
        norm, per_head_norm, mlp = SAVED_BY_STAGE[stage]
        layer = norm * self.hidden * self.residual_norms + 2 * q + 2 * k + mlp * self.intermediate + self.heads
        if self.qk_norm:
            layer += per_head_norm * (q + k)
        if not self.fused_attention:
            layer += ATTENTION_MATRICES * self.heads * seq_len
        return layer

    def body_numbers_per_token(self, seq_len: int, stage: str = "full", checkpointing: bool = False) -> int:
        """The part held in the compute precision: every layer, the embeddings and the final norm. With
        gradient checkpointing only each layer's input is kept, and one layer's activations at a time."""
        layer = self.layer_numbers_per_token(seq_len, stage)
        if checkpointing:
            return self.layers * self.hidden + layer + 4 * self.hidden
        return self.layers * layer + 4 * self.hidden

    def embedding_parameters(self) -> int:
        """The input embeddings and, when untied, the output layer."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def block_parameters(self) -> int:
        """One decoder block: attention, gated MLP, norms (biases left out)."""
        q, k = self.heads * self.head_dim, self.kv_heads * self.head_dim
        norms = self.residual_norms * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        return 2 * self.hidden * q + 2 * self.hidden * k + 3 * self.hidden * self.intermediate + norms

    def parameters(self) -> int:
        return self.embedding_parameters() + self.layers * self.block_parameters() + self.hidden

    def lora_parameters(self, rank: int) -> int:
        """Rank-``rank`` adapters (A and B) on every linear layer of every block: q, k, v, o, gate, up, down."""
        q, k = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        widths = (h + q) + 2 * (h + k) + (q + h) + 2 * (h + i) + (i + h)
        return self.layers * rank * widths

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
        tied=model.get_output_embeddings().weight is model.get_input_embeddings().weight,
    )


@dataclass(frozen=True)
class Recipe:
    """How ``train`` will run, beyond its batch: what the estimate needs from the plan.

    The defaults describe a plain full-logits loss in one process; ``Recipe.for_train`` gives what
    ``train`` actually does (the chunked loss) for a stage of the project's settings.
    """

    stage: str = "full"  # embeddings | full | lora
    gradient_checkpointing: bool = False
    chunked_loss: bool = False  # the output layer by chunks (langbuild.training.loss), as train computes it
    lora_rank: int = 16
    unfreeze_layers: int = 0  # embeddings and lora stages: first and last N blocks trained too
    processes: int = 1
    fsdp: bool = False  # several processes share weights, gradients and optimizer state (train.launcher)
    on_gpu: bool = False  # bf16: the frozen weights' fp32 copies then stay in host memory
    teacher: bool = False  # train.replay_kl: a frozen copy of the source model scores the replay rows

    @classmethod
    def for_train(cls, config, stage: str, on_gpu: bool) -> Recipe:
        """The recipe of one of ``train.stages`` under the project's settings."""
        return cls(stage=stage, gradient_checkpointing=config.get("train.gradient_checkpointing"), chunked_loss=True,
                   lora_rank=config.get("train.lora_rank"), unfreeze_layers=config.get("train.unfreeze_layers"),
                   processes=config.get("train.num_processes"),
                   fsdp=config.get("train.launcher") == "fsdp" and config.get("train.num_processes") > 1, on_gpu=on_gpu,
                   teacher=config.get("train.replay_kl") > 0 and config.get("train.replay_fraction") > 0)


def trainable_parameters(parameters: int, shape: ModelShape, recipe: Recipe) -> tuple[int, int]:
    """(parameters the optimizer updates, parameters the stage adds): all of them in the full stage; the
    embedding matrices (+ unfrozen blocks) in the embeddings stage; those and the adapters in LoRA."""
    if recipe.stage == "full":
        return parameters, 0
    unfrozen = min(2 * recipe.unfreeze_layers, shape.layers) * shape.block_parameters()
    adapters = shape.lora_parameters(recipe.lora_rank) if recipe.stage == "lora" else 0
    return shape.embedding_parameters() + unfrozen + adapters, adapters


def logit_bytes(shape: ModelShape, tokens: int, compute: int, chunked: bool) -> int:
    """The output layer's logits: all tokens' in float32 (3 V numbers each, 5 when soft-capped), or
    one chunk's float32 logits beside their compute-precision copy (x 3 when soft-capped)."""
    if not chunked:
        return FLOAT32 * tokens * shape.logit_numbers_per_token()
    from ..training.loss import chunk_tokens

    per_chunk = min(chunk_tokens(shape.vocab), tokens) * shape.vocab
    return per_chunk * (FLOAT32 * (3 if shape.softcapped_logits else 1) + (compute if compute != FLOAT32 else 0))


def memory_parts(parameters: int, largest_tensor: int, shape: ModelShape, batch_size: int, seq_len: int,
                 precision: str = "fp32", recipe: Recipe | None = None) -> dict[str, int]:
    """Bytes one AdamW training step needs in one process, by part (see the module doc for the formula)."""
    recipe = recipe or Recipe()
    trainable, added = trainable_parameters(parameters, shape, recipe)
    held = parameters + added
    bf16 = precision == "bf16"
    compute = BFLOAT16 if bf16 else FLOAT32
    if recipe.fsdp:
        # train's FSDP keeps float32 shards (bf16 by autocast): each process holds 1/N of every
        # weight, gradient and AdamW state, plus the blocks gathered whole while they compute.
        weights = FLOAT32 * held // recipe.processes
        gradients = FLOAT32 * trainable // recipe.processes
        optimizer = 2 * FLOAT32 * trainable // recipe.processes
        gathered = FLOAT32 * (shape.embedding_parameters() + 2 * shape.block_parameters())
    else:
        # bf16 over fp32 masters: the bf16 weights beside float32 masters (those of frozen weights in
        # host memory when training on a GPU), bf16 gradients beside float32 master gradients.
        fp32_held = trainable if (bf16 and recipe.on_gpu) else held
        weights = FLOAT32 * fp32_held + (BFLOAT16 * held if bf16 else 0)
        gradients = (FLOAT32 + (BFLOAT16 if bf16 else 0)) * trainable
        if recipe.processes > 1:
            gradients += compute * trainable  # DDP's buckets: a copy of every gradient for the all-reduce
        optimizer = 2 * FLOAT32 * trainable
        gathered = 0
    tokens = batch_size * seq_len
    body = compute * tokens * shape.body_numbers_per_token(seq_len, recipe.stage, recipe.gradient_checkpointing)
    # Full logits: a tied matrix's two gradient halves are summed into a new tensor, and AdamW's
    # temporaries are as large as the tensor it updates. Chunked: the head's gradient is added into
    # the existing one, so only the chunk's logits remain.
    workspace = 0 if recipe.chunked_loss else FLOAT32 * largest_tensor
    parts = {
        "weights": weights,
        "gradients": gradients,
        "optimizer": optimizer,
        "activations": body + logit_bytes(shape, tokens, compute, recipe.chunked_loss),
        "workspace": workspace + gathered,
        "teacher": teacher_bytes(parameters, shape, tokens, compute, recipe) if recipe.teacher else 0,
        "runtime": RUNTIME_BYTES["gpu" if recipe.on_gpu else "cpu"],
    }
    return {**parts, "total": sum(parts.values())}


def teacher_bytes(parameters: int, shape: ModelShape, tokens: int, compute: int, recipe: Recipe) -> int:
    """train.replay_kl's teacher: the source model's weights in the compute precision (bf16 under master
    weights, else as loaded, float32), no gradients or optimizer state, and its float32 logits of one
    chunk beside the student's while the KL is computed."""
    return compute * parameters + logit_bytes(shape, tokens, compute, recipe.chunked_loss)


def training_memory(model, batch_size: int, seq_len: int, precision: str = "fp32",
                    recipe: Recipe | None = None) -> dict[str, int]:
    """``memory_parts`` for a loaded model trained at ``batch_size`` blocks of ``seq_len`` tokens."""
    from .loading import parameter_count

    largest = max(p.numel() for p in model.parameters())
    return memory_parts(parameter_count(model), largest, model_shape(model), batch_size, seq_len, precision, recipe)


def shape_memory(shape: ModelShape, batch_size: int, seq_len: int, precision: str, recipe: Recipe) -> dict[str, int]:
    """``memory_parts`` of a model known only by its published shape (parameters counted from it)."""
    return memory_parts(shape.parameters(), shape.vocab * shape.hidden, shape, batch_size, seq_len, precision, recipe)


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
                        precision: str = "fp32", console=None) -> dict:
    """Seconds per step and per million tokens of real training steps on random token ids, in the
    precision ``train`` will use (bf16: over fp32 master weights, as the training loop does).

    The optimizer runs with learning rate 0: the same arithmetic as training, but the weights stay as
    they were (and the model is fp32 again afterwards). On a GPU the peak memory of the steps is
    measured too (``None`` on the CPU). ``console`` shows the steps timed (None: nothing).
    """
    import torch

    from ..training.loop import make_optimizer
    from ..training.precision import MasterWeights

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
        with progress(console, "timing steps", steps, "steps") as bar:
            for _ in range(steps):
                seconds.append(_one_step(model, optimizer, batch, on_gpu, masters))
                bar.advance()
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

    from ..training.loss import causal_lm_loss

    if on_gpu:
        torch.cuda.synchronize()
    tick = time.perf_counter()
    loss, _, _ = causal_lm_loss(model, batch)  # as train computes it: the output layer by chunks
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
