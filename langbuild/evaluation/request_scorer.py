"""lm-eval's HFLM without its wasted passes: the same requests, the same numbers, less compute.

lm-eval builds the requests (tokenization, truncation, the prefix token) and computes the metrics
from the answers exactly as before; only the forward passes behind the answers change:

* **shared contexts** (multiple choice): HFLM runs every (context, choice) pair as its own row, so an
  item's context goes through the model once per choice. Here the context runs once, its KV cache is
  repeated for the choices, and only the choices' tokens are computed on top of it (the prefix
  caching idea of vLLM's automatic prefix caching / SGLang's RadixAttention, Zheng et al. 2024,
  "SGLang: Efficient Execution of Structured Language Model Programs").
* **length-sorted rolling windows**: HFLM batches a rolling task's windows in file order, so short
  documents wait padded next to long ones; here all windows of all documents are sorted by length
  first.
* **only the scored positions reach the output layer** (``logits_to_keep``): HFLM computes the full
  vocabulary's log-probabilities at every context position too, then throws them away.
* **progress**: every request advances a bar (``langbuild.core.progress``), generation tasks through
  HFLM's own tqdm.

Each answer is a sum of the same per-token log-probabilities as HFLM's, from mathematically identical
attention (a causal model cannot see right padding nor a cache's copy differently from the original),
so scores agree to float rounding: accuracies exactly, bits per byte to ~1e-7 in fp32.
"""

from __future__ import annotations

import contextlib
import inspect

from ..core.progress import progress


def make_shared_prefix_lm(model, tokenizer, batch_size: int, console=None):
    """An HFLM subclass instance over an in-memory model (import of lm-eval deferred: it is slow)."""
    from lm_eval.models.huggingface import HFLM

    class SharedPrefixLM(HFLM):
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            with progress(console, "lm-eval requests", len(requests), "requests") as bar:
                return _answer_requests(self, requests, bar)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return _rolling(self, requests, console)

        def generate_until(self, requests, disable_tqdm: bool = False):
            with progress(console, "lm-eval generation", len(requests), "requests") as bar, _tqdm_drives(bar):
                return super().generate_until(requests, disable_tqdm=False)

    return SharedPrefixLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


# ---------------------------------------------------------------- loglikelihood requests


def _fits(lm, context: list[int], continuation: list[int]) -> bool:
    return len(context) + len(continuation) <= lm.max_length + 1


def _answer_requests(lm, requests, bar) -> list[tuple[float, bool]]:
    """(log-probability, greedy) per request, in request order; requests sharing a context share its pass."""
    answers: list[tuple[float, bool] | None] = [None] * len(requests)
    by_context: dict[tuple[int, ...], list[int]] = {}
    plain: list[int] = []
    for index, (_, context, continuation) in enumerate(requests):
        if _fits(lm, context, continuation) and _can_share(lm):
            by_context.setdefault(tuple(context), []).append(index)
        else:
            plain.append(index)
    for context, indices in by_context.items():
        if len(indices) == 1:
            plain.extend(indices)
            continue
        scored = _shared_context(lm, list(context), [requests[i][2] for i in indices])
        for index, answer in zip(indices, scored):
            answers[index] = answer
            _record(lm, requests[index][0], answer)
        bar.advance(len(indices))
    for batch in _length_sorted_batches([requests[i] for i in plain], plain, lm.batch_size):
        for index, answer in zip(batch, _rows(lm, [requests[i] for i in batch])):
            answers[index] = answer
            _record(lm, requests[index][0], answer)
        bar.advance(len(batch))
    return answers


def _record(lm, request_key, answer) -> None:
    # What HFLM does per answer: lm-eval's CachingLM stores it in the request cache through this hook.
    if request_key is not None:
        lm.cache_hook.add_partial("loglikelihood", request_key, answer)


def _length_sorted_batches(rows: list, keys: list, batch_size: int) -> list[list]:
    """``keys`` grouped in batches of ``batch_size``, longest rows first, so rows of a batch need little padding."""
    order = sorted(range(len(rows)), key=lambda k: -(len(rows[k][1]) + len(rows[k][2])))
    return [[keys[k] for k in order[i : i + batch_size]] for i in range(0, len(order), batch_size)]


def _can_share(lm) -> bool:
    return lm.backend == "causal" and _cache_argument(lm.model) is not None


def forward_parameters(model):
    """The parameters of the model's own forward, also after ``langbuild.training.loss`` wrapped it (the held-out
    scoring does) in a function that takes ``*args, **kwargs``."""
    return inspect.signature(model.__dict__.get("_plain_forward", model.forward)).parameters


def _cache_argument(model) -> str | None:
    parameters = forward_parameters(model)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _keeps_logits(model) -> bool:
    return "logits_to_keep" in forward_parameters(model)


def _scored(lm, logits, tokens: list[int]) -> tuple[float, bool]:
    """(sum of log-probabilities of ``tokens`` under ``logits`` [len(tokens), vocab], all greedy), as HFLM."""
    import torch
    import torch.nn.functional as F

    log_probs = F.log_softmax(logits, dim=-1, dtype=lm.softmax_dtype)
    target = torch.tensor(tokens, dtype=torch.long, device=log_probs.device)
    greedy = bool((log_probs.argmax(dim=-1) == target).all())
    return float(log_probs.gather(1, target.unsqueeze(-1)).sum()), greedy


def _shared_context(lm, context: list[int], continuations: list[list[int]]) -> list[tuple[float, bool]]:
    """The context once (keeping its KV cache and last logits), then every continuation on a copy of the cache.

    Row k of the second pass is continuation k without its last token (right-padded): its logits
    predict the continuation's tokens after the first, which the context's last logits predict.
    """
    import torch

    model, device = lm.model, lm.device
    name = _cache_argument(model)
    keep = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    with torch.no_grad():
        first = model(input_ids=torch.tensor([context], device=device), use_cache=True, **keep)
        last = first.logits[0, -1:]
        cache = _cache_of(first)
        width = max(len(c) for c in continuations) - 1
        rest = None
        if width > 0:
            cache.batch_repeat_interleave(len(continuations))
            rows = torch.tensor([c[:-1] + [0] * (width - len(c) + 1) for c in continuations], device=device)
            rest = model(input_ids=rows, use_cache=True, **{name: cache}).logits
    answers = []
    for k, continuation in enumerate(continuations):
        logits = last if len(continuation) == 1 else torch.cat([last, rest[k, : len(continuation) - 1]])
        answers.append(_scored(lm, logits, continuation))
    return answers


def _rows(lm, requests) -> list[tuple[float, bool]]:
    """HFLM's own scheme for one batch: each (context + continuation) as a right-padded row, truncated from
    the left to the model's length; only the positions that predict a continuation token reach the head."""
    import torch

    inputs = [(context + continuation)[-(lm.max_length + 1) :][:-1] for _, context, continuation in requests]
    width = max(len(row) for row in inputs)
    first_scored = min(len(row) - len(continuation) for row, (_, _, continuation) in zip(inputs, requests))
    batch = torch.tensor([row + [0] * (width - len(row)) for row in inputs], device=lm.device)
    keep = {"logits_to_keep": torch.arange(first_scored, width, device=lm.device)} if _keeps_logits(lm.model) else {}
    offset = first_scored if keep else 0
    with torch.no_grad():
        logits = lm.model(input_ids=batch, use_cache=False, **keep).logits
    answers = []
    for k, (row, (_, _, continuation)) in enumerate(zip(inputs, requests)):
        end = len(row) - offset
        answers.append(_scored(lm, logits[k, end - len(continuation) : end], continuation))
    return answers


# ---------------------------------------------------------------- rolling log-likelihood


def _rolling(lm, requests, console) -> list[float]:
    """Every document's summed log-likelihood over HFLM's disjoint rolling windows, all windows length-sorted."""
    from lm_eval import utils

    windows, owner = [], []
    for document, (text,) in enumerate(request.args for request in requests):
        for context, continuation in map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=lm.tok_encode(text), prefix_token=lm.prefix_token_id, max_seq_len=lm.max_length,
                context_len=1)):
            windows.append((None, context, continuation))
            owner.append(document)
    totals = [0.0] * len(requests)
    with progress(console, "lm-eval rolling windows", len(windows), "windows") as bar:
        for batch in _length_sorted_batches(windows, list(range(len(windows))), lm.batch_size):
            for index, (log_prob, _) in zip(batch, _rows(lm, [windows[i] for i in batch])):
                totals[owner[index]] += log_prob
            bar.advance(len(batch))
    for request, total in zip(requests, totals):
        lm.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
    return totals


# ---------------------------------------------------------------- generation


@contextlib.contextmanager
def _tqdm_drives(bar):
    """HFLM's generate_until counts its requests on a tqdm bar: forward its updates to ``bar``."""
    import lm_eval.models.huggingface as hf

    class Forwarding:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, count: int = 1) -> None:
            bar.advance(count)

        def close(self) -> None:
            pass

    original = hf.tqdm
    hf.tqdm = Forwarding
    try:
        yield
    finally:
        hf.tqdm = original
