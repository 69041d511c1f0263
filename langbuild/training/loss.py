"""The causal-LM loss without the full logits: the output layer, chunk by chunk.

A model's output layer turns every token's final hidden state into one logit per vocabulary entry.
Computed at once (as ``model(input_ids, labels=...)`` does), the logits, their float32 copy, the
log-softmax and its gradient cost 10-14 bytes per token per vocabulary entry: for Gemma 3's 262k
vocabulary that is 2.7-3.7 GB per thousand tokens, more than the rest of a small model's training.

Here the decoder body runs as usual and the output layer, the float32 upcast, the optional soft-cap
and the cross-entropy run on a few tokens at a time (``chunk_tokens``): each chunk's logits are
reduced to its tokens' negative log-likelihoods and dropped. The backward pass recomputes each
chunk's logits from the kept hidden states and log-sum-exps and turns them into the gradients of the
hidden states and of the output matrix, so the tokens x vocabulary logits never exist at once,
neither forward nor backward. This is the idea of "Cut Your Losses in Large-Vocabulary Language
Models" (Wijmans et al. 2024) and of Liger-Kernel's fused linear cross-entropy (Hsu et al. 2024),
written with plain torch operations and recomputation instead of fused kernels.

Semantics are Hugging Face's ``labels=`` loss: position t predicts label t + 1, labels equal to -100
are ignored, the loss is the mean over the rest. ``token_nll`` gives the per-position pieces (sums per
text for bits per byte); ``enable_chunked_loss`` lets ``model(..., chunked_loss=True)`` compute the
loss inside the model's own forward, which is what a DDP or FSDP wrapper must call.

Distillation on replay rows (``train.replay_kl``, ``ReplayTeacher``): the frozen model training
started from is the teacher, and each replay row's labelled positions add beta * KL(teacher || student)
of the next-token distributions to their cross-entropy,

    loss = (sum over labelled positions of CE + beta * sum over replay rows' labelled positions of KL)
           / labelled positions,

so target rows keep plain CE and the mean is over the same tokens as without it (the loss a run logs
then includes the KL term). This is learning
without forgetting (Li & Hoiem 2016) with the soft targets of knowledge distillation (Hinton et al.
2015, at temperature 1). The KL runs by chunks too (``head_kl``): the teacher's final hidden states are
computed before the student's forward, without gradients, and each chunk's teacher and student logits
exist only inside it; backward recomputes them, d KL / d student logits = softmax(student) -
softmax(teacher).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MethodType

IGNORE_INDEX = -100
# float32 logits of one chunk: 64 MiB is 64 tokens of a 262k vocabulary, 341 of a 49k one. Their
# softmax is computed in place; bf16 adds a half-size copy, soft-capping two more float32 ones.
CHUNK_LOGIT_BYTES = 64 * 2**20
MIN_CHUNK_TOKENS = 16  # below this the matrix products get inefficient; the memory is small anyway


def chunk_tokens(vocab: int) -> int:
    """Tokens per chunk of the output layer for a vocabulary of ``vocab`` entries."""
    return max(MIN_CHUNK_TOKENS, CHUNK_LOGIT_BYTES // (4 * vocab))


@dataclass(frozen=True)
class OutputHead:
    """The output layer of a causal LM and what its forward does to the logits after it."""

    weight: object  # (vocab, hidden)
    bias: object | None
    scale: float = 1.0  # logits are multiplied by it (Cohere's logit_scale, 1 / Granite's logits_scaling)
    softcap: float | None = None  # Gemma 2/3's final_logit_softcapping: cap * tanh(logits / cap)
    tied: bool = False  # the weight is also the input embedding matrix


def causal_lm_of(model):
    """The transformers causal LM inside ``model`` (a peft wrapper holds it as its base model)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_parts(model):
    """(decoder body, OutputHead) of a transformers causal LM, or None when its layout is unknown."""
    import torch

    lm = causal_lm_of(model)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    body = getattr(lm, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or body is None or body is lm:
        return None  # e.g. a LoRA-wrapped head or remote code: the caller falls back to full logits
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    scale = float(getattr(config, "logit_scale", None) or 1.0)
    if getattr(config, "logits_scaling", None):
        scale /= float(config.logits_scaling)
    softcap = getattr(config, "final_logit_softcapping", None)
    tied = head.weight is lm.get_input_embeddings().weight
    return body, OutputHead(head.weight, head.bias, scale, float(softcap) if softcap else None, tied)


def _chunk_logits(hidden, weight, bias, scale: float, softcap: float | None):
    """(float32 logits of ``hidden``'s rows, tanh of the capped logits or None), as the model's forward
    makes them but upcast before scaling and capping."""
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    if scale != 1.0:
        logits.mul_(scale)
    if softcap is None:
        return logits, None
    capped = logits.div_(softcap).tanh_()
    return capped * softcap, capped


def _compute_dtype(hidden):
    """The type the output layer's products run in: autocast's when it is on (its forward would cast
    the weight too), else the hidden states' own. Fixed in forward so that backward recomputes alike."""
    import torch

    kind = hidden.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else hidden.dtype


def _weight_gradient(ctx, weight, needed: bool):
    """(the gradient to return for the head's weight, the tensor every chunk adds into) in a backward."""
    import torch

    if needed and ctx.weight is not None and ctx.weight.grad is not None:
        # A tied matrix's gradient would wait, weight-sized, until the embedding's backward at the
        # very end, while every activation is still alive; added into the existing .grad it costs
        # nothing. The embedding's own use still reaches AccumulateGrad (and DDP's hooks) after.
        return None, ctx.weight.grad
    if needed:
        # One accumulator in the weight's own type that every chunk's product adds into: the
        # same memory as the gradient the full-logits path makes, no second weight-sized buffer.
        grad = torch.zeros_like(weight)
        return grad, grad
    return None, None


def _logit_gradient_to_inputs(probs, capped, scale: float):
    """d loss / d (the head's raw product), in place, from d loss / d (the final logits) ``probs``."""
    if capped is not None:  # d (c tanh(x / c)) / dx = 1 - tanh^2
        probs.mul_(1 - capped.square_())
    if scale != 1.0:
        probs.mul_(scale)
    return probs


def _chunked_nll_function():
    """The autograd Function, built on first use so that importing this module does not import torch."""
    import torch

    class ChunkedHeadNLL(torch.autograd.Function):
        """Per-token negative log-likelihood of ``targets`` under ``softmax(head(hidden))``, by chunks.

        Forward keeps only the hidden states and each token's log-sum-exp; backward recomputes each
        chunk's logits (the memory of one chunk instead of all tokens).
        """

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, scale, softcap, chunk, into_grad):
            dtype = _compute_dtype(hidden)
            nll = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
            lse = torch.empty_like(nll)
            with torch.autocast(hidden.device.type, enabled=False):
                w, b = weight.to(dtype), bias.to(dtype) if bias is not None else None
                for start in range(0, hidden.shape[0], chunk):
                    rows = slice(start, start + chunk)
                    logits, _ = _chunk_logits(hidden[rows].to(dtype), w, b, scale, softcap)
                    lse[rows] = torch.logsumexp(logits, dim=-1)
                    nll[rows] = lse[rows] - logits.gather(1, targets[rows, None]).squeeze(1)
                    del logits
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
            ctx.settings = (scale, softcap, chunk, dtype)
            ctx.weight = weight if into_grad else None
            return nll

        @staticmethod
        def backward(ctx, grad_nll):
            hidden, weight, bias, targets, lse = ctx.saved_tensors
            scale, softcap, chunk, dtype = ctx.settings
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            w, b = weight.to(dtype), bias.to(dtype) if bias is not None else None
            grad_hidden = torch.empty_like(hidden) if need_hidden else None
            grad_weight, into = _weight_gradient(ctx, weight, need_weight)
            grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_bias else None
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                part = hidden[rows].to(dtype)
                logits, capped = _chunk_logits(part, w, b, scale, softcap)
                # d nll / d logits = softmax - one-hot of the target, times the incoming gradient.
                probs = logits.sub_(lse[rows, None]).exp_()
                probs[torch.arange(probs.shape[0], device=probs.device), targets[rows]] -= 1
                probs.mul_(grad_nll[rows, None])
                _logit_gradient_to_inputs(probs, capped, scale)
                if grad_bias is not None:
                    grad_bias += probs.sum(0)
                step = probs.to(dtype)
                del probs, logits, capped
                if grad_hidden is not None:
                    grad_hidden[rows] = step @ w
                if into is not None:
                    into.addmm_(step.t().to(weight.dtype), part.to(weight.dtype))
            if grad_bias is not None:
                grad_bias = grad_bias.to(bias.dtype)
            return grad_hidden, grad_weight, grad_bias, None, None, None, None, None

    return ChunkedHeadNLL


def _chunked_kl_function():
    """The KL autograd Function, built on first use (as ``_chunked_nll_function``)."""
    import torch

    class ChunkedHeadKL(torch.autograd.Function):
        """Per-token KL(teacher || student) of the next-token distributions, by chunks.

        The teacher's hidden states and head are constants (no gradient). Forward keeps the student's
        and the teacher's log-sum-exp per token; backward recomputes both chunks of logits.
        """

        @staticmethod
        def forward(ctx, hidden, weight, bias, teacher_hidden, teacher_weight, teacher_bias, heads, chunk, into_grad):
            dtype = _compute_dtype(hidden)
            kl = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
            lse, teacher_lse = torch.empty_like(kl), torch.empty_like(kl)
            with torch.autocast(hidden.device.type, enabled=False):
                cast = _in_dtype((weight, bias, teacher_weight, teacher_bias), dtype)
                for start in range(0, hidden.shape[0], chunk):
                    rows = slice(start, start + chunk)
                    student, teacher = _pair_logits(hidden, teacher_hidden, cast, heads, rows, dtype)
                    lse[rows], teacher_lse[rows] = torch.logsumexp(student, -1), torch.logsumexp(teacher, -1)
                    log_q, log_p = student.sub_(lse[rows, None]), teacher.sub_(teacher_lse[rows, None])
                    kl[rows] = (log_p.exp() * (log_p - log_q)).sum(-1)
                    del student, teacher, log_q, log_p
            ctx.save_for_backward(hidden, weight, bias, teacher_hidden, teacher_weight, teacher_bias, lse, teacher_lse)
            ctx.settings = (heads, chunk, dtype)
            ctx.weight = weight if into_grad else None
            return kl

        @staticmethod
        def backward(ctx, grad_kl):
            hidden, weight, bias, teacher_hidden, teacher_weight, teacher_bias, lse, teacher_lse = ctx.saved_tensors
            heads, chunk, dtype = ctx.settings
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            cast = _in_dtype((weight, bias, teacher_weight, teacher_bias), dtype)
            w = cast[0]
            grad_hidden = torch.empty_like(hidden) if need_hidden else None
            grad_weight, into = _weight_gradient(ctx, weight, need_weight)
            grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_bias else None
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                student, teacher, capped = _pair_logits(hidden, teacher_hidden, cast, heads, rows, dtype, keep_capped=True)
                # d KL / d student logits = softmax(student) - softmax(teacher), times the incoming gradient.
                probs = student.sub_(lse[rows, None]).exp_().sub_(teacher.sub_(teacher_lse[rows, None]).exp_())
                del teacher
                probs.mul_(grad_kl[rows, None])
                _logit_gradient_to_inputs(probs, capped, heads[0])
                if grad_bias is not None:
                    grad_bias += probs.sum(0)
                step = probs.to(dtype)
                del probs, student, capped
                if grad_hidden is not None:
                    grad_hidden[rows] = step @ w
                if into is not None:
                    into.addmm_(step.t().to(weight.dtype), hidden[rows].to(dtype).to(weight.dtype))
            if grad_bias is not None:
                grad_bias = grad_bias.to(bias.dtype)
            return grad_hidden, grad_weight, grad_bias, None, None, None, None, None, None

    return ChunkedHeadKL


def _in_dtype(tensors, dtype) -> list:
    """``tensors`` (None kept) in the compute type, cast once per pass rather than once per chunk."""
    return [t.to(dtype) if t is not None else None for t in tensors]


def _pair_logits(hidden, teacher_hidden, heads_weights, heads, rows, dtype, keep_capped=False):
    """(student logits, teacher logits[, the student's capped tanh]) of the chunk ``rows``, float32, both
    made as ``_chunk_logits`` makes them in the compute type ``dtype``. ``heads_weights``: (weight, bias,
    teacher weight, teacher bias) in that type; ``heads``: (scale, softcap, teacher scale, teacher softcap)."""
    w, b, teacher_w, teacher_b = heads_weights
    scale, softcap, teacher_scale, teacher_softcap = heads
    student, capped = _chunk_logits(hidden[rows].to(dtype), w, b, scale, softcap)
    teacher, _ = _chunk_logits(teacher_hidden[rows].to(dtype), teacher_w, teacher_b, teacher_scale, teacher_softcap)
    return (student, teacher, capped) if keep_capped else (student, teacher)


_FUNCTION = None
_KL_FUNCTION = None


def head_kl(hidden, head: OutputHead, teacher_hidden, teacher_head: OutputHead, chunk: int | None = None,
            into_grad: bool = False):
    """Per-row KL(teacher || student) in nats (float32) of the next-token distributions that ``head`` makes
    of ``hidden`` (N, h) and ``teacher_head`` of ``teacher_hidden`` (N, h'); gradients reach the student only.

    Chunks are half ``head_nll``'s: each holds two float32 logit matrices (student and teacher) at once.
    """
    global _KL_FUNCTION
    if _KL_FUNCTION is None:
        _KL_FUNCTION = _chunked_kl_function()
    chunk = chunk or max(MIN_CHUNK_TOKENS, chunk_tokens(head.weight.shape[0]) // 2)
    heads = (head.scale, head.softcap, teacher_head.scale, teacher_head.softcap)
    return _KL_FUNCTION.apply(hidden, head.weight, head.bias, teacher_hidden.detach(), teacher_head.weight.detach(),
                              teacher_head.bias.detach() if teacher_head.bias is not None else None, heads, chunk,
                              into_grad and head.tied and head.weight.is_leaf)


def head_nll(hidden, head: OutputHead, targets, chunk: int | None = None, into_grad: bool = False):
    """Per-row negative log-likelihood (float32) of ``targets`` given final hidden states ``hidden`` (N, h).

    ``into_grad`` (training with ``loss.backward()`` only, not ``torch.autograd.grad``): a tied head
    adds its gradient straight into the weight's existing ``.grad`` (see the backward pass).
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _chunked_nll_function()
    chunk = chunk or chunk_tokens(head.weight.shape[0])
    return _FUNCTION.apply(hidden, head.weight, head.bias, targets, head.scale, head.softcap, chunk,
                           into_grad and head.tied and head.weight.is_leaf)


def shifted_labels(labels):
    """Label t + 1 at position t, the ignore index at the last position (Hugging Face's shift)."""
    import torch.nn.functional as F

    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def token_nll(model, input_ids, labels=None, attention_mask=None, chunk: int | None = None, into_grad: bool = False,
              **body_kwargs):
    """Negative log-likelihood in nats (float32, shape of ``input_ids``) of label t + 1 at position t;
    0 where that label is ignored (-100) and at the last position. ``labels`` default to the inputs.

    Models whose layout ``model_parts`` does not know are scored through their full logits instead.
    """
    labels = input_ids if labels is None else labels
    targets = shifted_labels(labels)
    parts = model_parts(model)
    if parts is None:
        return _full_logits_nll(model, input_ids, targets, attention_mask, **body_kwargs)
    body, head = parts
    out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **body_kwargs)
    hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
    return _scatter_nll(hidden, head, targets, chunk, into_grad)


def _scatter_nll(hidden, head: OutputHead, targets, chunk: int | None, into_grad: bool = False):
    """``head_nll`` on the positions with a label only, put back in place (zeros elsewhere)."""
    import torch

    flat_targets = targets.reshape(-1)
    kept = (flat_targets != IGNORE_INDEX).nonzero().squeeze(1)  # ignored positions cost no logits at all
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, kept)
    nll = head_nll(rows, head, flat_targets.index_select(0, kept), chunk, into_grad)
    placed = torch.zeros(flat_targets.shape[0], dtype=torch.float32, device=nll.device).index_copy(0, kept, nll)
    return placed.view(targets.shape)


def _full_logits_nll(model, input_ids, targets, attention_mask, **kwargs):
    import torch.nn.functional as F

    logits = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                          reduction="none")
    return nll.view(targets.shape)


def causal_lm_loss(model, input_ids, labels=None, attention_mask=None, into_grad: bool = False,
                   teacher: ReplayTeacher | None = None, **body_kwargs):
    """(mean loss, NLL sum, labelled tokens): what ``model(input_ids, labels=...).loss`` computes, chunked.

    With a ``teacher`` the mean loss also holds ``teacher.weight`` times the KL sum of its rows' labelled
    positions, over the same count (the module docstring's formula); the NLL sum stays the NLL's.
    """
    labels = input_ids if labels is None else labels
    count = (shifted_labels(labels) != IGNORE_INDEX).sum()
    if teacher is None:
        total = token_nll(model, input_ids, labels, attention_mask, into_grad=into_grad, **body_kwargs).sum()
        return total / count, total, count
    nll, kl = _nll_and_kl(model, input_ids, labels, attention_mask, teacher, into_grad, **body_kwargs)
    total = nll.sum()
    return (total + teacher.weight * kl.sum()) / count, total, count


@dataclass(frozen=True)
class ReplayTeacher:
    """What the KL term of a batch's replay rows needs: the frozen teacher's final hidden states of those
    rows (computed without gradients before the student's forward), its output layer, the rows' indices
    in the batch and beta. Passed into the forward (``replay_teacher=``) so the loss stays inside it."""

    hidden: object  # (replay rows, positions, teacher hidden size)
    head: OutputHead
    rows: object  # long tensor: which rows of the batch are replay, in the order of ``hidden``
    weight: float


def teacher_inputs(teacher_model, rows, replay, weight: float) -> ReplayTeacher | None:
    """The ``ReplayTeacher`` of batch ``rows`` (ids) whose rows ``replay`` (bool list) are replay, or None
    when none is. The teacher (frozen, eval mode) runs under the caller's autocast, without gradients."""
    import torch

    index = torch.tensor([r for r, is_replay in enumerate(replay) if is_replay], dtype=torch.long, device=rows.device)
    if weight <= 0 or index.numel() == 0:
        return None
    parts = model_parts(teacher_model)
    with torch.no_grad():
        if parts is None:  # unknown layout: the teacher's full logits stand in for hidden states and head
            logits = teacher_model(input_ids=rows.index_select(0, index), use_cache=False).logits
            return ReplayTeacher(logits.float(), OutputHead(None, None), index, weight)
        body, head = parts
        out = body(input_ids=rows.index_select(0, index), use_cache=False)
    hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
    return ReplayTeacher(hidden, head, index, weight)


def _nll_and_kl(model, input_ids, labels, attention_mask, teacher: ReplayTeacher, into_grad: bool, **body_kwargs):
    """(per-position NLL as ``token_nll``, KL per labelled position of the teacher's rows), by chunks."""
    targets = shifted_labels(labels)
    parts = model_parts(model)
    if parts is None or teacher.head.weight is None:
        return _full_logits_nll_and_kl(model, input_ids, targets, attention_mask, teacher, **body_kwargs)
    body, head = parts
    out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **body_kwargs)
    hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
    nll = _scatter_nll(hidden, head, targets, None, into_grad)
    kept = (targets.index_select(0, teacher.rows).reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)
    student = hidden.index_select(0, teacher.rows).reshape(-1, hidden.shape[-1]).index_select(0, kept)
    taught = teacher.hidden.reshape(-1, teacher.hidden.shape[-1]).index_select(0, kept)
    return nll, head_kl(student, head, taught, teacher.head, into_grad=into_grad)


def _full_logits_nll_and_kl(model, input_ids, targets, attention_mask, teacher: ReplayTeacher, **kwargs):
    """The fallback for layouts ``model_parts`` does not know: everything from the full logits."""
    import torch.nn.functional as F

    logits = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                          reduction="none").view(targets.shape)
    if teacher.head.weight is None:
        teacher_logits = teacher.hidden.float()
    else:
        h = teacher.head
        teacher_logits, _ = _chunk_logits(teacher.hidden.to(h.weight.dtype), h.weight, h.bias, h.scale, h.softcap)
    kept = targets.index_select(0, teacher.rows) != IGNORE_INDEX
    log_q = F.log_softmax(logits.index_select(0, teacher.rows)[kept], -1)
    log_p = F.log_softmax(teacher_logits[kept].float(), -1)
    return nll, F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)


PER_TOKEN = "per_token"  # chunked_loss=PER_TOKEN: the forward's "loss" is token_nll's tensor, for scoring


def _chunked_forward(self, *args, chunked_loss: bool | str = False, **kwargs):
    """The model's forward; with ``chunked_loss=True`` it returns only the loss, computed by chunks (plus the
    KL term of ``replay_teacher=``, a ``ReplayTeacher``, when given), and with ``chunked_loss=PER_TOKEN``
    each position's negative log-likelihood (``token_nll``) as the loss."""
    if not chunked_loss:
        return self._plain_forward(*args, **kwargs)
    from transformers.modeling_outputs import CausalLMOutputWithPast

    if args:
        kwargs["input_ids"] = args[0]
    # A peft wrapper passes its unused arguments on as None; nothing else may be silently dropped.
    kwargs = {key: value for key, value in kwargs.items() if value is not None and key != "return_dict"}
    input_ids, labels = kwargs.pop("input_ids"), kwargs.pop("labels", None)
    attention_mask, teacher = kwargs.pop("attention_mask", None), kwargs.pop("replay_teacher", None)
    if chunked_loss == PER_TOKEN:
        return CausalLMOutputWithPast(loss=token_nll(self, input_ids, labels, attention_mask, **kwargs))
    # The training step calls backward() on this loss, so a tied head may add into .grad directly.
    loss, _, _ = causal_lm_loss(self, input_ids, labels, attention_mask, into_grad=True, teacher=teacher, **kwargs)
    return CausalLMOutputWithPast(loss=loss)


def scored_token_nll(model, input_ids, labels=None, attention_mask=None):
    """``token_nll`` computed inside ``model``'s own forward call, for scoring without gradients.

    Going through the forward matters for a sharded model: FSDP gathers the weights of its outermost
    unit (embeddings, final norm, output layer) in the hooks around that call, so calling the decoder
    body and the head directly would meet shards.
    """
    enable_chunked_loss(model)
    return model(input_ids=input_ids, labels=labels, attention_mask=attention_mask, chunked_loss=PER_TOKEN).loss


def enable_chunked_loss(model):
    """Make ``model(input_ids=..., labels=..., chunked_loss=True).loss`` the chunked loss; returns ``model``.

    The switch lives in the causal LM's own ``forward`` (as accelerate's mixed-precision wrapper does),
    so a call on a DDP or FSDP wrapper, or on a peft model, runs the whole loss inside the wrapped
    module's forward: DDP prepares its gradient all-reduce there, FSDP gathers the sharded weights there.
    Calling the body and head directly from outside would bypass both. Without the flag the forward is
    the model's own. Idempotent.
    """
    lm = causal_lm_of(model)
    if "_plain_forward" not in lm.__dict__:
        lm._plain_forward = lm.forward
        lm.forward = MethodType(_chunked_forward, lm)
    return model
