"""Held-out bits per byte and generation speed, cached under .langbuild/cache/scores/ like lm-eval's answers.

A re-run of eval on unchanged models used to spend most of its time recomputing these. Each result is
stored as one JSON file named by a hash of everything that decides it:

* **bits per byte**: the model's identity (a hash of its weights and tokenizer files, so changing one
  weight misses the cache), the precision it is scored in, the texts, and the settings that change
  the number (batch size: padding changes float rounding; bootstrap samples and seed: the interval);
* **generation speed**: the model's *shape* (its config without names and token ids, and the
  parameters' dtype), the token ids it decodes and this machine (CPU, threads, device). Speed does
  not depend on the weights' values, so the trained model, which has the extended model's shape and
  tokenizer, reuses the extended model's timing instead of being timed again.

``SCORES_VERSION`` is part of every key: raise it when the scoring code changes what it computes.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.hashing import hash_json

SCORES_VERSION = 1
NOT_SHAPE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures", "name_or_path")


def cached(folder: Path, kind: str, key: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """(``compute()``'s result, False), stored under ``key``; or (the stored result, True) when ``key`` was seen."""
    path = folder / f"{kind}-{hash_json({'version': SCORES_VERSION, 'kind': kind, **key})[:24]}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), True
    except (OSError, ValueError):  # absent or unreadable (a crash mid-write is prevented, a hand edit is not): recompute
        pass
    result = compute()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return result, False


def held_out_key(identity: str, dtype: str, texts: dict[str, list[str]], batch_size: int, bootstrap_samples: int,
                 seed: int) -> dict:
    return {"model": identity, "dtype": dtype, "texts": texts, "batch_size": batch_size,
            "bootstrap_samples": bootstrap_samples, "seed": seed}


def shape_of(model) -> dict:
    """What decides a forward pass's cost: the config without names and token ids, the parameters' dtype and device."""
    config = {key: value for key, value in model.config.to_dict().items()
              if key not in NOT_SHAPE and not key.endswith("_token_id")}
    return {"config": config, "dtype": str(model.dtype), "device": str(model.device)}


def speed_key(model, token_ids: list, threads: int) -> dict:
    """``token_ids``: per text, the (prompt, continuation) ids the model decodes; ``threads``: torch's intra-op threads."""
    machine = {"cpu": platform.processor() or platform.machine(), "node": platform.node(), "threads": threads}
    return {"shape": shape_of(model), "tokens": token_ids, "machine": machine}
