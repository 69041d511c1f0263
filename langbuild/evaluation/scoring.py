"""Scoring one model for the eval step: bits per byte of held-out text with bootstrap intervals, tokens
per word, generation speed (pipeline models only) and the planned lm-eval benchmarks.

Bits per byte and speed are cached per model identity (``score_cache``), lm-eval's answers in its own
request cache; every long part shows a progress bar on the console it is given."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..core.errors import out_of_memory_becomes
from ..core.hashing import hash_file, hash_json
from ..core.progress import LazyBar
from ..models.loading import load_model, load_tokenizer
from ..models.scoring import bits_per_byte
from ..reporting.data import PIPELINE_MODELS
from ..tokenization.statistics import hf_encoder, tokenizer_stats
from ..training.precision import cast_parameters
from . import bootstrap, score_cache
from .builtin_tasks import builtin_task_folder
from .task_plan import TaskPlan, fewshot_key


@dataclass(frozen=True)
class ScoringSettings:
    """The eval settings every model is scored under."""

    batch_size: int  # eval.batch_size: held-out windows and lm-eval requests scored at once
    bootstrap_samples: int
    max_items: int | None  # eval.max_items: lm-eval's limit per task
    seed: int
    trust_remote_code: bool
    precision: str  # eval.precision resolved on this machine
    cache_dir: Path  # where lm-eval's request caches live, one per model identity

    @property
    def scores_cache(self) -> Path:
        """Where held-out bits per byte and speed are cached: next to lm-eval's caches (.langbuild/cache/scores)."""
        return self.cache_dir.parent / "scores"


def safe_name(text: str) -> str:
    """A file name from a label or task name (which may be a path or come from a user's YAML)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text) or "_"


_IDENTITIES: dict[tuple, str] = {}


def model_identity(folder: Path) -> str:
    """A hash of a model folder's weights and tokenizer: the key of its lm-eval request cache.

    Remembered for the process by each file's size and modification time, so the scores, lm-eval and
    the samples of one eval run read the weights once; a rewritten file is hashed again."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")
    stats = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(folder.resolve()), stats)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = hash_json({p.name: hash_file(p) for p in files})[:20]
    return _IDENTITIES[key]


def held_out_bits(model, tokenizer, texts: dict[str, list[str]], batch_size: int, bootstrap_samples: int, seed: int,
                  console=None) -> dict:
    """Per side ("target", "source"): bits per byte with its bootstrap interval, bytes, tokens per word."""
    out = {}
    for side, sample in texts.items():
        with LazyBar(console, f"{side} text", "windows") as bar:
            scored = bits_per_byte(model, tokenizer, sample, batch_size=batch_size, report=bar)
        out[side] = {
            "bits_per_byte": scored["bits_per_byte"],
            "interval": bootstrap.bits_per_byte_interval(scored, samples=bootstrap_samples, seed=seed),
            "bytes": scored["bytes"],
            "tokens_per_word": tokenizer_stats(hf_encoder(tokenizer), sample)["tokens_per_word"],
        }
    return out


def speed_texts(held_out: list[str], chars: int) -> list[str]:
    """The first held-out documents, until they hold ``chars`` characters (eval.speed_chars)."""
    chosen, total = [], 0
    for text in held_out:
        if total >= chars:
            break
        chosen.append(text)
        total += len(text)
    return chosen


def generation_speed(model, tokenizer, texts: list[str], splits: list[int], cache: Path, console=None) -> dict | None:
    """Characters/s decoding ``texts`` after prompts cut at the same characters for every model; a model of a
    shape already timed on the same tokens (the trained model after the extended one) reuses that timing."""
    import torch

    from .speed import decoded_ids, forced_generation_speed

    if not texts:
        return None

    def timed() -> dict:
        with LazyBar(console, "generation speed", "tokens") as bar:
            return forced_generation_speed(model, tokenizer, texts, splits=splits, report=bar)

    key = score_cache.speed_key(model, decoded_ids(tokenizer, texts, splits), torch.get_num_threads())
    return score_cache.cached(cache, "speed", key, timed)[0]


def run_benchmarks(model, tokenizer, label: str, identity: str, plan: TaskPlan, task_manager, settings: ScoringSettings,
                   console=None) -> dict:
    """Every planned task on one model (``identity``: its ``model_identity``); a task that fails on it is added to
    ``plan.skipped``."""
    from . import harness

    # The same weights answer differently in another precision: the precision is part of the cache's key.
    identity = f"{identity}-{str(model.dtype).removeprefix('torch.')}{fewshot_key(plan)}"
    cache_file = settings.cache_dir / f"{safe_name(label)[:40]}-{identity}"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cached = any(cache_file.parent.glob(cache_file.name + "_rank*.db"))
    lm = harness.make_lm(model, tokenizer, settings.batch_size, console)
    options = {"limit": settings.max_items, "bootstrap_samples": settings.bootstrap_samples, "seed": settings.seed}
    started = time.perf_counter()
    scores = harness.run_local(lm, plan.local, plan.folder, cache_file, fewshot=plan.fewshot, **options)
    for name in [*plan.yaml_tasks, *plan.builtin]:
        manager = task_manager(plan.yaml_tasks.get(name) or builtin_task_folder(name))
        score, reason = harness.run_builtin(lm, name, manager, cache_file, num_fewshot=plan.fewshot.get(name, 0), **options)
        if score:
            scores[name] = score
        elif reason and not any(s.get("task") == name for s in plan.skipped):
            plan.skip(name, reason)
    return {"scores": scores, "seconds": time.perf_counter() - started, "cached": cached}


def task_managers():
    """Task managers built on first use, one per folder of YAML: the user's, or the one of lm-eval's
    built-in task asked for; None gives lm-eval's whole index (~15,000 tasks, ~12 s), for its groups and tags."""
    made: dict[Path | None, object] = {}

    def get(folder: Path | None):
        if folder not in made:
            from lm_eval.tasks import TaskManager

            made[folder] = TaskManager(include_path=str(folder), include_defaults=False) if folder else TaskManager()
        return made[folder]

    return get


def score_model(label: str, folder: Path, texts: dict[str, list[str]], speed: tuple[list[str], list[int]], plan: TaskPlan,
                managers, settings: ScoringSettings, console=None) -> dict:
    """Held-out bits per byte, generation speed (pipeline models) and benchmarks of the model in ``folder``."""
    tokenizer = load_tokenizer(folder, settings.trust_remote_code)
    identity = model_identity(folder)
    # eval.batch_size sets both the held-out windows and the lm-eval requests scored at once.
    with out_of_memory_becomes(f"out of memory scoring the {label} model: lower eval.batch_size "
                               f"(now {settings.batch_size})"):
        model = cast_parameters(load_model(folder, settings.trust_remote_code), settings.precision)
        key = score_cache.held_out_key(identity, str(model.dtype), texts, settings.batch_size, settings.bootstrap_samples,
                                       settings.seed)
        scored = partial(held_out_bits, model, tokenizer, texts, settings.batch_size, settings.bootstrap_samples,
                         settings.seed, console)
        result = {"held_out": score_cache.cached(settings.scores_cache, "held-out", key, scored)[0]}
        if label in PIPELINE_MODELS:
            result["speed"] = generation_speed(model, tokenizer, *speed, settings.scores_cache, console)
        result["benchmarks"] = run_benchmarks(model, tokenizer, label, identity, plan, managers, settings, console)
    del model, scored
    return result
